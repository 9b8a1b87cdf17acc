/**
 * Synthetic traces with shapes that real fleets see, for checking that `decide` generalizes beyond
 * the recorded trace. Seeded and deterministic.
 *   office-hours  weekday pushes ramping 07:00–19:00 UTC, each a pipeline of 1–8 jobs; weekends quiet
 *   nightly       a scheduled burst of 60 jobs at 01:00 UTC every night, sparse jobs by day
 *   quiet-gaps    bursts of 5–20 jobs separated by exponential gaps averaging 36 hours
 */
import type { TraceJob } from '../policy/trace.js';

export const SHAPES = ['office-hours', 'nightly', 'quiet-gaps'] as const;
export type Shape = (typeof SHAPES)[number];

/** mulberry32: small, fast, good enough for workload generation. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** A Monday, 00:00 UTC. */
const START = Date.parse('2025-01-06T00:00:00Z');

export function generateTrace(shape: Shape, days: number, seed: number): TraceJob[] {
  const r = rng(seed);
  const exp = (mean: number) => -Math.log(1 - r()) * mean;
  const logn = (median: number, sigma: number) => median * Math.exp(sigma * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
  const jobs: Array<Omit<TraceJob, 'line'>> = [];
  const add = (t: number, durMs: number, labels: string[]) => jobs.push({ queuedAt: Math.round(t / 1000) * 1000, durationMs: Math.max(1, Math.round(durMs / 1000)) * 1000, labels });
  const end = START + days * DAY;

  if (shape === 'office-hours') {
    // Inhomogeneous Poisson pushes by thinning: peak 6 pipelines/hour at 13:00 on weekdays.
    const peakPerMs = 6 / HOUR;
    for (let t = START; t < end; t += exp(1 / peakPerMs)) {
      const day = new Date(t).getUTCDay();
      const h = (t % DAY) / HOUR;
      const weekday = day >= 1 && day <= 5;
      const shapeOfDay = h >= 7 && h <= 19 ? Math.sin(((h - 7) / 12) * Math.PI) : 0;
      const p = (weekday ? 1 : 0.05) * shapeOfDay;
      if (r() >= p) continue;
      const n = 1 + Math.floor(r() * 8);
      for (let i = 0; i < n; i++) add(t + (i < 3 ? 0 : 2 * MIN), logn(8 * MIN, 0.6), r() < 0.8 ? ['linux', 'x64'] : ['windows', 'x64']);
    }
  } else if (shape === 'nightly') {
    for (let d = 0; d < days; d++) {
      const night = START + d * DAY + HOUR;
      for (let i = 0; i < 60; i++) add(night + Math.floor(r() * 20) * 1000, 15 * MIN + r() * 30 * MIN, ['linux', 'x64']);
      for (let t = START + d * DAY + 8 * HOUR; t < START + d * DAY + 18 * HOUR; t += exp(HOUR)) add(t, logn(6 * MIN, 0.5), ['linux', 'x64']);
    }
  } else {
    for (let t = START + exp(36 * HOUR); t < end; t += exp(36 * HOUR)) {
      const n = 5 + Math.floor(r() * 16);
      for (let i = 0; i < n; i++) add(t + Math.floor(r() * 30) * 1000, logn(12 * MIN, 0.5), ['linux', 'x64']);
    }
  }
  jobs.sort((a, b) => a.queuedAt - b.queuedAt);
  return jobs.map((j, i) => ({ ...j, line: i + 2 }));
}

export function traceToCsv(jobs: readonly TraceJob[]): string {
  const rows = jobs.map((j) => `${new Date(j.queuedAt).toISOString().replace('.000Z', 'Z')},${Math.round(j.durationMs / 1000)},${j.labels.join(';')}`);
  return ['queued_at,duration_s,labels', ...rows].join('\n') + '\n';
}
