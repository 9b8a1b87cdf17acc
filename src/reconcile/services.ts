/**
 * Services mode (DESIGN "Events, standby and services"): a prober writes each emitter's
 * observation to Redis (prober.ts); any number of scalers (`reconcile --watch --from-redis`) take
 * pool cycles from one BullMQ queue on the same Redis and never probe.
 *
 * The queue only spreads the work; the pool's fenced lease (cycle.ts) stays the only mutex.
 * - Each pool has a Job Scheduler (`pool-<name>`) at its emitter's probe interval: interval jobs.
 * - A changed observation (or a webhook's) adds a job `change-<pool>-<version>`: one job per
 *   version, so a change is never folded into a job that is already running with an older
 *   observation. A change job does nothing when a cycle of the pool already saw its version
 *   (`done`), or a newer version of its emitter is stored (that version's own job covers it); one
 *   that finds the pool's lease held (by another replica, or by a cycle of its own replica) or
 *   its replica shutting down is retried every `retryMs`, and one whose cycle failed is retried
 *   with a backoff (doubling up to a minute), until a cycle that saw its version has run.
 *   Grow-only (webhook) cycles never count as having seen a version: the full cycle follows.
 * - A dead man's switch per held lease: a replica that takes a pool's lease arms a delayed
 *   `takeover-<pool>-<token>` job due just after the lease would lapse unrenewed, and disarms it
 *   when it releases that lease. The switches have a queue of their own (`parmanu-takeovers`) and
 *   one worker slot per replica, so a takeover never waits for a free cycle slot. When a switch
 *   fires: the same lease still held (its holder renews) → it waits again until the lease's new
 *   expiry; the pool free (the holder died) → this replica takes the pool over, within the TTL;
 *   another lease held → nothing (its holder armed its own).
 * - A replica that dies mid-job leaves its job stalled; BullMQ hands it to another worker once the
 *   job's lock (renewed while it runs, `lockMs`) lapses.
 * - The newest replica's policy wins: a replica records its policy's digest when it starts; a
 *   replica whose policy is not the recorded one (an old pod of a rolling update) runs no cycle
 *   and changes no schedule, so two policies never reconcile the same fleet at once.
 * Keys live under their own prefix (`parmanu-queue:`), apart from the history store's. Job data
 * is checked with zod when a worker takes it.
 */
import { createHash } from 'node:crypto';
import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { z } from 'zod';
import type { ProbeResult } from '../emitters/types.js';
import type { HistoryStore, StoredObservation } from '../history/types.js';
import type { Policy } from '../policy/types.js';
import { reconcileOnce, type CycleResult, type ReconcileDeps } from './cycle.js';

export const QUEUE_NAME = 'parmanu-cycles';
/** The dead man's switches, apart from the cycles so that a takeover never waits for a free cycle slot. */
export const TAKEOVER_QUEUE = 'parmanu-takeovers';
export const QUEUE_PREFIX = 'parmanu-queue';
/** BullMQ priorities (a job without one goes first): webhook cycles, then changes, then intervals. */
const PRIORITY = { change: 1, interval: 2 } as const;
/** What a pool's outcome says when another replica holds its lease (cycle.ts). */
export const LEASE_HELD = "another reconciler holds this pool's lease";
/** The longest wait between two tries of a change whose cycle failed. */
const MAX_BACKOFF_MS = 60_000;

const JobData = z.object({
  pool: z.string().min(1),
  /** The observation version that asked for this cycle (0: an interval or takeover job). */
  version: z.number().int().nonnegative(),
  trigger: z.enum(['interval', 'change', 'webhook', 'takeover']),
  growOnly: z.boolean().optional(),
  /** When the change was seen (wall clock): the webhook latency metric counts from it. */
  at: z.number().optional(),
  /** A switch: the fencing token of the lease it watches. */
  token: z.number().int().positive().optional(),
});
export type CycleJob = z.output<typeof JobData>;

/**
 * `redis://…` → an ioredis connection for BullMQ (which needs maxRetriesPerRequest: null on
 * workers); a producer's command fails after one reconnection attempt rather than waiting.
 */
function connect(url: string, worker: boolean): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: worker ? null : 1, connectTimeout: 2000 });
  r.on('error', () => undefined);
  return r;
}

/** Max of the version a pool's cycle saw; KEYS: done hash. ARGV: pool, version. */
const DONE = `
local c = tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > c then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
return 1`;

