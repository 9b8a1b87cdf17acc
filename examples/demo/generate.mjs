#!/usr/bin/env node
// Generates examples/demo/trace.csv: one busy working day (Monday 2025-01-06, 07:00–19:00 UTC)
// of CI jobs for the demo's two pools. Seeded and deterministic: the same seed gives the same file.
//   node examples/demo/generate.mjs [seed] > examples/demo/trace.csv
// Shape: pushes arrive as a Poisson process whose rate follows the day (a morning ramp to a peak
// around 10:30, a lunch dip 12:00–13:30, the afternoon peak around 15:00, a tail off to 19:00),
// each push a pipeline of 1–6 jobs; two bursts (a release at 09:40, a merge train at 16:10) add
// 24 and 30 jobs within two minutes. 70 % of jobs want `linux;x64`, 30 % `linux;arm64`.
// Durations are log-normal (median 9 min, clamped to 1–45 min).
import process from 'node:process';
// The simulator's seeded generator (mulberry32), compiled by `npm ci` / `npm run build`.
import { rng } from '../../dist/src/sim/generate.js';

const seed = Number(process.argv[2] ?? 9);

const r = rng(seed);
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY0 = Date.parse('2025-01-06T00:00:00Z');
const exp = (mean) => -Math.log(1 - r()) * mean;
const logn = (median, sigma) => median * Math.exp(sigma * Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()));
/** Pushes per hour at hour-of-day h. */
function rate(h) {
  if (h < 7 || h >= 19) return 0;
  const bump = (c, w, peak) => peak * Math.exp(-(((h - c) / w) ** 2));
  const day = bump(10.5, 1.6, 14) + bump(15, 1.8, 16) + 1.5;
  const lunch = h >= 12 && h < 13.5 ? 0.35 : 1;
  return day * lunch;
}
const jobs = [];
const add = (t, labels) => jobs.push({ t: Math.round(t / 1000) * 1000, d: Math.round(Math.min(45 * MIN, Math.max(MIN, logn(9 * MIN, 0.55))) / 1000), labels });
const pick = () => (r() < 0.7 ? 'linux;x64' : 'linux;arm64');
// Thinning: candidate pushes at the peak rate, kept with probability rate(h)/peak.
const PEAK = 20;
for (let t = DAY0 + 7 * HOUR; t < DAY0 + 19 * HOUR; t += exp(HOUR / PEAK)) {
  if (r() >= rate((t - DAY0) / HOUR) / PEAK) continue;
  const n = 1 + Math.floor(r() * 6);
  const labels = pick();
  for (let i = 0; i < n; i++) add(t + i * 20_000, i === n - 1 ? pick() : labels);
}
for (const [at, n] of [['09:40', 24], ['16:10', 30]]) {
  const [h, m] = at.split(':').map(Number);
  for (let i = 0; i < n; i++) add(DAY0 + h * HOUR + m * MIN + Math.floor(r() * 120) * 1000, pick());
}
jobs.sort((a, b) => a.t - b.t);
const rows = jobs.map((j) => `${new Date(j.t).toISOString().replace('.000Z', 'Z')},${j.d},${j.labels}`);
process.stdout.write(['queued_at,duration_s,labels', ...rows].join('\n') + '\n');
