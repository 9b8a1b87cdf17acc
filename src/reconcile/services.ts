/**
 * Services mode (DESIGN "Events, standby and services"): a prober writes each emitter's
 * observation to Redis (prober.ts); any number of scalers (`reconcile --watch --from-redis`) take
 * pool cycles from one BullMQ queue on the same Redis and never probe.
 *
 * The queue only spreads the work; the pool's fenced lease (cycle.ts) stays the only mutex.
 * - Each pool has a Job Scheduler (`pool-<name>`) at its emitter's probe interval: interval jobs.
 * - A changed observation (or a webhook's) adds a job `change-<pool>-<version>`: one job per
 *   version, so a change is never folded into a job that is already running with an older
 *   observation. A change job whose version a cycle of the pool already saw (`done`) does nothing;
 *   one that finds the pool's lease held, or its replica shutting down, is retried (BullMQ
 *   attempts, `retryMs` apart) until a cycle that saw its version has run.
 * - A dead man's switch per pool: a replica that takes a pool's lease arms a delayed
 *   `takeover-<pool>` job due just after the lease would lapse unrenewed, and disarms it when it
 *   releases the lease (a queue of their own, `parmanu-takeovers`, with workers of their own: a
 *   takeover never waits for a free cycle slot). If the replica dies, the switch fires and another replica takes the pool
 *   over within the TTL; while the holder lives (renewing), the switch finds the lease held and
 *   waits again until the lease's new expiry.
 * - A replica that dies mid-job leaves its job stalled; BullMQ hands it to another worker once the
 *   job's lock (renewed while it runs, `lockMs`) lapses.
 * Job data is checked with zod when a worker takes it.
 */
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { ProbeResult } from '../emitters/types.js';
import type { HistoryStore, StoredObservation } from '../history/types.js';
import { reconcileOnce, type CycleResult, type ReconcileDeps } from './cycle.js';

export const QUEUE_NAME = 'parmanu-cycles';
/** The dead man's switches, apart from the cycles so that a takeover never waits for a free cycle slot. */
export const TAKEOVER_QUEUE = 'parmanu-takeovers';
/** BullMQ priorities (a job without one goes first): webhook cycles, then changes, then intervals. */
const PRIORITY = { change: 1, interval: 2 } as const;
/** What a pool's outcome says when another replica holds its lease (cycle.ts). */
export const LEASE_HELD = "another reconciler holds this pool's lease";

const JobData = z.object({
  pool: z.string().min(1),
  /** The observation version that asked for this cycle (0: an interval or takeover job). */
  version: z.number().int().nonnegative(),
  trigger: z.enum(['interval', 'change', 'webhook', 'takeover']),
  growOnly: z.boolean().optional(),
  /** When the change was seen (wall clock): the webhook latency metric counts from it. */
  at: z.number().optional(),
});
export type CycleJob = z.output<typeof JobData>;

/** `redis://…` → an ioredis connection for BullMQ (which needs maxRetriesPerRequest: null on workers). */
function connect(url: string, worker: boolean): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: worker ? null : 1, enableOfflineQueue: worker, connectTimeout: 2000, lazyConnect: false });
  r.on('error', () => undefined);
  return r;
}

/** Max of the version a pool's cycle saw; KEYS: done hash. ARGV: pool, version. */
const DONE = `
local c = tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > c then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
return 1`;

export interface QueueOptions {
  redisUrl: string;
  /** BullMQ's key prefix (default `parmanu`). */
  prefix?: string;
  /** Between two tries of a change job whose pool's lease is held. */
  retryMs?: number;
}

/** The producer side: schedulers, change jobs, and the `done` versions. */
export class CycleQueue {
  readonly queue: Queue;
  readonly takeovers: Queue;
  private readonly redis: Redis;
  private readonly queueRedis: Redis;
  private readonly prefix: string;
  readonly retryMs: number;

  constructor(o: QueueOptions) {
    this.prefix = o.prefix ?? 'parmanu';
    this.retryMs = o.retryMs ?? 1000;
    this.redis = connect(o.redisUrl, false);
    this.redis.defineCommand('parmanuDone', { numberOfKeys: 1, lua: DONE });
    this.queueRedis = connect(o.redisUrl, false);
    this.queue = new Queue(QUEUE_NAME, { connection: this.queueRedis, prefix: this.prefix });
    this.queue.on('error', () => undefined);
    this.takeovers = new Queue(TAKEOVER_QUEUE, { connection: this.queueRedis, prefix: this.prefix });
    this.takeovers.on('error', () => undefined);
  }

  private get doneKey(): string {
    return `${this.prefix}:${QUEUE_NAME}:done`;
  }

