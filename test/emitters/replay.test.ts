import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeCredentialFile, replayAnchor, replayStateFile, ReplayEmitter, traceAt, type ReplayOptions } from '../../src/emitters/replay.js';
import { RunnerBusyError } from '../../src/emitters/types.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { localCredentialFile } from '../../stacks/types.js';

type ReplayConfig = Extract<EmitterConfig, { type: 'replay' }>;
const cfg = (extra: Partial<ReplayConfig> = {}): ReplayConfig => ({ name: 'demo', type: 'replay', trace: 'trace.csv', speed: 1, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra });
const TRACE = [
  'queued_at,duration_s,labels',
  '2025-01-06T08:00:00Z,600,linux;x64', // 0
  '2025-01-06T08:05:00Z,60,linux;arm64', // 1
  '2025-01-06T08:06:00Z,300,linux;x64', // 2
  '2025-01-06T08:07:00Z,300,linux;x64', // 3
  '2025-01-06T09:00:00Z,60,linux;x64', // 4
].join('\n');
const T0 = Date.parse('2025-01-06T08:00:00Z');
const W0 = Date.parse('2026-11-28T10:00:00Z');
const MIN = 60_000;
const req = (node: string, pool = 'p', labels = ['linux', 'x64'], jobsPerNode = 2) => ({ node, pool, labels, jobsPerNode, ephemeral: false, acceptUntagged: false });

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'parmanu-replay-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A replay on a test wall clock `w.t`, with its state in `stateDir` when given. */
function replay(w: { t: number }, opts: Partial<ReplayOptions> = {}, c: Partial<ReplayConfig> = {}, trace = () => TRACE) {
  return new ReplayEmitter(cfg(c), { wall: () => w.t, ...opts }, trace);
}
const view = async (e: ReplayEmitter) => {
  const r = await e.probe();
  expect(r.ok, r.reason).toBe(true);
  return {
    queued: r.jobs.filter((j) => j.status === 'queued').map((j) => j.id),
    running: r.jobs.filter((j) => j.status === 'running').map((j) => `${j.id}@${j.runner}`),
    r,
  };
};

describe('replay emitter: the trace as a queue', () => {
  it('maps the clock onto the trace from the first probe; with no runner, jobs stay queued', async () => {
    const w = { t: W0 };
    const e = replay(w);
    expect((await view(e)).queued).toEqual(['replay-0']);
    w.t = W0 + 11 * MIN; // job 0 would have ended by now had it run: it is still waiting
    const v = await view(e);
    expect(v.queued).toEqual(['replay-0', 'replay-1', 'replay-2', 'replay-3']);
    expect(v.r.jobs[0]?.queuedAt).toBe(W0);
    expect(v.r.at).toBe(W0 + 11 * MIN);
  });

  it('honours start and speed', async () => {
    const e = replay({ t: Date.parse('2026-11-28T10:06:30Z') }, {}, { start: '2026-11-28T10:00:00Z', speed: 60 });
    // 6.5 wall minutes at 60×: 6.5 trace hours in, past every job's queue time.
    expect((await view(e)).queued).toEqual(['replay-0', 'replay-1', 'replay-2', 'replay-3', 'replay-4']);
    const slow = replay({ t: Date.parse('2026-11-28T10:00:04Z') }, {}, { start: '2026-11-28T10:00:00Z', speed: 60 });
    expect((await view(slow)).queued).toEqual(['replay-0']);
  });

  it('fails the probe with FILE:LINE on a malformed trace or a missing file', async () => {
    const bad = replay({ t: W0 }, {}, {}, () => 'queued_at,duration_s,labels\nnope,1,a\n');
    expect(await bad.probe()).toMatchObject({ ok: false, reason: expect.stringMatching(/^trace\.csv:2: queued_at "nope"/) });
    expect(bad.preflight()).toEqual([expect.stringMatching(/^trace\.csv:2:/)]);
    const missing = replay({ t: W0 }, {}, {}, () => {
      throw Object.assign(new Error('x'), { code: 'ENOENT' });
    });
    expect(await missing.probe()).toMatchObject({ ok: false, reason: 'trace.csv: no such file' });
  });
});

