/**
 * The demo's clock and the demo itself: the virtual clock a policy of replay emitters runs on
 * (context.ts fleetClock), leases on the wall clock under it, and reconcile processes of the
 * shipped demo policy against real local terraform, moving on through the trace between runs with
 * the replayed jobs running on the nodes that exist.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fleetClock, loadFleet, openHistoryFor } from '../../src/cli/context.js';
import { UsageError, type Io } from '../../src/cli/errors.js';
import { replayStateFile, wallAt } from '../../src/emitters/replay.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { cli as runCli, cliAsync, root } from '../cli.js';

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'parmanu-demo-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TRACE = 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,600,linux\n2025-01-06T09:00:00Z,60,linux\n';
const T0 = Date.parse('2025-01-06T08:00:00Z');
const GITLAB = '  gl: { type: gitlab, url: "http://127.0.0.1:9", token: "${env:T}", groups: [g], runnerOwner: { group: g } }\n';

/** A fleet of `emitters` (YAML lines) with one local pool per emitter, in a new directory. */
function fleet(emitters: string, poolsYaml: string) {
  const dir = tmp();
  writeFileSync(join(dir, 't.csv'), TRACE);
  writeFileSync(join(dir, 'p.yaml'), `emitters:\n${emitters}platforms:\n  lab: { type: local }\npools:\n${poolsYaml}`);
  const errs: string[] = [];
  const io: Io = { out: () => undefined, err: (l) => errs.push(l), env: { PARMANU_STATE_DIR: join(dir, 'state'), T: 'x' }, cwd: dir, isTTY: false };
  const f = loadFleet('test', io, { policy: 'p.yaml' });
  if (!f) throw new Error(`policy refused: ${errs.join('\n')}`);
  return { io, f, dir, errs };
}

describe('the clock of a policy of replay emitters', () => {
  it('is trace time running speed × the wall clock from the kept anchor, and continues in the next process', async () => {
    const { io, f } = fleet('  r: { type: replay, trace: t.csv, speed: 600 }\n', '  p: { emitter: r, platform: lab }\n');
    const before = Date.now();
    const clock = fleetClock('test', io, f);
    expect(clock.rate).toBe(600);
    const a = clock();
    expect(a).toBeGreaterThanOrEqual(T0);
    expect(a - T0).toBeLessThan((Date.now() - before + 50) * 600);
    await sleep(100);
    const b = clock();
    expect(b - a).toBeGreaterThanOrEqual(100 * 600);
    expect(b - a).toBeLessThan(5_000 * 600);
    // Another process (a new clock on the same state directory) continues, it does not start over.
    const again = fleetClock('test', io, f)();
    expect(again).toBeGreaterThanOrEqual(b);
    expect(again - b).toBeLessThan(5_000 * 600);
  });

  it('is fixed by --now at a trace time, whose wall instant the replay runs on', () => {
    const { io, f } = fleet('  r: { type: replay, trace: t.csv, speed: 600 }\n', '  p: { emitter: r, platform: lab }\n');
    const at = Date.parse('2025-01-06T10:00:00Z');
    const clock = fleetClock('test', io, f, at);
    expect(clock()).toBe(at);
    const anchor = (JSON.parse(readFileSync(replayStateFile(f.stateDir, 'r'), 'utf8')) as { anchor: { wall: number; trace: number; speed: number } }).anchor;
    expect(clock.wall()).toBe(wallAt(anchor, at));
    expect(clock.replay.domain(clock.wall())).toBeCloseTo(at, -1);
  });

  it('is the wall clock for real CI platforms, also beside a replay at speed 1', () => {
    for (const [emitters, pools] of [
      [GITLAB, '  p: { emitter: gl, platform: lab }\n'],
      [`${GITLAB}  r: { type: replay, trace: t.csv }\n`, '  p: { emitter: gl, platform: lab }\n  q: { emitter: r, platform: lab }\n'],
    ] as const) {
      const { io, f } = fleet(emitters, pools);
      const clock = fleetClock('test', io, f);
      expect(clock.rate).toBe(1);
      expect(Math.abs(clock() - Date.now())).toBeLessThan(1000);
      expect(fleetClock('test', io, f, 42)()).toBe(42);
    }
  });

  it('refuses a replay faster than a real platform beside it, and replays of different speeds', () => {
    const mixed = fleet(`${GITLAB}  r: { type: replay, trace: t.csv, speed: 600 }\n`, '  p: { emitter: gl, platform: lab }\n  q: { emitter: r, platform: lab }\n');
    expect(() => fleetClock('reconcile', mixed.io, mixed.f)).toThrow(UsageError);
    expect(() => fleetClock('reconcile', mixed.io, mixed.f)).toThrow('reconcile: replay emitter r runs at speed 600, but emitter gl is a real CI platform, whose time cannot run faster: give r speed 1, or replay it in a policy of its own');
    // Only the selected pools count: the replay alone runs on its own clock.
    expect(fleetClock('reconcile', mixed.io, { ...mixed.f, pools: mixed.f.pools.filter((p) => p.name === 'q') }).rate).toBe(600);
    const two = fleet('  r: { type: replay, trace: t.csv, speed: 600 }\n  s: { type: replay, trace: t.csv, speed: 60 }\n', '  p: { emitter: r, platform: lab }\n  q: { emitter: s, platform: lab }\n');
    expect(() => fleetClock('reconcile', two.io, two.f)).toThrow(/replay emitters r \(speed 600\) and s \(speed 60\) must run at the same speed/);
  });

  it('keeps leases on the wall clock: a lease of 3 s is held for 3 s of wall time, not 1/600 of it', async () => {
    const { io, f } = fleet('  r: { type: replay, trace: t.csv, speed: 600 }\n', '  p: { emitter: r, platform: lab }\n');
    const clock = fleetClock('test', io, f);
    const a = openHistoryFor('test', io, f.stateDir, clock);
    const b = openHistoryFor('test', io, f.stateDir, clock);
    try {
      expect(await a.acquireLease('p', 'a', 3000)).toBeDefined();
      await sleep(200); // 2 virtual minutes: far past the TTL on the virtual clock
      expect(await b.acquireLease('p', 'b', 3000)).toBeUndefined();
      await sleep(3000);
      expect(await b.acquireLease('p', 'b', 3000)).toBeDefined();
    } finally {
      await a.close();
      await b.close();
    }
  });
});

