/**
 * Standby in decide (DESIGN "Events, standby and services"), as tables: stopped nodes are never
 * capacity; scale-up starts them before creating; scale-down stops drained idle nodes while standby
 * is under its target and destroys the rest; outdated standby goes first; nodes created to become
 * standby boot once, are drained as soon as they are online and stop when idle; `auto` sizes it
 * from the load history; a webhook-driven (growOnly) cycle only grows.
 */
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide/decide.js';
import { standbyForecast, DEFAULT_FORECAST } from '../../src/decide/predict.js';
import type { DecideInput, DemandHistory, NodeView, PoolMemory, PoolObservation } from '../../src/decide/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const obs = (queued: number, running: number): PoolObservation => ({ at: T0, ok: true, partial: false, queued, running, upcoming: 0 });
/** An idle node whose runner has been online since it booted. */
const idle = (name: string, ageMin = 30, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - ageMin * MIN, onlineAt: T0 - (ageMin - 1) * MIN, runner: { online: true, busy: false, paused: false }, ...extra });
const busy = (name: string, ageMin = 30): NodeView => ({ ...idle(name, ageMin), runner: { online: true, busy: true, paused: false }, lastBusyAt: T0 });
const booting = (name: string, ageMin = 1): NodeView => ({ name, createdAt: T0 - ageMin * MIN });
const drained = (n: NodeView, minAgo = 1, why: NodeView['drainReason'] = 'scale-down'): NodeView => ({ ...n, drainingSince: T0 - minAgo * MIN, drainReason: why, runner: n.runner ? { ...n.runner, paused: true } : undefined });
/** A node Parmanu stopped: drained first (the drain stays recorded), its runner paused and offline since. */
const stopped = (name: string, ageMin = 60, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - ageMin * MIN, onlineAt: T0 - (ageMin - 1) * MIN, offlineSince: T0 - 10 * MIN, drainingSince: T0 - 11 * MIN, drainReason: 'scale-down', power: 'stopped', runner: { online: false, busy: false, paused: true }, ...extra });

function run(scaling: Record<string, unknown>, nodes: NodeView[], observation: PoolObservation | undefined, extra: Partial<DecideInput> & { runner?: Record<string, unknown> } = {}) {
  const { runner, ...rest } = extra;
  return decide({ pool: testPool({ scaling: { predict: false, ...scaling }, runner: { jobsPerNode: 1, ...runner } }), now: T0, observation, staleAfterMs: 2 * MIN, nodes, memory: undefined, newId: (i) => `n${i}`, ...rest });
}

interface Row {
  name: string;
  scaling?: Record<string, unknown>;
  runner?: Record<string, unknown>;
  nodes: NodeView[];
  observation: PoolObservation | undefined;
  memory?: PoolMemory;
  growOnly?: boolean;
  want: { desired?: number; create?: number; start?: string[]; stop?: string[]; destroy?: string[]; drain?: string[]; resume?: string[]; keep?: string[]; standby?: number; filling?: string[]; reason?: RegExp; noReason?: RegExp };
}