  /**
   * One Job Scheduler per pool at its interval (`every`), and none for a pool not given (a pool
   * gone from the policy whose nodes are all destroyed). Idempotent: every replica calls it at start.
   */
  async schedule(pools: ReadonlyArray<{ pool: string; intervalMs: number }>): Promise<void> {
    const want = new Map(pools.map((p) => [`pool-${p.pool}`, p]));
    for (const [id, p] of want) {
      const every = Math.max(250, Math.round(p.intervalMs));
      await this.queue.upsertJobScheduler(id, { every }, { name: 'cycle', data: { pool: p.pool, version: 0, trigger: 'interval' } satisfies CycleJob, opts: { removeOnComplete: true, removeOnFail: true, priority: PRIORITY.interval } });
    }
    for (const s of await this.queue.getJobSchedulers(0, -1)) {
      const id = s.key;
      if (id.startsWith('pool-') && !want.has(id)) await this.queue.removeJobScheduler(id);
    }
  }

  /** A cycle of `pool` because its observation changed to `version` (or a webhook event came). */
  async change(pool: string, version: number, o: { webhook?: boolean; at?: number } = {}): Promise<void> {
    const data: CycleJob = { pool, version, trigger: o.webhook ? 'webhook' : 'change', ...(o.webhook ? { growOnly: true } : {}), ...(o.at !== undefined ? { at: o.at } : {}) };
    // Retried while the lease is held (a cycle may run for many minutes): a day of tries.
    await this.queue.add('cycle', data, { jobId: `change-${pool}-${version}${o.webhook ? '-w' : ''}`, removeOnComplete: true, removeOnFail: true, attempts: Math.ceil(86_400_000 / this.retryMs), backoff: { type: 'fixed', delay: this.retryMs }, ...(o.webhook ? {} : { priority: PRIORITY.change }) });
  }

  private takeoverId(pool: string): string {
    return `takeover-${pool}`;
  }

  /** Arms the pool's dead man's switch: a takeover check `delayMs` from now (replacing one waiting). */
  async armTakeover(pool: string, delayMs: number): Promise<void> {
    await this.disarmTakeover(pool);
    await this.takeovers.add('cycle', { pool, version: 0, trigger: 'takeover' } satisfies CycleJob, { jobId: this.takeoverId(pool), delay: Math.max(0, Math.round(delayMs)), removeOnComplete: true, removeOnFail: true });
  }

  /** Disarms it (the lease was released); a switch already running is left to finish. */
  async disarmTakeover(pool: string): Promise<void> {
    const job = await this.takeovers.getJob(this.takeoverId(pool));
    if (job && (await job.isDelayed())) await job.remove().catch(() => undefined);
  }

  /** The highest observation version a finished cycle of `pool` saw. */
  async done(pool: string): Promise<number> {
    return Number((await this.redis.hget(this.doneKey, pool)) ?? 0);
  }

  async markDone(pool: string, version: number): Promise<void> {
    await (this.redis as unknown as { parmanuDone(k: string, p: string, v: string): Promise<unknown> }).parmanuDone(this.doneKey, pool, String(version));
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => undefined);
    await this.takeovers.close().catch(() => undefined);
    // BullMQ leaves a connection it was given open.
    this.queueRedis.disconnect();
    this.redis.disconnect();
  }
}

/** A retry of a change job (its pool's lease was held, or the replica is shutting down). */
class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryLater';
  }
}

/** Converts the prober's stored observation into the ProbeResult a cycle rests on. */
export function fromStored(emitter: string, stored: StoredObservation | undefined, now: number): ProbeResult {
  if (!stored) return { emitter, at: now, ok: false, partial: false, reason: `no observation of emitter ${emitter} in Redis yet (is a prober running? parmanu probe --watch)`, jobs: [], runners: [], meta: { durationMs: 0, apiCalls: 0, notModified: 0 } };
  const o = stored.observation;
  return { emitter, at: o.at, ok: o.ok, partial: o.partial, ...(o.reason !== undefined ? { reason: o.reason } : {}), jobs: o.jobs, runners: o.runners, meta: o.meta };
}

export interface ScalerOptions {
  queue: CycleQueue;
  redisUrl: string;
  /** Every cycle's dependencies (every replica serves every pool: `pools` and `observe` are set per job). */
  deps: ReconcileDeps;
  history: HistoryStore;
  /** Pool cycles this replica runs at once. */
  concurrency: number;
  /** The job lock (renewed while a cycle runs); a dead replica's job is handed on once it lapses. */
  lockMs: number;
  /** After each pool cycle. */
  onCycle?: (result: CycleResult, job: CycleJob, ms: number) => void;
  /** A job that failed for a reason other than the lease (its pool's cycle threw). */
  onError?: (pool: string, err: Error) => void;
}

