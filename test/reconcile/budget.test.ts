/**
 * Spend as the cycle records it (src/reconcile/budget.ts): the interval since the last record
 * billed for the nodes known to have existed all along, at the last record's prices, split at
 * month boundaries; when the month is known; what the cycle reads for the cap (a real file store).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileHistoryStore } from '../../src/history/file.js';
import type { SpendRecord } from '../../src/history/types.js';
import { afterApply, budgetContext, monthKnown, nextSpend, poolBudget, recordSpend } from '../../src/reconcile/budget.js';
import type { Policy } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-spend-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const H = 3_600_000;
const JAN = Date.parse('2025-01-10T12:00:00Z');
const pool = testPool({ machine: { hourlyCost: 0.5, stoppedHourlyCost: 0.1 } }, 'p');
const rec = (at: number, running: number, stopped: number, months: SpendRecord['months'] = {}, prices = { hourlyCost: 0.5, stoppedHourlyCost: 0.1 }): SpendRecord => ({ pool: 'p', at, running, stopped, ...prices, months });
const c = (running: number, stopped = 0) => ({ running, stopped });

describe('nextSpend', () => {
  const cases: Array<{ name: string; prev: SpendRecord | undefined; before: { running: number; stopped: number }; now: number; spent: Record<string, number>; since?: Record<string, number> }> = [
    { name: 'a first record starts the month at now, with nothing spent', prev: undefined, before: c(3), now: JAN, spent: { '2025-01': 0 }, since: { '2025-01': JAN } },
    { name: 'an hour of 4 running and 2 stopped nodes', prev: rec(JAN, 4, 2, { '2025-01': { since: JAN - H, spent: 1, nodeHours: 2 } }), before: c(4, 2), now: JAN + H, spent: { '2025-01': 1 + 4 * 0.5 + 2 * 0.1 }, since: { '2025-01': JAN - H } },
    { name: 'nodes created outside the last record are not billed before they existed (the fewer of both ends)', prev: rec(JAN, 2, 0), before: c(5), now: JAN + H, spent: { '2025-01': 2 * 0.5 } },
    { name: 'a node gone meanwhile is not billed past the last record', prev: rec(JAN, 4, 0), before: c(1), now: JAN + 2 * H, spent: { '2025-01': 2 * 0.5 } },
    { name: 'a node stopped outside Parmanu counts at the stopped price', prev: rec(JAN, 3, 0), before: c(2, 1), now: JAN + H, spent: { '2025-01': 2 * 0.5 + 1 * 0.1 } },
    { name: 'a reconciler away for two days: nodes there at both ends existed all along', prev: rec(JAN, 2, 0), before: c(2), now: JAN + 48 * H, spent: { '2025-01': 48 * 2 * 0.5 } },
    { name: 'the last record\'s prices, not the new ones', prev: rec(JAN, 2, 0, {}, { hourlyCost: 2, stoppedHourlyCost: 0 }), before: c(2), now: JAN + H, spent: { '2025-01': 4 } },
    {
      name: 'an interval across a month boundary is split; the new month begins at its first millisecond',
      prev: rec(Date.parse('2025-01-31T23:00:00Z'), 1, 0, { '2025-01': { since: 0, spent: 0, nodeHours: 0 } }),
      before: c(1),
      now: Date.parse('2025-02-01T02:00:00Z'),
      spent: { '2025-01': 0.5, '2025-02': 1 },
      since: { '2025-01': 0, '2025-02': Date.parse('2025-02-01T00:00:00Z') },
    },
    { name: 'a clock that went back bills nothing', prev: rec(JAN, 2, 0, { '2025-01': { since: 0, spent: 3, nodeHours: 6 } }), before: c(2), now: JAN - H, spent: { '2025-01': 3 } },
  ];
  for (const k of cases) {
    it(k.name, () => {
      const r = nextSpend(k.prev, 'p', pool, k.before, c(7, 1), k.now);
      expect(Object.fromEntries(Object.entries(r.months).map(([m, v]) => [m, Math.round(v.spent * 1e6) / 1e6]))).toEqual(k.spent);
      if (k.since) expect(Object.fromEntries(Object.entries(r.months).map(([m, v]) => [m, v.since]))).toEqual(k.since);
      expect(r).toMatchObject({ pool: 'p', running: 7, stopped: 1, hourlyCost: 0.5, stoppedHourlyCost: 0.1 });
      expect(r.at).toBe(Math.max(k.now, k.prev?.at ?? k.now));
    });
  }

  it('keeps three months', () => {
    const months = Object.fromEntries(['2024-10', '2024-11', '2024-12'].map((m) => [m, { since: 0, spent: 1, nodeHours: 1 }]));
    expect(Object.keys(nextSpend(rec(JAN, 1, 0, months), 'p', pool, c(1), c(1), JAN + H).months)).toEqual(['2024-11', '2024-12', '2025-01']);
  });

  it('counts the nodes after the apply: created and started run, stopped stop, destroyed go', () => {
    const views = [{ name: 'a' }, { name: 'b' }, { name: 'c', power: 'stopped' as const }, { name: 'd', power: 'stopped' as const }];
    expect(afterApply({ views, created: ['e', 'f'], destroyed: ['a', 'd'], started: ['c'], stopped: ['b'] })).toEqual({ running: 3, stopped: 1 });
  });

  it('knows the month when the ledger began within its first hour', () => {
    expect(monthKnown(undefined, JAN)).toBe(false);
    expect(monthKnown(Date.parse('2025-01-01T00:59:00Z'), JAN)).toBe(true);
    expect(monthKnown(Date.parse('2025-01-01T01:00:00Z'), JAN)).toBe(false);
    expect(monthKnown(Date.parse('2024-12-20T00:00:00Z'), JAN)).toBe(true);
  });
});

describe('what the cycle reads and records (file store)', () => {
  it('records spend under the lease, begins the ledger once, and caps from the other pools\' records', async () => {
    const store = new FileHistoryStore(join(dir, 'a'));
    const other = testPool({ machine: { hourlyCost: 1 } }, 'q');
    const free = testPool({}, 'free');
    const policy: Policy = { emitters: {}, platforms: {}, pools: [pool, other, free], budgets: [{ name: 'team', pools: ['p', 'q'], maxPerHour: 4 }], currency: '$' };
    const t0 = Date.parse('2025-01-01T00:30:00Z');
    const lq = (await store.acquireLease('q', 'me', 60_000))!;
    await recordSpend(store, other, lq, { views: [], created: ['q-1', 'q-2'], destroyed: [], started: [], stopped: [] }, t0);
    await recordSpend(store, other, lq, { views: [{ name: 'q-1' }, { name: 'q-2' }], created: [], destroyed: [], started: [], stopped: [] }, t0 + H, 'q@gcp');
    // An unpriced pool records nothing.
    const lf = (await store.acquireLease('free', 'me', 60_000))!;
    await recordSpend(store, free, lf, { views: [], created: ['free-1'], destroyed: [], started: [], stopped: [] }, t0);
    expect((await store.listSpend()).map((r) => r.pool)).toEqual(['q', 'q@gcp']);
    expect(await store.spendLedger()).toBe(t0);
    const ctx = await budgetContext(store, policy, t0 + H);
    expect(ctx.monthKnown).toBe(true);
    expect(ctx.stacks).toEqual([
      { stack: 'q', running: 2, stopped: 0, perHour: 2, monthToDate: 0 },
      { stack: 'q@gcp', running: 2, stopped: 0, perHour: 2, monthToDate: 0 },
    ]);
    // q and q@gcp cost 4/h: nothing left for p.
    expect(await poolBudget(store, policy, pool, [], t0 + H)).toEqual({ maxNodes: 0, reason: 'budget team: $4.00/h of $4.00/h used by other pools → at most 0 nodes ($0.50/h each)' });
    // A pool no budget covers reads nothing and gets no cap.
    expect(await poolBudget(store, policy, free, [], t0 + H)).toBeUndefined();
    // A pool of a budget with a pool record but no spend record yet: its nodes count as running.
    await store.clear();
    const lq2 = (await store.acquireLease('q', 'me', 60_000))!;
    await store.putPool({ pool: 'q', nodes: [{ name: 'q-1', createdAt: 0 }], pendingRunners: {}, seenJobs: [], intents: [] }, lq2);
    expect((await budgetContext(store, policy, t0)).stacks).toEqual([{ stack: 'q', running: 1, stopped: 0, perHour: 1, monthToDate: 0 }]);
    expect((await budgetContext(store, policy, t0)).monthKnown).toBe(false);
    await store.close();
  });
});
