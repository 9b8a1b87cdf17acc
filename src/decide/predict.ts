/**
 * `predict`: pre-warm from load history. CI load follows the time of day and the day of week
 * (office hours, nightly schedules, quiet weekends), while within an active hour the next push
 * arrives close to at random. So the forecast estimates the rate of bursts — minutes in which
 * jobs arrived — from two sources:
 *   - seasonal: the hour ahead (`spreadMs` from `spreadBackMs` before this time of day) on
 *     comparable past days (weekday or weekend, UTC), up to `days` of them;
 *   - recent: the last `recentMs` of today, which catches busy days and quiet holidays;
 * blends them (`recentWeight`), and turns the rate λ into the likelihood of a burst within the next
 * `windowMs`: 1 − e^(−λ·window). While that likelihood is at least `threshold`, decide keeps a
 * typical burst's worth of nodes warm on top of current demand: a spare that follows the load's
 * rhythm instead of a fixed one kept all night.
 * A second source catches what a rate smears: recurring bursts (a nightly schedule). When at least
 * `recurringShare` of the comparable days had jobs within the next `leadMs` (about a boot and a
 * probe), the typical number that arrived then is kept warm, so a nightly burst finds its nodes
 * booted without paying for them long before. A quiet weekend costs
 * nothing. Pure: the history is passed in.
 */
import type { DemandHistory } from './types.js';

const DAY = 86_400_000;

export interface ForecastOptions {
  /** The window ahead in which a burst would use warm nodes. */
  windowMs: number;
  /** Keep warm nodes while the likelihood of a burst in the window is at least this. */
  threshold: number;
  /** Quantile of past burst sizes used as the warm count. */
  sizeQuantile: number;
  /** Length of the time-of-day neighbourhood on comparable days, starting `spreadBackMs` before now. */
  spreadMs: number;
  /** How far the neighbourhood reaches back before now (the rest lies ahead). */
  spreadBackMs: number;
  /** How many comparable days to look at, at most. */
  days: number;
  /** Look back at most this many calendar days. */
  maxBackDays: number;
  /** Today's recent past used for the recent rate. */
  recentMs: number;
  /** Weight of the recent rate against the seasonal one (0…1). */
  recentWeight: number;
  /** Share of comparable days with jobs within the next `leadMs` that marks a recurring burst. */
  recurringShare: number;
  /** How far ahead a recurring burst is looked for: a boot plus a probe or two. */
  leadMs: number;
}

export const DEFAULT_FORECAST: ForecastOptions = {
  windowMs: 10 * 60_000,
  threshold: 0.17,
  sizeQuantile: 0.5,
  spreadMs: 60 * 60_000,
  spreadBackMs: 0,
  days: 10,
  maxBackDays: 28,
  recentMs: 60 * 60_000,
  recentWeight: 0.3,
  recurringShare: 0.5,
  leadMs: 3 * 60_000,
};

export interface Forecast {
  /** Likelihood of a burst in the window (the larger of the rate model and the recurring share). */
  likelihood: number;
  /** Share of comparable days with jobs in exactly the next window. */
  recurring: number;
  /** Bursts per minute, blended. */
  ratePerMin: number;
  /** Typical burst size (jobs) at this time. */
  burstSize: number;
  /** Job slots to keep warm (0 when the likelihood is below the threshold). */
  warmSlots: number;
  /** How many comparable days the seasonal part rests on. */
  samples: number;
}

/** Weekend in UTC (Saturday or Sunday). */
export function isWeekend(t: number): boolean {
  const d = new Date(t).getUTCDay();
  return d === 0 || d === 6;
}

function pick(sorted: number[], q: number): number {
  return sorted.length ? (sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number) : 0;
}

/** Comparable past days: same kind of day, going back from `now`; yields the same time on each. */
function* comparableTimes(history: DemandHistory, now: number, opts: ForecastOptions, margin: number): Generator<number> {
  const weekend = isWeekend(now);
  let n = 0;
  for (let d = 1; d <= opts.maxBackDays && n < opts.days; d++) {
    const t = now - d * DAY;
    if (isWeekend(t) !== weekend) continue;
    if (Math.floor(t / history.bucketMs) - margin < history.since) return;
    n++;
    yield t;
  }
}

export interface RateForecast {
  /** Likelihood of a burst within `windowMs` under the rate model. */
  likelihood: number;
  ratePerMin: number;
  /** Typical burst size (jobs) around this time. */
  burstSize: number;
  samples: number;
}

