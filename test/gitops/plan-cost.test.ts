/**
 * The plan comment's cost (issue 17, item 1): per pool "+3 nodes ≈ +$1.50/h" from the node count
 * now and what the new policy would make it, the total, and each cost budget of the new policy —
 * the pools it holds back and whether the plan would be over it. Markdown-safe: `$` escaped.
 */
import { describe, expect, it } from 'vitest';
import { diffPolicies, planMarkdown } from '../../src/gitops/diff.js';
import { normalize } from '../../src/policy/load.js';
import { BudgetSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';

const policy = (pools: Record<string, Record<string, unknown>>, budgets: Record<string, Record<string, unknown>> = {}, currency?: string): Policy =>
  normalize({
    emitters: new Map(),
    platforms: new Map(),
    pools: new Map(Object.entries(pools).map(([n, p]) => [n, PoolSchema.parse({ emitter: 'e', platform: 'lab', ...p })])),
    budgets: new Map(Object.entries(budgets).map(([n, b]) => [n, BudgetSchema.parse(b)])),
    ...(currency ? { currency } : {}),
  });
const priced = (cost: number, extra: Record<string, unknown> = {}) => ({ machine: { hourlyCost: cost }, scaling: { predict: false, max: 50 }, ...extra });
const obs = (nodes: number, queued: number) => ({ nodes: Array.from({ length: nodes }, (_, i) => `n-${i}`), at: Date.parse('2025-01-10T12:00:00Z'), queued, running: 0 });

describe('plan: cost and budgets', () => {
  it('shows each pool\'s cost change and the total, in the policy\'s currency', () => {
    const base = policy({ web: { ...priced(0.5), labels: ['w'] }, free: { labels: ['f'] } });
    const head = policy({ web: { ...priced(0.5), labels: ['w'], scaling: { predict: false, max: 50, spare: 3 } }, free: { labels: ['f'] } }, {}, '$');
    const d = diffPolicies(base, head, (p) => (p === 'web' ? obs(2, 2) : p === 'free' ? obs(1, 4) : undefined));
    expect(d.pools[0]?.now?.cost).toEqual({ perHourNow: 1, perHourAfter: 2.5 });
    expect(d.pools[1]?.now?.cost).toBeUndefined();
    expect(d.cost).toEqual({ perHourNow: 1, perHourAfter: 2.5, currency: '$' });
    const md = planMarkdown(d);
    expect(md).toContain('| pool | change | nodes now | would be | create | destroy | replace | cost |');
    expect(md).toContain('| `web` | changed | 2 | 5 | 3 | 0 | 0 | \\+3 nodes ≈ \\+\\$1\\.50/h |');
    expect(md).toContain('| `free` | unchanged | 1 | 4 | 3 | 0 | 0 | — |');
    expect(md).toContain('**Cost**: \\$1\\.00/h now → \\$2\\.50/h \\(\\+\\$1\\.50/h\\), at `machine.hourlyCost` of the pools that have one.');
    // Every $ is escaped (GitHub reads $…$ as math).
    expect(md).not.toMatch(/(^|[^\\])\$/m);
    // A price change alone, and a removed pool (its nodes go).
    const cheaper = diffPolicies(policy({ web: priced(0.5), old: priced(2) }), policy({ web: priced(0.25) }), (p) => (p === 'web' ? obs(2, 2) : p === 'old' ? obs(1, 0) : undefined));
    expect(planMarkdown(cheaper)).toContain('| `web` | changed | 2 | 2 | 0 | 0 | 0 | 0 nodes ≈ \\-0\\.50/h |');
    expect(planMarkdown(cheaper)).toContain('| `old` | removed | 1 | 0 | 0 | 1 | 0 | \\-1 node ≈ \\-2\\.00/h |');
    // No pool with a price: no cost column, no cost line.
    const none = planMarkdown(diffPolicies(undefined, policy({ a: {} }), () => obs(1, 3)));
    expect(none).toContain('| pool | change | nodes now | would be | create | destroy | replace |\n');
    expect(none).not.toContain('**Cost**');
  });

  it('a budget of the new policy holds a pool back, and says so with its reason', () => {
    const head = policy({ burst: priced(0.5, { labels: ['b'] }), other: priced(1, { labels: ['o'] }) }, { team: { pools: ['burst', 'other'], maxPerHour: 4 } }, '$');
    const d = diffPolicies(undefined, head, (p) => (p === 'burst' ? obs(0, 10) : obs(2, 2)));
    const burst = d.pools.find((p) => p.pool === 'burst');
    expect(burst?.now).toMatchObject({ nodes: 0, desired: 4, create: 4, cappedBy: 'budget team: $2.00/h of $4.00/h used by other pools → at most 4 nodes ($0.50/h each)' });
    expect(d.budgets).toEqual([{ budget: 'team', maxPerHour: 4, perHourNow: 2, perHourAfter: 4, caps: [{ pool: 'burst', reason: burst?.now?.cappedBy }], exceeds: false }]);
    const md = planMarkdown(d);
    expect(md).toContain('| `burst` | added | 0 | 4 | 4 | 0 | 0 | \\+4 nodes ≈ \\+\\$2\\.00/h |');
    expect(md).toContain('Budget `team`: \\$2\\.00/h now → \\$4\\.00/h of \\$4\\.00/h. It holds `burst`: budget team\\: \\$2\\.00/h of \\$4\\.00/h used by other pools → at most 4 nodes \\(\\$0\\.50/h each\\).');
  });

  it('warns when the plan would be over a budget (pools growing at once, each against the others as they are), and uses the month\'s spend', () => {
    const head = policy({ a: priced(0.5, { labels: ['a'] }), b: priced(0.5, { labels: ['b'] }) }, { team: { pools: 'all', maxPerHour: 2, maxPerMonth: 1000 } }, 'EUR');
    const spend = { monthToDate: new Map([['a', 600], ['b@gcp', 300]]), monthKnown: true };
    const d = diffPolicies(undefined, head, () => obs(0, 10), new Map(), { spend });
    const team = d.budgets?.[0];
    // The month: 100 left over the 516 h left of January = 0.19/h: no node at 0.50.
    expect(team?.monthRate).toBeCloseTo(100 / 516, 6);
    expect(d.pools.map((p) => p.now?.desired)).toEqual([0, 0]);
    expect(team?.caps.map((c) => c.pool)).toEqual(['a', 'b']);
    expect(team?.exceeds).toBe(false);
    // Without the month, each pool alone gets the whole hourly budget: together over it.
    const hourly = policy({ a: priced(0.5, { labels: ['a'] }), b: priced(0.5, { labels: ['b'] }) }, { team: { pools: 'all', maxPerHour: 2 } }, 'EUR');
    const over = diffPolicies(undefined, hourly, () => obs(0, 10));
    expect(over.budgets?.[0]).toMatchObject({ perHourAfter: 4, exceeds: true });
    expect(planMarkdown(over)).toContain('⚠ Budget `team`: 0\\.00 EUR/h now → 4\\.00 EUR/h of 2\\.00 EUR/h — over the budget.');
  });
});
