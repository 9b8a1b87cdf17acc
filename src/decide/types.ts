/**
 * The values decide/ works on. Everything is plain data; time is epoch milliseconds passed in.
 */
import type { PoolConfig } from '../policy/types.js';

export type EmitterKind = 'gitlab' | 'github' | 'jenkins' | 'replay';

/** A CI job as an emitter reports it. */
export interface Job {
  id: string;
  /** GitLab tags, GitHub `runs-on` labels, replay labels; for Jenkins, the label expression's atoms. */
  labels: string[];
  /** Jenkins only: the label expression (`linux && (docker || podman)`); empty: any node. */
  labelExpression?: string;
  /** `upcoming`: created but waiting on earlier stages (GitLab `created` jobs of running pipelines). */
  status: 'queued' | 'running' | 'upcoming';
  queuedAt: number;
  startedAt?: number;
  /** Name of the runner (= node name) running it, when running. */
  runner?: string;
}

/** A node's runner as the CI platform reports it. */
export interface RunnerView {
  online: boolean;
  busy: boolean;
  paused: boolean;
  /** Jobs this runner has started since it registered (ephemeral nodes take one). */
  jobsStarted?: number;
}

/** A node of the pool: it exists in Terraform state (or is about to), joined on name with its runner. */
export interface NodeView {
  name: string;
  createdAt: number;
  /** When the node was drained (runner paused), if it was. */
  drainingSince?: number;
  /** Undefined: no runner registered under this name (booting, or never came up). */
  runner?: RunnerView;
  /** When the node was last seen busy, for choosing the longest idle victim. */
  lastBusyAt?: number;
}

/** What one probe of the pool's emitter saw, already matched to this pool. */
export interface PoolObservation {
  at: number;
  /** false: the probe failed; the pool holds. */
  ok: boolean;
  /** true: some data is missing (a page failed); scale-up only within maxStep, no scale-down. */
  partial: boolean;
  reason?: string;
  queued: number;
  running: number;
  upcoming: number;
}

/** Load history of one pool, in fixed time buckets, for `predict`. */
export interface DemandHistory {
  bucketMs: number;
  /** bucket index (floor(t / bucketMs)) → jobs that arrived (were first seen) in it; missing: none. */
  arrivals: ReadonlyMap<number, number>;
  /** Buckets before this index are outside the recorded history (not zero demand). */
  since: number;
}

/** What decide remembers between cycles; returned in the plan, handed back next cycle. */
export interface PoolMemory {
  /** Recent targets (node counts before the scale-down window), for the stabilization window. */
  targets: Array<{ at: number; nodes: number }>;
  /** The last forecast and the steps it was computed for: it changes only when they do. */
  forecast?: {
    rateStep: number;
    recStep: number;
    rate: { likelihood: number; burstSize: number; ratePerMin: number; samples: number };
    rec: { share: number; size: number };
  };
}

export interface DecideInput {
  pool: PoolConfig;
  now: number;
  /** Undefined when there is no observation at all. */
  observation: PoolObservation | undefined;
  /** An observation older than this (ms) is stale: the pool holds. */
  staleAfterMs: number;
  nodes: NodeView[];
  memory: PoolMemory | undefined;
  /** Load history for `predict`; undefined: no history yet. */
  history?: DemandHistory;
  /** The n-th new id of this cycle (deterministic in tests and the simulator). */
  newId: (n: number) => string;
}

export interface PoolPlan {
  pool: string;
  /** Nodes the pool should have after this plan settles. */
  desired: number;
  keep: string[];
  create: string[];
  drain: string[];
  destroy: string[];
  /** Drained nodes brought back into service instead of creating new ones. */
  resume: string[];
  /** Human-readable, in order of the decision. */
  reasons: string[];
  /** true when the pool held because of a failed or stale observation. */
  held: boolean;
  memory: PoolMemory;
}
