/**
 * Pre-warming before scheduled pipelines (GitLab pipeline schedules, `scaling.prewarm`). Pure.
 *
 * An emitter reports the scheduled runs due soon with the jobs their previous runs had, by label
 * set (ScheduledRun). Each run's jobs are matched to pools exactly as queued jobs are (assignJobs:
 * the most specific pool, then policy order), which gives each pool its scheduled demand
 * (`scheduledDemand`). decide raises the pool's floor to ⌈jobs ÷ jobsPerNode⌉ + spare — the size
 * the pool will have once those jobs are queued — from `lead` before the run is due
 * (`prewarmFloor`), like a schedule's `min`: a floor, never recorded as demand, so the stabilization
 * window does not hold it. The floor ends when the scheduled jobs have shown up (once the run is
 * due, the pool's queued, running and upcoming jobs reach the estimate: real demand carries on from
 * there), or `grace` after the run was due (a schedule that did not run keeps no nodes), or when the
 * emitter no longer reports the run (it ran: its next run is later).
 *
 * `lead` defaults to twice the pool's boot time (the median boot of its nodes; 90 s before any has
 * booted), at least 5 minutes: a node created then is online at the scheduled time with a cycle or
 * two to spare. Only with `scaling.predict` on (predict off sizes on current demand alone).
 */
import type { PoolConfig } from '../policy/types.js';
import { assignJobs } from './match.js';
import type { EmitterKind, Job, PoolObservation, ScheduledDemand, ScheduledRun } from './types.js';

/** The shortest default lead. */
export const MIN_PREWARM_LEAD_MS = 5 * 60_000;
/** How long after the due time a pre-warm stays when no scheduled job has shown up, by default. */
export const DEFAULT_PREWARM_GRACE_MS = 10 * 60_000;

/**
 * Each pool's share of the scheduled runs: every run's jobs matched to `pools` (the emitter's pools
 * of the policy, in policy order) as queued jobs would be. Pools with none are absent.
 */
export function scheduledDemand(kind: EmitterKind, runs: readonly ScheduledRun[] | undefined, pools: readonly PoolConfig[]): Map<string, ScheduledDemand[]> {
  const out = new Map<string, ScheduledDemand[]>();
  for (const run of runs ?? []) {
    // One representative job per label set: the matching depends on the labels alone.
    const reps: Job[] = run.jobs.map((set, i) => ({ id: `${run.id}:${i}`, labels: set.labels, status: 'queued', queuedAt: run.nextRunAt }));
    const { byPool } = assignJobs(kind, reps, pools);
    for (const [pool, jobs] of byPool) {
      const n = jobs.reduce((sum, j) => sum + (run.jobs[Number(j.id.slice(j.id.lastIndexOf(':') + 1))]?.count ?? 0), 0);
      if (n <= 0) continue;
      const list = out.get(pool) ?? [];
      list.push({ at: run.nextRunAt, jobs: n, schedule: run.description, project: run.project, runs: run.runs });
      out.set(pool, list);
    }
  }
  return out;
}

/** The lead a pool pre-warms with: `prewarm.lead`, else twice its boot time, at least MIN_PREWARM_LEAD_MS. */
export function prewarmLeadMs(pool: Pick<PoolConfig, 'scaling'>, bootMs: number): number {
  return pool.scaling.prewarm?.leadMs ?? Math.max(MIN_PREWARM_LEAD_MS, 2 * bootMs);
}

export interface Prewarm {
  /** The floor: ⌈scheduled jobs ÷ jobsPerNode⌉ + spare. */
  nodes: number;
  reason: string;
}

/**
 * The pre-warm floor at `now` from the observation's scheduled demand, or undefined when no
 * scheduled run is within its window (or pre-warming is off for the pool).
 */
export function prewarmFloor(pool: Pick<PoolConfig, 'scaling'>, obs: Pick<PoolObservation, 'queued' | 'running' | 'upcoming' | 'scheduled'>, now: number, perNode: number, bootMs: number): Prewarm | undefined {
  const s = pool.scaling;
  if (!s.predict || s.prewarm?.schedules === false || !obs.scheduled?.length) return undefined;
  const lead = prewarmLeadMs(pool, bootMs);
  const grace = s.prewarm?.graceMs ?? DEFAULT_PREWARM_GRACE_MS;
  const seen = obs.queued + obs.running + obs.upcoming;
  const due = obs.scheduled.filter((d) => d.jobs > 0 && now >= d.at - lead && now < d.at + grace && !(now >= d.at && seen >= d.jobs));
  if (!due.length) return undefined;
  const jobs = due.reduce((n, d) => n + d.jobs, 0);
  const nodes = Math.ceil(jobs / Math.max(1, perNode)) + s.spare;
  const what = due
    .sort((a, b) => a.at - b.at)
    .map((d) => `schedule ${quoted(d.schedule)} of ${printable(d.project, 100)} due ${clock(d.at)} ran ${d.jobs} job${d.jobs === 1 ? '' : 's'} here ${d.runs > 1 ? `(the most of its last ${d.runs} runs)` : 'last time'}`)
    .join('; ');
  return { nodes, reason: `pre-warm: ${what} → ${nodes} node${nodes === 1 ? '' : 's'}${s.spare ? ` (${s.spare} spare included)` : ''}` };
}

/**
 * Text from a CI platform made fit for a reason (reasons reach terminals, JSON, HTML reports and
 * markdown, each escaping on its own): control characters and line breaks become spaces, runs of
 * spaces fold, bidirectional overrides (which would reorder the text around them) go, at most `max` characters.
 */
export function printable(s: string, max = 60): string {
  // eslint-disable-next-line no-control-regex
  const one = s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g, ' ').replace(/\s+/g, ' ').trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** A schedule's description in a reason: printable, quoted (quotes and backslashes escaped as JSON does). */
function quoted(s: string): string {
  return JSON.stringify(printable(s) || '(no description)');
}

/** `02:00 UTC`, with seconds when the time has some. */
function clock(at: number): string {
  const iso = new Date(at).toISOString();
  return `${iso.slice(11, iso.slice(17, 19) === '00' ? 16 : 19)} UTC`;
}
