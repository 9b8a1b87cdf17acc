/**
 * Invariants of decide, over random pools, fleets and observations (fast-check):
 * never above max, never a busy node drained or destroyed, never a destroy without an earlier
 * drain, desired monotone in demand, fail-static holds, every node accounted for once.
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
  }).map((r): NodeView => {
    const n: NodeView = { name: `p-${i}`, createdAt: T0 - r.ageMin * MIN };
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
  })
  .chain((r) => fc.tuple(fc.constant(r), fc.tuple(...Array.from({ length: r.nodeCount }, (_, i) => nodeArb(i)))));

type Generated = typeof inputArb extends fc.Arbitrary<infer T> ? T : never;

function build([r, nodes]: Generated): DecideInput {
  const min = Math.min(r.min, r.max);
  const pool = testPool({
    runner: { jobsPerNode: r.jobsPerNode, ephemeral: r.ephemeral },
    scaling: { min, max: r.max, spare: Math.min(r.spare, r.max), maxStep: r.maxStep, predict: r.predict, ...(r.budget ? { disruptionBudget: r.budget } : {}) },
  });
  const observation: PoolObservation = { at: T0 - r.ageS * 1000, ok: r.ok, partial: r.partial, queued: r.queued, running: r.running, upcoming: r.upcoming };
  return {
    pool,
    now: T0,
    observation,
    staleAfterMs: 2 * MIN,
    nodes: [...nodes],
    memory: { targets: r.held.map((h) => ({ at: T0 - h.agoS * 1000, nodes: h.nodes })) },
    newId: (i) => `new${i}`,
  };
}

const RUNS = { numRuns: 1500 };

describe('decide invariants', () => {
  it('never plans more nodes than max (unless already above it, then it adds none)', () => {
    fc.assert(
      fc.property(inputArb, (x) => {
        const input = build(x);
        const plan = decide(input);
        const after = input.nodes.length - plan.destroy.length + plan.create.length;
        if (plan.create.length > 0) expect(after).toBeLessThanOrEqual(input.pool.scaling.max);
        expect(plan.desired).toBeLessThanOrEqual(input.pool.scaling.max);
        expect(plan.create.length).toBeLessThanOrEqual(input.pool.scaling.maxStep);
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
        for (const name of plan.destroy) {
          const n = byName.get(name) as NodeView;
          expect(n.runner?.busy ?? false).toBe(false);
          expect(n.drainingSince).toBeDefined();
          expect(n.drainingSince as number).toBeLessThan(input.now);
        }
        for (const name of plan.drain) {
          const n = byName.get(name) as NodeView;
          if (n.drainingSince === undefined) expect(n.runner?.busy ?? false).toBe(false);
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
        if (!obs.ok || stale) {
          expect(plan.held).toBe(true);
          expect(plan.destroy).toEqual([]);
          const newlyDrained = plan.drain.filter((name) => input.nodes.find((n) => n.name === name)?.drainingSince === undefined);
          expect(newlyDrained).toEqual([]);
        }
        if (obs.ok && !stale && obs.partial) {
          expect(plan.destroy).toEqual([]);
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
        const all = [...plan.keep, ...plan.drain, ...plan.destroy, ...plan.resume].sort();
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
        expect(pb.create.length + pb.resume.length).toBeGreaterThanOrEqual(pa.create.length + pa.resume.length);
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