/** What a policy reconciles, without its secrets: equal digests, the same fleet. */
export function policyDigest(policy: Policy): string {
  const emitters = Object.fromEntries(Object.entries(policy.emitters).map(([name, e]) => [name, { type: e.type, probeIntervalMs: e.probeIntervalMs }]));
  return createHash('sha256').update(JSON.stringify({ pools: policy.pools, platforms: policy.platforms, emitters })).digest('hex').slice(0, 16);
}

const PolicyRecord = z.object({ digest: z.string(), owner: z.string(), at: z.number() });

export interface QueueOptions {
  redisUrl: string;
  /** The queue's key prefix (default `parmanu-queue`). */
  prefix?: string;
  /** Between two tries of a change job whose pool's lease is held. */
  retryMs?: number;
}

/** The producer side: schedulers, change jobs, switches, the `done` versions and the current policy. */
export class CycleQueue {
  readonly queue: Queue;
  readonly takeovers: Queue;
  readonly prefix: string;
  readonly retryMs: number;
  private readonly redis: Redis;
  private readonly queueRedis: Redis;

  constructor(o: QueueOptions) {
    this.prefix = o.prefix ?? QUEUE_PREFIX;
    this.retryMs = o.retryMs ?? 1000;
    this.redis = connect(o.redisUrl, false);
    this.redis.defineCommand('parmanuDone', { numberOfKeys: 1, lua: DONE });
    this.queueRedis = connect(o.redisUrl, false);
    this.queue = new Queue(QUEUE_NAME, { connection: this.queueRedis, prefix: this.prefix });
    this.queue.on('error', () => undefined);
    this.takeovers = new Queue(TAKEOVER_QUEUE, { connection: this.queueRedis, prefix: this.prefix });
    this.takeovers.on('error', () => undefined);
  }

  private key(what: 'done' | 'policy'): string {
    return `${this.prefix}:${what}`;
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

  /** A cycle of `pool` because its observation changed to `version` (`webhook`: a grow-only cycle for a webhook event). */
  async change(pool: string, version: number, o: { webhook?: boolean; at?: number } = {}): Promise<void> {
    const data: CycleJob = { pool, version, trigger: o.webhook ? 'webhook' : 'change', ...(o.webhook ? { growOnly: true } : {}), ...(o.at !== undefined ? { at: o.at } : {}) };
    // Retried while the lease is held (a cycle may run for many minutes) or its cycle fails: for a
    // day at most. No stack trace is kept per try (BullMQ would append one to the job each time).
    await this.queue.add('cycle', data, { jobId: `change-${pool}-${version}${o.webhook ? '-w' : ''}`, removeOnComplete: true, removeOnFail: true, attempts: Math.ceil(86_400_000 / this.retryMs), backoff: { type: 'parmanu' }, stackTraceLimit: 0, ...(o.webhook ? {} : { priority: PRIORITY.change }) });
  }

  private switchId(pool: string, token: number): string {
    return `takeover-${pool}-${token}`;
  }

  /** Arms the switch of the pool's lease `token`: a takeover check `delayMs` from now. */
  async armTakeover(pool: string, token: number, delayMs: number): Promise<void> {
    await this.takeovers.add('cycle', { pool, version: 0, trigger: 'takeover', token } satisfies CycleJob, { jobId: this.switchId(pool, token), delay: Math.max(0, Math.round(delayMs)), removeOnComplete: true, removeOnFail: true, stackTraceLimit: 0 });
  }

  /** Disarms it (the lease was released); a switch already running is left to finish (it finds another lease or none). */
  async disarmTakeover(pool: string, token: number): Promise<void> {
    const job = await this.takeovers.getJob(this.switchId(pool, token));
    if (job && (await job.isDelayed())) await job.remove().catch(() => undefined);
  }

  /** The highest observation version a finished (full) cycle of `pool` saw. */
  async done(pool: string): Promise<number> {
    return Number((await this.redis.hget(this.key('done'), pool)) ?? 0);
  }

  async markDone(pool: string, version: number): Promise<void> {
    await (this.redis as unknown as { parmanuDone(k: string, p: string, v: string): Promise<unknown> }).parmanuDone(this.key('done'), pool, String(version));
  }

  /** Records `digest` as the policy the scalers run (the newest replica's). */
  async claimPolicy(digest: string, owner: string): Promise<void> {
    await this.redis.set(this.key('policy'), JSON.stringify({ digest, owner, at: Date.now() }));
  }

  /** The policy the scalers run now (undefined: none recorded, or not readable). */
  async currentPolicy(): Promise<z.output<typeof PolicyRecord> | undefined> {
    const raw = await this.redis.get(this.key('policy'));
    if (raw === null) return undefined;
    try {
      const r = PolicyRecord.safeParse(JSON.parse(raw));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {
    await this.queue.close().catch(() => undefined);
    await this.takeovers.close().catch(() => undefined);
    // BullMQ leaves a connection it was given open.
    this.queueRedis.disconnect();
    this.redis.disconnect();
  }
}

/** A change job tried again: its pool's lease was held, or the replica is shutting down (every `retryMs`). */
class RetryLater extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RetryLater';
  }
}

/** A change job whose cycle failed (already logged by the cycle): tried again with a backoff. */
class CycleFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CycleFailed';
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
  /** Pool cycles this replica runs at once (plus one takeover of a dead replica's pool). */
  concurrency: number;
  /** The job lock (renewed while a cycle runs); a dead replica's job is handed on once it lapses. */
  lockMs: number;
  /** The digest of this replica's policy (policyDigest). */
  policy: string;
  /** After each pool cycle. */
  onCycle?: (result: CycleResult, job: CycleJob, ms: number) => void;
  /** A job that failed for a reason of its own (not a lease held, nor a cycle that failed and said why). */
  onError?: (pool: string, err: Error) => void;
  /** This replica's policy is not (or again) the one the scalers run. */
  onPolicy?: (current: boolean) => void;
}