interface ReplayStateFile {
  anchor: { wall: number; trace: number; speed: number };
  at: number;
  doneBelow: number;
  done: number[];
  running: Array<{ job: number; runner: string; startedAt: number }>;
  runners: Array<{ name: string; pool: string; onlineAt?: number }>;
}
interface CycleJson {
  ok: boolean;
  pools: Array<{ pool: string; observed: { queued: number; running: number; nodes: number; busy: number }; states: Record<string, string>; create: string[] }>;
}

describe('the demo policy against real local terraform', () => {
  it('moves on through the trace run after run, and the replayed jobs run on the nodes that exist and finish', async () => {
    const dir = tmp();
    cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
    const stateDir = join(dir, 'state');
    const env = { PARMANU_STATE_DIR: stateDir };
    const state = () => JSON.parse(readFileSync(replayStateFile(stateDir, 'demo'), 'utf8')) as ReplayStateFile;
    const nodes = () => ['demo-linux', 'demo-arm'].flatMap((p) => readStateNodes(join(stateDir, 'pools', p, 'terraform.tfstate')).map((n) => n.name));
    const firstJob = Date.parse(readFileSync(join(dir, 'examples/demo/trace.csv'), 'utf8').split('\n')[1]?.split(',')[0] ?? '');
    const run = () => {
      const r = runCli(['reconcile', '--policy', 'examples/demo', '--json'], { cwd: dir, env });
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as CycleJson;
    };

    const first = run();
    const s1 = state();
    expect(s1.anchor).toMatchObject({ trace: firstJob, speed: 600 });
    // The first job is queued from the start: the linux pool scales up for it.
    expect(first.pools.find((p) => p.pool === 'demo-linux')?.create.length).toBeGreaterThan(0);
    expect(s1.runners.map((r) => r.name).sort()).toEqual(nodes().sort());

    await sleep(1500);
    run();
    const s2 = state();
    // The next process went on from where the first one was (~15 trace minutes later), not from the start.
    expect(s2.anchor).toEqual(s1.anchor);
    expect(s2.at - s1.at).toBeGreaterThanOrEqual(1500 * 600);
    // The runners came online when terraform wrote their credential files; jobs ran on them.
    expect(s2.runners.filter((r) => r.onlineAt !== undefined).length).toBeGreaterThan(0);
    expect(s2.doneBelow + s2.done.length + s2.running.length).toBeGreaterThan(0);

    await sleep(1500);
    run();
    const s3 = state();
    expect(s3.at - s2.at).toBeGreaterThanOrEqual(1500 * 600);
    // The first job (a few minutes long) has finished; whatever runs, runs on a node that exists.
    expect(s3.doneBelow).toBeGreaterThan(0);
    const existing = new Set(nodes());
    for (const j of s3.running) expect(existing.has(j.runner), `${j.runner} runs a job but is no node`).toBe(true);

    // A bounded watch goes on from there, cycle after cycle.
    const w = await cliAsync(['reconcile', '--policy', 'examples/demo', '--watch', '--for', '4s', '--metrics-listen', 'none', '--json'], { cwd: dir, env, timeoutMs: 60_000 });
    expect(w.code, w.err).toBe(0);
    const cycles = w.out.trim().split('\n').map((l) => JSON.parse(l) as CycleJson);
    expect(cycles.length).toBeGreaterThan(1);
    // Reconcile sees the replayed jobs running (busy nodes, not a queue that only grows).
    expect(cycles.some((c) => c.pools.some((p) => p.observed.running > 0))).toBe(true);
    // …on nodes whose runners report busy, as Parmanu's busy checks see them.
    expect(cycles.some((c) => c.pools.some((p) => p.observed.busy > 0 && Object.values(p.states).includes('busy')))).toBe(true);
    const s4 = state();
    expect(s4.at - s3.at).toBeGreaterThanOrEqual(4000 * 600);
    expect(s4.doneBelow + s4.done.length).toBeGreaterThan(s3.doneBelow + s3.done.length);

    // The report covers the replayed day, as recorded on the virtual clock (not the last 7 days of the wall clock).
    const r = runCli(['report', '--policy', 'examples/demo', '--format', 'json'], { cwd: dir, env });
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as { since: number; until: number; pools: Array<{ pool: string; samples: number }> };
    expect(report.pools.find((p) => p.pool === 'demo-linux')?.samples).toBeGreaterThanOrEqual(3 + cycles.length);
    expect(new Date(report.since).toISOString().slice(0, 10)).toBe('2025-01-06');
    expect(report.until).toBeGreaterThanOrEqual(s4.at);
  }, 120_000);
});
