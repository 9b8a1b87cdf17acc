/**
 * Cost budgets in the cycle: what a pool's cycle reads of the history before decide (the budget
 * cap), and the spend it records after its apply.
 *
 * Spend: each cycle of a priced pool (`machine.hourlyCost`) adds what its nodes cost since its
 * last record — the interval from the last record to now, at the prices of the last record, for
 * the nodes known to have existed all along: of the nodes after the last cycle and the nodes
 * Terraform's state holds now, the fewer (only Parmanu creates nodes, so a node present at both
 * ends existed in between, however long the reconciler was away; a node gone meanwhile went at an
 * unknown time and is not billed past the last record). Running nodes are billed at `hourlyCost`,
 * stopped (standby) ones at `stoppedHourlyCost`. An interval that spans months is split at the
 * month boundary. The record is written under the pool's lease (fenced), keyed by the stack's
 * name (`<pool>`, or `<pool>@<platform>` for a failover stack).
 *
 * The month is known when the history's spend ledger began (with the first spend ever recorded,
 * or the first after the history was lost) within the first hour of the month: then every priced
 * stack's record covers the month from its start. Otherwise `maxPerMonth` ÷ 730 applies per hour
 * until the next month begins.
 */
import { budgetCap, budgetCovers, poolOfStack, utcMonth, type BudgetContext, type StackSpend } from '../decide/budget.js';
import type { NodeView } from '../decide/types.js';
import type { HistoryStore, Lease, SpendRecord } from '../history/types.js';
import type { Policy, PoolConfig } from '../policy/types.js';

const HOUR = 3_600_000;
/** Months of spend kept per stack (this one and the two before it). */
const MONTHS_KEPT = 3;

/** Whether the ledger begun at `ledgerSince` covers the UTC month of `now` from its first hour. */
export function monthKnown(ledgerSince: number | undefined, now: number): boolean {
  return ledgerSince !== undefined && ledgerSince < utcMonth(now).start + HOUR;
}

/** Running and stopped nodes of a node set. */
export function powerCounts(views: readonly Pick<NodeView, 'power'>[]): { running: number; stopped: number } {
  const stopped = views.filter((v) => v.power === 'stopped').length;
  return { running: views.length - stopped, stopped };
}

/** What the history holds of every stack, for the budgets (`monthToDate`: this month's spend). */
export async function budgetContext(history: HistoryStore, policy: Policy, now: number): Promise<BudgetContext> {
  const [records, ledger] = await Promise.all([history.listSpend(), history.spendLedger()]);
  const key = utcMonth(now).key;
  const stacks: StackSpend[] = records.map((r) => ({ stack: r.pool, running: r.running, stopped: r.stopped, perHour: r.running * r.hourlyCost + r.stopped * r.stoppedHourlyCost, monthToDate: r.months[key]?.spent ?? 0 }));
  // A priced pool of a budget without a spend record yet (its first cycle since spend was kept):
  // its nodes as the pool record holds them, all counted running (the power state is Terraform's).
  const covered = policy.pools.filter((p) => p.machine.hourlyCost !== undefined && (policy.budgets ?? []).some((b) => budgetCovers(b, p.name)));
  for (const p of covered) {
    if (stacks.some((s) => poolOfStack(s.stack) === p.name)) continue;
    const rec = await history.getPool(p.name);
    if (rec?.nodes.length) stacks.push({ stack: p.name, running: rec.nodes.length, stopped: 0, perHour: rec.nodes.length * (p.machine.hourlyCost ?? 0), monthToDate: 0 });
  }
  return { budgets: policy.budgets ?? [], pools: policy.pools, currency: policy.currency, stacks, monthKnown: monthKnown(ledger, now), now };
}

/**
 * decide's budget input for a pool's stack (`stack`, default the pool's name), from the history
 * and the stack's live nodes; undefined when no budget covers the pool (nothing is read then).
 */
