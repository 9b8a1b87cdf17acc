/**
 * Schedule windows: a window opens at each cron match (in the schedule's timezone, so 07:00 Berlin
 * stays 07:00 across DST) and stays open for `duration`. Where several are open, the last listed
 * wins. Pure: `now` is passed in; results are memoized per schedule, since the simulator asks at
 * every probe and a cron look-up costs tens of microseconds.
 */
import { Cron } from 'croner';
import type { Schedule } from '../policy/types.js';

interface Cached {
  cron: Cron;
  /** The last match ≤ t and the next match > t for the last t asked, so nearby asks are O(1). */
  prev: number;
  next: number;
}
const cache = new Map<string, Cached>();

/** The latest cron match at or before `now` (epoch ms), or undefined if there is none. */
export function lastMatch(s: Pick<Schedule, 'cron' | 'timezone'>, now: number): number | undefined {
  const key = `${s.cron}\u0000${s.timezone}`;
  let c = cache.get(key);
  if (c && now >= c.prev && now < c.next) return c.prev;
  const cron = c?.cron ?? new Cron(s.cron, { timezone: s.timezone, paused: true });
  const prev = cron.previousRuns(1, new Date(now + 1))[0]?.getTime();
  const next = cron.nextRun(new Date(now))?.getTime() ?? Infinity;
  if (prev === undefined) return undefined;
  c = { cron, prev, next };
  if (cache.size > 1000) cache.clear();
  cache.set(key, c);
  return prev;
}

/** The schedule in force at `now` (the last listed whose window is open), with its index. */
export function activeSchedule(schedules: readonly Schedule[], now: number): { index: number; schedule: Schedule; openedAt: number } | undefined {
  for (let i = schedules.length - 1; i >= 0; i--) {
    const s = schedules[i] as Schedule;
    const at = lastMatch(s, now);
    if (at !== undefined && now < at + s.durationMs) return { index: i, schedule: s, openedAt: at };
  }
  return undefined;
}
