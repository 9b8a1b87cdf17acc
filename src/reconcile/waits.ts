/**
 * Job waits (queued → started) as reconcile observes them, for the report: pure, from one probe's
 * jobs of a pool and what the previous probe saw (kept on the pool's history record).
 */
import type { Job } from '../decide/types.js';

/** What the previous successful probe saw of a pool's jobs. */
export interface SeenBefore {
  /** Ids of the jobs it saw running. */
  running: readonly string[];
  /** Ids of every job it saw, queued or running. */
  seen: readonly string[];
}

/**
 * The waits, in seconds, of the jobs this probe sees running that the previous one did not (they
 * started in between), and the running ids to remember for the next probe:
 * - a job with `startedAt` waited `startedAt − queuedAt`;
 * - a job without it that the previous probe saw queued waited at most until this probe:
 *   `probeAt − queuedAt`;
 * - any other job's start was not observed, and gives no wait.
 * Without `before` (a new or rebuilt record, or one written before waits were kept) nothing is
 * counted: a job already running then may have started long ago. Negative waits (clock skew
 * between the CI platform and this host) count as 0.
 */
export function observedWaits(jobs: readonly Job[], before: SeenBefore | undefined, probeAt: number): { waits: number[]; running: string[] } {
  const running = jobs.filter((j) => j.status === 'running');
  const ids = running.map((j) => j.id);
  if (!before) return { waits: [], running: ids };
  const wasRunning = new Set(before.running);
  const wasSeen = new Set(before.seen);
  const waits: number[] = [];
  for (const j of running) {
    if (wasRunning.has(j.id)) continue;
    const started = j.startedAt ?? (wasSeen.has(j.id) ? probeAt : undefined);
    if (started === undefined || !Number.isFinite(started) || !Number.isFinite(j.queuedAt)) continue;
    waits.push(Math.round(Math.max(0, started - j.queuedAt) / 100) / 10);
  }
  return { waits, running: ids };
}
