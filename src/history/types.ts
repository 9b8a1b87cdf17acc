/**
 * The history store: a cache of what reconcile knows between cycles, and its leases. Terraform
 * state stays the truth for which nodes exist: losing the store loses no VM and orphans none —
 * the next cycle rebuilds the node set from state.
 *
 * Error contract: every method rejects with HistoryError when the store cannot be reached;
 * reconcile then stops that cycle before anything is applied. Data that does not parse or validate
 * (a torn write, a crash mid-append, a hand edit) does not fail the store: a bad line or entry is
 * skipped, a whole record that is bad is set aside (renamed `…corrupt-<time>`, kept for a look) and
 * read as absent — the next cycle rebuilds it from Terraform state — each with a warning to
 * `onWarning` (every distinct warning once per store). acquireLease
 * resolves undefined (not an error) when another owner holds the lease. A fenced write whose lease
 * was superseded rejects with LeaseLostError (a HistoryError).
 *
 * Fencing semantics, the same in both stores: a write fenced with a lease is accepted iff no later
 * lease was handed out for the pool and the lease was not released. A lease that merely expired,
 * with nobody taking the pool since, still writes and can still be renewed: any other writer would
 * need a larger token, so nothing can have been written in between. Release advances the pool's
 * token, so a released lease neither writes nor renews.
 */
import { z } from 'zod';

export const NodeRecordSchema = z.object({
  name: z.string(),
  createdAt: z.number(),
  drainingSince: z.number().optional(),
  lastBusyAt: z.number().optional(),
  /** When a runner was first seen for it. */
  registeredAt: z.number().optional(),
  /** Why it drains (scale-down, outdated, broken, removed pool, lifetime). */
  drainReason: z.string().optional(),
  /** When its runner was first seen online (the end of booting). */
  onlineAt: z.number().optional(),
  /** Since when its runner, once online, has been seen offline or absent. */
  offlineSince: z.number().optional(),
  /** When it was last started from standby (what was seen of its runner before belongs to its previous run). */
  startedAt: z.number().optional(),
  /** Starts from standby that failed in a row (their apply failed: no capacity, a quota), and when the last did; cleared by a start. */
  startFailures: z.number().int().positive().optional(),
  startFailedAt: z.number().optional(),
  /** A stop decided for it that the plan did not make: decide destroys it instead of stopping it again. */
  stopFailedAt: z.number().optional(),
  /**
   * Created after a capacity fallback (src/reconcile/fallback.ts): the last failure's kind
   * (spot-capacity, spot-price, spot-count, zone-capacity), the market and subnet/zone it got, when.
   */
  fallback: z.object({ kind: z.string(), market: z.enum(['spot', 'on-demand']), where: z.string().optional(), at: z.number() }).optional(),
});
export type NodeRecord = z.output<typeof NodeRecordSchema>;

