/**
 * Cost budgets: the cap (decide/budget.ts) as a table of inputs and outputs, and decide with the
 * cap (a hard ceiling in the final clamp: creates and starts stop at it, idle nodes over it go
 * through the normal scale-down, busy ones never).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { budgetCap, budgetStates, money, moneyDelta, monthRate, utcMonth, type BudgetContext, type StackSpend } from '../../src/decide/budget.js';
import { decide } from '../../src/decide/decide.js';
import type { DecideInput, NodeView, PoolObservation } from '../../src/decide/types.js';
import type { BudgetConfig } from '../../src/policy/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const HOUR = 3_600_000;
const a = testPool({ machine: { hourlyCost: 0.25, stoppedHourlyCost: 0.01 } }, 'a');
const b = testPool({ machine: { hourlyCost: 0.5 } }, 'b');
const c = testPool({ machine: { hourlyCost: 1 } }, 'c');
const stack = (name: string, perHour: number, monthToDate = 0, running = 0, stopped = 0): StackSpend => ({ stack: name, running, stopped, perHour, monthToDate });
const ctx = (budgets: BudgetConfig[], stacks: StackSpend[], extra: Partial<BudgetContext> = {}): BudgetContext => ({ budgets, pools: [a, b, c], currency: '$', stacks, monthKnown: true, now: T0, ...extra });
const self = (running = 0, stopped = 0) => ({ stack: 'a', running, stopped });

// T0 is 2025-01-06T12:00Z: 612 h are left in January.
const LEFT_H = (Date.UTC(2025, 1, 1) - T0) / HOUR;

interface Row {
  name: string;
  budgets: BudgetConfig[];
  stacks: StackSpend[];
  self?: { stack: string; running: number; stopped: number };
  extra?: Partial<BudgetContext>;
  want: { maxNodes: number; reason: string } | undefined;
}

const TABLE: Row[] = [
  { name: 'no budget covers the pool', budgets: [{ name: 'other', pools: ['b'], maxPerHour: 1 }], stacks: [], want: undefined },
  {
    name: 'maxPerHour: what the other pools use now is taken first',
    budgets: [{ name: 'team-a', pools: ['a', 'b'], maxPerHour: 5 }],
    stacks: [stack('b', 4.2), stack('a', 1)],
    want: { maxNodes: 3, reason: 'budget team-a: $4.20/h of $5.00/h used by other pools → at most 3 nodes ($0.25/h each)' },
  },
  {
    name: 'the stack\'s own record is replaced by its live count; a failover stack of another pool counts as that pool',
    budgets: [{ name: 'all', pools: 'all', maxPerHour: 3 }],
    stacks: [stack('a', 2.5), stack('b@gcp', 1), stack('c', 1)],
    want: { maxNodes: 4, reason: 'budget all: $2.00/h of $3.00/h used by other pools → at most 4 nodes ($0.25/h each)' },
  },
  {
    name: 'the pool\'s own failover stack counts as another stack of the budget',
    budgets: [{ name: 'x', pools: ['a'], maxPerHour: 1 }],
    stacks: [stack('a@gcp', 0.5), stack('b', 10)],
    want: { maxNodes: 2, reason: 'budget x: $0.50/h of $1.00/h used by other pools → at most 2 nodes ($0.25/h each)' },
  },
  {
    name: 'the pool\'s standby at its stopped cost',
    budgets: [{ name: 'x', pools: ['a'], maxPerHour: 1 }],
    stacks: [],
    self: { stack: 'a', running: 0, stopped: 10 },
    want: { maxNodes: 3, reason: 'budget x: $0.10/h of $1.00/h used by this pool\'s standby → at most 3 nodes ($0.25/h each)' },
  },
  {
    name: 'over budget: 0, never negative',
    budgets: [{ name: 'x', pools: 'all', maxPerHour: 1 }],
    stacks: [stack('b', 3)],
    want: { maxNodes: 0, reason: 'budget x: $3.00/h of $1.00/h used by other pools → at most 0 nodes ($0.25/h each)' },
  },
  {
    name: 'floating point: 0.30 of room at 0.10 each is 3 nodes (0.7 − 0.4 is 0.29999999999999993)',
    budgets: [{ name: 'x', pools: ['a', 'b'], maxPerHour: 0.7 }],
    stacks: [stack('b', 0.4)],
    extra: { pools: [testPool({ machine: { hourlyCost: 0.1 } }, 'a'), b] },
    want: { maxNodes: 3, reason: 'budget x: $0.40/h of $0.70/h used by other pools → at most 3 nodes ($0.10/h each)' },
  },
  {
    name: 'maxPerMonth, month known: the even rate of what is left over the hours left',
    budgets: [{ name: 'm', pools: ['a', 'b'], maxPerMonth: 1000 }],
    stacks: [stack('a', 0, 50), stack('b', 0.5, 50)],
    // 900 over 612 h = 1.4706/h; 0.9706 of room at 0.25 each.
    want: { maxNodes: 3, reason: 'budget m: $100.00 of $1,000.00 spent this month, $900.00 over 612 h left = $1.47/h, $0.50/h used by other pools → at most 3 nodes ($0.25/h each)' },
  },
  {
    name: 'maxPerMonth, month unknown (history lost): ÷ 730',
    budgets: [{ name: 'm', pools: ['a'], maxPerMonth: 730 }],
    stacks: [stack('a', 0, 900)],
    extra: { monthKnown: false },
    want: { maxNodes: 4, reason: 'budget m: this month\'s spend is unknown (the history does not cover it from its start): $730.00 ÷ 730 = $1.00/h until next month, $0.00/h used by other pools → at most 4 nodes ($0.25/h each)' },
  },
  {
    name: 'maxPerMonth spent: 0',
    budgets: [{ name: 'm', pools: ['a'], maxPerMonth: 100 }],
    stacks: [stack('a', 0, 100.5)],
    want: { maxNodes: 0, reason: `budget m: $100.50 of $100.00 spent this month, $0.00 over ${Math.round(LEFT_H)} h left = $0.00/h, $0.00/h used by other pools → at most 0 nodes ($0.25/h each)` },
  },
  {
    name: 'several budgets and both limits: the tightest wins',
    budgets: [
      { name: 'loose', pools: 'all', maxPerHour: 100 },
      { name: 'tight', pools: ['a'], maxPerHour: 10, maxPerMonth: 730 },
    ],
    stacks: [stack('b', 1)],
    extra: { monthKnown: false },
    want: { maxNodes: 4, reason: 'budget tight: this month\'s spend is unknown (the history does not cover it from its start): $730.00 ÷ 730 = $1.00/h until next month, $0.00/h used by other pools → at most 4 nodes ($0.25/h each)' },
  },
  {
    name: 'no currency: plain numbers',
    budgets: [{ name: 'x', pools: ['a'], maxPerHour: 1 }],
    stacks: [],
    extra: { currency: undefined },
    want: { maxNodes: 4, reason: 'budget x: 0.00/h of 1.00/h used by other pools → at most 4 nodes (0.25/h each)' },
  },
];

describe('budgetCap', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const context = ctx(row.budgets, row.stacks, row.extra);
      const pool = context.pools.find((p) => p.name === 'a') ?? a;
      const cap = budgetCap(context, pool, row.self ?? self());
      expect(cap === undefined ? undefined : { maxNodes: cap.maxNodes, reason: cap.reason }).toEqual(row.want);
    });
  }

  it('monthRate and the UTC month', () => {
    expect(utcMonth(Date.parse('2025-12-31T23:59:59Z'))).toEqual({ start: Date.parse('2025-12-01T00:00:00Z'), end: Date.parse('2026-01-01T00:00:00Z'), key: '2025-12' });
    expect(monthRate(730, 0, false, T0)).toBe(1);
    expect(monthRate(100, 40, true, Date.parse('2025-01-31T12:00:00Z'))).toBeCloseTo(60 / 12, 9);
    // The last seconds of a month: what is left over at least a minute.
    expect(monthRate(100, 40, true, Date.parse('2025-01-31T23:59:59Z'))).toBeCloseTo(60 * 60, 6);
  });

  it('money: currency symbols before, codes after, small amounts with four decimals', () => {
    expect(money(1234.5, '$')).toBe('$1,234.50');
    expect(money(0.25, 'EUR')).toBe('0.25 EUR');
    expect(money(0.004)).toBe('0.004');
    expect(money(-1.5, '€')).toBe('-€1.50');
    expect(moneyDelta(1.5, '$')).toBe('+$1.50');
    expect(moneyDelta(-0.5)).toBe('-0.50');
    expect(moneyDelta(0, '$')).toBe('±$0.00');
  });

  it('budgetStates: spend and rate per budget', () => {
    const s = budgetStates(ctx([{ name: 'm', pools: ['a', 'b'], maxPerHour: 5, maxPerMonth: 730 }], [stack('a', 1, 10), stack('b@x', 2, 5), stack('c', 9, 99)], { monthKnown: false }));
    expect(s).toEqual([{ budget: 'm', pools: ['a', 'b'], maxPerHour: 5, maxPerMonth: 730, perHourNow: 3, monthToDate: 15, monthKnown: false, monthRate: 1, monthStart: Date.UTC(2025, 0, 1), monthEnd: Date.UTC(2025, 1, 1) }]);
  });
});

const obs = (queued: number, running: number): PoolObservation => ({ at: T0, ok: true, partial: false, queued, running, upcoming: 0 });
const idle = (name: string, ageMin = 30): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: true, busy: false, paused: false } });
const busy = (name: string): NodeView => ({ name, createdAt: T0 - 30 * MIN, runner: { online: true, busy: true, paused: false }, lastBusyAt: T0 });
const stopped = (name: string): NodeView => ({ name, createdAt: T0 - 60 * MIN, power: 'stopped', drainingSince: T0 - 50 * MIN, drainReason: 'scale-down', onlineAt: T0 - 58 * MIN, runner: { online: false, busy: false, paused: true } });
const cap = (maxNodes: number) => ({ maxNodes, reason: `budget x: at most ${maxNodes}` });

function run(scaling: Record<string, unknown>, nodes: NodeView[], observation: PoolObservation, extra: Partial<DecideInput> = {}) {
  return decide({ pool: testPool({ scaling: { predict: false, ...scaling }, machine: { hourlyCost: 0.25 } }), now: T0, observation, staleAfterMs: 2 * MIN, nodes, memory: undefined, newId: (i) => `n${i}`, ...extra });
}

describe('decide with a budget cap', () => {
  it('a burst stops at the cap, and the reason says so', () => {
    const plan = run({ max: 20 }, [], obs(10, 0), { budget: cap(3) });
    expect(plan.desired).toBe(3);
    expect(plan.create).toHaveLength(3);
    expect(plan.reasons).toContain('budget x: at most 3');
  });

  it('no reason when the cap does not bind', () => {
    const plan = run({ max: 20 }, [], obs(2, 0), { budget: cap(3) });
    expect(plan.create).toHaveLength(2);
    expect(plan.reasons.join('\n')).not.toMatch(/budget/);
  });

  it('is a hard ceiling below min and a schedule, and says so', () => {
    const plan = run({ min: 4 }, [], obs(0, 0), { budget: cap(1) });
    expect(plan.desired).toBe(1);
    expect(plan.create).toHaveLength(1);
    expect(plan.reasons).toContain('budget x: at most 1; a budget is a hard ceiling, below the pool\'s min 4');
    const sched = run({ schedules: [{ cron: '0 0 * * *', duration: '24h', min: 5 }] }, [], obs(0, 0), { budget: cap(2) });
    expect(sched.desired).toBe(2);
    expect(sched.reasons).toContain('budget x: at most 2; a budget is a hard ceiling, below the schedule\'s min 5');
  });

  it('nodes over the cap: idle ones drain (normal scale-down, no window), busy ones never', () => {
    const plan = run({}, [busy('p-a'), busy('p-b'), idle('p-c'), busy('p-d')], obs(0, 3), { budget: cap(1), memory: { targets: [{ at: T0 - MIN, nodes: 4 }] } });
    expect(plan.desired).toBe(1);
    expect(plan.drain).toEqual(['p-c']);
    expect(plan.reasons.join('\n')).toMatch(/2 more could go: the others are busy/);
  });

  it('an idle node younger than minLifetime is not drained for the budget', () => {
    const plan = run({ minLifetime: '5m' }, [idle('p-a', 2), idle('p-b', 3)], obs(2, 0), { budget: cap(0) });
    expect(plan.desired).toBe(0);
    expect(plan.drain).toEqual([]);
  });

  it('creates count draining nodes still running: no create while busy draining nodes fill the cap', () => {
    const draining: NodeView = { ...busy('p-old'), drainingSince: T0 - MIN, drainReason: 'outdated', runner: { online: true, busy: true, paused: true } };
    const plan = run({ max: 10 }, [draining, busy('p-b')], obs(5, 2), { budget: cap(2) });
    expect(plan.create).toEqual([]);
    expect(plan.reasons.join('\n')).toMatch(/adding 0: 2 nodes still exist and the budget allows 2/);
  });

  it('starts from standby stop at the cap, running draining nodes counted', () => {
    const plan = run({ standby: 3, max: 10 }, [stopped('p-s1'), stopped('p-s2'), stopped('p-s3')], obs(3, 0), { budget: cap(1) });
    expect(plan.start).toHaveLength(1);
    expect(plan.create).toEqual([]);
    // Two busy nodes draining (outdated) still run: with a cap of 2 none starts.
    const draining = (name: string): NodeView => ({ ...busy(name), drainingSince: T0 - MIN, drainReason: 'outdated', runner: { online: true, busy: true, paused: true } });
    const full = run({ standby: 3, max: 10 }, [draining('p-o1'), draining('p-o2'), stopped('p-s1'), stopped('p-s2'), stopped('p-s3')], obs(3, 2), { budget: cap(2) });
    expect(full.start).toEqual([]);
    expect(full.create).toEqual([]);
  });

  it('standby is not filled with running nodes beyond the cap', () => {
    const plan = run({ standby: 2, max: 10 }, [idle('p-a')], obs(0, 1), { budget: cap(1) });
    expect(plan.create).toEqual([]);
    const free = run({ standby: 2, max: 10 }, [idle('p-a')], obs(0, 1), { budget: cap(3) });
    expect(free.create).toHaveLength(2);
  });

  it('a removed pool ignores budgets (it drains)', () => {
    const plan = run({}, [idle('p-a')], obs(0, 0), { budget: cap(5), removed: true });
    expect(plan.desired).toBe(0);
    expect(plan.reasons.join('\n')).not.toMatch(/budget/);
  });
});

describe('decide with a budget cap: invariants over random fleets', () => {
  const nodeArb = (i: number) =>
    fc.record({ kind: fc.constantFrom('idle', 'busy', 'booting', 'draining-idle', 'draining-busy', 'standby'), ageMin: fc.integer({ min: 0, max: 120 }) }).map(({ kind, ageMin }): NodeView => {
      const n: NodeView = { name: `p-${i}`, createdAt: T0 - ageMin * MIN };
      if (kind === 'booting') return n;
      if (kind === 'standby') return { ...n, power: 'stopped', drainingSince: T0 - 30 * MIN, drainReason: 'scale-down', onlineAt: n.createdAt, runner: { online: false, busy: false, paused: true } };
      const busyNow = kind === 'busy' || kind === 'draining-busy';
      return { ...n, onlineAt: n.createdAt, runner: { online: true, busy: busyNow, paused: kind.startsWith('draining') }, ...(kind.startsWith('draining') ? { drainingSince: T0 - MIN, drainReason: 'scale-down' as const } : {}) };
    });
  const arb = fc.record({
    cap: fc.integer({ min: 0, max: 12 }),
    n: fc.integer({ min: 0, max: 15 }),
    queued: fc.integer({ min: 0, max: 30 }),
    running: fc.integer({ min: 0, max: 10 }),
    min: fc.integer({ min: 0, max: 6 }),
    standby: fc.integer({ min: 0, max: 3 }),
  }).chain((r) => fc.tuple(fc.constant(r), fc.tuple(...Array.from({ length: r.n }, (_, i) => nodeArb(i)))));

  it('never grows the running nodes past the cap, never drains a busy node for it, desired within it', () => {
    fc.assert(
      fc.property(arb, ([r, nodes]) => {
        const plan = run({ min: r.min, max: 30, maxStep: 30, standby: r.standby, minLifetime: '0s' }, nodes, obs(r.queued, r.running), { budget: cap(r.cap) });
        const running = nodes.filter((x) => x.power !== 'stopped');
        const destroyedRunning = plan.destroy.filter((x) => running.some((y) => y.name === x)).length;
        const after = running.length + plan.create.length + plan.start.length - plan.stop.length - destroyedRunning;
        expect(plan.desired).toBeLessThanOrEqual(r.cap);
        if (plan.create.length + plan.start.length > 0) expect(after).toBeLessThanOrEqual(r.cap);
        const busyNames = new Set(nodes.filter((x) => x.runner?.busy).map((x) => x.name));
        for (const d of [...plan.drain.filter((x) => plan.drainReasons[x] === 'scale-down'), ...plan.destroy]) expect(busyNames.has(d)).toBe(false);
      }),
      { seed: 17, numRuns: 400 },
    );
  });
});
