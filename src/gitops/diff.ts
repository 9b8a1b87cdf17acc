/**
 * What a policy change does: pools added, removed and changed (old → new for each setting), and
 * for each pool what the new policy would decide now from the latest history. Pure.
 */
import { budgetCap, budgetCovers, money, moneyDelta, monthRate, poolOfStack, type StackSpend } from '../decide/budget.js';
import { decide } from '../decide/decide.js';
import { chooseActive, type PlatformHealth } from '../decide/failover.js';
import { assignJobs } from '../decide/match.js';
import type { EmitterKind, Job } from '../decide/types.js';
import type { Policy, PoolConfig } from '../policy/types.js';
import { htmlText, mdCode, mdText } from './markdown.js';

/** The label sets of an emitter's recent jobs (from history). */
export interface RecentJobs {
  kind: EmitterKind;
  sets: Array<{ labels: string[]; labelExpression?: string; jobs: number }>;
}

export interface Unmatched {
  emitter: string;
  labels: string;
  jobs: number;
  /** true when the base policy took these jobs: the change leaves them behind. */
  new: boolean;
}

export interface SettingChange {
  path: string;
  old: unknown;
  new: unknown;
}

export interface PoolNow {
  nodes: number;
  queued: number;
  running: number;
  desired: number;
  create: number;
  destroy: number;
  /** Existing nodes this change makes outdated: drained and replaced, `rollout.maxUnavailable` at a time. */
  replace: number;
  /** When the observation it rests on was taken. */
  at: number;
  /** What the pool's nodes cost per hour now (at the base policy's price) and would (at the new one's); absent without machine.hourlyCost. */
  cost?: { perHourNow: number; perHourAfter: number };
  /** A cost budget of the new policy that holds the pool below what it would otherwise be: its reason. */
  cappedBy?: string;
}

export interface PoolDiff {
  pool: string;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  settings: SettingChange[];
  /** Undefined when there is no history for the pool yet. */
  now?: PoolNow;
  /**
   * A pool with failover platforms (in either policy): where its new nodes go now and would under
   * the new policy (its platforms' `evacuate` marks and health), and why it would move.
   */
  runsOn?: { now: string; after: string; failover: string[]; why: string[] };
  /** The pool's own platform changes while its own stack holds nodes: reconcile refuses that (cycle.ts). */
  platformChange?: { from: string; to: string; nodes: number };
}

/** A cost budget of the new policy against what the plan's pools would cost. */
export interface BudgetPlan {
  budget: string;
  maxPerHour?: number;
  /** The hourly rate maxPerMonth allows now (÷ 730 while the month's spend is unknown). */
  monthRate?: number;
  /** What the budget's pools cost per hour now, and would after this change. */
  perHourNow: number;
  perHourAfter: number;
  /** The pools it holds below what they would be, and why (decide's reason). */
  caps: Array<{ pool: string; reason: string }>;
  /** perHourAfter is over maxPerHour or the month's rate. */
  exceeds: boolean;
}

export interface PlanDiff {
  pools: PoolDiff[];
  /** The fleet's cost per hour now and after this change (pools with machine.hourlyCost); absent when none has one. */
  cost?: { perHourNow: number; perHourAfter: number; currency?: string };
  /** The new policy's cost budgets; absent without any. */
  budgets?: BudgetPlan[];
  /** Recent jobs that no pool of the new policy would take. */
  unmatched: Unmatched[];
  /** The GitLab terraform report for the MR widget. */
  report: { create: number; update: number; delete: number };
}

export interface LatestObservation {
  nodes: string[];
  at: number;
  queued: number;
  running: number;
  /** Failover: the platform the pool's new nodes went to at its last cycle, and its platforms' health (its record). */
  active?: string;
  /** Nodes in the pool's own stack (`nodes` counts its failover stacks' too); default: all of them. */
  ownNodes?: number;
  health?: Readonly<Record<string, PlatformHealth>>;
}

function flatten(value: unknown, prefix: string, out: Map<string, unknown>): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, value);
}

/** The user-facing settings of a pool, flattened (durations as milliseconds, named by field). */
function settings(p: PoolConfig): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const { name: _n, ...rest } = p;
  flatten(rest, '', out);
  // A hook's script shows as its path and SHA-256, not as its text.
  for (const key of ['runner.hooks.before.script', 'runner.hooks.after.script']) out.delete(key);
  return out;
}

