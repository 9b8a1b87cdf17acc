import { describe, expect, it } from 'vitest';
import { peakConcurrency, reactiveController } from '../../src/sim/baselines.js';
import { runEngine, type Actions, type Controller, type ProbeState } from '../../src/sim/engine.js';
import { parmanuController, simulatePool, type Invariants } from '../../src/sim/simulate.js';
import { dominating, grid } from '../../src/sim/sweep.js';
import type { NodeView } from '../../src/decide/types.js';
import { testPool } from '../helpers.js';

const S = 1000;
const none: Actions = { create: [], drain: [], destroy: [], resume: [] };
/** A scripted controller: actions by probe time (seconds), recording what it saw. */
function scripted(script: Record<number, Partial<Actions>>, seen: ProbeState[] = []): Controller {
  return { probe: (s) => (seen.push(s), { ...none, ...(script[s.now / S] ?? {}) }) };
}

describe('engine', () => {
  it('boots a node, runs a job FIFO and counts node-minutes until the end', () => {
    const seen: ProbeState[] = [];
    const r = runEngine([{ queuedAt: 0, durationMs: 60 * S }], scripted({ 0: { create: ['a'] } }, seen), { jobsPerNode: 1, ephemeral: false, bootMs: 90 * S, probeMs: 30 * S });
    expect(seen[0]).toMatchObject({ now: 0, queued: 1, running: 0, arrived: 1, nodes: [] });
    expect(Array.from(r.waitsS)).toEqual([90]);
    expect(r.nodeMinutes).toBeCloseTo(150 / 60, 6); // created at 0, job ends at 150 s
    expect(r).toMatchObject({ peakNodes: 1, scaleUps: 1, scaleDowns: 0, busyDestroys: 0 });
    // The probe at 60 s sees the node booting (no runner), the one at 90 s sees it online and busy.
    expect(seen.find((s) => s.now === 60 * S)?.nodes[0]?.runner).toBeUndefined();
    expect(seen.find((s) => s.now === 90 * S)?.nodes[0]?.runner).toMatchObject({ online: true, busy: true });
  });

  it('fills slots in arrival order and packs nodes', () => {
    const jobs = [0, 1, 2].map((i) => ({ queuedAt: i * S, durationMs: 100 * S }));
    const r = runEngine(jobs, scripted({ 0: { create: ['a'] }, 30: { create: ['b'] } }), { jobsPerNode: 2, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S });
    // a is ready at 10 s and takes jobs 0 and 1; b is ready at 40 s and takes job 2.
    expect(Array.from(r.waitsS)).toEqual([10, 9, 38]);
  });

  it('refuses to destroy a busy node and counts the attempt', () => {
    const r = runEngine([{ queuedAt: 0, durationMs: 100 * S }], scripted({ 0: { create: ['a'] }, 30: { destroy: ['a'] } }), { jobsPerNode: 1, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S });
    expect(r.busyDestroys).toBe(1);
    expect(r).toMatchObject({ scaleUps: 1, scaleDowns: 0, scaleUpEvents: 1, scaleDownEvents: 0 });
    expect(Array.from(r.waitsS)).toEqual([10]);
  });

  it('stops dispatching to a draining node and resumes it', () => {
    const jobs = [{ queuedAt: 0, durationMs: 10 * S }, { queuedAt: 35 * S, durationMs: 10 * S }];
    const r = runEngine(jobs, scripted({ 0: { create: ['a'] }, 30: { drain: ['a'] }, 60: { resume: ['a'] } }), { jobsPerNode: 1, ephemeral: false, bootMs: 5 * S, probeMs: 30 * S });
    expect(Array.from(r.waitsS)).toEqual([5, 25]); // the second job waits from 35 s until the resume at 60 s
  });

  it('gives an ephemeral node one job only', () => {
    const jobs = [{ queuedAt: 0, durationMs: 10 * S }, { queuedAt: 0, durationMs: 10 * S }];
    const r = runEngine(jobs, scripted({ 0: { create: ['a'] }, 30: { create: ['b'] } }), { jobsPerNode: 1, ephemeral: true, bootMs: 5 * S, probeMs: 30 * S });
    expect(Array.from(r.waitsS)).toEqual([5, 35]);
  });

  it('with the webhook signal, decides when a job is queued (after the delivery latency, growOnly), one cycle per burst', () => {
    const jobs = [{ queuedAt: 5 * S, durationMs: 10 * S }, { queuedAt: 5 * S, durationMs: 10 * S }, { queuedAt: 6 * S, durationMs: 10 * S }];
    const opts = { jobsPerNode: 1, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S };
    const seen: ProbeState[] = [];
    const grow: Controller = { probe: (s) => (seen.push(s), { ...none, create: s.queued > 0 ? Array.from({ length: s.queued - s.nodes.length + s.running }, (_, i) => `n${s.now}-${i}`) : [] }) };
    const hooked = runEngine(jobs, grow, { ...opts, signal: 'webhook', webhookLatencyMs: 2 * S });
    // The three events make one cycle at 7 s (5 s + 2 s), which sees all three queued and grows.
    expect(seen.filter((s) => s.growOnly).map((s) => [s.now / S, s.queued])).toEqual([[7, 3]]);
    expect(Array.from(hooked.waitsS)).toEqual([12, 12, 11]);
    const polled = runEngine(jobs, scripted({ 0: {}, 30: { create: ['a', 'b', 'c'] } }), opts);
    expect(Array.from(polled.waitsS)).toEqual([35, 35, 34]); // the next probe at 30 s, then a boot
  });

  it('stops an idle node into standby, starts it in the resume time, and counts its stopped minutes apart', () => {
    const jobs = [{ queuedAt: 0, durationMs: 10 * S }, { queuedAt: 40 * S, durationMs: 10 * S }];
    const seen: ProbeState[] = [];
    const r = runEngine(jobs, scripted({ 0: { create: ['a'] }, 30: { stop: ['a'] }, 60: { start: ['a'] } }, seen), { jobsPerNode: 1, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S, resumeMs: 20 * S });
    // Job 1 runs 10–20 s; a stops at 30 s; job 2 (40 s) waits for the start at 60 s + 20 s.
    expect(Array.from(r.waitsS)).toEqual([10, 40]);
    expect(r).toMatchObject({ starts: 1, stops: 1, scaleUps: 1, scaleDowns: 0, scaleUpEvents: 2, scaleDownEvents: 1, busyStops: 0 });
    // Running 0–30 s and 60–90 s (the end); stopped 30–60 s.
    expect(r.nodeMinutes).toBeCloseTo(1, 6);
    expect(r.standbyMinutes).toBeCloseTo(0.5, 6);
    // A stopped node is standby: its runner offline and paused. Started, it boots again: no runner
    // until it is online, then a fresh registration (no jobs yet) online since its start.
    expect(seen.find((s) => s.now === 60 * S)?.nodes[0]).toMatchObject({ name: 'a', power: 'stopped', runner: { online: false, busy: false, paused: true } });
    expect(seen.find((s) => s.now === 60 * S)?.queued).toBe(1);
    const started = runEngine([{ queuedAt: 0, durationMs: 10 * S }, { queuedAt: 200 * S, durationMs: 10 * S }], scripted({ 0: { create: ['a'] }, 30: { stop: ['a'] }, 60: { start: ['a'] } }, (seen.length = 0, seen)), { jobsPerNode: 1, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S, resumeMs: 40 * S });
    expect(started.waitsS[1]).toBe(0);
    const at90 = seen.find((s) => s.now === 90 * S)?.nodes[0];
    expect(at90).toMatchObject({ power: 'running', startedAt: 60 * S });
    expect(at90?.runner).toBeUndefined();
    expect(seen.find((s) => s.now === 120 * S)?.nodes[0]).toMatchObject({ power: 'running', startedAt: 60 * S, onlineAt: 100 * S, runner: { online: true, busy: false, paused: false, jobsStarted: 0 } });
  });

  it('refuses to stop a busy node, never dispatches to a stopped one, and ignores a start of a running one', () => {
    const jobs = [{ queuedAt: 0, durationMs: 100 * S }, { queuedAt: 50 * S, durationMs: 10 * S }];
    const r = runEngine(jobs, scripted({ 0: { create: ['a', 'b'] }, 30: { stop: ['a', 'b'], start: ['a'] } }), { jobsPerNode: 1, ephemeral: false, bootMs: 10 * S, probeMs: 30 * S });
    expect(r.busyStops).toBe(1); // a runs job 1; b (idle) stops
    expect(r.stops).toBe(1);
    expect(r.starts).toBe(0);
    // Job 2 waits for a, the only running node, to finish at 110 s.
    expect(Array.from(r.waitsS)).toEqual([10, 60]);
  });

  it('peak concurrency counts overlapping jobs', () => {
    expect(peakConcurrency([{ queuedAt: 0, durationMs: 10 }, { queuedAt: 5, durationMs: 10 }, { queuedAt: 10, durationMs: 10 }])).toBe(2);
  });

  it('reactive with the webhook signal grows when a job is queued', () => {
    const job = [{ queuedAt: 5 * S, durationMs: 60 * S }];
    const opts = { jobsPerNode: 1, ephemeral: false, bootMs: 90 * S, probeMs: 30 * S };
    const ctl = () => reactiveController(1, 'p', { spare: 0 });
    expect(Array.from(runEngine(job, ctl(), opts).waitsS)).toEqual([115]); // the probe at 30 s, then a boot
    expect(Array.from(runEngine(job, ctl(), { ...opts, signal: 'webhook', webhookLatencyMs: 2 * S }).waitsS)).toEqual([92]);
  });

  it('reactiveStandby fills its standby, starts it first on demand, and stops idle nodes back into it', () => {
    // standby 2, spare 0, window 2 m, boot 90 s, resume 40 s. Jobs: 1 at 0 s, 3 at 10 min, 1 at 30 min.
    const jobs = [{ queuedAt: 0, durationMs: S }, ...Array.from({ length: 3 }, () => ({ queuedAt: 600 * S, durationMs: 60 * S })), { queuedAt: 1800 * S, durationMs: 60 * S }];
    const seen: ProbeState[] = [];
    const ctl = reactiveController(1, 'p', { spare: 0, scaleDownAfterMs: 120 * S, standby: 2 });
    const spy: Controller = { probe: (s) => (seen.push(s), ctl.probe(s)) };
    const r = runEngine(jobs, spy, { jobsPerNode: 1, ephemeral: false, bootMs: 90 * S, probeMs: 30 * S, resumeMs: 40 * S });
    // The probe at 0 s creates a node for the first job and 2 to fill the standby, which stop once
    // online; by 10 min the idle rest is gone.
    const before = seen.find((s) => s.now === 600 * S);
    expect(before?.nodes.map((n) => n.power)).toEqual(['stopped', 'stopped']);
    // At 10 min: the 2 standby nodes start (online at +40 s), one node is created (+90 s).
    expect(Array.from(r.waitsS).slice(1)).toEqual([40, 40, 90, 40]);
    expect(r.busyDestroys + r.busyStops).toBe(0);
    expect(r.starts).toBe(3);
    expect(r.stops).toBeGreaterThanOrEqual(4);
  });

  it('a webhook (growOnly) cycle never shrinks: reactive and Parmanu alike', () => {
    const node = (name: string, busy: boolean): NodeView => ({ name, createdAt: 0, power: 'running', onlineAt: 60 * S, runner: { online: true, busy, paused: false, jobsStarted: 1 }, lastBusyAt: 60 * S });
    // Two nodes busy at 60 s, both idle from then on; scale-down after 1 minute.
    const at = (now: number, growOnly: boolean) => {
      const busy = now <= 60 * S;
      return { now, queued: 0, running: busy ? 2 : 0, arrived: 0, nodes: [node('a', busy), node('b', busy)], ...(growOnly ? { growOnly } : {}) };
    };
    const reactive = reactiveController(1, 'p', { spare: 0, scaleDownAfterMs: 60 * S });
    expect(reactive.probe(at(60 * S, false)).destroy).toEqual([]);
    expect(reactive.probe(at(150 * S, true)).destroy).toEqual([]);
    expect(reactive.probe(at(150 * S, false)).destroy).toEqual(['a', 'b']);
    const pool = testPool({ scaling: { predict: false, spare: 0, scaleDownAfter: '1m', minLifetime: '0s' } });
    const inv: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
    const parmanu = parmanuController(pool, { bootMs: 60 * S, probeMs: 30 * S }, inv, {});
    expect(parmanu.probe(at(60 * S, false)).drain).toEqual([]);
    expect(parmanu.probe(at(150 * S, true)).drain).toEqual([]);
    expect([...parmanu.probe(at(150 * S, false)).drain].sort()).toEqual(['a', 'b']);
  });

  it('reactiveStandby stops an idle node it scales down while its standby is short, and destroys the rest', () => {
    const idle = (name: string, lastBusyAt: number): NodeView => ({ name, createdAt: 0, power: 'running', onlineAt: 60 * S, runner: { online: true, busy: false, paused: false, jobsStarted: 1 }, lastBusyAt });
    const ctl = reactiveController(1, 'p', { spare: 0, scaleDownAfterMs: 60 * S, standby: 1 });
    const out = ctl.probe({ now: 300 * S, queued: 0, running: 0, arrived: 0, nodes: [idle('a', 100 * S), idle('b', 200 * S)] });
    // The longest idle goes first: a fills the standby (no new node needed for it), b is destroyed.
    expect(out).toMatchObject({ stop: ['a'], destroy: ['b'], create: [], start: [] });
    // A demand of one starts it instead of booting a node for the job; one node boots to refill the standby.
    const next = ctl.probe({ now: 330 * S, queued: 1, running: 0, arrived: 1, nodes: [{ ...idle('a', 100 * S), power: 'stopped', runner: { online: false, busy: false, paused: true } }] });
    expect(next).toMatchObject({ start: ['a'], create: ['p-s0'], stop: [], destroy: [] });
  });

  it('reactive keeps one spare and removes idle nodes after 10 minutes', () => {
    const r = runEngine([{ queuedAt: 0, durationMs: 60 * S }], reactiveController(1, 'p'), { jobsPerNode: 1, ephemeral: false, bootMs: 90 * S, probeMs: 30 * S });
    expect(r.peakNodes).toBe(2);
    expect(Array.from(r.waitsS)).toEqual([90]);
    expect(r.nodeMinutes).toBeCloseTo((2 * 150) / 60, 6);
  });
});

