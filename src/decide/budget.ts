/**
 * Cost budgets (`budgets:` in the policy): how many running nodes a pool may have so that every
 * budget it is in holds. Pure: the policy, what the history holds of each stack (its node counts
 * and cost per hour after its last cycle, its month-to-date spend) and `now` come in; a cap and the
 * reason for it go out. decide applies the cap in its single final clamp.
 *
 * Per budget that names the pool (or is `all`), the rate allowed per hour is
 *   - `maxPerHour`;
 *   - `maxPerMonth`: the even rate that keeps the UTC calendar month within it,
 *     (maxPerMonth − spent so far) ÷ hours left in the month; while the month's spend is unknown
 *     (the history's spend ledger began after the month did: a new installation, or a history that
 *     was lost) maxPerMonth ÷ 730 (the hours of an average month), until the next month begins
 *     (the ledger then covers that month from its first hour);
 * and the pool may run ⌊(rate − what the budget's other stacks cost now − its own standby at their
 * stopped cost) ÷ hourlyCost⌋ nodes (never fewer than 0). The tightest of all wins.
 *
 * A stack is what one terraform state holds: a pool's (`<pool>`) or a failover platform's
 * (`<pool>@<platform>`); both belong to the pool for budgets.
 */
import type { BudgetConfig, PoolConfig } from '../policy/types.js';

const HOUR = 3_600_000;
/** The hours of an average month (365 × 24 ÷ 12): `maxPerMonth` ÷ this is its hourly equivalent. */
export const HOURS_PER_MONTH = 730;

/** What the history holds of one stack after its last cycle. */
export interface StackSpend {
  /** `<pool>` or `<pool>@<platform>`. */
  stack: string;
  running: number;
  stopped: number;
  /** What its nodes cost per hour (running at hourlyCost, stopped at stoppedHourlyCost) after its last cycle. */
  perHour: number;
  /** Its spend in the current UTC month (0: none recorded this month). */
  monthToDate: number;
}

export interface BudgetContext {
  budgets: readonly BudgetConfig[];
  /** The policy's pools (their machine.hourlyCost and stoppedHourlyCost). */
  pools: readonly PoolConfig[];
  currency?: string | undefined;
  /** Every stack the history holds spend of (the one being decided included: its live counts replace it). */
  stacks: readonly StackSpend[];
  /** Whether the history holds the month's spend from its first hour (its spend ledger began before the month did). */
  monthKnown: boolean;
  now: number;
}

/** A budget as it stands now: for reports, the plan comment and the cap. */
export interface BudgetState {
  budget: string;
  /** The pools it covers (for `all`, the policy's pools). */
  pools: string[];
  maxPerHour?: number;
  maxPerMonth?: number;
  /** What its stacks' nodes cost per hour now (as of each stack's last cycle). */
  perHourNow: number;
  /** Spend this UTC month, as recorded. */
  monthToDate: number;
  /** false: the history does not hold the month from its start; maxPerMonth ÷ 730 applies. */
  monthKnown: boolean;
  /** The hourly rate maxPerMonth allows now (see the module comment). */
  monthRate?: number;
  /** The first UTC hour of the month, and of the next. */
  monthStart: number;
  monthEnd: number;
}

/** The pool a stack belongs to: `<pool>` and `<pool>@<platform>` are both the pool's. */
export function poolOfStack(stack: string): string {
  const at = stack.indexOf('@');
  return at < 0 ? stack : stack.slice(0, at);
}

export function budgetCovers(b: BudgetConfig, pool: string): boolean {
  return b.pools === 'all' || b.pools.includes(pool);
}

/** The UTC calendar month around `now`: its first millisecond and the next month's. */
export function utcMonth(now: number): { start: number; end: number; key: string } {
  const d = new Date(now);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { start: Date.UTC(y, m, 1), end: Date.UTC(y, m + 1, 1), key: `${y}-${String(m + 1).padStart(2, '0')}` };
}

/** What a stack's nodes cost per hour. */
export function stackPerHour(running: number, stopped: number, pool: Pick<PoolConfig, 'machine'> | undefined): number {
  if (!pool) return 0;
  return running * (pool.machine.hourlyCost ?? 0) + stopped * (pool.machine.stoppedHourlyCost ?? 0);
}

/**
 * An amount of money as reports and reasons show it: two decimals (four below 0.10, so that a
 * disk's price per hour is not 0.00), with the policy's currency: a symbol before the amount
 * (`$0.25`), a code after it (`0.25 EUR`); none: the number alone.
 */
export function money(v: number, currency?: string): string {
  const small = v !== 0 && Math.abs(v) < 0.1;
  const n = Math.abs(v).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: small ? 4 : 2 });
  const sign = v < 0 ? '-' : '';
  if (!currency) return `${sign}${n}`;
  return /^[A-Z]{3}$/.test(currency) ? `${sign}${n} ${currency}` : `${sign}${currency}${n}`;
}

