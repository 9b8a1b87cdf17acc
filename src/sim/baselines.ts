/**
 * The baselines of the design (../shared/DESIGN.md, `simulate`):
 * - oracle: every job starts when queued, on capacity that exists only while it runs;
 * - perJob: one fresh node per job, created when it is queued, gone when it ends (webhook-driven
 *   ephemeral runners): every job waits exactly one boot;
 * - reactive: every probe, desired = ⌈(queued + running) ÷ jobsPerNode⌉ + 1 spare; an idle node is
 *   removed once demand has stayed lower for 10 minutes (the idle-count autoscalers' defaults);
 * - staticPeak: a fixed fleet sized to the trace's peak concurrency.
 */
import type { Actions, Controller, ProbeState, SimJob } from './engine.js';

/** Peak number of jobs running at once if each ran from `queuedAt + delay` for its duration. */
export function peakConcurrency(jobs: readonly SimJob[], delayMs = 0): number {
  const ev: Array<[number, number]> = [];
  for (const j of jobs) {
    ev.push([j.queuedAt + delayMs, 1], [j.queuedAt + delayMs + j.durationMs, -1]);
  }
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let peak = 0;
  for (const [, d] of ev) {
    cur += d;
    if (cur > peak) peak = cur;
  }
  return peak;
}

export const REACTIVE_SCALE_DOWN_MS = 10 * 60_000;

export function reactiveController(jobsPerNode: number, namePrefix: string): Controller {
  const window: Array<{ at: number; n: number }> = [];
  let id = 0;
  return {
    probe(s: ProbeState): Actions {
      const desired = Math.ceil((s.queued + s.running) / jobsPerNode) + 1;
      window.push({ at: s.now, n: desired });
      while (window.length && (window[0] as { at: number }).at <= s.now - REACTIVE_SCALE_DOWN_MS) window.shift();
      const hold = Math.max(...window.map((w) => w.n));
      const capacity = s.nodes.length;
      const out: Actions = { create: [], drain: [], destroy: [], resume: [] };
      if (desired > capacity) {
        for (let i = capacity; i < desired; i++) out.create.push(`${namePrefix}-r${(id++).toString(36)}`);
      } else if (hold < capacity) {
        const idle = s.nodes.filter((n) => n.runner && !n.runner.busy).sort((a, b) => (a.lastBusyAt ?? a.createdAt) - (b.lastBusyAt ?? b.createdAt));
        for (const n of idle.slice(0, capacity - hold)) out.destroy.push(n.name);
      }
      return out;
    },
  };
}