const TABLE: Row[] = [
  {
    name: 'a stopped node is not capacity: a queued job starts it instead of finding room',
    scaling: { standby: 1 },
    nodes: [stopped('p-s')],
    observation: obs(1, 0),
    want: { desired: 1, create: 0, start: ['p-s'], keep: [], standby: 1, reason: /starting 1 standby node instead of booting new ones/ },
  },
  {
    name: 'refills standby once demand is met (the started node is capacity now)',
    scaling: { standby: 1 },
    nodes: [{ ...idle('p-s', 60), startedAt: T0 - 2 * MIN, onlineAt: T0 - MIN, runner: { online: true, busy: true, paused: false } }],
    observation: obs(0, 1),
    want: { desired: 1, create: 1, filling: ['p-n0'], keep: ['p-s'] },
  },
  {
    name: 'starts standby before creating, newest first; creates the rest',
    scaling: { standby: 2 },
    nodes: [stopped('p-old', 300), stopped('p-new', 60)],
    observation: obs(3, 0),
    want: { desired: 3, create: 1, start: ['p-new', 'p-old'] },
  },
  {
    name: 'resumes a drained (running) node before starting standby',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-d')), stopped('p-s')],
    observation: obs(1, 0),
    want: { resume: ['p-d'], start: [], create: 0, keep: ['p-s'] },
  },
  {
    name: 'starts standby within max (standby is on top of max, starts are not)',
    scaling: { standby: 2, max: 2 },
    nodes: [busy('p-a'), stopped('p-s1', 90), stopped('p-s2', 60)],
    observation: obs(2, 1),
    want: { desired: 2, start: ['p-s2'], create: 0 },
  },
  {
    name: 'stops a drained idle node while standby is under its target',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-a'))],
    observation: obs(0, 0),
    want: { stop: ['p-a'], destroy: [], create: 0, reason: /stopping 1 drained idle node into standby \(target 1\)/ },
  },
  {
    name: 'destroys the drained idle nodes beyond the standby target',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-a')), drained(idle('p-b'))],
    observation: obs(0, 0),
    want: { stop: ['p-a'], destroy: ['p-b'], create: 0 },
  },
  {
    name: 'destroys a drained node when standby is full',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-a')), stopped('p-s')],
    observation: obs(0, 0),
    want: { stop: [], destroy: ['p-a'], keep: ['p-s'] },
  },
  {
    name: 'never stops a node that never came online (nothing warm to keep): destroyed',
    scaling: { standby: 1 },
    nodes: [drained(booting('p-b', 5))],
    observation: obs(0, 0),
    want: { stop: [], destroy: ['p-b'], create: 1, filling: ['p-n0'] },
  },
  {
    name: 'never stops an outdated node, nor a broken one: destroyed',
    scaling: { standby: 2, maxStep: 1 },
    nodes: [drained(idle('p-o', 30, { outdated: true }), 1, 'outdated'), drained(idle('p-b'), 1, 'broken')],
    observation: obs(0, 0),
    want: { stop: [], destroy: ['p-o', 'p-b'] },
  },
  {
    name: 'never stops an ephemeral node that ran its job',
    scaling: { standby: 1, maxStep: 1 },
    runner: { ephemeral: true },
    nodes: [drained({ ...idle('p-e'), runner: { online: true, busy: false, paused: true, jobsStarted: 1 } })],
    observation: obs(0, 0),
    want: { stop: [], destroy: ['p-e'] },
  },
  {
    name: 'does not stop a drained node that picked up a job',
    scaling: { standby: 1, max: 1 },
    nodes: [drained(busy('p-a'))],
    observation: obs(0, 0),
    want: { stop: [], destroy: [], drain: ['p-a'] },
  },
  {
    name: 'outdated standby nodes are replaced first (free to replace), and standby refilled',
    scaling: { standby: 1 },
    nodes: [stopped('p-s', 60, { outdated: true })],
    observation: obs(0, 0),
    want: { destroy: ['p-s'], create: 1, filling: ['p-n0'], reason: /replacing 1 outdated standby node/ },
  },
  {
    name: 'standby older than maxLifetime is replaced too',
    scaling: { standby: 1, maxLifetime: '1h' },
    nodes: [stopped('p-s', 90)],
    observation: obs(0, 0),
    want: { destroy: ['p-s'], create: 1 },
  },
  {
    name: 'never starts an outdated standby node for demand: a fresh one is created (standby refills once demand is met)',
    scaling: { standby: 1 },
    nodes: [stopped('p-s', 60, { outdated: true })],
    observation: obs(1, 0),
    want: { start: [], destroy: ['p-s'], create: 1, filling: [] },
  },
  {
    name: 'standby over its target is destroyed, oldest first',
    scaling: { standby: 1 },
    nodes: [stopped('p-old', 300), stopped('p-new', 60)],
    observation: obs(0, 0),
    want: { destroy: ['p-old'], keep: ['p-new'], reason: /destroying 1 standby node over the target of 1/ },
  },
  {
    name: 'fills standby from zero: creates nodes that boot once (not counted as capacity)',
    scaling: { standby: 2 },
    nodes: [],
    observation: obs(0, 0),
    want: { desired: 0, create: 2, filling: ['p-n0', 'p-n1'], reason: /standby 0 of 2: creating 2 nodes to boot once and stop/ },
  },
  {
    name: 'a filling node still booting is waited for (no second fill), and is not capacity',
    scaling: { standby: 1 },
    nodes: [booting('p-f', 1)],
    observation: obs(1, 0),
    memory: { targets: [], filling: ['p-f'] },
    want: { desired: 1, create: 1, filling: ['p-f'], keep: ['p-f'] },
  },
  {
    name: 'a filling node that came online is drained to become standby, then stopped once idle',
    scaling: { standby: 1 },
    nodes: [idle('p-f', 2)],
    observation: obs(0, 0),
    memory: { targets: [], filling: ['p-f'] },
    want: { drain: ['p-f'], create: 0, stop: [] },
  },
  {
    name: '… next cycle: drained for standby, idle and paused → stopped',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-f', 3), 1, 'standby')],
    observation: obs(0, 0),
    want: { stop: ['p-f'], destroy: [], create: 0 },
  },
  {
    name: 'a filling node that took a job is ordinary capacity (no longer filling)',
    scaling: { standby: 1 },
    nodes: [busy('p-f', 2)],
    observation: obs(0, 1),
    memory: { targets: [], filling: ['p-f'] },
    want: { desired: 1, drain: [], create: 1, filling: ['p-n0'] },
  },
  {
    name: 'a node drained for standby is resumed when demand comes back',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-f', 3), 1, 'standby')],
    observation: obs(1, 0),
    want: { resume: ['p-f'], stop: [], create: 0, filling: [] },
  },
  {
    name: 'a started node boots from its start: not broken for having been offline while stopped',
    scaling: { bootTimeout: '10m' },
    nodes: [{ ...idle('p-s', 120), onlineAt: T0 - 119 * MIN, offlineSince: T0 - 60 * MIN, startedAt: T0 - 2 * MIN, runner: { online: false, busy: false, paused: false } }],
    observation: obs(1, 0),
    want: { desired: 1, create: 0, drain: [], keep: ['p-s'] },
  },
  {
    name: '… and broken when it does not come online within bootTimeout of its start',
    scaling: { standby: 0, bootTimeout: '10m' },
    nodes: [{ ...idle('p-s', 120), onlineAt: T0 - 119 * MIN, offlineSince: T0 - 60 * MIN, startedAt: T0 - 11 * MIN, runner: { online: false, busy: false, paused: false } }],
    observation: obs(1, 0),
    want: { drain: ['p-s'], create: 1, reason: /replacing 1 broken node/ },
  },
  {
    name: 'a started ephemeral node whose old runner is gone is booting, not spent',
    runner: { ephemeral: true },
    nodes: [{ name: 'p-s', createdAt: T0 - 120 * MIN, onlineAt: T0 - 119 * MIN, startedAt: T0 - MIN }],
    observation: obs(1, 0),
    want: { drain: [], create: 0, keep: ['p-s'] },
  },
  {
    name: 'holds on a failed probe: no stop, no standby destroy, no fill',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-a')), stopped('p-s1', 300), stopped('p-s2')],
    observation: { ...obs(0, 0), ok: false, reason: 'HTTP 502' },
    want: { stop: [], destroy: [], create: 0, drain: ['p-a'] },
  },
  {
    name: 'a growOnly (webhook) cycle starts standby for a queued job',
    scaling: { standby: 1 },
    growOnly: true,
    nodes: [idle('p-a'), stopped('p-s')],
    observation: obs(2, 0),
    want: { start: ['p-s'], create: 0, keep: ['p-a'] },
  },
  {
    name: 'a growOnly cycle never drains, stops, destroys or fills',
    scaling: { standby: 2 },
    growOnly: true,
    nodes: [idle('p-a'), idle('p-b'), drained(idle('p-c')), stopped('p-x', 60, { outdated: true })],
    observation: obs(0, 0),
    want: { desired: 2, drain: ['p-c'], stop: [], destroy: [], create: 0, keep: ['p-a', 'p-b', 'p-x'] },
  },
  {
    name: 'starts within maxStep, with creates sharing it',
    scaling: { standby: 8, maxStep: 2, max: 50 },
    nodes: Array.from({ length: 8 }, (_, i) => stopped(`p-s${i}`, 60 + i)),
    observation: obs(30, 0),
    want: { start: ['p-s0', 'p-s1'], create: 0, reason: /adding 2 this cycle \(maxStep 2\)/ },
  },
  {
    name: 'a standby node whose start failed recently is not started again: a node is created instead',
    scaling: { standby: 2 },
    nodes: [stopped('p-f', 30, { startFailures: 1, startFailedAt: T0 - 2 * MIN }), stopped('p-ok', 90)],
    observation: obs(2, 0),
    want: { start: ['p-ok'], create: 1, keep: ['p-f'], reason: /1 standby node failed to start recently: not started again before 5m/ },
  },
  {
    name: '… and is tried again after the pause',
    scaling: { standby: 1 },
    nodes: [stopped('p-f', 30, { startFailures: 2, startFailedAt: T0 - 6 * MIN })],
    observation: obs(1, 0),
    want: { start: ['p-f'], create: 0 },
  },
  {
    name: 'a standby node that failed to start 3 times is replaced',
    scaling: { standby: 1 },
    nodes: [stopped('p-f', 30, { startFailures: 3, startFailedAt: T0 - 20 * MIN })],
    observation: obs(0, 0),
    want: { destroy: ['p-f'], start: [], create: 1, filling: ['p-n0'], reason: /replacing 1 standby node that failed to start 3 times/ },
  },
  {
    name: 'a node stopped outside Parmanu (never drained) is no standby: destroyed, not started',
    scaling: { standby: 1 },
    nodes: [stopped('p-x', 60, { drainingSince: undefined, drainReason: undefined, runner: { online: false, busy: false, paused: false } })],
    observation: obs(1, 0),
    want: { destroy: ['p-x'], start: [], create: 1, reason: /destroying 1 node stopped outside Parmanu \(never drained: not standby\)/ },
  },
  {
    name: 'a stopped node with no drain record whose runner is paused (its history lost) is still standby',
    scaling: { standby: 1 },
    nodes: [stopped('p-s', 60, { drainingSince: undefined, drainReason: undefined, onlineAt: undefined, offlineSince: undefined })],
    observation: obs(1, 0),
    want: { start: ['p-s'], destroy: [], create: 0 },
  },
  {
    name: 'a drained node whose stop the plan did not make is destroyed, not stopped again',
    scaling: { standby: 1 },
    nodes: [drained(idle('p-a'), 1, 'scale-down')].map((n) => ({ ...n, stopFailedAt: T0 - MIN })),
    observation: obs(0, 0),
    want: { stop: [], destroy: ['p-a'] },
  },
  {
    name: 'a growOnly cycle of a removed pool drains and destroys nothing',
    scaling: { standby: 1 },
    growOnly: true,
    nodes: [idle('p-a'), drained(idle('p-b')), stopped('p-s')],
    observation: obs(0, 0),
    want: { drain: ['p-b'], destroy: [], stop: [], keep: ['p-a', 'p-s'] },
  },
  {
    name: 'a removed pool destroys its standby with the rest',
    scaling: { standby: 2 },
    nodes: [stopped('p-s'), idle('p-a')],
    observation: obs(0, 0),
    want: { destroy: ['p-s'], drain: ['p-a'], start: [], create: 0, standby: 0 },
  },
];

