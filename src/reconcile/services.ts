/**
 * Services mode (DESIGN "Events, standby and services"): a prober writes each emitter's
 * observation to Redis (prober.ts); any number of scalers (`reconcile --watch --from-redis`) take
 * pool cycles from one BullMQ queue on the same Redis and never probe.
 *
 * The queue only spreads the work; the pool's fenced lease (cycle.ts) stays the only mutex.
 * - Each pool has a Job Scheduler (`pool-<name>`) at its emitter's probe interval: interval jobs.
 * - A changed observation (or a webhook's) adds a job `change-<pool>-<version>`: one job per
 *   version, so a change is never folded into a job that is already running with an older
 *   observation; the prober adds it only for the pools whose part of the observation changed (their
 *   jobs and runners), and raises the pool's `wanted` version. A change job does nothing when a
 *   full cycle of the pool already saw its version (`done`), or a newer change of the pool was
 *   enqueued (`wanted`: that version's own job covers it); one
 *   that finds the pool's lease held (by another replica, or by a cycle of its own replica) or
 *   its replica shutting down is retried every `retryMs`, and one whose cycle failed is retried
 *   with a backoff (doubling up to a minute), until a cycle that saw its version has run.
 *   Grow-only (webhook) cycles never count as having seen a version: the full cycle follows.
 * - A dead man's switch per held lease: a replica that takes a pool's lease arms a delayed
 *   `takeover-<pool>-<token>` job due just after the lease would lapse unrenewed, and disarms it
 *   when it releases that lease. The switches have a queue of their own (`parmanu-takeovers`) and
 *   worker slots of their own, so a takeover never waits for a free cycle slot. When a switch
 *   fires: the same lease still held (its holder renews) → it waits again until the lease's new
 *   expiry; the pool free (the holder died) → this replica takes the pool over, within the TTL;
 *   another lease held → nothing (its holder armed its own).
 * - A replica that dies mid-job leaves its job stalled; BullMQ hands it to another worker once the
 *   job's lock (renewed while it runs, `lockMs`) lapses.
 * - The newest live replica's policy wins: each replica keeps a heartbeat (its policy's digest and
 *   start time, lapsing after the TTL); a replica whose policy is not the newest live one's (an old
 *   pod of a rolling update) runs no cycle and changes no schedule, so two policies never
 *   reconcile the same fleet at once, and a replica that died stops counting within the TTL.
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
import { LEASE_HELD } from './lease.js';

export { LEASE_HELD } from './lease.js';

export const QUEUE_NAME = 'parmanu-cycles';
/** The dead man's switches, apart from the cycles so that a takeover never waits for a free cycle slot. */
export const TAKEOVER_QUEUE = 'parmanu-takeovers';
export const QUEUE_PREFIX = 'parmanu-queue';
/**
 * BullMQ priorities (a job without one goes first): webhook cycles first; changes and intervals
 * after them, first come first served (were changes ahead of intervals, a stream of changes of
 * some pools would starve the interval cycles of the others).
 */
const PRIORITY = { change: 1, interval: 1 } as const;
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
  /** A change: how many of its cycles failed so far (its backoff doubles with them). */
  failures: z.number().int().nonnegative().optional(),
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

/** Raises a pool's entry of a hash (`done`, `wanted`) to a version; KEYS: the hash. ARGV: pool, version. */
const RAISE = `
local c = tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > c then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
return 1`;

/** What a policy reconciles, without its secrets: equal digests, the same fleet. */
export function policyDigest(policy: Policy): string {
  const emitters = Object.fromEntries(Object.entries(policy.emitters).map(([name, e]) => [name, { type: e.type, probeIntervalMs: e.probeIntervalMs }]));
  // (A credentials file's path depends on the working directory it was resolved in.)
  const platforms = Object.fromEntries(Object.entries(policy.platforms).map(([name, p]) => [name, { ...p, credentialsFile: undefined }]));
  return createHash('sha256').update(JSON.stringify({ pools: policy.pools, platforms, emitters })).digest('hex').slice(0, 16);
}