export const PoolRecordSchema = z.object({
  pool: z.string(),
  nodes: z.array(NodeRecordSchema),
  /** decide's memory (PoolMemory), handed back next cycle. */
  memory: z
    .object({
      targets: z.array(z.object({ at: z.number(), nodes: z.number() })),
      forecast: z
        .object({
          rateStep: z.number(),
          recStep: z.number(),
          rate: z.object({ likelihood: z.number(), burstSize: z.number(), ratePerMin: z.number(), samples: z.number() }),
          rec: z.object({ share: z.number(), size: z.number() }),
        })
        .optional(),
      /** Standby (decide's PoolMemory): the auto forecast, nodes booting to become standby, recent standby targets. */
      standbyForecast: z.object({ step: z.number(), slots: z.number() }).optional(),
      filling: z.array(z.string()).optional(),
      standbyTargets: z.array(z.object({ at: z.number(), nodes: z.number() })).optional(),
    })
    .optional(),
  /** The node names of the last successful apply, and a hash of the stack it rendered. */
  applied: z.object({ names: z.array(z.string()), at: z.number(), stackHash: z.string() }).optional(),
  /** When terraform last ran a full plan for this pool (drift check). */
  lastFullPlanAt: z.number().optional(),
  /** Runners registered for nodes that no VM backs yet: name → when. */
  pendingRunners: z.record(z.string(), z.number()).default({}),
  /** Job ids seen in recent cycles, to count arrivals. */
  seenJobs: z.array(z.string()).default([]),
  /**
   * Ids of the jobs the last successful probe saw running, to tell which jobs started since (their
   * waits go into the next sample). Absent in records written before waits were kept.
   */
  runningJobs: z.array(z.string()).optional(),
  /**
   * Side effects on runners recorded before they are done (intent first): a crash between the act
   * and its record leaves an intent the next cycle finishes or clears.
   */
  intents: z.array(z.object({ node: z.string(), action: z.enum(['register', 'pause', 'resume', 'deregister', 'destroy', 'start', 'stop']), at: z.number() })).default([]),
  /**
   * The runner release last resolved for the pool's new nodes (`requested`: the policy's version,
   * `kind`: the emitter kind), used when the next resolution fails.
   */
  release: z.object({ kind: z.string(), requested: z.string(), version: z.string(), sha256: z.record(z.string(), z.string()), at: z.number() }).optional(),
  /** The pool's last known configuration (pool and platform, no secrets), so a pool removed from the policy can still be drained. */
  config: z.object({ pool: z.record(z.string(), z.unknown()), platform: z.record(z.string(), z.unknown()), stack: z.string().optional() }).optional(),
  /**
   * BCDR failover (the pool's own stack's record only): each of its platforms' health — failed
   * Terraform runs in a row, when and why the last one failed — and the platform that got new
   * nodes last cycle (decide/failover.ts).
   */
  failover: z
    .object({
      active: z.string(),
      health: z.record(z.string(), z.object({ failures: z.int().min(0), lastFailureAt: z.number().optional(), lastError: z.string().optional() })),
      /** The pool's failover stacks (`<pool>@<platform>`) that hold nodes or a record: found again after the policy drops their platform. */
      stacks: z.array(z.string()).default([]),
    })
    .optional(),
});
export type PoolRecord = z.output<typeof PoolRecordSchema>;

export const SampleSchema = z.object({
  at: z.number(),
  queued: z.number(),
  running: z.number(),
  arrivals: z.number(),
  nodes: z.number(),
  desired: z.number(),
  /**
   * How long, in seconds, each job seen starting since the previous sample waited (queued → started),
   * as far as the probes saw it. Absent in samples written before it existed.
   */
  waits: z.array(z.number().nonnegative()).optional(),
});
export type Sample = z.output<typeof SampleSchema>;

export const EventSchema = z.object({
  at: z.number(),
  pool: z.string(),
  kind: z.enum(['scale-up', 'scale-down', 'drain', 'resume', 'hold', 'error', 'apply', 'orphan', 'fallback', 'failover']),
  detail: z.string(),
  /** Why (decide's reasons for a scale-up or scale-down). */
  reasons: z.array(z.string()).optional(),
  /**
   * The fencing record of an `apply` event: the lease it ran under (owner and fencing token) and
   * when the terraform apply ran, on the wall clock — two replicas' applies of a pool never overlap.
   */
  lease: z.object({ owner: z.string(), token: z.number(), from: z.number(), to: z.number() }).optional(),
});
export type HistoryEvent = z.output<typeof EventSchema>;

/**
 * One emitter's probe as the prober wrote it (services mode: `probe --watch` writes, `reconcile
 * --from-redis` reads): the ProbeResult of src/emitters, checked again when read back.
 */
export const ObservationSchema = z.object({
  emitter: z.string(),
  at: z.number(),
  ok: z.boolean(),
  partial: z.boolean(),
  reason: z.string().optional(),
  jobs: z.array(
    z.object({
      id: z.string(),
      labels: z.array(z.string()),
      labelExpression: z.string().optional(),
      status: z.enum(['queued', 'running', 'upcoming']),
      queuedAt: z.number(),
      startedAt: z.number().optional(),
      runner: z.string().optional(),
    }),
  ),
  runners: z.array(z.object({ id: z.string(), name: z.string(), labels: z.array(z.string()), pool: z.string(), online: z.boolean(), busy: z.boolean(), paused: z.boolean(), contacted: z.boolean().optional() })),
  /** Scheduled pipelines due soon and their jobs by label set (ProbeResult.scheduled; pre-warming). */
  scheduled: z
    .array(z.object({ id: z.string(), project: z.string(), description: z.string(), nextRunAt: z.number(), jobs: z.array(z.object({ labels: z.array(z.string()), count: z.number().int().min(0) })), runs: z.number().int().min(0) }))
    .optional(),
  meta: z.object({ durationMs: z.number(), apiCalls: z.number(), notModified: z.number(), rateLimitRemaining: z.number().optional() }),
});
export type Observation = z.output<typeof ObservationSchema>;