function unmatchedIn(policy: Policy | undefined, emitter: string, recent: RecentJobs): Set<number> {
  const pools = (policy?.pools ?? []).filter((p) => p.emitter === emitter);
  const jobs: Job[] = recent.sets.map((s, i) => ({ id: String(i), labels: s.labels, ...(s.labelExpression !== undefined ? { labelExpression: s.labelExpression } : {}), status: 'queued', queuedAt: 0 }));
  return new Set(assignJobs(recent.kind, jobs, pools).unmatched.map((j) => Number(j.id)));
}

export interface DiffOptions {
  /** Whether nodes made under `a` are outdated under `b` (their spec differs: machine, image, disk, OS, runner settings, bootstrap). */
  specChanged?: (a: PoolConfig, b: PoolConfig) => boolean;
  /** Pools Parmanu still manages (from its history) whatever the base policy says: one the head policy lacks is shown as removed. */
  known?: readonly string[];
  /** The time a new pool without history is sized at (its schedules' minimums): default now. */
  now?: number;
  /** Month-to-date spend per stack (`<pool>`, `<pool>@<platform>`) from the history, and whether it covers the month from its start: for `maxPerMonth`. */
  spend?: { monthToDate: ReadonlyMap<string, number>; monthKnown: boolean };
}

export function diffPolicies(base: Policy | undefined, head: Policy, latest: (pool: string) => LatestObservation | undefined, recentJobs: ReadonlyMap<string, RecentJobs> = new Map(), opts: DiffOptions = {}): PlanDiff {
  const pools: PoolDiff[] = [];
  const baseByName = new Map((base?.pools ?? []).map((p) => [p.name, p]));
  // Cost budgets of the new policy: each pool capped with the others as they are now (their nodes
  // at the new policy's prices), the month's spend from the history.
  const stacks: StackSpend[] = head.pools.map((p) => {
    const n = latest(p.name)?.nodes.length ?? 0;
    return { stack: p.name, running: n, stopped: 0, perHour: n * (p.machine.hourlyCost ?? 0), monthToDate: 0 };
  });
  for (const [stack, spent] of opts.spend?.monthToDate ?? []) {
    const s = stacks.find((x) => x.stack === stack);
    if (s) s.monthToDate = spent;
    else stacks.push({ stack, running: 0, stopped: 0, perHour: 0, monthToDate: spent });
  }
  const budgetCtx = (now: number) => ({ budgets: head.budgets ?? [], pools: head.pools, currency: head.currency, stacks, monthKnown: opts.spend?.monthKnown ?? false, now });
  for (const pool of head.pools) {
    const old = baseByName.get(pool.name);
    const diff: PoolDiff = { pool: pool.name, change: old ? 'unchanged' : 'added', settings: [] };
    if (old) {
      const a = settings(old);
      const b = settings(pool);
      for (const key of new Set([...a.keys(), ...b.keys()])) {
        if (JSON.stringify(a.get(key)) !== JSON.stringify(b.get(key))) diff.settings.push({ path: key, old: a.get(key), new: b.get(key) });
      }
      if (diff.settings.length) diff.change = 'changed';
    }
    const obs = latest(pool.name);
    const moves = runsOn(base, head, old, pool, obs, opts.now);
    if (moves) diff.runsOn = moves;
    const own = obs ? (obs.ownNodes ?? obs.nodes.length) : 0;
    if (old && old.platform !== pool.platform && own > 0) diff.platformChange = { from: old.platform, to: pool.platform, nodes: own };
    const price = (p: PoolConfig | undefined) => p?.machine.hourlyCost;
    const costOf = (nodesNow: number, desired: number) => (price(pool) !== undefined ? { cost: { perHourNow: nodesNow * (price(old) ?? price(pool) ?? 0), perHourAfter: desired * (price(pool) ?? 0) } } : {});
    if (obs) {
      const cap = budgetCap(budgetCtx(obs.at), pool, { stack: pool.name, running: obs.nodes.length, stopped: 0 });
      const plan = decide({
        pool,
        now: obs.at,
        observation: { at: obs.at, ok: true, partial: false, queued: obs.queued, running: obs.running, upcoming: 0 },
        staleAfterMs: Infinity,
        nodes: obs.nodes.map((name) => ({ name, createdAt: 0, runner: { online: true, busy: false, paused: false } })),
        memory: undefined,
        newId: (i) => `new${i}`,
        ...(cap ? { budget: cap } : {}),
      });
      const replace = old && opts.specChanged?.(old, pool) ? obs.nodes.length : 0;
      diff.now = { nodes: obs.nodes.length, queued: obs.queued, running: obs.running, desired: plan.desired, create: plan.create.length, destroy: plan.drain.length + plan.destroy.length, replace, at: obs.at, ...costOf(obs.nodes.length, plan.desired), ...(cap && plan.reasons.some((r) => r.startsWith(cap.reason)) ? { cappedBy: cap.reason } : {}) };
    } else if (!old) {
      // A new pool without history has no nodes: what decide would start it with, without demand
      // (its floor now — min, or an open schedule's — within maxStep).
      const at = opts.now ?? Date.now();
      const cap = budgetCap(budgetCtx(at), pool, { stack: pool.name, running: 0, stopped: 0 });
      const plan = decide({ pool, now: at, observation: { at, ok: true, partial: false, queued: 0, running: 0, upcoming: 0 }, staleAfterMs: Infinity, nodes: [], memory: undefined, newId: (i) => `new${i}`, ...(cap ? { budget: cap } : {}) });
      diff.now = { nodes: 0, queued: 0, running: 0, desired: plan.desired, create: plan.create.length, destroy: 0, replace: 0, at, ...costOf(0, plan.desired), ...(cap && plan.reasons.some((r) => r.startsWith(cap.reason)) ? { cappedBy: cap.reason } : {}) };
    }
    // A move to another platform replaces every node there (made first; the old ones drain once those serve).
    if (diff.now && moves && moves.now !== moves.after) diff.now.replace = diff.now.nodes;
    pools.push(diff);
  }
  const removedNames = new Set([...(base?.pools ?? []).map((p) => p.name), ...(opts.known ?? [])]);
  for (const name of [...removedNames].sort()) {
    if (head.pools.some((p) => p.name === name)) continue;
    const obs = latest(name);
    if (!obs && !base?.pools.some((p) => p.name === name)) continue;
    const was = base?.pools.find((p) => p.name === name)?.machine.hourlyCost;
    pools.push({ pool: name, change: 'removed', settings: [], ...(obs ? { now: { nodes: obs.nodes.length, queued: obs.queued, running: obs.running, desired: 0, create: 0, destroy: obs.nodes.length, replace: 0, at: obs.at, ...(was !== undefined ? { cost: { perHourNow: obs.nodes.length * was, perHourAfter: 0 } } : {}) } } : {}) });
  }
  const unmatched: Unmatched[] = [];
  for (const [emitter, recent] of recentJobs) {
    if (!head.emitters[emitter]) continue;
    const now = unmatchedIn(head, emitter, recent);
    const before = base ? unmatchedIn(base, emitter, recent) : now;
    for (const i of now) {
      const set = recent.sets[i];
      if (set) unmatched.push({ emitter, labels: set.labelExpression || set.labels.join(', ') || '(no labels)', jobs: set.jobs, new: !before.has(i) });
    }
  }
  const report = { create: 0, update: 0, delete: 0 };
  for (const p of pools) {
    report.create += (p.now?.create ?? 0) + (p.now?.replace ?? 0);
    report.delete += (p.now?.destroy ?? 0) + (p.now?.replace ?? 0);
    if (p.change === 'changed') report.update++;
  }
  const priced = pools.filter((p) => p.now?.cost);
  const sum = (list: readonly PoolDiff[], f: (c: NonNullable<PoolNow['cost']>) => number) => list.reduce((a, p) => a + (p.now?.cost ? f(p.now.cost) : 0), 0);
  const cost = priced.length ? { cost: { perHourNow: sum(priced, (c) => c.perHourNow), perHourAfter: sum(priced, (c) => c.perHourAfter), ...(head.currency ? { currency: head.currency } : {}) } } : {};
  const at = Math.max(0, ...pools.map((p) => p.now?.at ?? 0)) || (opts.now ?? Date.now());
  const budgets: BudgetPlan[] = (head.budgets ?? []).map((b) => {
    const mine = pools.filter((p) => budgetCovers(b, p.pool));
    const perHourAfter = sum(mine, (c) => c.perHourAfter);
    const spent = [...(opts.spend?.monthToDate ?? [])].filter(([stack]) => budgetCovers(b, poolOfStack(stack))).reduce((a, [, v]) => a + v, 0);
    const rate = b.maxPerMonth !== undefined ? monthRate(b.maxPerMonth, spent, opts.spend?.monthKnown ?? false, at) : undefined;
    return {
      budget: b.name,
      ...(b.maxPerHour !== undefined ? { maxPerHour: b.maxPerHour } : {}),
      ...(rate !== undefined ? { monthRate: rate } : {}),
      perHourNow: sum(mine, (c) => c.perHourNow),
      perHourAfter,
      caps: mine.flatMap((p) => (p.now?.cappedBy?.startsWith(`budget ${b.name}:`) ? [{ pool: p.pool, reason: p.now.cappedBy }] : [])),
      exceeds: perHourAfter > Math.min(b.maxPerHour ?? Infinity, rate ?? Infinity) + 1e-9,
    };
  });
  return { pools, unmatched, report, ...cost, ...(budgets.length ? { budgets } : {}) };
}