/** The rate model: bursts per minute around this time on comparable days, blended with today's. */
export function rateForecast(history: DemandHistory, now: number, opts: ForecastOptions = DEFAULT_FORECAST): RateForecast {
  const b = history.bucketMs;
  const len = Math.max(1, Math.round(opts.spreadMs / b));
  const back = Math.round(opts.spreadBackMs / b);
  const sizes: number[] = [];
  let samples = 0;
  let seasonalBursts = 0;
  for (const t of comparableTimes(history, now, opts, back)) {
    samples++;
    const first = Math.floor(t / b) - back;
    for (let i = first; i < first + len; i++) {
      const n = history.arrivals.get(i);
      if (n) {
        seasonalBursts++;
        sizes.push(n);
      }
    }
  }
  const seasonalRate = samples ? seasonalBursts / (samples * len * (b / 60_000)) : 0;
  const nowBucket = Math.floor(now / b);
  const from = Math.max(history.since, nowBucket - Math.max(1, Math.round(opts.recentMs / b)));
  let recentBursts = 0;
  for (let i = from; i < nowBucket; i++) {
    const n = history.arrivals.get(i);
    if (n) {
      recentBursts++;
      sizes.push(n);
    }
  }
  // Over the whole recent window even when history is younger: a few minutes of history with one
  // burst in them is no evidence of a burst every few minutes.
  const recentRate = recentBursts / (opts.recentMs / 60_000);
  const w = samples === 0 ? 1 : opts.recentWeight;
  const ratePerMin = w * recentRate + (1 - w) * seasonalRate;
  sizes.sort((x, y) => x - y);
  return { likelihood: 1 - Math.exp(-ratePerMin * (opts.windowMs / 60_000)), ratePerMin, burstSize: pick(sizes, opts.sizeQuantile), samples };
}

export interface RecurringForecast {
  /** Share of comparable days with jobs within the next `leadMs`. */
  share: number;
  /** Median number of jobs that arrived then, on the days that had any. */
  size: number;
}

/** Recurring bursts: did comparable days have jobs within the next `leadMs`? */
export function recurringForecast(history: DemandHistory, now: number, opts: ForecastOptions = DEFAULT_FORECAST): RecurringForecast {
  const b = history.bucketMs;
  const width = Math.max(1, Math.ceil(opts.leadMs / b));
  const counts: number[] = [];
  let samples = 0;
  for (const t of comparableTimes(history, now, opts, 0)) {
    samples++;
    // From the next bucket on: what arrives in the current one is already demand, not forecast.
    const first = Math.floor(t / b) + 1;
    let n = 0;
    for (let i = first; i < first + width; i++) n += history.arrivals.get(i) ?? 0;
    if (n > 0) counts.push(n);
  }
  counts.sort((x, y) => x - y);
  return { share: samples ? counts.length / samples : 0, size: pick(counts, 0.5) };
}

/** Both sources combined: job slots to keep warm now. */
export function forecast(history: DemandHistory, now: number, opts: ForecastOptions = DEFAULT_FORECAST): Forecast {
  return combine(rateForecast(history, now, opts), recurringForecast(history, now, opts), opts);
}

export function combine(rate: RateForecast, rec: RecurringForecast, opts: ForecastOptions): Forecast {
  let warmSlots = rate.likelihood >= opts.threshold ? rate.burstSize : 0;
  if (rec.share >= opts.recurringShare) warmSlots = Math.max(warmSlots, rec.size);
  return { likelihood: Math.max(rate.likelihood, rec.share), recurring: rec.share, ratePerMin: rate.ratePerMin, burstSize: rate.burstSize, warmSlots, samples: rate.samples };
}

/** Quantile of the burst sizes within one boot that `standby: auto` keeps stopped. */
export const STANDBY_QUANTILE = 0.9;

/**
 * `standby: auto`: job slots of the burst expected within one boot at this time of day. A job that
 * finds no idle node waits for a start from standby instead of a fresh boot, so standby is sized
 * for the jobs that arrive within one boot of each other: the `STANDBY_QUANTILE` of the arrivals
 * in any boot-long window around this time on comparable days and in today's recent past (windows
 * with none left out). Zero in quiet periods: no job around this time on any comparable day nor in
 * the recent past. Unlike warm nodes, it is not gated on the likelihood of a burst: a stopped node
 * costs a few percent of a running one, and on traces whose active hours are close to memoryless
 * that gate closed it for most of the day (measured in BENCHMARKS.md: 28.5 s → 15.9 s mean wait
 * for +0.12× oracle on the bitcoin trace).
 */
export function standbyForecast(history: DemandHistory, now: number, bootMs: number, opts: ForecastOptions = DEFAULT_FORECAST): number {
  const b = history.bucketMs;
  const width = Math.max(1, Math.ceil(bootMs / b));
  const len = Math.max(1, Math.round(opts.spreadMs / b));
  const back = Math.round(opts.spreadBackMs / b);
  const sums: number[] = [];
  const windows = (first: number, last: number) => {
    let sum = 0;
    for (let i = first; i < first + width; i++) sum += history.arrivals.get(i) ?? 0;
    for (let i = first; i <= last; i++) {
      if (sum > 0) sums.push(sum);
      sum += (history.arrivals.get(i + width) ?? 0) - (history.arrivals.get(i) ?? 0);
    }
  };
  for (const t of comparableTimes(history, now, opts, back)) {
    const first = Math.floor(t / b) - back;
    windows(first, first + len - width);
  }
  const nowBucket = Math.floor(now / b);
  const from = Math.max(history.since, nowBucket - Math.max(1, Math.round(opts.recentMs / b)));
  if (nowBucket - width >= from) windows(from, nowBucket - width);
  sums.sort((x, y) => x - y);
  return pick(sums, STANDBY_QUANTILE);
}
