/**
 * Invariants of decide, over random pools, fleets and observations (fast-check):
 * never above max, never a busy node drained or destroyed, never a destroy without an earlier
 * drain, desired monotone in demand, fail-static holds, every node accounted for once; with
 * standby: stopped nodes only start or go, stops only of idle nodes drained earlier, webhook
 * (growOnly) cycles only grow.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide/decide.js';
import type { DecideInput, NodeView, PoolObservation } from '../../src/decide/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const nodeArb = (i: number) =>
  fc.record({
    ageMin: fc.integer({ min: 0, max: 120 }),
    registered: fc.boolean(),
    busy: fc.boolean(),
    jobsStarted: fc.integer({ min: 0, max: 2 }),
    draining: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
    idleMin: fc.option(fc.integer({ min: 0, max: 60 }), { nil: undefined }),
    stopped: fc.integer({ min: 0, max: 3 }),
    outdated: fc.boolean(),
    onlineMin: fc.option(fc.integer({ min: 0, max: 120 }), { nil: undefined }),
  }).map((r): NodeView => {
    const n: NodeView = { name: `p-${i}`, createdAt: T0 - r.ageMin * MIN };
    if (r.onlineMin !== undefined) n.onlineAt = T0 - Math.min(r.onlineMin, r.ageMin) * MIN;
    if (r.outdated) n.outdated = true;
    if (r.stopped === 0) {
      // A stopped node (one in four): its runner paused and offline, or gone.
      n.power = 'stopped';
      // Stopped by Parmanu (drained first, runner paused), or outside it (no drain, any runner state).
      if (r.draining !== undefined) n.drainingSince = T0 - r.draining * MIN;
      if (r.registered) n.runner = { online: false, busy: r.draining === undefined && r.busy, paused: r.draining !== undefined };
      if (r.jobsStarted === 2) {
        n.startFailures = r.idleMin === undefined ? 3 : 1;
        n.startFailedAt = T0 - (r.idleMin ?? 1) * MIN;
      }
      return n;
    }
    if (r.registered) n.runner = { online: true, busy: r.busy, paused: r.draining !== undefined, jobsStarted: r.jobsStarted };
    if (r.draining !== undefined) n.drainingSince = T0 - r.draining * MIN;
    if (r.idleMin !== undefined) n.lastBusyAt = T0 - r.idleMin * MIN;
    return n;
  });

const inputArb = fc
  .record({
    min: fc.integer({ min: 0, max: 5 }),
    max: fc.integer({ min: 0, max: 30 }),
    spare: fc.integer({ min: 0, max: 3 }),
    maxStep: fc.integer({ min: 1, max: 10 }),
    jobsPerNode: fc.integer({ min: 1, max: 4 }),
    ephemeral: fc.boolean(),
    budget: fc.option(fc.integer({ min: 1, max: 5 }), { nil: undefined }),
    nodeCount: fc.integer({ min: 0, max: 25 }),
    queued: fc.integer({ min: 0, max: 60 }),
    running: fc.integer({ min: 0, max: 60 }),
    upcoming: fc.integer({ min: 0, max: 10 }),
    predict: fc.boolean(),
    ok: fc.boolean(),
    partial: fc.boolean(),
    ageS: fc.integer({ min: 0, max: 300 }),
    held: fc.array(fc.record({ agoS: fc.integer({ min: 1, max: 1200 }), nodes: fc.integer({ min: 0, max: 30 }) }), { maxLength: 5 }),
    standby: fc.integer({ min: 0, max: 4 }),
    growOnly: fc.boolean(),
    removed: fc.integer({ min: 0, max: 4 }),
    filling: fc.array(fc.integer({ min: 0, max: 24 }), { maxLength: 4 }),
  })
  .chain((r) => fc.tuple(fc.constant(r), fc.tuple(...Array.from({ length: r.nodeCount }, (_, i) => nodeArb(i)))));

type Generated = typeof inputArb extends fc.Arbitrary<infer T> ? T : never;

function build([r, nodes]: Generated): DecideInput {
  const min = Math.min(r.min, r.max);
  const pool = testPool({
    runner: { jobsPerNode: r.jobsPerNode, ephemeral: r.ephemeral },
    scaling: { min, max: r.max, spare: Math.min(r.spare, r.max), maxStep: r.maxStep, predict: r.predict, standby: r.standby, ...(r.budget ? { disruptionBudget: r.budget } : {}) },
  });
  const observation: PoolObservation = { at: T0 - r.ageS * 1000, ok: r.ok, partial: r.partial, queued: r.queued, running: r.running, upcoming: r.upcoming };
  return {
    pool,
    now: T0,
    observation,
    staleAfterMs: 2 * MIN,
    nodes: [...nodes],
    memory: { targets: r.held.map((h) => ({ at: T0 - h.agoS * 1000, nodes: h.nodes })), filling: r.filling.map((i) => `p-${i}`) },
    newId: (i) => `new${i}`,
    ...(r.growOnly ? { growOnly: true } : {}),
    ...(r.removed === 0 ? { removed: true } : {}),
  };
}

const RUNS = { numRuns: 1500 };

describe('decide invariants', () => {
  it('never plans more nodes than max (unless already above it, then it adds none)', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        const input = build(x);
        const plan = decide(input);
        // Running nodes after the plan (demand's creates and starts included): within max when
        // anything is added; standby is on top of max, so nodes created to fill it are too.
        const stopped = input.nodes.filter((n) => n.power === 'stopped').map((n) => n.name);
        const fill = plan.create.filter((n) => (plan.memory.filling ?? []).includes(n)).length;
        const runningAfter = input.nodes.length - stopped.length - plan.destroy.filter((n) => !stopped.includes(n)).length - plan.stop.length + plan.start.length + plan.create.length - fill;
        if (plan.create.length - fill + plan.start.length > 0) expect(runningAfter).toBeLessThanOrEqual(input.pool.scaling.max);
        expect(fill).toBeLessThanOrEqual(plan.standby);
        expect(plan.desired).toBeLessThanOrEqual(input.pool.scaling.max);
        expect(plan.create.length + plan.start.length).toBeLessThanOrEqual(input.pool.scaling.maxStep);
        expect(plan.standby).toBeLessThanOrEqual(input.pool.scaling.max);
      }),
      RUNS,
    );
  });

  it('never drains or destroys a busy node, and destroys only nodes drained in an earlier cycle', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        const input = build(x);
        const plan = decide(input);
        const byName = new Map(input.nodes.map((n) => [n.name, n]));
        for (const name of [...plan.destroy, ...plan.stop]) {
          const n = byName.get(name) as NodeView;
          expect(n.runner?.busy ?? false).toBe(false);
          // A stopped (standby) node is idle and paused: it may go without a drain.
          if (n.power === 'stopped') continue;
          expect(n.drainingSince).toBeDefined();
          expect(n.drainingSince as number).toBeLessThan(input.now);
          if (n.runner) expect(n.runner.paused).toBe(true);
        }
        for (const name of plan.start) expect(byName.get(name)?.power).toBe('stopped');
        for (const name of [...plan.stop, ...plan.drain, ...plan.resume]) expect(byName.get(name)?.power).not.toBe('stopped');
        for (const name of plan.drain) {
          const n = byName.get(name) as NodeView;
          // A rollout (or a removed pool) pauses a busy runner: its job finishes, it gets no other.
          if (n.drainingSince === undefined && !['outdated', 'lifetime', 'removed'].includes(plan.drainReasons[name] ?? '')) expect(n.runner?.busy ?? false).toBe(false);
        }
      }),
      RUNS,
    );
  });

  it('holds on a failed or stale observation: nothing new drained, nothing destroyed', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        const input = build(x);
        const plan = decide(input);
        const obs = input.observation as PoolObservation;
        const stale = input.now - obs.at > input.staleAfterMs;
        if (!obs.ok || stale || input.growOnly) {
          if (!input.growOnly) expect(plan.held).toBe(true);
          expect(plan.destroy).toEqual([]);
          expect(plan.stop).toEqual([]);
          const newlyDrained = plan.drain.filter((name) => input.nodes.find((n) => n.name === name)?.drainingSince === undefined);
          expect(newlyDrained).toEqual([]);
        }
        if (obs.ok && !stale && obs.partial) {
          expect(plan.destroy).toEqual([]);
          expect(plan.stop).toEqual([]);
        }
      }),
      RUNS,
    );
  });

  it('accounts for every node exactly once', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        const input = build(x);
        const plan = decide(input);
        const all = [...plan.keep, ...plan.drain, ...plan.destroy, ...plan.resume, ...plan.start, ...plan.stop].sort();
        expect(all).toEqual(input.nodes.map((n) => n.name).sort());
        expect(new Set(plan.create).size).toBe(plan.create.length);
      }),
      RUNS,
    );
  });

  it('is monotone in demand: more queued jobs never lower desired or creates', () => {
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 1, max: 30 }), (x, more) => {
        const a = build(x);
        const b = build(x);
        (b.observation as PoolObservation).queued += more;
        const pa = decide(a);
        const pb = decide(b);
        expect(pb.desired).toBeGreaterThanOrEqual(pa.desired);
        // Capacity for demand: creates that are not for standby, resumes and starts.
        const forDemand = (p: typeof pa) => p.create.filter((n) => !(p.memory.filling ?? []).includes(n)).length + p.resume.length + p.start.length;
        expect(forDemand(pb)).toBeGreaterThanOrEqual(forDemand(pa));
      }),
      RUNS,
    );
  });

  it('is deterministic: the same input gives the same plan', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        expect(decide(build(x))).toEqual(decide(build(x)));
      }),
      { numRuns: 300 },
    );
  });
});
