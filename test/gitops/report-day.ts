/**
 * A realistic day of history for a pool, generated (seeded, deterministic): quiet night, a morning
 * ramp to about 30 concurrent jobs, a lunch dip, an evening decay; nodes follow demand with a boot
 * delay, maxStep and a 10-minute scale-down window; waits of the jobs that started; scale events
 * with decide-style reasons; a run of failed cycles and a 25-minute gap with no samples. It is
 * what reconcile writes, shaped by a tiny queue model, not a record of a real fleet.
 */
import type { HistoryEvent, Sample } from '../../src/history/types.js';
import { rng } from '../../src/sim/generate.js';

const MIN = 60_000;

/** Jobs per minute at a minute of the day (UTC): a working day. */
function rate(minute: number, peak: number): number {
  const h = minute / 60;
  const ramp = (a: number, b: number, x: number) => Math.min(1, Math.max(0, (x - a) / (b - a)));
  const day = ramp(6.5, 9.5, h) * (1 - ramp(17, 20.5, h));
  const lunch = h > 12 && h < 13.5 ? 0.55 : 1;
  return 0.08 * peak + 0.92 * peak * day * lunch;
}

function poisson(r: () => number, mean: number): number {
  let k = 0;
  let p = Math.exp(-mean);
  let s = p;
  const u = r();
  while (u > s && k < 1000) {
    k++;
    p *= mean / k;
    s += p;
  }
  return k;
}

export interface DayOptions {
  pool: string;
  start: number;
  seed?: number;
  /** Peak arrivals per minute. */
  peak?: number;
  min?: number;
  max?: number;
  maxStep?: number;
  /** Minutes (from start) with no samples: [from, to). */
  gap?: [number, number];
  /** Minutes (from start) whose cycle failed, with the error. */
  errors?: Array<[number, string]>;
}

export function generateDay(o: DayOptions): { samples: Sample[]; events: HistoryEvent[] } {
  const r = rng(o.seed ?? 7);
  const peak = o.peak ?? 3;
  const min = o.min ?? 2;
  const max = o.max ?? 40;
  const maxStep = o.maxStep ?? 8;
  const samples: Sample[] = [];
  const events: HistoryEvent[] = [];
  const queue: Array<{ queuedAt: number; durationMs: number }> = [];
  const running: Array<{ node: string; endsAt: number }> = [];
  const nodes: Array<{ name: string; readyAt: number }> = [];
  const targets: number[] = [];
  const name = () => `${o.pool}-${Math.floor(r() * 0xffffff).toString(16).padStart(6, '0')}`;
  const errors = new Map(o.errors ?? []);
  for (let i = 0; i < min; i++) nodes.push({ name: name(), readyAt: o.start - 3600_000 });
  for (let m = 0; m < 1440; m++) {
    const t = o.start + m * MIN;
    const arrivals = poisson(r, rate(m, peak));
    for (let k = 0; k < arrivals; k++) queue.push({ queuedAt: t - Math.floor(r() * MIN), durationMs: (3 + r() * 11) * MIN });
    for (let k = running.length - 1; k >= 0; k--) if ((running[k] as { endsAt: number }).endsAt <= t) running.splice(k, 1);
    const busy = new Set(running.map((j) => j.node));
    const waits: number[] = [];
    for (const n of nodes) {
      if (!queue.length) break;
      if (n.readyAt > t || busy.has(n.name)) continue;
      const job = queue.shift() as { queuedAt: number; durationMs: number };
      const startedAt = Math.max(job.queuedAt, t - Math.floor(r() * 20_000));
      running.push({ node: n.name, endsAt: startedAt + job.durationMs });
      busy.add(n.name);
      waits.push(Math.round((startedAt - job.queuedAt) / 100) / 10);
    }
    // The reconciler is down: nothing scales, nothing is recorded.
    if (o.gap && m >= o.gap[0] && m < o.gap[1]) continue;
    const failed = errors.get(m);
    if (failed) {
      events.push({ at: t, pool: o.pool, kind: 'error', detail: failed });
      continue;
    }
    const q = queue.length;
    const run = running.length;
    const need = q + run;
    const desired = Math.min(max, Math.max(min, need + 1));
    const reason = `${q} queued + ${run} running job${need === 1 ? '' : 's'} ÷ 1 per node = ${need}, +1 spare = ${need + 1}`;
    targets.push(desired);
    if (desired > nodes.length) {
      const add = Math.min(maxStep, desired - nodes.length);
      const made = Array.from({ length: add }, name);
      for (const n of made) nodes.push({ name: n, readyAt: t + (90 + r() * 60) * 1000 });
      events.push({ at: t, pool: o.pool, kind: 'scale-up', detail: `+${add}: ${made.join(' ')}`, reasons: [reason, ...(add < desired - nodes.length + add ? [`adding ${add} this cycle (maxStep ${maxStep})`] : [])] });
    } else {
      const held = Math.max(...targets.slice(-10));
      const idle = nodes.filter((n) => n.readyAt <= t && !busy.has(n.name));
      const drop = Math.min(idle.length, nodes.length - held);
      if (drop > 0) {
        const gone = idle.slice(-drop).map((n) => n.name);
        for (const g of gone) nodes.splice(nodes.findIndex((n) => n.name === g), 1);
        events.push({ at: t, pool: o.pool, kind: 'scale-down', detail: `-${drop}: ${gone.join(' ')}`, reasons: [reason, `destroying ${drop} drained idle node${drop === 1 ? '' : 's'}`] });
      }
    }
    samples.push({ at: t, queued: q, running: run, arrivals, nodes: nodes.length, desired, ...(waits.length ? { waits } : {}) });
  }
  return { samples, events };
}

/**
 * A fleet's day for the report's screenshot: `linux-x64` (a morning ramp to ~40 nodes, with an
 * hourly cost, a capacity error during the ramp, a probe failure, a 25-minute gap) and a small
 * `windows-build` pool without a cost.
 */
export function sampleFleet(start: number): { pools: Array<{ pool: string; samples: Sample[]; hourlyCost?: number }>; events: HistoryEvent[] } {
  const capacity = 'terraform apply failed: Error: creating EC2 Instance: InsufficientInstanceCapacity: We currently do not have sufficient c6i.xlarge capacity in the Availability Zone you requested (eu-west-1b).';
  const a = generateDay({
    pool: 'linux-x64',
    start,
    peak: 3,
    gap: [14 * 60, 14 * 60 + 25],
    errors: [
      [8 * 60 + 41, capacity],
      [8 * 60 + 42, capacity],
      [16 * 60 + 3, 'probe failed: GET https://gitlab.example.com/api/v4/projects/42/jobs: ECONNREFUSED 10.0.0.5:443 <script>alert(1)</script>'],
    ],
  });
  const b = generateDay({ pool: 'windows-build', start, seed: 11, peak: 0.6, min: 1, max: 8, maxStep: 2 });
  return {
    pools: [
      { pool: 'linux-x64', samples: a.samples, hourlyCost: 0.17 },
      { pool: 'windows-build', samples: b.samples },
    ],
    events: [...a.events, ...b.events].sort((x, y) => x.at - y.at),
  };
}