/**
 * Where a pool with failover platforms runs now (its last cycle's choice, else the base policy's)
 * and would under the new policy (decide/failover.ts with the history's health); undefined for a
 * pool on one platform in both.
 */
function runsOn(base: Policy | undefined, head: Policy, old: PoolConfig | undefined, pool: PoolConfig, obs: LatestObservation | undefined, at: number | undefined): PoolDiff['runsOn'] {
  if (!pool.failover?.length && !old?.failover?.length) return undefined;
  const now = obs?.at ?? at ?? Date.now();
  const choose = (policy: Policy, p: PoolConfig) => {
    const platforms = [p.platform, ...(p.failover ?? []).map((f) => f.platform)].filter((x) => policy.platforms[x] !== undefined);
    return chooseActive({ platforms, evacuated: new Set(platforms.filter((x) => policy.platforms[x]?.evacuate === true)), health: obs?.health ?? {}, failoverAfter: p.failoverAfter ?? 3, failbackAfterMs: p.failbackAfterMs ?? 600_000, now });
  };
  const after = choose(head, pool);
  const before = obs?.active ?? (base && old ? choose(base, old).active : pool.platform);
  // A move is this change's only when it touches what decides it: the pool's platforms or their
  // evacuate marks (else the history's health, read at the last observation, would speak for it).
  const marks = (policy: Policy | undefined, p: PoolConfig | undefined) => JSON.stringify(p ? [p.platform, p.failover ?? [], [p.platform, ...(p.failover ?? []).map((f) => f.platform)].map((x) => policy?.platforms[x]?.evacuate === true)] : null);
  if (base && marks(base, old) === marks(head, pool)) return { now: before, after: before, failover: (pool.failover ?? []).map((f) => f.platform), why: [] };
  return { now: before, after: after.active, failover: (pool.failover ?? []).map((f) => f.platform), why: after.reasons };
}

