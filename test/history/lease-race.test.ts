/**
 * Takeover of an expired lease is atomic across processes: several child processes, each with its
 * own store instance, race for the same expired lease, round after round; exactly one wins each
 * round, with a token larger than the expired lease's, and the expired holder's fenced writes are
 * refused afterwards. (Promise.all in one process proves nothing for the file store: its critical
 * section is synchronous, so one process never interleaves with itself.)
 *
 * The children run test/history/lease-racer.ts bundled by esbuild (vite's own TypeScript
 * transpiler) into one CommonJS file, since Node 20 runs no TypeScript by itself.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { LeaseLostError, type HistoryStore } from '../../src/history/types.js';
import { startRedis, type RedisServer } from '../redis-server.js';
import type { RacerReply, Round } from './lease-racer.js';

const RACERS = 6;
const ROUNDS = 40;

let redis: RedisServer;
let work: string;
let racer: string;
beforeAll(async () => {
  redis = await startRedis();
  work = mkdtempSync(join(tmpdir(), 'parmanu-race-'));
  racer = join(work, 'racer.cjs');
  await build({ entryPoints: [join(import.meta.dirname, 'lease-racer.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: racer, logLevel: 'error' });
});
afterAll(async () => {
  await redis.stop();
  rmSync(work, { recursive: true, force: true });
});

class Racers {
  private readonly procs: ChildProcess[] = [];
  private readonly replies: RacerReply[] = [];
  private waiters: Array<() => void> = [];

  constructor(args: (i: number) => string[]) {
    for (let i = 0; i < RACERS; i++) {
      const p = fork(racer, args(i), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      p.on('message', (m: RacerReply) => {
        this.replies.push(m);
        for (const w of this.waiters.splice(0)) w();
      });
      this.procs.push(p);
    }
  }

  /** Waits until `n` replies arrived (in total), then returns them all. */
  async until(n: number, what: string): Promise<RacerReply[]> {
    const deadline = Date.now() + 20_000;
    while (this.replies.length < n) {
      if (Date.now() > deadline) throw new Error(`racers: ${this.replies.length}/${n} replies for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
    return this.replies.slice();
  }

  send(m: Round): void {
    for (const p of this.procs) p.send(m);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.send('exit');
            setTimeout(() => p.kill('SIGKILL'), 5000).unref();
          }),
      ),
    );
  }
}

/** Races RACERS processes for ROUNDS expired leases; returns per round the winners' tokens. */
async function race(store: HistoryStore, args: (i: number) => string[], expire: (pool: string) => Promise<{ token: number }>) {
  const racers = new Racers(args);
  try {
    const ready = await racers.until(RACERS, 'start-up');
    expect(ready.filter((r) => 'error' in r && r.error)).toEqual([]);
    const rounds: Array<{ stale: number; winners: number[]; errors: string[] }> = [];
    for (let round = 0; round < ROUNDS; round++) {
      const pool = `race-${round}`;
      const stale = await expire(pool);
      racers.send({ round, pool, at: Date.now() + 25 });
      const got = (await racers.until(RACERS * (round + 2), `round ${round}`)).filter((r): r is Extract<RacerReply, { round: number }> => 'round' in r && r.round === round);
      rounds.push({ stale: stale.token, winners: got.flatMap((r) => (r.token === null ? [] : [r.token])), errors: got.flatMap((r) => (r.error ? [r.error] : [])) });
      // The expired holder's late write is refused: its lease was taken over.
      await expect(store.putPool({ pool, nodes: [], pendingRunners: {}, seenJobs: [], intents: [] }, { pool, owner: 'stale', token: stale.token })).rejects.toThrowError(LeaseLostError);
    }
    return rounds;
  } finally {
    await racers.stop();
  }
}

describe('takeover of an expired lease, raced by several processes', () => {
  it('file store: exactly one process wins each round', async () => {
    const dir = join(work, 'state');
    // The expired leases are taken on a clock an hour behind: the racers (wall clock) see them expired.
    const past = new FileHistoryStore(dir, () => Date.now() - 3_600_000);
    const rounds = await race(past, (i) => ['file', dir, '', `racer-${i}`], async (pool) => {
      const lease = (await past.acquireLease(pool, 'stale', 1000))!;
      // Every other round, the pool's mutex is also left behind by a dead process: the racers must
      // break it (exactly one breaks it, none breaks a live holder) before taking the lease.
      if (pool.endsWith('1') || pool.endsWith('3') || pool.endsWith('5') || pool.endsWith('7') || pool.endsWith('9')) {
        const mutex = join(dir, 'history', 'leases', `${pool}.mutex`);
        mkdirSync(mutex);
        writeFileSync(join(mutex, 'dead-holder'), JSON.stringify({ pid: 2 ** 22 + 1, host: hostname(), at: Date.now() }));
      }
      return lease;
    });
    for (const r of rounds) {
      expect(r.errors).toEqual([]);
      expect(r.winners).toHaveLength(1);
      expect(r.winners[0]).toBeGreaterThan(r.stale);
    }
  }, 120_000);

  it('redis store: exactly one process wins each round', async () => {
    const prefix = `parmanu:race${Math.random().toString(36).slice(2)}:`;
    const s = new RedisHistoryStore(redis.url, Date.now, prefix);
    const rounds = await race(s, (i) => ['redis', redis.url, prefix, `racer-${i}`], async (pool) => {
      const l = (await s.acquireLease(pool, 'stale', 1))!;
      await new Promise((r) => setTimeout(r, 5));
      return l;
    });
    for (const r of rounds) {
      expect(r.errors).toEqual([]);
      expect(r.winners).toHaveLength(1);
      expect(r.winners[0]).toBeGreaterThan(r.stale);
    }
    await s.close();
  }, 120_000);
});
