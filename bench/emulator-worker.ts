/**
 * Runs an emulator in a worker thread, so that a benchmark measures the client and not the
 * emulator sharing its event loop (a real CI platform is another machine).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GitlabEmulator } from '../test/emulators/gitlab.js';

interface Seed {
  kind: 'gitlab-projects';
  projects: number;
  jobsPerProject: number;
  latencyMs: number;
}

const seed = workerData as Seed;
const emu = await new GitlabEmulator().start();
const group = emu.addGroup('platform');
for (let p = 0; p < seed.projects; p++) {
  const project = emu.addProject(`svc-${p}`, group);
  for (let j = 0; j < seed.jobsPerProject; j++) emu.addJob(project, 'pending', ['linux', 'docker'], { pipeline_id: 100_000 + p });
}
emu.latencyMs = seed.latencyMs;
parentPort?.postMessage({ url: emu.url, token: emu.token });
parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') void emu.stop().then(() => process.exit(0));
});