/**
 * The latest observation of an emitter with its version: the version grows (by at least one) only
 * when the observation's `digest` differs from the one before (what was seen changed), so scalers
 * can tell whether a pool's cycle saw the latest change; `at` moves with every write.
 */
export interface StoredObservation {
  version: number;
  digest: string;
  /** The prober that wrote it. */
  prober: string;
  observation: Observation;
}

/** Who holds a pool's (or any named) lease now, and for how much longer unless renewed. */
export interface LeaseHolder {
  owner: string;
  token: number;
  expiresInMs: number;
}

/** A UTC calendar month, `YYYY-MM`. */
export const MONTH_KEY = /^\d{4}-(?:0[1-9]|1[0-2])$/;

/**
 * What one stack's nodes cost (cost budgets): kept per stack (`<pool>`, or a failover stack
 * `<pool>@<platform>`), written under the pool's lease after each cycle (reconcile/budget.ts).
 * `running`, `stopped` and the prices are as of the last cycle (after its apply); `months` holds
 * the spend of the last few UTC months, each with `since`, when its record began (the month's
 * first millisecond when the spend carried on from the month before).
 */
export const SpendRecordSchema = z.object({
  pool: z.string().min(1),
  at: z.number(),
  running: z.number().int().nonnegative(),
  stopped: z.number().int().nonnegative(),
  hourlyCost: z.number().nonnegative(),
  stoppedHourlyCost: z.number().nonnegative(),
  months: z.record(z.string().regex(MONTH_KEY), z.object({ since: z.number(), spent: z.number().nonnegative(), nodeHours: z.number().nonnegative() })),
});
export type SpendRecord = z.output<typeof SpendRecordSchema>;
/** Whether a record named `target` is written under `pool`'s lease: the pool's own, or one of its failover stacks (`<pool>@<platform>`). */
export function ofLeasedPool(target: string, pool: string): boolean {
  return target === pool || target.startsWith(`${pool}@`);
}

/** The label sets of an emitter's recent jobs (the latest probe), for re-matching in `plan`. */
export const JobLabelsSchema = z.object({ at: z.number(), kind: z.enum(['gitlab', 'github', 'jenkins', 'replay']), sets: z.array(z.object({ labels: z.array(z.string()), labelExpression: z.string().optional(), jobs: z.number() })) });
export type JobLabels = z.output<typeof JobLabelsSchema>;

export class HistoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryError';
  }
}

/** A write was refused because the writer's lease is no longer the latest one (another reconciler took the pool). */
export class LeaseLostError extends HistoryError {
  constructor(message: string) {
    super(message);
    this.name = 'LeaseLostError';
  }
}

/**
 * A pool's lease: `token` is a fencing token, strictly greater than every token handed out for the
 * pool before (it survives the lease's expiry and release, and a restart of the store where the
 * store persists). Writes fenced with a lease are refused (LeaseLostError) once a later lease was
 * handed out for the pool.
 */
export interface Lease {
  pool: string;
  owner: string;
  token: number;
  /** Set by acquireLease when the lease before this one expired in another owner's hands (it was not released): that owner. */
  takenOverFrom?: string;
}

/** Checks a Lease handed to a store method (a token is a positive safe integer). */
export const LeaseSchema = z.object({ pool: z.string().min(1), owner: z.string(), token: z.number().int().positive().max(Number.MAX_SAFE_INTEGER) });

/** The lease argument, checked; HistoryError when it is not one. */
export function checkLease(lease: Lease): Lease {
  const l = LeaseSchema.safeParse(lease);
  if (!l.success) throw new HistoryError(`not a lease: ${l.error.issues[0]?.message}`);
  return l.data;
}

/** Receives a store's warnings about data it skipped or set aside (one line, no secrets). */
export type HistoryWarn = (message: string) => void;

/** Hands each distinct warning to the current sink once (a bad line read every cycle warns once). */
export class Warnings {
  private readonly seen = new Set<string>();
  sink: HistoryWarn | undefined;

  warn(message: string): void {
    if (this.seen.has(message) || this.seen.size >= 1000) return;
    this.seen.add(message);
    this.sink?.(message);
  }
}