/** A change of money with its sign: `+$1.50`, `-$0.25`, `±0` for none. */
export function moneyDelta(v: number, currency?: string): string {
  if (Math.abs(v) < 1e-9) return `±${money(0, currency)}`;
  return v > 0 ? `+${money(v, currency)}` : money(v, currency);
}

/** Every budget of the policy as it stands now. */
export function budgetStates(ctx: BudgetContext): BudgetState[] {
  const month = utcMonth(ctx.now);
  return ctx.budgets.map((b) => {
    const mine = ctx.stacks.filter((s) => budgetCovers(b, poolOfStack(s.stack)));
    const monthToDate = mine.reduce((a, s) => a + s.monthToDate, 0);
    const state: BudgetState = {
      budget: b.name,
      pools: b.pools === 'all' ? ctx.pools.map((p) => p.name) : [...b.pools],
      ...(b.maxPerHour !== undefined ? { maxPerHour: b.maxPerHour } : {}),
      ...(b.maxPerMonth !== undefined ? { maxPerMonth: b.maxPerMonth } : {}),
      perHourNow: mine.reduce((a, s) => a + s.perHour, 0),
      monthToDate,
      monthKnown: ctx.monthKnown,
      monthStart: month.start,
      monthEnd: month.end,
    };
    if (b.maxPerMonth !== undefined) state.monthRate = monthRate(b.maxPerMonth, monthToDate, ctx.monthKnown, ctx.now);
    return state;
  });
}

/** The hourly rate `maxPerMonth` allows now. */
export function monthRate(maxPerMonth: number, spent: number, known: boolean, now: number): number {
  if (!known) return maxPerMonth / HOURS_PER_MONTH;
  const hoursLeft = Math.max(1 / 60, (utcMonth(now).end - now) / HOUR);
  return Math.max(0, maxPerMonth - spent) / hoursLeft;
}

export interface BudgetCap {
  /** Running nodes the pool's stack may have at most. */
  maxNodes: number;
  /** Why, naming the budget and its numbers (said in the plan's reasons when the cap binds). */
  reason: string;
  budget: string;
}

/**
 * The running nodes the stack `self.stack` of `pool` may have under every budget that covers the
 * pool: the tightest; undefined when no budget covers it (or the pool has no hourlyCost).
 * `self` is the stack's live count (its terraform state now), not what the history last recorded.
 */
export function budgetCap(ctx: BudgetContext, pool: PoolConfig, self: { stack: string; running: number; stopped: number }): BudgetCap | undefined {
  const cost = pool.machine.hourlyCost;
  if (cost === undefined || cost <= 0) return undefined;
  const cur = (v: number) => money(v, ctx.currency);
  const ownStandby = self.stopped * (pool.machine.stoppedHourlyCost ?? 0);
  let best: BudgetCap | undefined;
  for (const b of ctx.budgets) {
    if (!budgetCovers(b, pool.name)) continue;
    const others = ctx.stacks.filter((s) => s.stack !== self.stack && budgetCovers(b, poolOfStack(s.stack))).reduce((a, s) => a + s.perHour, 0);
    const used = others + ownStandby;
    const usedBy = `used by ${ownStandby > 0 ? (others > 0 ? 'other pools and this pool\'s standby' : 'this pool\'s standby') : 'other pools'}`;
    const nodes = (rate: number) => Math.max(0, Math.floor((rate - used) / cost + 1e-9));
    const each = `(${cur(cost)}/h each)`;
    const consider = (maxNodes: number, why: string) => {
      if (!best || maxNodes < best.maxNodes) best = { maxNodes, reason: `budget ${b.name}: ${why} → at most ${maxNodes} node${maxNodes === 1 ? '' : 's'} ${each}`, budget: b.name };
    };
    if (b.maxPerHour !== undefined) consider(nodes(b.maxPerHour), `${cur(used)}/h of ${cur(b.maxPerHour)}/h ${usedBy}`);
    if (b.maxPerMonth !== undefined) {
      const spent = ctx.stacks.filter((s) => budgetCovers(b, poolOfStack(s.stack))).reduce((a, s) => a + s.monthToDate, 0);
      const rate = monthRate(b.maxPerMonth, spent, ctx.monthKnown, ctx.now);
      const hoursLeft = (utcMonth(ctx.now).end - ctx.now) / HOUR;
      const basis = ctx.monthKnown
        ? `${cur(spent)} of ${cur(b.maxPerMonth)} spent this month, ${cur(Math.max(0, b.maxPerMonth - spent))} over ${hoursLeft >= 10 ? Math.round(hoursLeft) : Math.round(hoursLeft * 10) / 10} h left = ${cur(rate)}/h`
        : `this month's spend is unknown (the history does not cover it from its start): ${cur(b.maxPerMonth)} ÷ ${HOURS_PER_MONTH} = ${cur(rate)}/h until next month`;
      consider(nodes(rate), `${basis}, ${cur(used)}/h ${usedBy}`);
    }
  }
  return best;
}
