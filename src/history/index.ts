import { FileHistoryStore } from './file.js';
import { RedisHistoryStore } from './redis.js';
import { HistoryError, type HistoryStore, type HistoryWarn } from './types.js';

export * from './types.js';

/**
 * REDIS_URL selects Redis; unset, the embedded file store under the state directory. Throws
 * HistoryError, before any I/O on Redis, when REDIS_URL is not a redis:// or rediss:// URL or
 * the state directory cannot be created. `onWarning` receives the store's warnings (data skipped or set aside);
 * `leaseClock` dates the file store's leases (default: `clock`; Redis expires leases on its own clock).
 */
export function openHistory(env: Readonly<Record<string, string | undefined>>, stateDir: string, clock?: () => number, onWarning?: HistoryWarn, leaseClock?: () => number): HistoryStore {
  if (env.REDIS_URL) {
    let u: URL | undefined;
    try {
      u = new URL(env.REDIS_URL);
    } catch {
      u = undefined;
    }
    // Only the scheme is echoed: the URL may hold a password.
    if (!u || !['redis:', 'rediss:'].includes(u.protocol)) throw new HistoryError(`REDIS_URL must be a redis:// or rediss:// URL${u ? `, not ${u.protocol}//…` : ''}`);
    return new RedisHistoryStore(env.REDIS_URL, clock, undefined, onWarning);
  }
  try {
    return new FileHistoryStore(stateDir, clock, onWarning, leaseClock ?? clock);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new HistoryError(`cannot use ${stateDir} as the state directory (PARMANU_STATE_DIR): ${code === 'ENOTDIR' ? 'a file is in the way' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message)}`);
  }
}
