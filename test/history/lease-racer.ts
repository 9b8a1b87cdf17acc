/**
 * A child process for lease-race.test.ts: opens its own history store (file or Redis) and, for
 * each round the parent sends, waits for the round's start instant, then tries to take the
 * round's (expired) lease and reports what it got. It exits when told to, so that no winner's
 * process is gone (the file store takes over the lease of a dead process) while others still try.
 */
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import type { HistoryStore } from '../../src/history/types.js';

export interface Round {
  round: number;
  pool: string;
  /** Wall-clock ms at which every racer tries at once. */
  at: number;
}
export type RacerReply = { ready: true } | { round: number; owner: string; token: number | null; error?: string };

const [kind, where, prefix, owner] = process.argv.slice(2) as [string, string, string, string];
const store: HistoryStore = kind === 'file' ? new FileHistoryStore(where) : new RedisHistoryStore(where, Date.now, prefix);
const send = (m: RacerReply) => process.send?.(m);

process.on('message', (m: Round | 'exit') => {
  if (m === 'exit') {
    void store.close().then(() => process.exit(0));
    return;
  }
  while (Date.now() < m.at) {
    /* spin: every racer starts within the same millisecond */
  }
  store.acquireLease(m.pool, owner, 60_000).then(
    (lease) => send({ round: m.round, owner, token: lease?.token ?? null }),
    (err: unknown) => send({ round: m.round, owner, token: null, error: String(err) }),
  );
});

// Connect (Redis) before saying ready, so connecting does not stagger the first round.
void store.getPool('warm-up').then(() => send({ ready: true }), (err: unknown) => send({ round: -1, owner, token: null, error: String(err) }));