describe('replay emitter: runners run the jobs', () => {
  it('assigns queued jobs oldest first to free slots of fitting runners; a job ends after its duration', async () => {
    const w = { t: W0 };
    const e = replay(w);
    await e.probe();
    // Not a local pool: nothing for the node to write, online from registration.
    expect(await e.register(req('p-1'))).toEqual({ kind: 'none' });
    let v = await view(e);
    expect(v.running).toEqual(['replay-0@p-1']);
    expect(v.r.jobs[0]).toMatchObject({ status: 'running', startedAt: W0, queuedAt: W0, runner: 'p-1' });
    expect(v.r.runners).toEqual([{ id: 'p-1', name: 'p-1', labels: ['linux', 'x64'], pool: 'p', online: true, busy: true, paused: false, contacted: true }]);
    w.t = W0 + 7.5 * MIN;
    v = await view(e);
    // Two slots (jobsPerNode 2): jobs 0 and 2 run; the arm64 job fits no runner, job 3 waits for a slot.
    expect(v.running.sort()).toEqual(['replay-0@p-1', 'replay-2@p-1']);
    expect(v.queued).toEqual(['replay-1', 'replay-3']);
    expect(v.r.jobs.find((j) => j.id === 'replay-2')?.startedAt).toBe(W0 + 6 * MIN);
    expect(await e.isIdle('p-1')).toBe(false);
    w.t = W0 + 10.5 * MIN;
    v = await view(e);
    // Job 0 ended at 10:00 and job 3 took its slot then.
    expect(v.running.sort()).toEqual(['replay-2@p-1', 'replay-3@p-1']);
    expect(v.r.jobs.find((j) => j.id === 'replay-3')?.startedAt).toBe(W0 + 10 * MIN);
    w.t = W0 + 16 * MIN;
    v = await view(e);
    expect(v.running).toEqual([]);
    expect(v.r.runners[0]?.busy).toBe(false);
    expect(await e.isIdle('p-1')).toBe(true);
    // Jobs that start and end between two probes are run too (a slot is reused within one advance).
    await e.register(req('arm-1', 'arm', ['linux', 'arm64'], 1));
    w.t = W0 + 70 * MIN;
    v = await view(e);
    expect(v.queued).toEqual([]);
    expect(v.running).toEqual([]);
  });

  it('pause keeps running jobs but gives the runner no new one; resume takes it back; deregister refuses a busy runner', async () => {
    const w = { t: W0 };
    const e = replay(w);
    await e.register(req('p-1', 'p', ['linux', 'x64'], 1));
    expect((await view(e)).running).toEqual(['replay-0@p-1']);
    await e.pause('p-1');
    await e.pause('p-1');
    await e.pause('nobody');
    w.t = W0 + 5 * MIN;
    let v = await view(e);
    expect(v.r.runners[0]).toMatchObject({ paused: true, busy: true });
    expect(v.running).toEqual(['replay-0@p-1']);
    await expect(e.deregister('p-1')).rejects.toBeInstanceOf(RunnerBusyError);
    w.t = W0 + 12 * MIN;
    v = await view(e);
    expect(v.running).toEqual([]); // job 0 ended; paused: jobs 2 and 3 wait
    expect(v.queued).toEqual(['replay-1', 'replay-2', 'replay-3']);
    await e.resume('p-1');
    expect((await view(e)).running).toEqual(['replay-2@p-1']);
    w.t = W0 + 30 * MIN;
    expect(await e.isIdle('p-1')).toBe(true);
    await e.deregister('p-1');
    await e.deregister('p-1');
    expect(await e.isIdle('p-1')).toBe(true);
    expect((await view(e)).r.runners).toEqual([]);
  });

  it('lists runners of every pool with the pool they registered for', async () => {
    const e = replay({ t: W0 });
    await e.register(req('p-1'));
    await e.register(req('retired-1', 'retired'));
    expect((await view(e)).r.runners.map((r) => [r.name, r.pool])).toEqual([
      ['p-1', 'p'],
      ['retired-1', 'retired'],
    ]);
  });

  it('on the local platform, a runner is online while its node\'s credential file holds its token', async () => {
    const stateDir = tmp();
    const w = { t: W0 };
    const e = replay(w, { stateDir, localPools: new Set(['p']) });
    const cred = await e.register(req('p-1'));
    expect(cred).toEqual({ kind: 'none', token: expect.stringMatching(/^[0-9a-f]{32}$/) as string });
    const file = nodeCredentialFile(stateDir, 'p', 'p-1');
    w.t = W0 + MIN;
    let v = await view(e);
    expect(v.r.runners[0]).toMatchObject({ online: false, contacted: false });
    expect(v.queued).toEqual(['replay-0']);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, 'someone else');
    expect((await view(e)).r.runners[0]?.online).toBe(false);
    writeFileSync(file, cred.kind === 'none' ? (cred.token ?? '') : '');
    // The provisioner wrote it at 10:02 (wall); the probe comes at 10:05: the job started at 10:02.
    utimesSync(file, new Date(W0 + 2 * MIN), new Date(W0 + 2 * MIN));
    w.t = W0 + 5 * MIN;
    v = await view(e);
    expect(v.r.runners[0]).toMatchObject({ online: true, busy: true });
    expect(v.r.jobs.find((j) => j.id === 'replay-0')).toMatchObject({ status: 'running', startedAt: W0 + 2 * MIN });
    // The node is destroyed (the provisioner removes the file): the runner is offline, its job lost.
    rmSync(file);
    w.t = W0 + 6 * MIN;
    v = await view(e);
    expect(v.r.runners[0]?.online).toBe(false);
    expect(v.r.jobs.map((j) => j.id)).toEqual(['replay-1', 'replay-2']);
  });

  it('reads the credential file where the local platform writes it', () => {
    expect(nodeCredentialFile('/s/', 'pool-a', 'pool-a-1')).toBe(localCredentialFile('/s/', 'pool-a', 'pool-a-1'));
    expect(nodeCredentialFile('/var/x', 'p', 'p-2')).toBe(localCredentialFile('/var/x', 'p', 'p-2'));
  });
});