export async function poolBudget(history: HistoryStore, policy: Policy, pool: PoolConfig, views: readonly Pick<NodeView, 'power'>[], now: number, stack = pool.name): Promise<{ maxNodes: number; reason: string } | undefined> {
  if (!(policy.budgets ?? []).some((b) => budgetCovers(b, pool.name))) return undefined;
  const ctx = await budgetContext(history, policy, now);
  const cap = budgetCap(ctx, pool, { stack, ...powerCounts(views) });
  return cap ? { maxNodes: cap.maxNodes, reason: cap.reason } : undefined;
}

/** What a cycle did to its nodes: the set before the plan (Terraform's state) and the plan's changes applied. */
export interface AppliedNodes {
  views: readonly Pick<NodeView, 'name' | 'power'>[];
  created: readonly string[];
  destroyed: readonly string[];
  started: readonly string[];
  stopped: readonly string[];
}

/** The running and stopped nodes after the apply. */
export function afterApply(a: AppliedNodes): { running: number; stopped: number } {
  const power = new Map(a.views.map((v) => [v.name, v.power === 'stopped' ? 'stopped' : 'running']));
  for (const n of a.destroyed) power.delete(n);
  for (const n of a.started) power.set(n, 'running');
  for (const n of a.stopped) power.set(n, 'stopped');
  for (const n of a.created) power.set(n, 'running');
  const stopped = [...power.values()].filter((p) => p === 'stopped').length;
  return { running: power.size - stopped, stopped };
}

/**
 * The stack's spend record after a cycle at `now`: the interval since `prev` billed (see the
 * module comment), the counts after the apply and the prices in force. Pure.
 */
export function nextSpend(prev: SpendRecord | undefined, stack: string, pool: Pick<PoolConfig, 'machine'>, before: { running: number; stopped: number }, after: { running: number; stopped: number }, now: number): SpendRecord {
  const months: SpendRecord['months'] = { ...(prev?.months ?? {}) };
  const key = utcMonth(now).key;
  if (prev && now > prev.at) {
    const total = Math.min(prev.running + prev.stopped, before.running + before.stopped);
    const running = Math.min(prev.running, before.running, total);
    const stopped = total - running;
    const perHour = running * prev.hourlyCost + stopped * prev.stoppedHourlyCost;
    // Split at month boundaries.
    for (let from = prev.at; from < now; ) {
      const m = utcMonth(from);
      const to = Math.min(now, m.end);
      const h = (to - from) / HOUR;
      const cur = months[m.key] ?? { since: from, spent: 0, nodeHours: 0 };
      months[m.key] = { since: cur.since, spent: cur.spent + perHour * h, nodeHours: cur.nodeHours + running * h };
      from = to;
    }
  }
  months[key] ??= { since: now, spent: 0, nodeHours: 0 };
  const kept = Object.keys(months).sort().slice(-MONTHS_KEPT);
  return {
    pool: stack,
    at: Math.max(now, prev?.at ?? now),
    running: after.running,
    stopped: after.stopped,
    hourlyCost: pool.machine.hourlyCost ?? 0,
    stoppedHourlyCost: pool.machine.stoppedHourlyCost ?? 0,
    months: Object.fromEntries(kept.map((k) => [k, months[k] as SpendRecord['months'][string]])),
  };
}

/**
 * Records the spend of a priced pool's stack after its cycle (under its lease, fenced), and begins
 * the spend ledger if it has not begun. Pools without `machine.hourlyCost` record nothing.
 */
export async function recordSpend(history: HistoryStore, pool: PoolConfig, lease: Lease, applied: AppliedNodes, now: number, stack = pool.name): Promise<void> {
  if (pool.machine.hourlyCost === undefined) return;
  const prev = await history.getSpend(stack);
  await history.putSpend(nextSpend(prev, stack, pool, powerCounts(applied.views), afterApply(applied), now), lease);
  await history.spendLedger(now);
}
