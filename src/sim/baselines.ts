/**
 * The baselines of the design (../shared/DESIGN.md, `simulate`):
 * - oracle: every job starts when queued, on capacity that exists only while it runs;
 * - perJob: one fresh node per job, created when it is queued, gone when it ends (webhook-driven
 *   ephemeral runners): every job waits exactly one boot;
 * - reactive: every probe, desired = ⌈(queued + running) ÷ jobsPerNode⌉ + 1 spare; an idle node is
 *   removed once demand has stayed lower for 10 minutes (the idle-count autoscalers' defaults).
 *   With the webhook signal it also grows right when a job is queued (never shrinks then);
 * - reactiveStandby: reactive with a fixed standby of N stopped nodes: scale-up starts stopped
 *   nodes first (online after the resume time), scale-down stops idle nodes while fewer than N are
 *   stopped and destroys the rest; a standby short of N is filled with new nodes that boot once and
 *   stop (what stopped-standby pools do);
 * - staticPeak: a fixed fleet sized to the trace's peak concurrency.
 */
import type { NodeView } from '../decide/types.js';
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
export const REACTIVE_SPARE = 1;
/** reactiveStandby's fixed standby when none is given. */
export const REACTIVE_STANDBY = 4;

/** A reactive autoscaler's settings (the sweep in bench/ tunes them). */
export interface ReactiveTuning {
  /** Idle nodes on top of demand (default 1). */
  spare?: number;
  /** Demand must stay lower this long before an idle node goes (default 10 minutes). */
  scaleDownAfterMs?: number;
  /** Stopped nodes kept (default 0: none). */
  standby?: number;
}

export function reactiveController(jobsPerNode: number, namePrefix: string, tuning: ReactiveTuning = {}): Controller {
  const spare = tuning.spare ?? REACTIVE_SPARE;
  const windowMs = tuning.scaleDownAfterMs ?? REACTIVE_SCALE_DOWN_MS;
  const standby = tuning.standby ?? 0;
  // The stabilization window: (time, desired) of the last scaleDownAfter, oldest first from `head`.
  const windowAt: number[] = [];
  const windowN: number[] = [];
  let head = 0;
  /** Nodes created to fill the standby: stopped once online and idle. */
  const filling = new Set<string>();
  let id = 0;
  return {
    probe(s: ProbeState): Actions {
      const out: Actions = { create: [], drain: [], destroy: [], resume: [], start: [], stop: [] };
      const stopped: string[] = [];
      const serving: NodeView[] = [];
      const fillers: NodeView[] = [];
      for (const n of s.nodes) {
        if (n.power === 'stopped') stopped.push(n.name);
        else if (filling.has(n.name) && (n.runner?.jobsStarted ?? 0) === 0) fillers.push(n);
        else serving.push(n);
      }
      // Forget fillers that are gone or took a job (an ordinary node from then on).
      if (filling.size > fillers.length) {
        filling.clear();
        for (const n of fillers) filling.add(n.name);
      }
      const desired = Math.ceil((s.queued + s.running) / jobsPerNode) + spare;
      const capacity = serving.length;
      const start = out.start as string[];
      if (desired > capacity) {
        for (const name of stopped) if (start.length < desired - capacity) start.push(name);
        for (let i = capacity + start.length; i < desired; i++) out.create.push(`${namePrefix}-r${(id++).toString(36)}`);
      }
      if (s.growOnly) return out;
      windowAt.push(s.now);
      windowN.push(desired);
      while (head < windowAt.length && (windowAt[head] as number) <= s.now - windowMs) head++;
      if (head > 1024) {
        windowAt.splice(0, head);
        windowN.splice(0, head);
        head = 0;
      }
      let hold = 0;
      for (let i = head; i < windowN.length; i++) if ((windowN[i] as number) > hold) hold = windowN[i] as number;
      const stop = out.stop as string[];
      let standbyAfter = stopped.length - start.length;
      if (desired <= capacity && hold < capacity) {
        const idle = serving.filter((n) => n.runner && !n.runner.busy).sort((a, b) => (a.lastBusyAt ?? a.createdAt) - (b.lastBusyAt ?? b.createdAt));
        for (const n of idle.slice(0, capacity - hold)) {
          if (standbyAfter < standby) {
            stop.push(n.name);
            standbyAfter++;
          } else out.destroy.push(n.name);
        }
      }
      // Fill the standby: fillers that are online and idle stop; missing ones are created.
      for (const n of fillers) {
        if (n.runner?.online && !n.runner.busy) {
          stop.push(n.name);
          filling.delete(n.name);
          standbyAfter++;
        }
      }
      for (let i = standbyAfter + filling.size; i < standby; i++) {
        const name = `${namePrefix}-s${(id++).toString(36)}`;
        filling.add(name);
        out.create.push(name);
      }
      return out;
    },
  };
}