/** Money in markdown: escaped, `$` too (GitHub reads `$…$` as math). */
const mdMoney = (s: string) => mdText(s).replace(/\$/g, '\\$');

/** A pool's cost change as the plan's table shows it: `+3 nodes ≈ +$1.50/h`. */
function costCell(p: PoolDiff, currency: string | undefined): string {
  const n = p.now;
  if (!n?.cost) return '—';
  const dn = n.desired - n.nodes;
  return mdMoney(`${dn > 0 ? '+' : ''}${dn} node${Math.abs(dn) === 1 ? '' : 's'} ≈ ${moneyDelta(n.cost.perHourAfter - n.cost.perHourNow, currency)}/h`);
}

/** A setting value as markdown text: strings as written, the rest as JSON; escaped (values come from the policy). */
const fmt = (v: unknown) => (v === undefined ? '—' : mdText(typeof v === 'string' ? v : JSON.stringify(v)));
export const COMMENT_MARKER = '<!-- parmanu-plan -->';

/**
 * The plan comment. Every string that is not Parmanu's own — pool and emitter names, setting
 * paths and values from the policy, job labels from any workflow author — goes through mdText,
 * mdCode or htmlText (src/gitops/markdown.ts); numbers are Parmanu's.
 */
export function planMarkdown(d: PlanDiff): string {
  const lines = [COMMENT_MARKER, '### Parmanu plan', ''];
  const shown = d.pools.filter((p) => p.change !== 'unchanged' || (p.now && (p.now.create || p.now.destroy)) || (p.runsOn && p.runsOn.now !== p.runsOn.after));
  for (const p of d.pools.filter((x) => x.platformChange)) {
    const c = p.platformChange as NonNullable<PoolDiff['platformChange']>;
    lines.push(`⚠ ${mdCode(p.pool)}: its own platform changes from ${mdCode(c.from)} to ${mdCode(c.to)} under its ${c.nodes} node${c.nodes === 1 ? '' : 's'}, which reconcile refuses: list ${mdCode(c.to)} under \`failover\` and mark ${mdCode(c.from)} \`evacuate: true\` first; once the nodes are on ${mdCode(c.to)}, make it the pool's own platform.`, '');
  }
  const unchanged = d.pools.filter((p) => !shown.includes(p));
  const currency = d.cost?.currency;
  // A cost column when a pool has a price (machine.hourlyCost).
  const costs = d.pools.some((p) => p.now?.cost);
  if (shown.length) {
    lines.push(`| pool | change | nodes now | would be | create | destroy | replace |${costs ? ' cost |' : ''}`, `| --- | --- | --- | --- | --- | --- | --- |${costs ? ' --- |' : ''}`);
    for (const p of shown) lines.push(`| ${mdCode(p.pool, true)} | ${p.change} | ${p.now?.nodes ?? '—'} | ${p.now?.desired ?? '—'} | ${p.now?.create ?? '—'} | ${p.now?.destroy ?? '—'} | ${p.now?.replace ?? '—'} |${costs ? ` ${costCell(p, currency)} |` : ''}`);
    lines.push('');
    const replacing = shown.filter((p) => (p.now?.replace ?? 0) > 0 && !(p.runsOn && p.runsOn.now !== p.runsOn.after));
    if (replacing.length) lines.push(`Rollout: ${replacing.map((p) => `${mdCode(p.pool)} replaces ${p.now?.replace} node${p.now?.replace === 1 ? '' : 's'}`).join('; ')} (drained and replaced a few at a time, idle first; see \`scaling.rollout.maxUnavailable\`).`, '');
  }
  for (const p of shown.filter((x) => x.settings.length)) {
    lines.push(`<details><summary><code>${htmlText(p.pool)}</code>: ${p.settings.length} setting${p.settings.length === 1 ? '' : 's'} changed</summary>`, '', '| setting | old | new |', '| --- | --- | --- |');
    for (const s of p.settings) lines.push(`| ${mdCode(s.path, true)} | ${fmt(s.old)} | ${fmt(s.new)} |`);
    lines.push('', '</details>', '');
  }
  // Failover: where each pool with failover platforms runs, and the moves this change makes.
  const placed = d.pools.filter((p) => p.runsOn);
  if (placed.length) {
    lines.push(`**Where pools run**: ${placed.map((p) => { const r = p.runsOn as NonNullable<PoolDiff['runsOn']>; return r.now !== r.after ? `${mdCode(p.pool)} moves from ${mdCode(r.now)} to ${mdCode(r.after)} (${mdMoney(r.why.join('; ') || `back to ${r.after}`)}: new nodes there, the old ones drain once those serve)` : `${mdCode(p.pool)} on ${mdCode(r.now)}${r.failover.length ? ` (failover: ${r.failover.map((f) => mdCode(f)).join(', ')})` : ''}`; }).join('; ')}.`, '');
  }
  if (unchanged.length) lines.push(`${unchanged.length} pool${unchanged.length === 1 ? '' : 's'} unchanged: ${unchanged.map((p) => mdCode(p.pool)).join(', ')}.`, '');
  if (d.cost) {
    const delta = d.cost.perHourAfter - d.cost.perHourNow;
    lines.push(`**Cost**: ${mdMoney(`${money(d.cost.perHourNow, currency)}/h now → ${money(d.cost.perHourAfter, currency)}/h (${moneyDelta(delta, currency)}/h)`)}, at \`machine.hourlyCost\` of the pools that have one.`, '');
  }
  for (const b of d.budgets ?? []) {
    const limit = [b.maxPerHour !== undefined ? `${money(b.maxPerHour, currency)}/h` : '', b.monthRate !== undefined ? `${money(b.monthRate, currency)}/h by the month` : ''].filter(Boolean).join(', ');
    const head = `${b.exceeds ? '⚠ ' : ''}Budget ${mdCode(b.budget)}: ${mdMoney(`${money(b.perHourNow, currency)}/h now → ${money(b.perHourAfter, currency)}/h of ${limit}`)}${b.exceeds ? ' — over the budget' : ''}`;
    lines.push(`${head}.${b.caps.map((c) => ` It holds ${mdCode(c.pool)}: ${mdMoney(c.reason)}.`).join('')}`, '');
  }
  if (d.unmatched.length) {
    lines.push(`**Jobs no pool would take** (from the latest probe): ${d.unmatched.map((u) => `${mdCode(u.labels)} ×${u.jobs} (${mdText(u.emitter)})${u.new ? ' ⚠ newly left behind by this change' : ''}`).join('; ')}.`, '');
  }
  if (shown.some((p) => !p.now)) lines.push('_Pools without history show — for their nodes: the plan of what they would do starts after their first reconcile._', '');
  lines.push(`Terraform: ${d.report.create} to add, ${d.report.update} pool${d.report.update === 1 ? '' : 's'} changed, ${d.report.delete} to destroy.`);
  return lines.join('\n') + '\n';
}
