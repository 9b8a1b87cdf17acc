/** The GitHub emitter's contract harness, shared by the token (github.test.ts) and App (github-app.test.ts) suites. */
import type { GithubEmitter } from '../../src/emitters/github.js';
import type { GithubEmulator } from '../emulators/github.js';
import type { Harness } from './contract.js';

/** The contract's harness over an emulator and an emitter of it; `token`: the credential the secret scan looks for. */
export function githubHarness(emu: GithubEmulator, emitter: GithubEmitter, token: string): Harness {
  return {
    emitter,
    emu,
    token,
    pool: 'linux-pool',
    queueJob: (labels) => void emu.addRun('api', [{ labels }]),
    runOn: (node) => void emu.startJob(node, 'web', ['self-hosted', 'linux']),
    finishAll: () => {
      for (const r of [...emu.runners]) emu.finishJob(r.name);
    },
    bringOnline: (node) => void emu.connect(node),
    addUnmarked: (name) => void emu.configureRunner(name, ['linux']),
    listPath: /\/actions\/runs$/,
    pagedPath: /\/orgs\/acme\/actions\/runners$/,
    middlePage: /[?&]page=2(&|$)/,
    seedMany: () => {
      for (let i = 0; i < 250; i++) emu.runners.push({ id: 90_000 + i, name: `someone-else-${i}`, os: 'linux', status: 'online', busy: false, labels: ['self-hosted'], ephemeral: false });
    },
    pauseKeeps: false,
    close: () => emu.stop(),
  };
}
