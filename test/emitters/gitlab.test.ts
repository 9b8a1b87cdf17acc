import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { emitterContract, type Harness } from './contract.js';

type GitlabConfig = Extract<EmitterConfig, { type: 'gitlab' }>;
export function gitlabConfig(url: string, extra: Partial<GitlabConfig> = {}): GitlabConfig {
  return { name: 'gl', type: 'gitlab', url, token: '${env:GITLAB_TOKEN}', groups: ['platform'], runnerOwner: { group: 'platform' }, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra };
}
const fastHttp = () => new HttpClient({ timeoutMs: 400, retries: 3, concurrency: 8, backoffMs: 5 });

async function harness(): Promise<Harness> {
  const emu = await new GitlabEmulator().start();
  const platform = emu.addGroup('platform');
  const sub = emu.addGroup('mobile', platform);
  const api = emu.addProject('api', platform);
  emu.addProject('ios', sub);
  const emitter = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
  return {
    emitter,
    emu,
    token: emu.token,
    pool: 'linux-pool',
    queueJob: (labels) => void emu.addJob(api, 'pending', labels),
    runOn: (node) => void emu.startJob(node, api, ['linux']),
    finishAll: () => {
      for (const r of emu.runners) emu.finishJob(r.description);
    },
    bringOnline: (node) => void emu.connect(node),
    addUnmarked: (name) => void emu.addRunner(name),
    listPath: /\/projects\/\d+\/jobs$/,
    pagedPath: /\/groups\/\d+\/projects$/,
    middlePage: /[?&]page=2(&|$)/,
    seedMany: () => {
      for (let i = 0; i < 250; i++) emu.addProject(`p${i}`, platform);
    },
    pauseKeeps: true,
    close: () => emu.stop(),
  };
}

emitterContract('gitlab', harness, { paginated: true, duplicateNames: true });

