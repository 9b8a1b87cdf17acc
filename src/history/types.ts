/**
 * The history store: a cache of what reconcile knows between cycles, and its leases. Terraform
 * state stays the truth for which nodes exist: losing the store loses no VM and orphans none —
 * the next cycle rebuilds the node set from state.
 *
 * Error contract: every method rejects with HistoryError when the store cannot be reached or its
 * data is invalid; reconcile then stops that cycle before anything is applied. acquireLease
 * resolves false (not an error) when another owner holds the lease.
 */
import { z } from 'zod';

export const NodeRecordSchema = z.object({
  name: z.string(),
  createdAt: z.number(),
  drainingSince: z.number().optional(),
  lastBusyAt: z.number().optional(),
  /** When a runner was first seen for it. */
  registeredAt: z.number().optional(),
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
});
export type PoolRecord = z.output<typeof PoolRecordSchema>;

export const SampleSchema = z.object({ at: z.number(), queued: z.number(), running: z.number(), arrivals: z.number(), nodes: z.number(), desired: z.number() });
export type Sample = z.output<typeof SampleSchema>;

export const EventSchema = z.object({ at: z.number(), pool: z.string(), kind: z.enum(['scale-up', 'scale-down', 'drain', 'resume', 'hold', 'error', 'apply', 'orphan']), detail: z.string() });
export type HistoryEvent = z.output<typeof EventSchema>;

/** The label sets of an emitter's recent jobs (the latest probe), for re-matching in `plan`. */
export const JobLabelsSchema = z.object({ at: z.number(), kind: z.enum(['gitlab', 'github', 'jenkins', 'replay']), sets: z.array(z.object({ labels: z.array(z.string()), labelExpression: z.string().optional(), jobs: z.number() })) });
export type JobLabels = z.output<typeof JobLabelsSchema>;

export class HistoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HistoryError';
  }
}

export interface HistoryStore {
  readonly kind: 'redis' | 'file';
  getPool(pool: string): Promise<PoolRecord | undefined>;
  putPool(record: PoolRecord): Promise<void>;
  /** One sample per cycle; kept for `retentionMs`. */
  addSample(pool: string, sample: Sample): Promise<void>;
  samples(pool: string, sinceMs: number): Promise<Sample[]>;
  addEvent(event: HistoryEvent): Promise<void>;
  putJobLabels(emitter: string, labels: JobLabels): Promise<void>;
  getJobLabels(emitter: string): Promise<JobLabels | undefined>;
  events(sinceMs: number): Promise<HistoryEvent[]>;
  /** True when this owner now holds the pool's lease for ttlMs (taken or renewed). */
  acquireLease(pool: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Releases the lease only if this owner holds it. */
  releaseLease(pool: string, owner: string): Promise<void>;
  /** Forget everything (tests, `--reset`). */
  clear(): Promise<void>;
  close(): Promise<void>;
}

export const SAMPLE_RETENTION_MS = 35 * 86_400_000;
export const EVENT_LIMIT = 10_000;