/** The consumer side: BullMQ workers that run one pool's cycle per job. */
export class Scaler {
  readonly worker: Worker;
  /** Runs the dead man's switches (a takeover runs the pool's cycle here, outside the cycle slots). */
  readonly switchWorker: Worker;
  private readonly redis: Redis;
  private readonly switchRedis: Redis;
  /** Pools whose cycle runs on this replica now: a second job of one of them waits (its lease is this replica's). */
  private readonly running = new Set<string>();
  /** Per pool, the switch's arm/disarm calls in the order the leases were taken and released. */
  private readonly switches = new Map<string, Promise<void>>();
  private current: boolean | undefined;

  constructor(private readonly o: ScalerOptions) {
    this.redis = connect(o.redisUrl, true);
    this.switchRedis = connect(o.redisUrl, true);
    const retryMs = o.queue.retryMs;
    const common = {
      prefix: o.queue.prefix,
      lockDuration: o.lockMs,
      stalledInterval: Math.max(250, Math.floor(o.lockMs / 2)),
      // A stalled job (its worker died) is handed on this often before it counts as failed.
      maxStalledCount: 1000,
      autorun: false,
      settings: {
        // A held lease or a shutdown: again soon; a failed cycle: doubling, up to a minute.
        backoffStrategy: (attemptsMade: number, _type?: string, err?: Error) => (err?.name === 'RetryLater' ? retryMs : Math.min(MAX_BACKOFF_MS, retryMs * 2 ** Math.max(0, attemptsMade - 1))),
      },
    };
    this.worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token), { ...common, connection: this.redis, concurrency: o.concurrency });
    this.switchWorker = new Worker(TAKEOVER_QUEUE, (job, token) => this.process(job, token), { ...common, connection: this.switchRedis, concurrency: 1 });
    for (const w of [this.worker, this.switchWorker]) {
      w.on('error', () => undefined);
      w.on('failed', (job, err) => {
        const pool = JobData.safeParse(job?.data);
        if (pool.success && err.name !== 'RetryLater' && err.name !== 'CycleFailed') this.o.onError?.(pool.data.pool, err);
      });
    }
  }

  /** Starts taking jobs; resolves when the workers stop (close()). */
  run(): Promise<void> {
    return Promise.all([this.worker.run(), this.switchWorker.run()]).then(() => undefined);
  }

  /** Whether this replica's policy is the one the scalers run now (the newest replica's). */
  async isCurrent(): Promise<boolean> {
    const now = (await this.o.queue.currentPolicy())?.digest === this.o.policy;
    if (now !== this.current) this.o.onPolicy?.(now);
    this.current = now;
    return now;
  }

  private toggle(pool: string, held: boolean, token: number): void {
    const prev = this.switches.get(pool) ?? Promise.resolve();
    // The switch fires just after the lease would lapse unrenewed.
    const next = prev.then(() => (held ? this.o.queue.armTakeover(pool, token, (this.o.deps.leaseTtlMs ?? this.o.lockMs) + 100) : this.o.queue.disarmTakeover(pool, token))).catch(() => undefined);
    this.switches.set(pool, next);
    void next.then(() => {
      if (this.switches.get(pool) === next) this.switches.delete(pool);
    });
  }

  /** The emitter of a pool of the policy (undefined for a pool removed from it). */
  private emitterOf(pool: string): string | undefined {
    return this.o.deps.policy.pools.find((p) => p.name === pool)?.emitter;
  }

  /** A job that cannot run now: a change is tried again soon, a switch looks again in a second, an interval job ends. */
  private async later(job: Job, d: CycleJob, token: string | undefined, why: string, delayMs = 1000): Promise<void> {
    if (d.version > 0) throw new RetryLater(why);
    if (d.trigger === 'takeover' && token !== undefined) {
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new DelayedError();
    }
  }

  private async process(job: Job, token?: string): Promise<void> {
    const parsed = JobData.safeParse(job.data);
    if (!parsed.success) return; // not ours to run: nothing is retried for it
    const d = parsed.data;
    const deps = this.o.deps;
    if (deps.stopping?.()) return this.later(job, d, token, 'shutting down');
    if (!(await this.isCurrent())) return this.later(job, d, token, "this replica's policy is not the one the scalers run", this.o.lockMs);
    if (d.version > 0) {
      if ((await this.o.queue.done(d.pool)) >= d.version) return;
      // A newer version of the emitter is stored: its own job covers this one.
      const emitter = this.emitterOf(d.pool);
      const latest = emitter ? (await this.o.history.getObservation(emitter))?.version : undefined;
      if (latest !== undefined && latest > d.version) return;
    }
    // Running on this replica (its own lease: the same owner could take it again), or held
    // elsewhere: no cycle is started for it. (Marked before the first await: two jobs of one
    // pool taken at once never both pass.)
    if (this.running.has(d.pool)) return this.later(job, d, token, LEASE_HELD, this.o.lockMs);
    this.running.add(d.pool);
    const started = Date.now();
    let seen = 0;
    let result: CycleResult;
    try {
      const holder = await this.o.history.leaseHolder(d.pool);
      if (holder) {
        if (d.trigger === 'takeover' && holder.token !== d.token) return; // another lease: its holder armed its own switch
        return await this.later(job, d, token, LEASE_HELD, holder.expiresInMs + 100);
      }
      result = await reconcileOnce({
        ...deps,
        pools: [d.pool],
        onLease: (pool, held, lease) => {
          this.toggle(pool, held, lease.token);
          deps.onLease?.(pool, held, lease);
        },
        ...(d.growOnly ? { growOnly: true } : {}),
        observe: async (emitter) => {
          const stored = await this.o.history.getObservation(emitter);
          seen = stored?.version ?? 0;
          return fromStored(emitter, stored, deps.clock());
        },
      });
    } finally {
      this.running.delete(d.pool);
    }
    const out = result.pools.find((p) => p.pool === d.pool);
    this.o.onCycle?.(result, d, Date.now() - started);
    if (out?.skipped) {
      const holderNow = out.skipped === LEASE_HELD ? await this.o.history.leaseHolder(d.pool).catch(() => undefined) : undefined;
      return this.later(job, d, token, out.skipped, (holderNow?.expiresInMs ?? 1000) + 100);
    }
    if (out?.error) {
      // The cycle said why (its log, its error event); the change is tried again with a backoff.
      if (d.version > 0) throw new CycleFailed(out.error);
      return;
    }
    // A grow-only cycle did not do all that the version asks (no drain, stop or destroy).
    if (out && seen > 0 && !d.growOnly) await this.o.queue.markDone(d.pool, seen);
  }

  /** Stops taking jobs and waits for the running ones (their cycles stop before their next step once `stopping`). */
  async close(): Promise<void> {
    await Promise.all([this.worker.close(), this.switchWorker.close()]);
    await Promise.all([...this.switches.values()]);
    // BullMQ leaves a connection it was given open.
    this.redis.disconnect();
    this.switchRedis.disconnect();
  }
}