describe('decide: standby', () => {
  it.each(TABLE)('$name', (row) => {
    const removed = row.name.startsWith('a removed pool') || row.name.includes('of a removed pool');
    const plan = run(row.scaling ?? {}, row.nodes, row.observation, { runner: row.runner, ...(row.memory ? { memory: row.memory } : {}), ...(row.growOnly ? { growOnly: true } : {}), ...(removed ? { removed: true } : {}) });
    const w = row.want;
    if (w.desired !== undefined) expect(plan.desired).toBe(w.desired);
    if (w.create !== undefined) expect(plan.create).toHaveLength(w.create);
    if (w.start) expect(plan.start).toEqual(w.start);
    if (w.stop) expect(plan.stop).toEqual(w.stop);
    if (w.destroy) expect([...plan.destroy].sort()).toEqual([...w.destroy].sort());
    if (w.drain) expect([...plan.drain].sort()).toEqual([...w.drain].sort());
    if (w.resume) expect(plan.resume).toEqual(w.resume);
    if (w.keep) expect([...plan.keep].sort()).toEqual([...w.keep].sort());
    if (w.standby !== undefined) expect(plan.standby).toBe(w.standby);
    if (w.filling) expect(plan.memory.filling ?? []).toEqual(w.filling);
    if (w.reason) expect(plan.reasons.join('\n')).toMatch(w.reason);
    // Every node is in exactly one of keep / drain / destroy / resume / start / stop.
    const all = [...plan.keep, ...plan.drain, ...plan.destroy, ...plan.resume, ...plan.start, ...plan.stop].sort();
    expect(all).toEqual(row.nodes.map((n) => n.name).sort());
    // Stopped nodes never count as capacity: their state is standby.
    for (const n of row.nodes) if (n.power === 'stopped') expect(plan.states[n.name]).toBe('standby');
  });

  it('holds a falling standby target for scaleDownAfter, like demand', () => {
    const memory: PoolMemory = { targets: [], standbyTargets: [{ at: T0 - 5 * MIN, nodes: 3 }] };
    const plan = run({ standby: 1 }, [stopped('p-a'), stopped('p-b'), stopped('p-c')], obs(0, 0), { memory });
    expect(plan.standby).toBe(3);
    expect(plan.destroy).toEqual([]);
    const later = run({ standby: 1 }, [stopped('p-a'), stopped('p-b'), stopped('p-c')], obs(0, 0), { memory: { targets: [], standbyTargets: [{ at: T0 - 11 * MIN, nodes: 3 }] } });
    expect(later.standby).toBe(1);
    expect(later.destroy).toHaveLength(2);
  });
});

