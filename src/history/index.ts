import { FileHistoryStore } from './file.js';
import { RedisHistoryStore } from './redis.js';
import type { HistoryStore } from './types.js';

export * from './types.js';

/** REDIS_URL selects Redis; unset, the embedded file store under the state directory. */
export function openHistory(env: Readonly<Record<string, string | undefined>>, stateDir: string, clock?: () => number): HistoryStore {
  return env.REDIS_URL ? new RedisHistoryStore(env.REDIS_URL, clock) : new FileHistoryStore(stateDir, clock);
}