describe('replay emitter: its place and runners are kept in the state directory', () => {
  it('a new process continues where the last one was, with its runners and their jobs', async () => {
    const stateDir = tmp();
    const first = replay({ t: W0 }, { stateDir });
    await first.probe();
    await first.register(req('p-1'));
    const second = replay({ t: W0 + 7.5 * MIN }, { stateDir });
    const v = await view(second);
    expect(v.r.jobs.find((j) => j.id === 'replay-0')).toMatchObject({ status: 'running', queuedAt: W0, startedAt: W0 });
    expect(v.running.sort()).toEqual(['replay-0@p-1', 'replay-2@p-1']);
    const kept = JSON.parse(readFileSync(replayStateFile(stateDir, 'demo'), 'utf8')) as { anchor: { wall: number; trace: number } };
    expect(kept.anchor).toMatchObject({ wall: W0, trace: T0 });
    // A new speed goes on from the same place.
    const faster = replay({ t: W0 + 7.5 * MIN }, { stateDir }, { speed: 2 });
    expect(faster.traceTime()).toBe(T0 + 7.5 * MIN);
    expect(faster.traceTime(W0 + 8.5 * MIN)).toBe(T0 + 9.5 * MIN);
  });

  it('sets a corrupt state file aside, says so once, and starts over', async () => {
    const stateDir = tmp();
    const file = replayStateFile(stateDir, 'demo');
    for (const junk of ['{"version": 1, "anchor"', JSON.stringify({ version: 1, trace: 'x', anchor: { wall: 'now' } })]) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, junk);
      const e = replay({ t: W0 }, { stateDir });
      const r = await e.probe();
      expect(r).toMatchObject({ ok: false, reason: expect.stringMatching(/^replay state .*demo\.json is corrupt \((not JSON|anchor.*)\): set aside as .*demo\.json\.corrupt-\d+, the replay starts over$/) });
      expect((await view(e)).queued).toEqual(['replay-0']);
    }
    expect(readdirSync(dirname(file)).filter((f) => f.includes('.corrupt-'))).toHaveLength(2);
  });

  it('a changed trace starts its jobs over; the runners stay', async () => {
    const stateDir = tmp();
    const w = { t: W0 };
    await replay(w, { stateDir }).register(req('p-1'));
    w.t = W0 + 20 * MIN;
    const other = TRACE.replace('2025-01-06T09:00:00Z,60', '2025-01-06T09:00:00Z,61');
    const v = await view(replay(w, { stateDir }, {}, () => other));
    expect(v.r.runners.map((r) => r.name)).toEqual(['p-1']);
    expect(v.running).toEqual(['replay-0@p-1']);
    expect(v.r.jobs[0]?.startedAt).toBe(W0 + 20 * MIN);
  });

  it('reports in the clock it is given: a virtual clock reports trace time', async () => {
    const stateDir = tmp();
    const { anchor } = replayAnchor(cfg({ speed: 600 }), stateDir, W0, () => TRACE);
    expect(anchor).toEqual({ wall: W0, trace: T0, speed: 600 });
    const w = { t: W0 + 1000 };
    const e = replay(w, { stateDir, domain: (x) => traceAt(anchor, x) }, { speed: 600 });
    await e.register(req('p-1'));
    const v = await view(e);
    expect(v.r.at).toBe(T0 + 600_000);
    expect(v.r.jobs.find((j) => j.id === 'replay-0')).toMatchObject({ queuedAt: T0, startedAt: T0 + 600_000 });
    expect(v.r.jobs.find((j) => j.id === 'replay-1')).toMatchObject({ status: 'queued', queuedAt: Date.parse('2025-01-06T08:05:00Z') });
  });
});