/** A history of `days` past weekdays with a burst of `size` jobs every `everyMin` minutes between 09:00 and 17:00 UTC. */
function officeHistory(size: number, everyMin: number, days = 10): DemandHistory {
  const arrivals = new Map<number, number>();
  const day = 86_400_000;
  const b = MIN;
  // T0 is a weekday at 12:00 UTC (test/helpers.ts); walk back over weekdays only.
  let since = Math.floor(T0 / b);
  for (let d = 1, n = 0; n < days; d++) {
    const t = T0 - d * day;
    const wd = new Date(t).getUTCDay();
    if (wd === 0 || wd === 6) continue;
    n++;
    const dayStart = t - (t % day);
    for (let m = 9 * 60; m < 17 * 60; m += everyMin) arrivals.set(Math.floor((dayStart + m * MIN) / b), size);
    since = Math.floor(dayStart / b);
  }
  return { bucketMs: b, arrivals, since };
}

describe('decide: standby auto (sized from history)', () => {
  it('is the burst expected within one boot at this hour', () => {
    const h = officeHistory(6, 5);
    // One burst of 6 per boot-long window (90 s): 6 slots.
    expect(standbyForecast(h, T0, 90_000)).toBe(6);
    // A boot long enough to span two bursts sees 12.
    expect(standbyForecast(h, T0, 6 * MIN)).toBe(12);
  });

  it('is zero in quiet periods (at night) and without history', () => {
    const h = officeHistory(6, 5);
    const night = T0 - 10 * 3_600_000; // 02:00 UTC
    expect(standbyForecast(h, night, 90_000)).toBe(0);
    const plan = run({ standby: 'auto', predict: true }, [], obs(0, 0));
    expect(plan.standby).toBe(0);
    expect(plan.reasons.join('\n')).toMatch(/standby auto: 0 \(no load history yet\)/);
  });

  it('decide keeps that many stopped (÷ jobsPerNode), and fills it', () => {
    const plan = run({ standby: 'auto', predict: false }, [], obs(0, 0), { history: officeHistory(6, 5), runner: { jobsPerNode: 2 } });
    expect(plan.standby).toBe(3);
    expect(plan.create).toHaveLength(3);
    expect(plan.reasons.join('\n')).toMatch(/standby auto: 3 \(the burst expected within one boot at this time\)/);
  });

  it('follows the pool boot time it is given', () => {
    const plan = run({ standby: 'auto' }, [], obs(0, 0), { history: officeHistory(6, 5), bootMs: 6 * MIN });
    expect(plan.standby).toBe(12);
  });

  it('is not gated on the likelihood of a burst (a rare burst still gets its standby), and uses the options it is given', () => {
    const h = officeHistory(3, 60);
    expect(standbyForecast(h, T0, 90_000, { ...DEFAULT_FORECAST, threshold: 0.99 })).toBe(3);
    // The neighbourhood looked at: the hour ahead (spreadMs) on comparable days.
    expect(standbyForecast(h, T0 + 10 * MIN, 90_000, { ...DEFAULT_FORECAST, spreadMs: 30 * MIN, recentMs: 5 * MIN })).toBe(0);
  });
});

