import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide/decide.js';
import type { DecideInput, NodeView, PoolObservation } from '../../src/decide/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const obs = (queued: number, running: number, extra: Partial<PoolObservation> = {}): PoolObservation => ({ at: T0, ok: true, partial: false, queued, running, upcoming: 0, ...extra });
const idle = (name: string, ageMin = 30, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: true, busy: false, paused: false }, ...extra });
const busy = (name: string, ageMin = 30): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: true, busy: true, paused: false }, lastBusyAt: T0 });
const booting = (name: string, ageMin = 1): NodeView => ({ name, createdAt: T0 - ageMin * MIN });
const offline = (name: string, ageMin: number, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: false, busy: false, paused: false }, ...extra });
const drained = (n: NodeView, minAgo = 1): NodeView => ({ ...n, drainingSince: T0 - minAgo * MIN, runner: n.runner ? { ...n.runner, paused: true } : undefined });

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
  memory?: DecideInput['memory'];
  want: { desired: number; create: number; drain?: string[]; destroy?: string[]; resume?: string[]; keep?: string[]; held?: boolean; reason?: RegExp };
}

const TABLE: Row[] = [
  {
    name: 'scales up from zero with jobsPerNode and spare',
    scaling: { spare: 1, max: 20 },
    runner: { jobsPerNode: 2 },
    nodes: [],
    observation: obs(7, 1),
    want: { desired: 5, create: 5, reason: /^7 queued \+ 1 running jobs ÷ 2 per node = 4, \+1 spare = 5$/ },
  },
  { name: 'clamps to max', scaling: { max: 20, maxStep: 50 }, nodes: [], observation: obs(100, 0), want: { desired: 20, create: 20, reason: /^max 20$/ } },
  { name: 'adds at most maxStep per cycle', scaling: { max: 50, maxStep: 10 }, nodes: [], observation: obs(30, 0), want: { desired: 30, create: 10, reason: /maxStep 10/ } },
  { name: 'holds min with no demand', scaling: { min: 2 }, nodes: [], observation: obs(0, 0), want: { desired: 2, create: 2, reason: /^min 2$/ } },
  { name: 'keeps nodes that match demand', nodes: [busy('p-a'), busy('p-b')], observation: obs(0, 2), want: { desired: 2, create: 0, keep: ['p-a', 'p-b'], drain: [] } },
  {
    name: 'holds a scale-down inside scaleDownAfter',
    nodes: [idle('p-a'), idle('p-b'), idle('p-c')],
    observation: obs(0, 0),
    memory: { targets: [{ at: T0 - 5 * MIN, nodes: 3 }] },
    want: { desired: 3, create: 0, drain: [], reason: /demand has not stayed lower for 10m: keeping 3/ },
  },
  {
    name: 'scales down once demand stayed lower for scaleDownAfter',
    nodes: [idle('p-a'), idle('p-b'), idle('p-c')],
    observation: obs(0, 1),
    memory: { targets: [{ at: T0 - 11 * MIN, nodes: 3 }, { at: T0 - 3 * MIN, nodes: 2 }] },
    want: { desired: 2, create: 0, drain: ['p-a'] },
  },
  { name: 'never drains a busy node', nodes: [busy('p-a'), idle('p-b'), busy('p-c')], observation: obs(0, 0), want: { desired: 0, create: 0, drain: ['p-b'], keep: ['p-a', 'p-c'], reason: /2 more could go: the others are busy/ } },
  { name: 'keeps a node younger than minLifetime', scaling: { minLifetime: '5m' }, nodes: [idle('p-young', 2), idle('p-old', 10)], observation: obs(0, 0), want: { desired: 0, create: 0, drain: ['p-old'] } },
  {
    name: 'destroys a node drained in an earlier cycle that is still idle',
    nodes: [drained(idle('p-a'), 1)],
    observation: obs(0, 0),
    want: { desired: 0, create: 0, destroy: ['p-a'], drain: [], reason: /destroying 1 drained idle node/ },
  },
  {
    name: 'does not destroy a drained node that is busy',
    scaling: { max: 1 },
    nodes: [drained(busy('p-a'), 1), busy('p-b')],
    observation: obs(0, 2),
    want: { desired: 1, create: 0, destroy: [], drain: ['p-a'], keep: ['p-b'], reason: /waiting for 1 draining node to finish its job/ },
  },
  { name: 'resumes a drained node whose job is the demand', nodes: [drained(busy('p-a'), 1)], observation: obs(0, 1), want: { desired: 1, create: 0, resume: ['p-a'], destroy: [] } },
  { name: 'does not destroy a node drained in this very cycle', nodes: [drained(idle('p-a'), 0)], observation: obs(0, 0), want: { desired: 0, create: 0, destroy: [], drain: ['p-a'] } },
  { name: 'resumes a drained node before creating one', nodes: [drained(idle('p-a'), 1)], observation: obs(1, 0), want: { desired: 1, create: 0, resume: ['p-a'], destroy: [], reason: /resuming 1 drained node/ } },
  {
    name: 'replaces a node whose runner never registered',
    scaling: { bootTimeout: '10m' },
    nodes: [booting('p-stuck', 11), booting('p-new', 2)],
    observation: obs(2, 0),
    want: { desired: 2, create: 1, drain: ['p-stuck'], keep: ['p-new'], reason: /replacing 1 broken node \(runner not online within 10m\)/ },
  },
  {
    name: 'replaces ephemeral nodes after their job',
    runner: { ephemeral: true },
    nodes: [{ ...idle('p-used'), runner: { online: true, busy: false, paused: false, jobsStarted: 1 } }, busy('p-running')],
    observation: obs(1, 1),
    want: { desired: 2, create: 1, drain: ['p-used'], keep: ['p-running'], reason: /replacing 1 ephemeral node/ },
  },
  { name: 'holds on a failed probe: no drain, no destroy', scaling: { min: 0 }, nodes: [idle('p-a'), drained(idle('p-b'), 5)], observation: obs(0, 0, { ok: false, reason: 'HTTP 502' }), want: { desired: 1, create: 0, drain: ['p-b'], destroy: [], held: true, reason: /probe failed \(HTTP 502\): holding/ } },
  { name: 'holds on no observation but still reaches min', scaling: { min: 3, maxStep: 2 }, nodes: [], observation: undefined, want: { desired: 3, create: 2, held: true, reason: /no observation yet/ } },
  { name: 'holds on a stale observation', nodes: [idle('p-a')], observation: obs(0, 0, { at: T0 - 5 * MIN }), want: { desired: 1, create: 0, drain: [], held: true, reason: /observation is 300s old \(stale after 120s\)/ } },
  { name: 'grows on partial data but never shrinks', scaling: { maxStep: 3 }, nodes: [idle('p-a'), idle('p-b')], observation: obs(0, 0, { partial: true, reason: 'page 3 failed' }), want: { desired: 2, create: 0, drain: [], reason: /partial observation \(page 3 failed\)/ } },
  { name: 'grows within maxStep on partial data', scaling: { maxStep: 3 }, nodes: [], observation: obs(9, 0, { partial: true }), want: { desired: 9, create: 3 } },
  { name: 'drains within the disruption budget', scaling: { disruptionBudget: 1 }, nodes: [idle('p-a'), idle('p-b'), idle('p-c')], observation: obs(0, 0), want: { desired: 0, create: 0, drain: ['p-a'], reason: /2 more could go: disruption budget 1/ } },
  {
    name: 'chooses victims: unregistered first, then longest idle, then oldest',
    scaling: { disruptionBudget: 3, minLifetime: '0s' },
    nodes: [idle('p-recent', 60, { lastBusyAt: T0 - 1 * MIN }), idle('p-idle-long', 20, { lastBusyAt: T0 - 15 * MIN }), booting('p-booting', 1), idle('p-never-busy-old', 90)],
    observation: obs(0, 0),
    want: { desired: 0, create: 0, drain: ['p-booting', 'p-never-busy-old', 'p-idle-long'] },
  },
  { name: 'counts draining nodes against max', scaling: { max: 4 }, nodes: [drained(busy('p-a'), 1), drained(busy('p-b'), 1), busy('p-c')], observation: obs(5, 3), want: { desired: 4, create: 1 } },
  { name: 'shrinks to a lowered max', scaling: { max: 1 }, nodes: [idle('p-a'), idle('p-b'), busy('p-c')], observation: obs(0, 1), want: { desired: 1, create: 0, drain: ['p-a', 'p-b'] } },
  { name: 'counts upcoming jobs with predict', scaling: { predict: true }, nodes: [], observation: obs(1, 0, { upcoming: 3 }), want: { desired: 4, create: 4, reason: /predict: 3 upcoming jobs in running pipelines → 4/ } },
  { name: 'ignores upcoming jobs without predict', nodes: [], observation: obs(1, 0, { upcoming: 3 }), want: { desired: 1, create: 1 } },
  // Lifecycle v2: broken, outdated, rollout, removed pools.
  {
    name: 'a runner registered before the VM booted but never online is broken after bootTimeout',
    scaling: { bootTimeout: '10m' },
    nodes: [offline('p-never', 11), offline('p-booting', 3)],
    observation: obs(2, 0),
    want: { desired: 2, create: 1, drain: ['p-never'], keep: ['p-booting'], reason: /replacing 1 broken node/ },
  },
  {
    name: 'a runner offline longer than bootTimeout after being online is broken',
    scaling: { bootTimeout: '10m' },
    nodes: [offline('p-gone', 60, { onlineAt: T0 - 50 * MIN, offlineSince: T0 - 11 * MIN }), offline('p-blip', 60, { onlineAt: T0 - 50 * MIN, offlineSince: T0 - 2 * MIN })],
    observation: obs(2, 0),
    want: { desired: 2, create: 1, drain: ['p-gone'], keep: ['p-blip'] },
  },
  { name: 'a broken node is not drained while the probe failed', scaling: { bootTimeout: '10m' }, nodes: [offline('p-never', 30)], observation: obs(0, 0, { ok: false, reason: 'HTTP 500' }), want: { desired: 0, create: 0, drain: [], destroy: [], keep: ['p-never'], held: true } },
  {
    name: 'rollout drains one outdated node at a time, idle first, and creates its replacement',
    nodes: [busy('p-a'), idle('p-b', 30, { outdated: true }), idle('p-c', 40, { outdated: true }), { ...busy('p-d'), outdated: true }],
    observation: obs(0, 4),
    want: { desired: 4, create: 1, drain: ['p-c'], reason: /rollout: replacing 1 of 3 outdated nodes \(maxUnavailable 1\)/ },
  },
  {
    name: 'rollout waits while maxUnavailable nodes already drain for it',
    nodes: [idle('p-b', 30, { outdated: true }), { ...drained(idle('p-c'), 1), drainReason: 'outdated' }, idle('p-new', 1)],
    observation: obs(0, 2),
    want: { desired: 2, create: 0, drain: [], destroy: ['p-c'], reason: /1 outdated node waits \(1 already draining/ },
  },
  {
    name: 'rollout with a percentage rounds up',
    scaling: { rollout: { maxUnavailable: '50%' } },
    nodes: [idle('p-a', 30, { outdated: true }), idle('p-b', 31, { outdated: true }), idle('p-c', 32, { outdated: true })],
    observation: obs(0, 3),
    want: { desired: 3, create: 2, drain: ['p-c', 'p-b'] },
  },
  {
    name: 'the disruption budget caps rollout when it is smaller',
    scaling: { disruptionBudget: 1, rollout: { maxUnavailable: 3 } },
    nodes: [idle('p-a', 30, { outdated: true }), idle('p-b', 31, { outdated: true }), idle('p-c', 32, { outdated: true })],
    observation: obs(0, 3),
    want: { desired: 3, create: 1, drain: ['p-c'] },
  },
  { name: 'maxLifetime makes an old node outdated', scaling: { maxLifetime: '24h' }, nodes: [idle('p-old', 25 * 60), idle('p-young', 60)], observation: obs(0, 2), want: { desired: 2, create: 1, drain: ['p-old'], reason: /rollout: replacing 1 of 1/ } },
  { name: 'scale-down takes outdated nodes first', nodes: [idle('p-a', 50), idle('p-b', 30, { outdated: true })], observation: obs(0, 0), memory: { targets: [] }, scaling: { rollout: { maxUnavailable: 1 }, disruptionBudget: 1 }, want: { desired: 0, create: 0, drain: ['p-b'] } },
  { name: 'rollout holds on a failed probe', nodes: [idle('p-a', 30, { outdated: true })], observation: obs(0, 0, { ok: false }), want: { desired: 1, create: 0, drain: [], held: true } },
  {
    name: 'an ephemeral node whose runner left after its job is spent at once, not capacity until bootTimeout',
    runner: { ephemeral: true },
    nodes: [{ name: 'p-done', createdAt: T0 - 5 * MIN, onlineAt: T0 - 4 * MIN, offlineSince: T0 - 30_000 }, idle('p-b', 5)],
    observation: obs(2, 0),
    want: { desired: 2, create: 1, drain: ['p-done'], reason: /replacing 1 ephemeral node that finished its job/ },
  },
  {
    name: 'rollout waits while a replacement is still booting',
    nodes: [idle('p-a', 30, { outdated: true }), idle('p-b', 31, { outdated: true }), { name: 'p-new', createdAt: T0 - 2 * MIN }],
    observation: obs(0, 3),
    want: { desired: 3, create: 0, drain: [], reason: /rollout: 2 outdated nodes wait \(1 already draining or booting/ },
  },
  { name: 'a drained node whose runner is not paused (a crash before the pause) is not destroyed: it is paused first', nodes: [{ ...idle('p-a'), drainingSince: T0 - MIN }], observation: obs(0, 0), want: { desired: 0, create: 0, destroy: [], drain: ['p-a'] } },
  { name: 'a node drained as outdated is never resumed', nodes: [{ ...drained(idle('p-a'), 1), drainReason: 'outdated' }], observation: obs(1, 0), want: { desired: 1, create: 1, resume: [], destroy: ['p-a'] } },
];

describe('decide', () => {
  it.each(TABLE.map((r) => [r.name, r] as const))('%s', (_n, row) => {
    const plan = run(row.scaling ?? {}, row.nodes, row.observation, { memory: row.memory, runner: row.runner });
    expect(plan.desired).toBe(row.want.desired);
    expect(plan.create).toHaveLength(row.want.create);
    if (row.want.drain) expect(plan.drain).toEqual(row.want.drain);
    if (row.want.destroy) expect(plan.destroy).toEqual(row.want.destroy);
    if (row.want.resume) expect(plan.resume).toEqual(row.want.resume);
    if (row.want.keep) expect(plan.keep).toEqual(row.want.keep);
    expect(plan.held).toBe(row.want.held ?? false);
    if (row.want.reason) expect(plan.reasons.some((r) => row.want.reason?.test(r)), plan.reasons.join('\n')).toBe(true);
    // Every node is accounted for exactly once.
    const all = [...plan.keep, ...plan.drain, ...plan.destroy, ...plan.resume].sort();
    expect(all).toEqual(row.nodes.map((n) => n.name).sort());
  });

  it('drains every node of a removed pool, busy ones too, destroys drained idle ones, creates none', () => {
    const plan = run({ min: 3 }, [busy('p-a'), idle('p-b', 1), drained(idle('p-c'), 1)], obs(5, 1), { removed: true });
    expect(plan.desired).toBe(0);
    expect(plan.create).toEqual([]);
    expect(plan.drain.sort()).toEqual(['p-a', 'p-b']);
    expect(plan.destroy).toEqual(['p-c']);
    expect(plan.drainReasons).toEqual({ 'p-a': 'removed', 'p-b': 'removed' });
    expect(plan.reasons[0]).toMatch(/pool removed from the policy: draining and destroying its 3 nodes/);
  });

  it('a removed pool holds on a failed probe', () => {
    const plan = run({}, [idle('p-a')], obs(0, 0, { ok: false }), { removed: true });
    expect(plan.drain).toEqual([]);
    expect(plan.destroy).toEqual([]);
    expect(plan.create).toEqual([]);
  });

  it('reports every node\'s lifecycle state', () => {
    const plan = run({ bootTimeout: '10m' }, [idle('p-r'), busy('p-b'), offline('p-boot', 2), offline('p-broken', 20), idle('p-old', 30, { outdated: true }), drained(idle('p-d'))], obs(0, 2));
    expect(plan.states).toEqual({ 'p-r': 'ready', 'p-b': 'busy', 'p-boot': 'booting', 'p-broken': 'broken', 'p-old': 'outdated', 'p-d': 'draining' });
  });

  it('names new nodes <pool>-<id> from the id source', () => {
    const plan = run({}, [], obs(2, 0));
    expect(plan.create).toEqual(['p-n0', 'p-n1']);
  });

  it('applies the schedule in force, across the DST change, last match winning', () => {
    const scaling = {
      schedules: [
        { cron: '0 7 * * 1-5', duration: '11h', min: 4, timezone: 'Europe/Berlin' },
        { cron: '0 12 * * 1-5', duration: '1h', min: 6, timezone: 'Europe/Berlin' },
      ],
    };
    const at = (iso: string) => run(scaling, [], { ...obs(0, 0), at: Date.parse(iso) }, { now: Date.parse(iso) }).desired;
    // Winter (CET, UTC+1): the window is 06:00–17:00 UTC.
    expect(at('2025-03-28T05:59:00Z')).toBe(0);
    expect(at('2025-03-28T06:00:00Z')).toBe(4);
    expect(at('2025-03-28T11:30:00Z')).toBe(6); // the second schedule, listed last, wins
    expect(at('2025-03-28T16:59:00Z')).toBe(4);
    expect(at('2025-03-28T17:00:00Z')).toBe(0);
    // Summer (CEST, UTC+2) after the change on 2025-03-30: 05:00–16:00 UTC.
    expect(at('2025-03-31T04:59:00Z')).toBe(0);
    expect(at('2025-03-31T05:00:00Z')).toBe(4);
    expect(at('2025-03-31T15:59:00Z')).toBe(4);
    expect(at('2025-03-31T16:00:00Z')).toBe(0);
    // Weekend: no window.
    expect(at('2025-03-29T10:00:00Z')).toBe(0);
  });

  it('keeps the stabilization window in memory across cycles', () => {
    const pool = testPool({ scaling: { predict: false, scaleDownAfter: '2m' } });
    const nodes = [idle('p-a'), idle('p-b')];
    let memory: DecideInput['memory'];
    const step = (t: number, running: number) => {
      const plan = decide({ pool, now: t, observation: { ...obs(0, running), at: t }, staleAfterMs: MIN, nodes, memory, newId: String });
      memory = plan.memory;
      return plan;
    };
    step(T0, 2);
    expect(step(T0 + 60_000, 0).drain).toEqual([]);
    expect(step(T0 + 119_000, 0).drain).toEqual([]);
    expect(step(T0 + 121_000, 0).drain).toEqual(['p-a', 'p-b']);
  });

  it('keeps nodes warm from history with predict, and applies the forecast without holding it', () => {
    const pool = testPool({ scaling: { predict: true } });
    const DAY = 86_400_000;
    // Ten past weekdays with a 6-job burst 2 minutes after this time of day: a recurring burst.
    const arrivals = new Map<number, number>();
    let since = Infinity;
    for (let d = 1; d <= 14; d++) {
      const t = T0 - d * DAY;
      const day = new Date(t).getUTCDay();
      since = Math.min(since, Math.floor((t - 2 * 3_600_000) / MIN));
      if (day !== 0 && day !== 6) arrivals.set(Math.floor((t + 2 * MIN) / MIN), 6);
    }
    const history = { bucketMs: MIN, arrivals, since };
    const plan = decide({ pool, now: T0, observation: obs(0, 0), staleAfterMs: MIN, nodes: [], memory: undefined, history, newId: String });
    expect(plan.desired).toBe(6);
    expect(plan.reasons.join('\n')).toMatch(/predict: 100% of comparable past days had jobs in the next 3m; keeping 6 warm → 6/);
    // The held target is demand only (0), so the warm nodes go as soon as the forecast does.
    expect(plan.memory.targets).toEqual([{ at: T0, nodes: 0 }]);
  });
});