/** The consumer side: a BullMQ worker that runs one pool's cycle per job. */
export class Scaler {
  readonly worker: Worker;
  /** Runs the dead man's switches (a takeover runs the pool's cycle here, outside the cycle slots). */
  readonly switchWorker: Worker;
  private readonly redis: Redis;
  private readonly switchRedis: Redis;

  constructor(private readonly o: ScalerOptions) {
    this.redis = connect(o.redisUrl, true);
    this.switchRedis = connect(o.redisUrl, true);
    this.worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: this.redis,
      prefix: (o.queue.queue.opts.prefix ?? 'parmanu'),
      concurrency: o.concurrency,
      lockDuration: o.lockMs,
      stalledInterval: Math.max(250, Math.floor(o.lockMs / 2)),
      // A stalled job (its worker died) is handed on this often before it counts as failed.
      maxStalledCount: 1000,
      autorun: false,
    });
    this.switchWorker = new Worker(TAKEOVER_QUEUE, (job, token) => this.process(job, token), {
      connection: this.switchRedis,
      prefix: (o.queue.queue.opts.prefix ?? 'parmanu'),
      concurrency: 4,
      lockDuration: o.lockMs,
      stalledInterval: Math.max(250, Math.floor(o.lockMs / 2)),
      maxStalledCount: 1000,
      autorun: false,
    });
    for (const w of [this.worker, this.switchWorker]) {
      w.on('error', () => undefined);
      w.on('failed', (job, err) => {
        const pool = JobData.safeParse(job?.data);
        if (pool.success && !(err instanceof RetryLater)) this.o.onError?.(pool.data.pool, err);
      });
    }
  }

  /** Starts taking jobs; resolves when the worker stops (close()). */
  run(): Promise<void> {
    return Promise.all([this.worker.run(), this.switchWorker.run()]).then(() => undefined);
  }

  /** Per pool, the switch's arm/disarm calls in the order the leases were taken and released. */
  private readonly switches = new Map<string, Promise<void>>();

  private toggle(pool: string, held: boolean): void {
    const prev = this.switches.get(pool) ?? Promise.resolve();
    const next = prev.then(() => (held ? this.o.queue.armTakeover(pool, this.o.deps.leaseTtlMs ?? this.o.lockMs) : this.o.queue.disarmTakeover(pool))).catch(() => undefined);
    this.switches.set(pool, next);
    void next.then(() => {
      if (this.switches.get(pool) === next) this.switches.delete(pool);
    });
  }

  private async process(job: Job, token?: string): Promise<void> {
    const parsed = JobData.safeParse(job.data);
    if (!parsed.success) return; // not ours to run: nothing is retried for it
    const d = parsed.data;
    const deps = this.o.deps;
    if (d.version > 0 && (await this.o.queue.done(d.pool)) >= d.version) return;
    if (deps.stopping?.()) throw new RetryLater('shutting down');
    const started = Date.now();
    let seen = 0;
    const result: CycleResult = await reconcileOnce({
        ...deps,
        pools: [d.pool],
        onLease: (pool, held, from) => {
          // The switch fires just after the lease would lapse unrenewed.
          this.toggle(pool, held);
          deps.onLease?.(pool, held, from);
        },
        ...(d.growOnly ? { growOnly: true } : {}),
        observe: async (emitter) => {
          const stored = await this.o.history.getObservation(emitter);
          seen = stored?.version ?? 0;
          return fromStored(emitter, stored, deps.clock());
        },
    });
    const out = result.pools.find((p) => p.pool === d.pool);
    this.o.onCycle?.(result, d, Date.now() - started);
    if (out?.skipped === LEASE_HELD) {
      // Another replica runs the pool now; it may have read an older observation than this job's.
      if (d.version > 0) throw new RetryLater(LEASE_HELD);
      // The switch of a live holder: look again just after its lease would lapse unrenewed.
      if (d.trigger === 'takeover' && token !== undefined) {
        const holder = await this.o.history.leaseHolder(d.pool).catch(() => undefined);
        await job.moveToDelayed(Date.now() + (holder?.expiresInMs ?? this.o.lockMs) + 100, token);
        throw new DelayedError();
      }
      return;
    }
    if (out?.skipped) {
      if (d.version > 0) throw new RetryLater(out.skipped);
      return;
    }
    if (out && seen > 0) await this.o.queue.markDone(d.pool, seen);
  }

  /** Stops taking jobs and waits for the running ones (their cycles stop before their next step once `stopping`). */
  async close(): Promise<void> {
    await Promise.all([this.worker.close(), this.switchWorker.close()]);
    // BullMQ leaves a connection it was given open.
    this.redis.disconnect();
    this.switchRedis.disconnect();
  }
}
