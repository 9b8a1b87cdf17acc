/**
 * BCDR failover's decisions as tables (decide/failover.ts, and decide's `evacuate`): which platform
 * gets new nodes, how a platform's health moves, and what a stack on a platform the pool is
 * leaving keeps.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide/decide.js';
import { chooseActive, isFailing, nextHealth, retainOnOthers, type FailoverInput, type PlatformHealth } from '../../src/decide/failover.js';
import type { NodeView, PoolObservation } from '../../src/decide/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const base: FailoverInput = { platforms: ['a', 'b', 'c'], evacuated: new Set(), health: {}, failoverAfter: 3, failbackAfterMs: 10 * MIN, now: T0 };
const failed = (failures: number, minAgo: number, lastError = 'Error: boom'): PlatformHealth => ({ failures, lastFailureAt: T0 - minAgo * MIN, lastError });

describe('chooseActive', () => {
  const rows: Array<{ name: string; input: Partial<FailoverInput>; active: string; probation?: boolean; failing?: string[]; reason?: RegExp }> = [
    { name: 'a healthy pool runs on its own platform, no reason', input: {}, active: 'a', probation: false, failing: [] },
    { name: 'failures below failoverAfter: stays', input: { health: { a: failed(2, 0) } }, active: 'a', failing: [] },
    { name: 'failoverAfter failures in a row: the next platform', input: { health: { a: failed(3, 1) } }, active: 'b', failing: ['a'], reason: /^platform a is failing \(3 failed Terraform runs in a row, last: Error: boom, tried again in 9m\): new nodes go to b$/ },
    { name: 'the next one failing too: the one after', input: { health: { a: failed(3, 1), b: failed(5, 2) } }, active: 'c', failing: ['a', 'b'] },
    { name: 'an evacuated platform is skipped', input: { evacuated: new Set(['a']) }, active: 'b', reason: /^platform a is evacuated \(evacuate: true\): new nodes go to b$/ },
    { name: 'evacuated and failing: the first healthy', input: { evacuated: new Set(['a']), health: { b: failed(3, 0) } }, active: 'c' },
    { name: 'after failbackAfter a failed platform is tried again, on probation', input: { health: { a: failed(3, 11) } }, active: 'a', probation: true, failing: [], reason: /platform a failed 3 times in a row \(last 11m ago\) and is tried again: the pool's other platforms keep their nodes/ },
    { name: 'exactly failbackAfter: tried again', input: { health: { a: failed(3, 10) } }, active: 'a', probation: true, reason: /is tried again/ },
    { name: 'every platform failing: stays on the first, on probation', input: { health: { a: failed(3, 0), b: failed(3, 0), c: failed(3, 0) } }, active: 'a', probation: true, reason: /no platform to move to, new nodes stay on a/ },
    { name: 'every platform evacuated: the pool\'s own', input: { evacuated: new Set(['a', 'b', 'c']) }, active: 'a', reason: /no platform to move to, new nodes stay on a/ },
    { name: 'evacuated own, the rest failing: the first not evacuated', input: { evacuated: new Set(['a']), health: { b: failed(4, 0), c: failed(4, 0) } }, active: 'b' },
    { name: 'a success cleared the count: back home', input: { health: { a: { failures: 0 }, b: failed(1, 0) } }, active: 'a' },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const c = chooseActive({ ...base, ...row.input });
      expect(c.active).toBe(row.active);
      if (row.probation !== undefined) expect(c.probation).toBe(row.probation);
      if (row.failing) expect(c.failing).toEqual(row.failing);
      if (row.reason) expect(c.reasons.join('\n')).toMatch(row.reason);
      if (row.active === 'a' && !row.reason) expect(c.reasons).toEqual([]);
    });
  }
});

describe('platform health', () => {
  it('counts failures in a row, and a success clears them', () => {
    let h = nextHealth(undefined, { failed: true, error: 'Error:\n  multi\n  line' }, T0);
    expect(h).toEqual({ failures: 1, lastFailureAt: T0, lastError: 'Error: multi line' });
    h = nextHealth(h, { failed: true, error: 'x'.repeat(500) }, T0 + MIN);
    expect(h.failures).toBe(2);
    expect(h.lastError).toHaveLength(300);
    expect(nextHealth(h, { failed: false }, T0 + 2 * MIN)).toEqual({ failures: 0 });
  });
  it('isFailing: at the threshold and within failbackAfter', () => {
    expect(isFailing(undefined, 3, MIN, T0)).toBe(false);
    expect(isFailing(failed(2, 0), 3, MIN, T0)).toBe(false);
    expect(isFailing(failed(3, 0), 3, MIN, T0)).toBe(true);
    expect(isFailing(failed(3, 1), 3, MIN, T0)).toBe(false);
    expect(isFailing({ failures: 3 }, 3, MIN, T0)).toBe(true);
  });
  it('retainOnOthers: what the active platform\'s ready nodes do not cover yet', () => {
    expect(retainOnOthers(4, 0)).toBe(4);
    expect(retainOnOthers(4, 3)).toBe(1);
    expect(retainOnOthers(4, 6)).toBe(0);
    expect(retainOnOthers(0, 0)).toBe(0);
  });
});

describe('decide on a platform the pool is leaving (evacuate)', () => {
  const obs = (running: number): PoolObservation => ({ at: T0, ok: true, partial: false, queued: 0, running, upcoming: 0 });
  const idle = (name: string, ageMin = 30): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: true, busy: false, paused: false } });
  const busy = (name: string): NodeView => ({ name, createdAt: T0 - 30 * MIN, runner: { online: true, busy: true, paused: false }, lastBusyAt: T0 });
  const booting = (name: string): NodeView => ({ name, createdAt: T0 - MIN });
  const stopped = (name: string): NodeView => ({ name, createdAt: T0 - 30 * MIN, power: 'stopped', drainingSince: T0 - 20 * MIN, drainReason: 'standby', onlineAt: T0 - 29 * MIN, runner: { online: false, busy: false, paused: true } });
  const run = (nodes: NodeView[], keep: number, observation: PoolObservation | undefined = obs(0), scaling: Record<string, unknown> = {}) =>
    decide({ pool: testPool({ scaling: { predict: false, min: 3, spare: 2, ...scaling } }), now: T0, observation, staleAfterMs: 2 * MIN, nodes, memory: undefined, newId: (i) => `n${i}`, evacuate: { keep, reason: 'platform a is evacuated: nodes on a go' } });

  const rows: Array<{ name: string; nodes: NodeView[]; keep: number; observation?: PoolObservation; scaling?: Record<string, unknown>; want: { desired: number; drain: string[]; destroy?: string[]; create?: number; start?: string[]; resume?: string[]; reason?: RegExp } }> = [
    { name: 'keep 0: every node drains, busy ones too (they finish their job), none created despite min', nodes: [idle('p-a'), busy('p-b'), booting('p-c')], keep: 0, want: { desired: 0, drain: ['p-a', 'p-c', 'p-b'], create: 0, reason: /^platform a is evacuated: nodes on a go: draining its 3 nodes$/ } },
    { name: 'keep 2: the online idle ones keep serving, the rest drain', nodes: [idle('p-a'), busy('p-b'), idle('p-c', 10), booting('p-d')], keep: 2, want: { desired: 2, drain: ['p-d', 'p-b'], reason: /keeping 2 of 4 serving until the new platform's nodes do/ } },
    { name: 'keep more than there are: nothing drains, nothing is created', nodes: [idle('p-a')], keep: 5, want: { desired: 1, drain: [], create: 0 } },
    { name: 'a failed probe holds: nothing drains', nodes: [idle('p-a'), idle('p-b')], keep: 0, observation: { ...obs(0), ok: false, reason: 'down' }, want: { desired: 0, drain: [], reason: /probe failed \(down\): holding/ } },
    { name: 'drained earlier and idle: destroyed', nodes: [{ ...idle('p-a'), drainingSince: T0 - MIN, drainReason: 'failover', runner: { online: true, busy: false, paused: true } }], keep: 0, want: { desired: 0, drain: [], destroy: ['p-a'] } },
    { name: 'drained for the move, and the new platform did not come: resumed', nodes: [{ ...idle('p-a'), drainingSince: T0 - MIN, drainReason: 'failover', runner: { online: true, busy: false, paused: true } }], keep: 1, want: { desired: 1, drain: [], destroy: [], resume: ['p-a'] } },
    { name: 'standby on a platform the pool is leaving goes, never started', nodes: [stopped('p-s')], keep: 3, scaling: { standby: 1 }, want: { desired: 0, drain: [], destroy: ['p-s'], start: [] } },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const plan = run(row.nodes, row.keep, row.observation, row.scaling);
      expect(plan.desired).toBe(row.want.desired);
      expect(plan.drain).toEqual(row.want.drain);
      expect(plan.create).toHaveLength(row.want.create ?? 0);
      if (row.want.destroy) expect(plan.destroy).toEqual(row.want.destroy);
      if (row.want.start) expect(plan.start).toEqual(row.want.start);
      if (row.want.resume) expect(plan.resume).toEqual(row.want.resume);
      if (row.want.reason) expect(plan.reasons.join('\n')).toMatch(row.want.reason);
      for (const n of plan.drain) if (row.nodes.some((x) => x.name === n && x.drainingSince === undefined)) expect(plan.drainReasons[n]).toBe('failover');
    });
  }
});