describe('gitlab emitter', () => {
  it('reads jobs of every project under the groups (subgroups too) and of listed projects, as upcoming for created jobs', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const platform = emu.addGroup('platform');
      const sub = emu.addGroup('mobile', platform);
      const other = emu.addGroup('other');
      const api = emu.addProject('api', platform);
      const ios = emu.addProject('ios', sub);
      const lone = emu.addProject('lone', other);
      emu.addJob(api, 'pending', ['linux'], { pipeline_id: 7 });
      emu.addJob(api, 'created', ['linux'], { pipeline_id: 7 });
      emu.addJob(ios, 'pending', ['macos']);
      emu.addJob(lone, 'pending', []);
      emu.addJob(api, 'success', ['linux']);
      const e = new GitlabEmitter(gitlabConfig(emu.url, { projects: ['other/lone'] }), emu.token, fastHttp());
      const r = await e.probe();
      expect(r.ok).toBe(true);
      expect(r.jobs.map((j) => [j.status, j.labels.join(',')]).sort()).toEqual([['queued', ''], ['queued', 'linux'], ['queued', 'macos'], ['upcoming', 'linux']]);
      expect(emu.unexpected).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('creates group runners with POST /user/runners: tags = labels, description = node name', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const g = emu.addGroup('platform');
      const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      const cred = await e.register({ node: 'p-n1', pool: 'p', labels: ['linux', 'docker'], jobsPerNode: 2, ephemeral: false, acceptUntagged: true });
      expect(cred).toEqual({ kind: 'gitlab', url: emu.url, token: expect.stringMatching(/^glrt-/) });
      expect(emu.runners[0]).toMatchObject({ description: 'p-n1', tag_list: ['linux', 'docker'], runner_type: 'group_type', group_id: g.id, run_untagged: true });
      expect(emu.count('POST', /\/user\/runners$/)).toBe(1);
    } finally {
      await emu.stop();
    }
  });

  it('reports a refused registration as an EmitterError without the token', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      emu.addGroup('platform');
      emu.faults.push({ method: 'POST', path: /\/user\/runners$/, status: 403, body: { message: '403 Forbidden' } });
      const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      const err = await e.register({ node: 'p-n1', pool: 'p', labels: [], jobsPerNode: 1, ephemeral: false, acceptUntagged: false }).catch((x: unknown) => x as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/POST \/api\/v4\/user\/runners: HTTP 403 Forbidden \(the token lacks a permission\)/);
      expect((err as Error).message).not.toContain(emu.token);
    } finally {
      await emu.stop();
    }
  });

  it('marks the runner with maintenance_note, reads it from the runner details once, and reports never_contacted as contacted false', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const g = emu.addGroup('platform');
      emu.addProject('api', g);
      const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      await e.register({ node: 'p-n1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      expect(emu.runners[0]?.maintenance_note).toBe('parmanu-pool=p');
      let r = await e.probe();
      expect(r.runners).toEqual([expect.objectContaining({ name: 'p-n1', pool: 'p', labels: ['linux'], online: false, contacted: false })]);
      emu.connect('p-n1');
      r = await e.probe();
      expect(r.runners[0]).toMatchObject({ online: true, contacted: true });
      // A fresh emitter reads the marker from the details, once per runner.
      const other = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      emu.addRunner('p-n2');
      const before = emu.count('GET', /\/runners\/\d+$/);
      await other.probe();
      await other.probe();
      expect(emu.count('GET', /\/runners\/\d+$/) - before).toBe(2);
      expect((await other.probe()).runners.map((x) => x.name)).toEqual(['p-n1']);
    } finally {
      await emu.stop();
    }
  });

  it('says not idle while the runner has a running job, asked of the runner itself', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const g = emu.addGroup('platform');
      const api = emu.addProject('api', g);
      const e = new GitlabEmitter(gitlabConfig(emu.url, { groups: [], projects: [] }), emu.token, fastHttp());
      await e.register({ node: 'p-n1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      emu.connect('p-n1');
      const job = emu.startJob('p-n1', api);
      // The probe reads no project (none configured): its view has no job, the runner's own jobs do.
      expect((await e.probe()).runners[0]?.busy).toBe(false);
      expect(await e.isIdle('p-n1')).toBe(false);
      emu.finishJob(job.id);
      expect(await e.isIdle('p-n1')).toBe(true);
      expect(emu.jobRecords).toEqual([expect.objectContaining({ job: String(job.id), runner: 'p-n1', end: expect.any(Number) })]);
    } finally {
      await emu.stop();
    }
  });

  it('records a runner removed while it runs a job (the soak invariant)', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const g = emu.addGroup('platform');
      emu.addProject('api', g);
      const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      await e.register({ node: 'p-n1', pool: 'p', labels: [], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      emu.connect('p-n1');
      emu.startJob('p-n1');
      await e.deregister('p-n1');
      expect(emu.runnerDeleted('p-n1')).toMatchObject({ busy: true, jobs: [expect.any(String)] });
      expect(emu.removedWhileBusy()).toHaveLength(1);
    } finally {
      await emu.stop();
    }
  });
});

describe('GitLab runner look-ups that act on a runner', () => {
  it('reject when a page of the runner list is missing, instead of taking a runner on it for gone', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const platform = emu.addGroup('platform');
      const api = emu.addProject('api', platform);
      for (let i = 0; i < 120; i++) emu.addRunner(`someone-${i}`);
      emu.addRunner('linux-pool-busy', { maintenance_note: 'parmanu-pool=linux-pool' });
      emu.startJob('linux-pool-busy', api, ['linux']);
      const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp());
      emu.faults.push({ path: /\/groups\/\d+\/runners$/, query: /[?&]page=2(&|$)/, emptyPage: true });
      await expect(e.isIdle('linux-pool-busy')).rejects.toThrow(/items came back/);
      await expect(e.pause('linux-pool-busy')).rejects.toThrow(/items came back/);
      expect(emu.runnerNamed('linux-pool-busy')?.paused).toBe(false);
      emu.faults.length = 0;
      expect(await e.isIdle('linux-pool-busy')).toBe(false);
    } finally {
      await emu.stop();
    }
  });
});
