/**
 * What a policy change does: pools added, removed and changed (old → new for each setting), and
 * for each pool what the new policy would decide now from the latest history. Pure.
 */
import { decide } from '../decide/decide.js';
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
}

export interface PoolDiff {
  pool: string;
  change: 'added' | 'removed' | 'changed' | 'unchanged';
  settings: SettingChange[];
  /** Undefined when there is no history for the pool yet. */
  now?: PoolNow;
}

export interface PlanDiff {
  pools: PoolDiff[];
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
}

export function diffPolicies(base: Policy | undefined, head: Policy, latest: (pool: string) => LatestObservation | undefined, recentJobs: ReadonlyMap<string, RecentJobs> = new Map(), opts: DiffOptions = {}): PlanDiff {
  const pools: PoolDiff[] = [];
  const baseByName = new Map((base?.pools ?? []).map((p) => [p.name, p]));
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
    if (obs) {
      const plan = decide({
        pool,
        now: obs.at,
        observation: { at: obs.at, ok: true, partial: false, queued: obs.queued, running: obs.running, upcoming: 0 },
        staleAfterMs: Infinity,
        nodes: obs.nodes.map((name) => ({ name, createdAt: 0, runner: { online: true, busy: false, paused: false } })),
        memory: undefined,
        newId: (i) => `new${i}`,
      });
      const replace = old && opts.specChanged?.(old, pool) ? obs.nodes.length : 0;
      diff.now = { nodes: obs.nodes.length, queued: obs.queued, running: obs.running, desired: plan.desired, create: plan.create.length, destroy: plan.drain.length + plan.destroy.length, replace, at: obs.at };
    } else if (!old) {
      // A new pool without history has no nodes: what decide would start it with, without demand
      // (its floor now — min, or an open schedule's — within maxStep).
      const at = opts.now ?? Date.now();
      const plan = decide({ pool, now: at, observation: { at, ok: true, partial: false, queued: 0, running: 0, upcoming: 0 }, staleAfterMs: Infinity, nodes: [], memory: undefined, newId: (i) => `new${i}` });
      diff.now = { nodes: 0, queued: 0, running: 0, desired: plan.desired, create: plan.create.length, destroy: 0, replace: 0, at };
    }
    pools.push(diff);
  }
  const removedNames = new Set([...(base?.pools ?? []).map((p) => p.name), ...(opts.known ?? [])]);
  for (const name of [...removedNames].sort()) {
    if (head.pools.some((p) => p.name === name)) continue;
    const obs = latest(name);
    if (!obs && !base?.pools.some((p) => p.name === name)) continue;
    pools.push({ pool: name, change: 'removed', settings: [], ...(obs ? { now: { nodes: obs.nodes.length, queued: obs.queued, running: obs.running, desired: 0, create: 0, destroy: obs.nodes.length, replace: 0, at: obs.at } } : {}) });
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
  return { pools, unmatched, report };
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
  const shown = d.pools.filter((p) => p.change !== 'unchanged' || (p.now && (p.now.create || p.now.destroy)));
  const unchanged = d.pools.filter((p) => !shown.includes(p));
  if (shown.length) {
    lines.push('| pool | change | nodes now | would be | create | destroy | replace |', '| --- | --- | --- | --- | --- | --- | --- |');
    for (const p of shown) lines.push(`| ${mdCode(p.pool, true)} | ${p.change} | ${p.now?.nodes ?? '—'} | ${p.now?.desired ?? '—'} | ${p.now?.create ?? '—'} | ${p.now?.destroy ?? '—'} | ${p.now?.replace ?? '—'} |`);
    lines.push('');
    const replacing = shown.filter((p) => (p.now?.replace ?? 0) > 0);
    if (replacing.length) lines.push(`Rollout: ${replacing.map((p) => `${mdCode(p.pool)} replaces ${p.now?.replace} node${p.now?.replace === 1 ? '' : 's'}`).join('; ')} (drained and replaced a few at a time, idle first; see \`scaling.rollout.maxUnavailable\`).`, '');
  }
  for (const p of shown.filter((x) => x.settings.length)) {
    lines.push(`<details><summary><code>${htmlText(p.pool)}</code>: ${p.settings.length} setting${p.settings.length === 1 ? '' : 's'} changed</summary>`, '', '| setting | old | new |', '| --- | --- | --- |');
    for (const s of p.settings) lines.push(`| ${mdCode(s.path, true)} | ${fmt(s.old)} | ${fmt(s.new)} |`);
    lines.push('', '</details>', '');
  }
  if (unchanged.length) lines.push(`${unchanged.length} pool${unchanged.length === 1 ? '' : 's'} unchanged: ${unchanged.map((p) => mdCode(p.pool)).join(', ')}.`, '');
  if (d.unmatched.length) {
    lines.push(`**Jobs no pool would take** (from the latest probe): ${d.unmatched.map((u) => `${mdCode(u.labels)} ×${u.jobs} (${mdText(u.emitter)})${u.new ? ' ⚠ newly left behind by this change' : ''}`).join('; ')}.`, '');
  }
  if (shown.some((p) => !p.now)) lines.push('_Pools without history show — for their nodes: the plan of what they would do starts after their first reconcile._', '');
  lines.push(`Terraform: ${d.report.create} to add, ${d.report.update} pool${d.report.update === 1 ? '' : 's'} changed, ${d.report.delete} to destroy.`);
  return lines.join('\n') + '\n';
}
