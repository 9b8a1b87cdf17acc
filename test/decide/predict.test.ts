import { describe, expect, it } from 'vitest';
import { DEFAULT_FORECAST, forecast, isWeekend, rateForecast, recurringForecast } from '../../src/decide/predict.js';
import { MIN, T0 } from '../helpers.js';

const DAY = 86_400_000;
const history = (entries: Array<[number, number]>, since = T0 - 30 * DAY) => ({ bucketMs: MIN, arrivals: new Map(entries.map(([t, n]) => [Math.floor(t / MIN), n])), since: Math.floor(since / MIN) });

describe('forecast', () => {
  it('classifies weekends in UTC', () => {
    expect(isWeekend(Date.parse('2025-01-04T12:00:00Z'))).toBe(true); // Saturday
    expect(isWeekend(Date.parse('2025-01-06T00:00:00Z'))).toBe(false); // Monday
  });

  it('is empty without history', () => {
    expect(forecast(history([], T0), T0)).toMatchObject({ warmSlots: 0, samples: 0, likelihood: 0 });
  });

  it('sees a recurring burst on comparable days (weekdays only for a weekday)', () => {
    const entries: Array<[number, number]> = [];
    for (let d = 1; d <= 14; d++) entries.push([T0 - d * DAY + 2 * MIN, 40]); // every day incl. weekends
    const rec = recurringForecast(history(entries), T0);
    expect(rec).toEqual({ share: 1, size: 40 });
    expect(forecast(history(entries), T0).warmSlots).toBe(40);
    // Two minutes later the burst is behind: nothing in the next 3 minutes.
    expect(recurringForecast(history(entries), T0 + 2 * MIN).share).toBe(0);
  });

  it('ignores a burst seen on too few comparable days', () => {
    const entries: Array<[number, number]> = [[T0 - 1 * DAY + 2 * MIN, 40], [T0 - 2 * DAY + 2 * MIN, 40]];
    expect(recurringForecast(history(entries), T0).share).toBeLessThan(DEFAULT_FORECAST.recurringShare);
  });

  it('turns a burst rate into a likelihood and keeps a typical burst warm above the threshold', () => {
    // Every weekday, a 3-job burst every 10 minutes in the hour ahead: 0.1 bursts/minute.
    const entries: Array<[number, number]> = [];
    for (let d = 1; d <= 14; d++) for (let m = 0; m < 60; m += 10) entries.push([T0 - d * DAY + m * MIN, 3]);
    const r = rateForecast(history(entries), T0, { ...DEFAULT_FORECAST, recentWeight: 0 });
    expect(r.ratePerMin).toBeCloseTo(0.1, 5);
    expect(r.likelihood).toBeCloseTo(1 - Math.exp(-1), 5);
    expect(r.burstSize).toBe(3);
    expect(forecast(history(entries), T0, { ...DEFAULT_FORECAST, recentWeight: 0, recurringShare: 2 }).warmSlots).toBe(3);
    expect(forecast(history(entries), T0, { ...DEFAULT_FORECAST, recentWeight: 0, recurringShare: 2, threshold: 0.7 }).warmSlots).toBe(0);
  });

  it('blends in today\'s recent rate', () => {
    const entries: Array<[number, number]> = [];
    for (let m = 5; m <= 60; m += 5) entries.push([T0 - m * MIN, 2]); // busy last hour today, nothing on past days
    const r = rateForecast(history(entries), T0, { ...DEFAULT_FORECAST, recentWeight: 0.5 });
    expect(r.ratePerMin).toBeCloseTo(0.5 * (12 / 60), 5);
  });
});