describe('observedBootMs', () => {
  it('is the median creation → online time of nodes that never were standby', async () => {
    const { observedBootMs } = await import('../../src/decide/decide.js');
    expect(observedBootMs([])).toBeUndefined();
    const n = (name: string, bootS: number, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - 60 * MIN, onlineAt: T0 - 60 * MIN + bootS * 1000, ...extra });
    expect(observedBootMs([n('a', 60), n('b', 200), n('c', 90)])).toBe(90_000);
    // A started node's online time measures its start, not a boot; a booting node has none.
    expect(observedBootMs([n('a', 60), n('b', 5, { startedAt: T0 - MIN }), { name: 'c', createdAt: T0 }])).toBe(60_000);
  });

  it('is never more than max: no more could ever start', () => {
    const plan = run({ standby: 'auto', max: 5, maxStep: 50 }, [], obs(0, 0), { history: officeHistory(60, 1) });
    expect(plan.standby).toBe(5);
    expect(plan.create).toHaveLength(5);
  });

  it('sizes standby auto when the caller gives no boot time', () => {
    const nodes = [idle('p-a', 60, { onlineAt: T0 - 54 * MIN })]; // booted in 6 minutes
    const plan = run({ standby: 'auto' }, nodes, obs(1, 0), { history: officeHistory(6, 5) });
    expect(plan.standby).toBe(12);
  });
});