export interface HistoryStore {
  readonly kind: 'redis' | 'file';
  /** Where warnings go (skipped lines, records set aside); settable at any time. */
  onWarning: HistoryWarn | undefined;
  getPool(pool: string): Promise<PoolRecord | undefined>;
  /** Fenced: rejects with LeaseLostError when `fence` is no longer the pool's latest lease. */
  putPool(record: PoolRecord, fence: Lease): Promise<void>;
  /** Fenced like putPool. Forgets the pool record (a removed pool whose nodes are all gone). */
  deletePool(pool: string, fence: Lease): Promise<void>;
  /** Names of every pool that has a record. */
  listPools(): Promise<string[]>;
  /** One sample per cycle; kept for `retentionMs`. Fenced like putPool when `fence` is given. */
  addSample(pool: string, sample: Sample, fence?: Lease): Promise<void>;
  samples(pool: string, sinceMs: number): Promise<Sample[]>;
  addEvent(event: HistoryEvent): Promise<void>;
  putJobLabels(emitter: string, labels: JobLabels): Promise<void>;
  getJobLabels(emitter: string): Promise<JobLabels | undefined>;
  events(sinceMs: number): Promise<HistoryEvent[]>;
  /**
   * The pool's lease for ttlMs with a new fencing token, or undefined when another owner holds an
   * unexpired one. Taking over an expired lease is atomic: of several takers exactly one wins.
   */
  acquireLease(pool: string, owner: string, ttlMs: number): Promise<Lease | undefined>;
  /** Extends a held lease by ttlMs (same token); false when it was lost (expired and taken, or released). */
  renewLease(lease: Lease, ttlMs: number): Promise<boolean>;
  /** Releases the lease only if it is still this one (same owner and token). */
  releaseLease(lease: Lease): Promise<void>;
  /**
   * Claims a webhook delivery id of an emitter (GitHub `X-GitHub-Delivery`, GitLab
   * `X-Gitlab-Event-UUID`): true the first time, false while an earlier claim of the same id is
   * kept (`ttlMs`, on the wall clock). Of concurrent claims of one id exactly one is true. Ids
   * are untrusted: the store keeps at most DELIVERY_ID_MAX characters of one (callers refuse longer).
   */
  claimDelivery(emitter: string, id: string, ttlMs: number): Promise<boolean>;
  /**
   * Writes an emitter's latest observation, unless the stored one is as recent or newer (`at`):
   * then nothing is written (`written: false`). The version grows when `digest` differs from the
   * stored one's (`changed`), to at least the store's clock in microseconds (it keeps growing
   * across a clear()); otherwise it stays.
   */
  putObservation(o: { observation: Observation; digest: string; prober: string }): Promise<{ version: number; changed: boolean; written: boolean }>;
  /** The emitter's latest observation; undefined when none was written (or it does not validate: set aside with a warning). */
  getObservation(emitter: string): Promise<StoredObservation | undefined>;
  /** Who holds the lease named `pool` now; undefined when nobody does (never taken, released or expired). */
  leaseHolder(pool: string): Promise<LeaseHolder | undefined>;
  /** A stack's spend record (cost budgets); undefined when none (or it does not validate: set aside with a warning). */
  getSpend(pool: string): Promise<SpendRecord | undefined>;
  /** Fenced like putPool, by the lease of the stack's pool (`ofLeasedPool`: `<pool>@<platform>` under `<pool>`'s). */
  putSpend(record: SpendRecord, fence: Lease): Promise<void>;
  /** Every stack's spend record, by pool name. */
  listSpend(): Promise<SpendRecord[]>;
  /**
   * When the spend ledger began (the first spend recorded since the store was new or cleared);
   * with `startAt`, begins it then if it has not begun (of concurrent callers the first wins).
   * Undefined when it has not begun. clear() forgets it: a month whose spend the ledger does not
   * cover from its start is unknown.
   */
  spendLedger(startAt?: number): Promise<number | undefined>;
  /** Resolves when the store answers (readiness); rejects with HistoryError when it cannot be reached. */
  ping(): Promise<void>;
  /** Forget everything (tests, `--reset`). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export const SAMPLE_RETENTION_MS = 35 * 86_400_000;
/** The longest webhook delivery id a store keeps (GitHub's and GitLab's are 36-character UUIDs). */
export const DELIVERY_ID_MAX = 200;
/** The file store keeps at most this many delivery claims (the ones expiring first go first). */
export const DELIVERY_LIMIT = 100_000;
export const EVENT_LIMIT = 10_000;