describe('simulatePool', () => {
  it('computes every baseline on a hand-checked single job', () => {
    const inv: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
    const run = simulatePool(testPool({ scaling: { predict: false } }), [{ queuedAt: 0, durationMs: 60 * S }], { bootMs: 90 * S, probeMs: 30 * S }, inv);
    const m = run.metrics;
    expect(m.oracle).toMatchObject({ jobs: 1, waitMeanS: 0, nodeMinutes: 1, costVsOracle: 1, peakNodes: 1 });
    expect(m.perJob).toMatchObject({ waitMeanS: 90, nodeMinutes: 3, costVsOracle: 2.5, scaleUps: 1 });
    expect(m.parmanu).toMatchObject({ waitMeanS: 90, waitMaxS: 90, nodeMinutes: 3, peakNodes: 1, scaleUps: 1 });
    expect(m.reactive).toMatchObject({ waitMeanS: 90, nodeMinutes: 5, peakNodes: 2 });
    expect(m.staticPeak).toMatchObject({ waitMeanS: 0, nodeMinutes: 1, peakNodes: 1 });
    expect(inv).toEqual({ busyDestroys: 0, busyStops: 0, maxExceeded: 0 });
  });

  it('counts nodes added and removed, and the decisions that did it, alike for every baseline (hand-made trace)', () => {
    // One job a node, boot 60 s, probe 30 s. Jobs: two of 60 s at 0 s, one of 60 s at 20 min.
    const inv: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
    const jobs = [{ queuedAt: 0, durationMs: 60 * S }, { queuedAt: 0, durationMs: 60 * S }, { queuedAt: 20 * 60 * S, durationMs: 60 * S }];
    const run = simulatePool(testPool({ labels: ['linux'], scaling: { predict: false, spare: 0, scaleDownAfter: '1m', minLifetime: '0s' } }), jobs, { bootMs: 60 * S, probeMs: 30 * S }, inv);
    const counts = (b: keyof typeof run.metrics) => {
      const m = run.metrics[b];
      return { added: m.scaleUps, removed: m.scaleDowns, upEvents: m.scaleUpEvents, downEvents: m.scaleDownEvents };
    };
    // parmanu: the probe at 0 s adds 2; both drained and then destroyed together once the 1 m window
    // has passed (one decision, 2 nodes); the probe at 20 min adds 1, which is still there at the end.
    expect(counts('parmanu')).toEqual({ added: 3, removed: 2, upEvents: 2, downEvents: 1 });
    // reactive: 0 s adds 2 + 1 spare; 10 min after the last probe that wanted 3, the 2 idle ones go
    // together; at 20 min the job runs on the spare and the probe adds a new spare.
    expect(counts('reactive')).toEqual({ added: 4, removed: 2, upEvents: 2, downEvents: 1 });
    // perJob: one node per job, made for it and gone when it ends.
    expect(counts('perJob')).toEqual({ added: 3, removed: 3, upEvents: 3, downEvents: 3 });
    // oracle: capacity without nodes; staticPeak: its 2 nodes exist from the start and stay.
    expect(counts('oracle')).toEqual({ added: 0, removed: 0, upEvents: 0, downEvents: 0 });
    expect(counts('staticPeak')).toEqual({ added: 0, removed: 0, upEvents: 0, downEvents: 0 });
    expect(run.metrics.staticPeak.peakNodes).toBe(2);
    expect(inv).toEqual({ busyDestroys: 0, busyStops: 0, maxExceeded: 0 });
  });

  it('scales a burst up within max and back down after scaleDownAfter, two-phase', () => {
    const inv: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
    const jobs = Array.from({ length: 8 }, () => ({ queuedAt: 0, durationMs: 5 * 60 * S }));
    // A late job keeps the simulation running long enough to see the scale-down.
    jobs.push({ queuedAt: 40 * 60 * S, durationMs: 60 * S });
    const run = simulatePool(testPool({ scaling: { predict: false, max: 5, scaleDownAfter: '5m', minLifetime: '0s' } }), jobs, { bootMs: 60 * S, probeMs: 30 * S }, inv);
    expect(run.metrics.parmanu.peakNodes).toBe(5);
    expect(run.metrics.parmanu.scaleDowns).toBeGreaterThan(0);
    // 5 start at 60 s; 3 more at 360 s when the first ones finish.
    expect(Array.from(run.waits.parmanu).slice(0, 8).sort((a, b) => a - b)).toEqual([60, 60, 60, 60, 60, 360, 360, 360]);
    expect(inv).toEqual({ busyDestroys: 0, busyStops: 0, maxExceeded: 0 });
  });
});

describe('sweep', () => {
  it('grids every combination and finds the tunings that beat a result on both axes only', () => {
    const g = grid([0, 1], [2, 10], [0, 4]);
    expect(g).toHaveLength(8);
    expect(g[0]).toEqual({ spare: 0, scaleDownAfterMs: 120 * S, standby: 0 });
    const row = (waitMeanS: number, costVsOracle: number) => ({ spare: 0, scaleDownAfterMs: 120 * S, standby: 0, waitMeanS, costVsOracle, nodeMinutes: 0, standbyMinutes: 0 });
    const rows = [row(10, 1.5), row(10, 3), row(30, 1.5), row(20, 2), row(19.9, 1.99)];
    expect(dominating(rows, { waitMeanS: 20, costVsOracle: 2 })).toEqual([row(10, 1.5), row(19.9, 1.99)]);
  });
});