describe('warm nodes of a pool with standby', () => {
  /** 12 bursts of 4 in the hour ahead over 10 past weekdays, and one in today's last hour: a burst in the next 10 minutes is about 17% likely. */
  function history(): DemandHistory {
    const arrivals = new Map<number, number>();
    const day = 86_400_000;
    let since = Math.floor(T0 / MIN);
    for (let d = 1, n = 0; n < 10; d++) {
      const t = T0 - d * day;
      const wd = new Date(t).getUTCDay();
      if (wd === 0 || wd === 6) continue;
      for (const m of n < 2 ? [10, 40] : [30]) arrivals.set(Math.floor((t + m * MIN) / MIN), 4);
      n++;
      since = Math.floor((t - (t % day)) / MIN);
    }
    arrivals.set(Math.floor((T0 - 30 * MIN) / MIN), 4);
    return { bucketMs: MIN, arrivals, since };
  }

  it('are kept for likelier bursts only: a miss waits for a start, not a boot', () => {
    const without = run({ predict: true }, [], obs(0, 0), { history: history() });
    expect(without.desired).toBe(4);
    expect(without.reasons.join('\n')).toMatch(/predict: a burst in the next 10m is 17% likely .* keeping 4 warm/);
    const withStandby = run({ predict: true, standby: 2 }, [], obs(0, 0), { history: history() });
    expect(withStandby.desired).toBe(0);
    expect(withStandby.reasons.join('\n')).not.toMatch(/keeping \d+ warm/);
  });
});

