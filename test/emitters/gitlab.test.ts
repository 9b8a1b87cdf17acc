import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { GitlabEmulator, type GlGroup, type GlSchedule } from '../emulators/gitlab.js';
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

describe('GitLab pipeline schedules (pre-warming)', () => {
  const NOW = Date.parse('2026-03-02T10:00:00Z');
  /** An emulator with group platform, project platform/api, and emitter and emulator on one movable clock. */
  async function setup() {
    const emu = await new GitlabEmulator().start();
    const clock = { now: NOW };
    emu.clock = () => clock.now;
    const g = emu.addGroup('platform');
    const api = emu.addProject('api', g);
    const e = new GitlabEmitter(gitlabConfig(emu.url), emu.token, fastHttp(), () => clock.now);
    return { emu, clock, api, e };
  }
  /** A finished run of the schedule with these jobs (a "Run now": next_run_at stays). */
  const ranBefore = (emu: GitlabEmulator, s: GlSchedule, jobs: Array<{ tags: string[]; status?: string }>) => emu.finishPipeline(emu.runSchedule(s, jobs, { due: false }));
  const times = (n: number, tags: string[], status?: string) => Array.from({ length: n }, () => ({ tags, ...(status ? { status } : {}) }));
  const scheduleCalls = (emu: GitlabEmulator) => emu.log.filter((l) => /pipeline_schedules|\/pipelines\/\d+\/jobs\?(?!.*scope)/.test(l));

  it('reports the active schedules due within the hour with the most jobs per label set of their last 3 runs', async () => {
    const { emu, api, e } = await setup();
    try {
      const nightly = emu.addSchedule(api, { description: 'nightly', cron: '30 10 * * *' });
      ranBefore(emu, nightly, times(20, ['linux'])); // the 4th run back: not read
      ranBefore(emu, nightly, [...times(4, ['linux']), ...times(3, ['linux'], 'skipped'), ...times(2, ['linux'], 'manual')]);
      ranBefore(emu, nightly, [...times(6, ['linux']), ...times(2, ['docker', 'linux'])]);
      ranBefore(emu, nightly, [...times(5, ['linux']), { tags: [] }]);
      const later = emu.addSchedule(api, { description: 'later', cron: '0 13 * * *' });
      ranBefore(emu, later, times(9, ['linux']));
      const off = emu.addSchedule(api, { description: 'off', cron: '45 10 * * *', active: false });
      ranBefore(emu, off, times(9, ['linux']));
      const never = emu.addSchedule(api, { description: 'never ran', cron: '40 10 * * *' });
      const r = await e.probe();
      expect(r).toMatchObject({ ok: true, partial: false });
      expect(r.reason).toBeUndefined();
      expect(r.scheduled).toEqual([{ id: String(nightly.id), project: 'platform/api', description: 'nightly', nextRunAt: Date.parse('2026-03-02T10:30:00Z'), runs: 3, jobs: expect.arrayContaining([{ labels: ['linux'], count: 6 }, { labels: ['docker', 'linux'], count: 2 }, { labels: [], count: 1 }]) }]);
      expect(r.scheduled?.[0]?.jobs).toHaveLength(3);
      // The list asks for active ones; the schedule beyond the hour and the inactive one are never read further.
      expect(emu.count('GET', new RegExp(`/pipeline_schedules/(${later.id}|${off.id})`))).toBe(0);
      expect(emu.count('GET', new RegExp(`/pipeline_schedules/${never.id}$`))).toBe(1);
      expect(emu.log.filter((l) => l.includes('/pipeline_schedules?'))).toEqual([expect.stringMatching(/scope=active/)]);
      expect(emu.unexpected).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('reads every page of the schedule list and of a run\'s jobs', async () => {
    const { emu, api, e } = await setup();
    try {
      for (let i = 0; i < 130; i++) emu.addSchedule(api, { description: `yearly-${i}`, cron: '0 0 1 1 *' });
      const last = emu.addSchedule(api, { description: 'soon', cron: '10 10 * * *' });
      ranBefore(emu, last, times(130, ['linux']));
      const r = await e.probe();
      expect(r.partial).toBe(false);
      expect(r.scheduled).toEqual([expect.objectContaining({ id: String(last.id), jobs: [{ labels: ['linux'], count: 130 }] })]);
      expect(emu.count('GET', /\/pipeline_schedules\?/)).toBe(2);
      expect(emu.count('GET', /\/pipelines\/\d+\/jobs\?/)).toBe(2);
    } finally {
      await emu.stop();
    }
  });

  it('a steady state costs no call beyond the schedule list every few minutes; a run reads its new pipeline only', async () => {
    const { emu, clock, api, e } = await setup();
    try {
      const nightly = emu.addSchedule(api, { description: 'nightly', cron: '30 10 * * *' });
      for (let i = 0; i < 3; i++) ranBefore(emu, nightly, times(4 + i, ['linux']));
      const first = await e.probe();
      expect(first.scheduled?.[0]?.jobs).toEqual([{ labels: ['linux'], count: 6 }]);
      // list, details, runs, 3 × jobs
      expect(scheduleCalls(emu)).toHaveLength(6);
      const seen = emu.log.length;
      clock.now += 30_000;
      const second = await e.probe();
      expect(emu.log.slice(seen).filter((l) => l.includes('pipeline_schedules'))).toEqual([]);
      expect(second.scheduled).toEqual(first.scheduled);
      // The probe's own count: the group's projects, the project's jobs and the group's runners, nothing more.
      expect(second.meta.apiCalls).toBe(3);
      expect(emu.log.slice(seen).map((l) => l.split('?')[0]).sort()).toEqual([`/api/v4/groups/${api.namespace_id}/projects`, `/api/v4/groups/${api.namespace_id}/runners`, `/api/v4/projects/${api.id}/jobs`].map((x) => `GET ${x}`));
      // Past the TTL: the list alone (nothing changed).
      clock.now += 5 * 60_000;
      const mark = emu.log.length;
      await e.probe();
      expect(emu.log.slice(mark).filter((l) => l.includes('pipeline_schedules'))).toEqual([expect.stringMatching(/\/pipeline_schedules\?/)]);
      // An edit (updated_at moves, no new pipeline): the details, not the runs.
      emu.editSchedule(nightly, { description: 'nightly build' });
      clock.now += 5 * 60_000;
      const mark2 = emu.log.length;
      const edited = await e.probe();
      expect(emu.log.slice(mark2).filter((l) => l.includes('pipeline'))).toEqual([expect.stringMatching(/\/pipeline_schedules\?/), expect.stringMatching(new RegExp(`/pipeline_schedules/${nightly.id}$`))]);
      expect(edited.scheduled?.[0]).toMatchObject({ description: 'nightly build', jobs: [{ labels: ['linux'], count: 6 }] });
      // It runs when due (10:30): the listing is read again a minute after the due time; due tomorrow now, beyond the horizon.
      clock.now = Date.parse('2026-03-02T10:30:00Z');
      const p = emu.runSchedule(nightly, times(9, ['linux']));
      emu.finishPipeline(p);
      clock.now += 61_000;
      const mark3 = emu.log.length;
      const ran = await e.probe();
      expect(emu.log.slice(mark3).filter((l) => l.includes('pipeline'))).toEqual([expect.stringMatching(/\/pipeline_schedules\?/)]);
      expect(ran.scheduled).toBeUndefined();
      // Within the hour before tomorrow's run: its details, its runs, and the jobs of the one run not read before.
      clock.now = Date.parse('2026-03-03T09:45:00Z');
      const mark4 = emu.log.length;
      const tomorrow = await e.probe();
      expect(emu.log.slice(mark4).filter((l) => l.includes('pipeline'))).toEqual([
        expect.stringMatching(/\/pipeline_schedules\?/),
        expect.stringMatching(new RegExp(`/pipeline_schedules/${nightly.id}$`)),
        expect.stringMatching(new RegExp(`/pipeline_schedules/${nightly.id}/pipelines\\?`)),
        expect.stringMatching(new RegExp(`/pipelines/${p.id}/jobs\\?`)),
      ]);
      expect(tomorrow.scheduled).toEqual([expect.objectContaining({ nextRunAt: Date.parse('2026-03-03T10:30:00Z'), jobs: [{ labels: ['linux'], count: 9 }] })]);
    } finally {
      await emu.stop();
    }
  });

  it('a 403 on schedules is said once, leaves the probe whole, and is not asked again within the hour', async () => {
    const { emu, clock, api, e } = await setup();
    try {
      emu.addJob(api, 'pending', ['linux']);
      emu.faults.push({ path: /\/pipeline_schedules$/, status: 403, body: { message: '403 Forbidden' } });
      const r = await e.probe();
      expect(r).toMatchObject({ ok: true, partial: false });
      expect(r.jobs).toHaveLength(1);
      expect(r.reason).toMatch(/pipeline_schedules: HTTP 403 Forbidden .*no pre-warming before the pipeline schedules of project platform\/api/);
      expect(r.reason).not.toContain(emu.token);
      clock.now += 10 * 60_000;
      const again = await e.probe();
      expect(again.reason).toBeUndefined();
      expect(emu.count('GET', /\/pipeline_schedules\?/)).toBe(1);
      clock.now += 60 * 60_000;
      const later = await e.probe();
      expect(emu.count('GET', /\/pipeline_schedules\?/)).toBe(2);
      expect(later.reason).toBeUndefined();
    } finally {
      await emu.stop();
    }
  });

  it('a 403 on schedules said on a probe that is partial for another reason: both reasons', async () => {
    const { emu, api, e } = await setup();
    try {
      const web = emu.addProject('web', emu.groups[0] as GlGroup);
      emu.addJob(web, 'pending', ['linux']);
      emu.faults.push({ path: new RegExp(`/projects/${api.id}/jobs$`), status: 500, body: { message: '500 Internal Server Error' } });
      emu.faults.push({ path: new RegExp(`/projects/${web.id}/pipeline_schedules$`), status: 403, body: { message: '403 Forbidden' } });
      const r = await e.probe();
      expect(r).toMatchObject({ ok: true, partial: true, jobs: [expect.objectContaining({ labels: ['linux'] })] });
      expect(r.reason).toMatch(/jobs.*HTTP 500.*; .*pipeline_schedules: HTTP 403 .*platform\/web/);
    } finally {
      await emu.stop();
    }
  });

  it('other errors on schedules are said in the probe\'s reason, never partial or failed (no pool holds its scale-down for them); the last listing stands meanwhile', async () => {
    const { emu, clock, api, e } = await setup();
    try {
      emu.addJob(api, 'pending', ['linux']);
      const nightly = emu.addSchedule(api, { description: 'nightly', cron: '30 10 * * *' });
      ranBefore(emu, nightly, times(3, ['linux']));
      emu.faults.push({ path: /\/pipeline_schedules\/\d+$/, status: 500, body: { message: '500 Internal Server Error' } });
      const r = await e.probe();
      expect(r).toMatchObject({ ok: true, partial: false, jobs: [expect.objectContaining({ labels: ['linux'] })] });
      expect(r.reason).toMatch(/pipeline schedule \d+ of project platform\/api: .*HTTP 500.* \(no pre-warming from it this probe\)/);
      expect(r.scheduled).toBeUndefined();
      emu.faults.length = 0;
      const ok = await e.probe();
      expect(ok).toMatchObject({ partial: false, scheduled: [expect.objectContaining({ jobs: [{ labels: ['linux'], count: 3 }] })] });
      clock.now += 6 * 60_000;
      emu.faults.push({ path: /\/pipeline_schedules$/, status: 502, body: { message: 'bad gateway' } });
      const stale = await e.probe();
      expect(stale).toMatchObject({ ok: true, partial: false, scheduled: ok.scheduled });
      expect(stale.reason).toMatch(/bad gateway.*\(pre-warming goes on from the last listing\)/);
    } finally {
      await emu.stop();
    }
  });

  it('a GitLab that ignores sort=desc (older than the parameter): the last runs are read from the last page', async () => {
    const { emu, api, e } = await setup();
    try {
      emu.ignoreScheduleSort = true;
      const nightly = emu.addSchedule(api, { description: 'nightly', cron: '30 10 * * *' });
      for (const n of [10, 10, 9, 1, 2, 1, 1]) ranBefore(emu, nightly, times(n, ['linux']));
      const r = await e.probe();
      expect(r.scheduled?.[0]).toMatchObject({ runs: 3, jobs: [{ labels: ['linux'], count: 2 }] });
    } finally {
      await emu.stop();
    }
  });
});