const ReplicaRecord = z.object({ digest: z.string(), startedAt: z.number() });

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
    this.redis.defineCommand('parmanuRaise', { numberOfKeys: 1, lua: RAISE });
    this.queueRedis = connect(o.redisUrl, false);
    this.queue = new Queue(QUEUE_NAME, { connection: this.queueRedis, prefix: this.prefix });
    this.queue.on('error', () => undefined);
    this.takeovers = new Queue(TAKEOVER_QUEUE, { connection: this.queueRedis, prefix: this.prefix });
    this.takeovers.on('error', () => undefined);
  }

  private key(what: string): string {
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

  /**
   * A cycle of `pool` because its observation changed to `version` (`webhook`: a grow-only cycle
   * for a webhook event). `replaces`: the version before, whose job, if still waiting, goes (this
   * one covers it). An id already in the queue is not added twice.
   */
  async change(pool: string, version: number, o: { webhook?: boolean; at?: number; replaces?: number } = {}): Promise<void> {
    const id = (v: number) => `change-${pool}-${v}${o.webhook ? '-w' : ''}`;
    if (o.replaces !== undefined) {
      const old = await this.queue.getJob(id(o.replaces));
      if (old && !(await old.isActive())) await old.remove().catch(() => undefined);
    }
    const data: CycleJob = { pool, version, trigger: o.webhook ? 'webhook' : 'change', ...(o.webhook ? { growOnly: true } : {}), ...(o.at !== undefined ? { at: o.at } : {}) };
    // Tried again while the lease is held (a cycle may run for many minutes) or its cycle fails,
    // for a day (the worker gives up after it). No stack trace is kept per try (BullMQ would
    // append one to the job each time).
    await this.queue.add('cycle', data, { jobId: id(version), removeOnComplete: true, removeOnFail: true, attempts: 1_000_000, backoff: { type: 'parmanu' }, stackTraceLimit: 0, ...(o.webhook ? {} : { priority: PRIORITY.change }) });
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

  /**
   * Per pool, the highest version of `what` (0 for none): `done`, the latest a full cycle saw;
   * `wanted`, the latest whose change concerned the pool.
   */
  async versionsOf(what: 'done' | 'wanted', pools: readonly string[]): Promise<number[]> {
    if (!pools.length) return [];
    return (await this.redis.hmget(this.key(what), ...pools)).map((v) => Number(v ?? 0));
  }

  /** Raises the pool's `done` or `wanted` version to `version` (never lowers it). */
  async raise(what: 'done' | 'wanted', pool: string, version: number): Promise<void> {
    await (this.redis as unknown as { parmanuRaise(k: string, p: string, v: string): Promise<unknown> }).parmanuRaise(this.key(what), pool, String(version));
  }

  /**
   * A scaler's heartbeat: its policy's digest and start time, kept for `ttlMs` (renewed every third
   * of it). The policy in force is the newest live replica's: a replica that died stops counting
   * once its heartbeat lapses.
   */
  async heartbeat(owner: string, digest: string, startedAt: number, ttlMs: number): Promise<void> {
    await this.redis.multi().set(this.key(`replica:${owner}`), JSON.stringify({ digest, startedAt }), 'PX', Math.max(1, Math.round(ttlMs))).zadd(this.key('replicas'), startedAt, owner).exec();
  }

  /** A replica stopping: it no longer counts. */
  async leave(owner: string): Promise<void> {
    await this.redis.multi().del(this.key(`replica:${owner}`)).zrem(this.key('replicas'), owner).exec();
  }

  /** The policy digest of the newest live replica (undefined: none is live). Lapsed replicas are forgotten. */
  async newestPolicy(): Promise<string | undefined> {
    const owners = await this.redis.zrevrange(this.key('replicas'), 0, -1);
    for (const owner of owners) {
      const raw = await this.redis.get(this.key(`replica:${owner}`));
      if (raw === null) {
        await this.redis.zrem(this.key('replicas'), owner);
        continue;
      }
      try {
        const r = ReplicaRecord.safeParse(JSON.parse(raw));
        if (r.success) return r.data.digest;
      } catch {
        // not a heartbeat: skipped
      }
    }
    return undefined;
  }

  /** A cycle of `pool` soon, before the intervals (a cycle a shutdown stopped midway). */
  async resume(pool: string): Promise<void> {
    await this.queue.add('cycle', { pool, version: 0, trigger: 'interval' } satisfies CycleJob, { jobId: `resume-${pool}`, removeOnComplete: true, removeOnFail: true, stackTraceLimit: 0 });
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
  return { emitter, at: o.at, ok: o.ok, partial: o.partial, ...(o.reason !== undefined ? { reason: o.reason } : {}), jobs: o.jobs, runners: o.runners, ...(o.scheduled?.length ? { scheduled: o.scheduled } : {}), meta: o.meta };
}

export interface ScalerOptions {
  queue: CycleQueue;
  redisUrl: string;
  /** Every cycle's dependencies (every replica serves every pool: `pools` and `observe` are set per job). */
  deps: ReconcileDeps;
  history: HistoryStore;
  /** Pool cycles this replica runs at once (plus as many takeovers of a dead replica's pools). */
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
  private checkedAt = 0;
  private readonly startedAt = Date.now();
  private beat: NodeJS.Timeout | undefined;

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
        backoffStrategy: (_attempts: number, _type?: string, err?: Error, job?: { data: unknown }) => {
          if (err?.name === 'RetryLater') return retryMs;
          const failures = JobData.safeParse(job?.data).data?.failures ?? 1;
          return Math.min(MAX_BACKOFF_MS, retryMs * 2 ** Math.max(0, failures - 1));
        },
      },
    };
    this.worker = new Worker(QUEUE_NAME, (job, token) => this.process(job, token), { ...common, connection: this.redis, concurrency: o.concurrency });
    this.switchWorker = new Worker(TAKEOVER_QUEUE, (job, token) => this.process(job, token), { ...common, connection: this.switchRedis, concurrency: o.concurrency });
    for (const w of [this.worker, this.switchWorker]) {
      w.on('error', () => undefined);
      w.on('failed', (job, err) => {
        const pool = JobData.safeParse(job?.data);
        if (pool.success && err.name !== 'RetryLater' && err.name !== 'CycleFailed') this.o.onError?.(pool.data.pool, err);
      });
    }
  }

  /** Starts the heartbeat: from now this replica's policy counts, while it lives. Idempotent. */
  async start(): Promise<void> {
    if (this.beat) return;
    const ttl = this.o.lockMs;
    const beat = () => this.o.queue.heartbeat(this.o.deps.owner, this.o.policy, this.startedAt, ttl);
    this.beat = setInterval(() => void beat().catch(() => undefined), Math.max(100, Math.floor(ttl / 3)));
    this.beat.unref();
    await beat();
  }

  /** Starts taking jobs (and the heartbeat); resolves when the workers stop (close()). */
  async run(): Promise<void> {
    await this.start();
    await Promise.all([this.worker.run(), this.switchWorker.run()]);
  }

  /** Whether this replica's policy is the one in force (the newest live replica's; rechecked at most every second). */
  async isCurrent(): Promise<boolean> {
    if (this.current !== undefined && Date.now() - this.checkedAt < 1000) return this.current;
    const now = (await this.o.queue.newestPolicy()) === this.o.policy;
    this.checkedAt = Date.now();
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

  /** A job that cannot run now: a change is tried again soon, a switch looks again in a second, an interval job ends. */
  private async later(job: Job, d: CycleJob, token: string | undefined, why: string, delayMs = 1000): Promise<void> {
    if (d.version > 0) throw new RetryLater(why);
    if (d.trigger === 'takeover' && token !== undefined) {
      await job.moveToDelayed(Date.now() + delayMs, token);
      throw new DelayedError();
    }
    // An interval cycle a shutdown stopped midway: another replica goes on with it soon.
    if (why.startsWith('shutting down')) await this.o.queue.resume(d.pool).catch(() => undefined);
  }

  private async process(job: Job, token?: string): Promise<void> {
    const parsed = JobData.safeParse(job.data);
    if (!parsed.success) return; // not ours to run: nothing is retried for it
    const d = parsed.data;
    const deps = this.o.deps;
    if (deps.stopping?.()) return this.later(job, d, token, 'shutting down');
    if (!(await this.isCurrent())) return this.later(job, d, token, "this replica's policy is not the one the scalers run", this.o.lockMs);
    if (d.version > 0) {
      // A day of tries is enough: the interval cycles go on regardless.
      if (Date.now() - job.timestamp > 86_400_000) return;
      const [done, wanted] = await Promise.all([this.o.queue.versionsOf('done', [d.pool]), this.o.queue.versionsOf('wanted', [d.pool])]);
      if ((done[0] ?? 0) >= d.version) return;
      // A newer change of the pool was enqueued: its own job covers this one.
      if ((wanted[0] ?? 0) > d.version) return;
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
      if (d.version > 0) {
        await job.updateData({ ...d, failures: (d.failures ?? 0) + 1 }).catch(() => undefined);
        throw new CycleFailed(out.error);
      }
      return;
    }
    // A grow-only cycle did not do all that the version asks (no drain, stop or destroy).
    if (out && seen > 0 && !d.growOnly) await this.o.queue.raise('done', d.pool, seen);
  }

  /** Stops taking jobs and waits for the running ones (their cycles stop before their next step once `stopping`). */
  async close(): Promise<void> {
    await Promise.all([this.worker.close(), this.switchWorker.close()]);
    await Promise.all([...this.switches.values()]);
    clearInterval(this.beat);
    await this.o.queue.leave(this.o.deps.owner).catch(() => undefined);
    // BullMQ leaves a connection it was given open.
    this.redis.disconnect();
    this.switchRedis.disconnect();
  }
}
