/**
 * BCDR failover: where a pool's new nodes go. Pure: the platforms' health (consecutive failed
 * Terraform runs, counted by the reconciler), the policy's `evacuate` marks and the time come in;
 * the platform that gets new nodes, and why, goes out.
 *
 * A pool's platforms, in order: its own, then its `failover` list. New nodes go to the first one
 * that is neither marked `evacuate: true` nor failing. A platform is failing once it has failed
 * `failoverAfter` times in a row, until `failbackAfter` has passed since its last failure: then it
 * is tried again (new nodes go there once more, while the other platforms keep every node they
 * have: `probation`); a success clears its count (the pool stays, or moves back), a failure
 * starts another wait. When every platform is evacuated or failing, the
 * pool stays on the first one not evacuated (or its own): there is nowhere better to go.
 *
 * Nodes on the other platforms drain and go once the new platform's nodes serve (make before
 * break): `retainOnOthers` says how many of them still serve.
 */

export interface PlatformHealth {
  /** Failed Terraform runs in a row (init, state, plan, apply); a success resets it. */
  failures: number;
  /** When the last one failed (epoch ms). */
  lastFailureAt?: number;
  /** Its message (no secrets: Terraform's error text, as the pool's error shows it). */
  lastError?: string;
}

export interface FailoverInput {
  /** The pool's own platform, then its failover list, in order. */
  platforms: readonly string[];
  /** Platforms marked `evacuate: true` in the policy. */
  evacuated: ReadonlySet<string>;
  health: Readonly<Record<string, PlatformHealth>>;
  failoverAfter: number;
  failbackAfterMs: number;
  now: number;
}

export interface FailoverChoice {
  /** The platform that gets new nodes. */
  active: string;
  /** Why not an earlier one of the list (empty when the pool runs on its own platform). */
  reasons: string[];
  /** Platforms failing now (for status and metrics). */
  failing: string[];
  /**
   * The active platform failed before and is being tried again (failbackAfter passed): until a
   * Terraform run there succeeds, the pool's other platforms keep every node they have.
   */
  probation: boolean;
}

/** Whether a platform counts as failing at `now` (a failed one is tried again after failbackAfter). */
export function isFailing(h: PlatformHealth | undefined, failoverAfter: number, failbackAfterMs: number, now: number): boolean {
  if (!h || h.failures < failoverAfter) return false;
  return h.lastFailureAt === undefined || now - h.lastFailureAt < failbackAfterMs;
}

export function chooseActive(input: FailoverInput): FailoverChoice {
  const { platforms, evacuated, health, now } = input;
  const failing = platforms.filter((p) => isFailing(health[p], input.failoverAfter, input.failbackAfterMs, now));
  const reasons: string[] = [];
  const why = (p: string): string => {
    if (evacuated.has(p)) return `platform ${p} is evacuated (evacuate: true)`;
    const h = health[p];
    const retry = h?.lastFailureAt !== undefined ? `, tried again in ${fmt(Math.max(0, h.lastFailureAt + input.failbackAfterMs - now))}` : '';
    return `platform ${p} is failing (${h?.failures ?? 0} failed Terraform runs in a row${h?.lastError ? `, last: ${oneLine(h.lastError)}` : ''}${retry})`;
  };
  for (const p of platforms) {
    if (!evacuated.has(p) && !failing.includes(p)) {
      const skipped = platforms.slice(0, platforms.indexOf(p));
      for (const s of skipped) reasons.push(`${why(s)}: new nodes go to ${p}`);
      const h = health[p];
      const probation = h !== undefined && h.failures >= input.failoverAfter;
      if (probation) reasons.push(`platform ${p} failed ${h.failures} times in a row (last ${h.lastFailureAt !== undefined ? `${fmt(now - h.lastFailureAt)} ago` : 'at an unknown time'}) and is tried again: the pool's other platforms keep their nodes until a Terraform run on ${p} succeeds`);
      return { active: p, reasons, failing, probation };
    }
  }
  // Nowhere healthy: the first platform not evacuated (or the pool's own), and say so.
  const stay = platforms.find((p) => !evacuated.has(p)) ?? (platforms[0] as string);
  reasons.push(`${platforms.map(why).join('; ')}: no platform to move to, new nodes stay on ${stay}`);
  return { active: stay, reasons, failing, probation: failing.includes(stay) };
}

/**
 * How many nodes of the platforms the pool is leaving still serve: what the active platform's
 * ready nodes do not cover of the pool's desired count yet (make before break). Busy nodes are
 * never drained whatever this says; the others drain as the new platform's nodes come online.
 */
export function retainOnOthers(desired: number, readyOnActive: number): number {
  return Math.max(0, desired - readyOnActive);
}

/** The health after a pool's cycle on a platform: a failed Terraform run counts, a whole one clears it. */
export function nextHealth(prev: PlatformHealth | undefined, outcome: { failed: boolean; error?: string }, now: number): PlatformHealth {
  if (!outcome.failed) return { failures: 0 };
  return { failures: (prev?.failures ?? 0) + 1, lastFailureAt: now, ...(outcome.error !== undefined ? { lastError: oneLine(outcome.error).slice(0, 300) } : {}) };
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

function fmt(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)}m` : `${s}s`;
}
