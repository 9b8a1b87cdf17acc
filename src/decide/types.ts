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

/** A node of the pool: it exists in Terraform state, joined on name with its (marked) runner. */
export interface NodeView {
  name: string;
  createdAt: number;
  /** When the node was drained (runner paused), if it was. */
  drainingSince?: number;
  /** Why it drains: a node drained for scale-down may be resumed; outdated, broken or removed ones never are. */
  drainReason?: DrainReason;
  /** Undefined: no marked runner under this name (not registered, or its registration was removed). */
  runner?: RunnerView;
  /** When the node was last seen busy, for choosing the longest idle victim. */
  lastBusyAt?: number;
  /** When its runner was first seen online; undefined: never (the node is booting, or broken). */
  onlineAt?: number;
  /** Since when its runner, once online, has been offline or absent. */
  offlineSince?: number;
  /** Its runner has been listed by the platform at least once (an ephemeral runner that is gone since ran its job). */
  seenRunner?: boolean;
  /** Its recorded spec differs from the policy's (machine, image, disk, OS, runner settings, bootstrap). */
  outdated?: boolean;
}

/** Why a node drains. */
export type DrainReason = 'scale-down' | 'outdated' | 'lifetime' | 'broken' | 'spent' | 'removed';

/**
 * A node's lifecycle state as decide sees it (DESIGN "Node lifecycle (v2)"): booting → ready →
 * busy/idle → draining → destroyed; broken (never online within bootTimeout, or offline longer
 * than that); outdated (capacity until drained). Vanished nodes never reach decide: observe
 * forgets them.
 */
export type NodeState = 'booting' | 'ready' | 'busy' | 'outdated' | 'broken' | 'spent' | 'draining';

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
  /** The pool is no longer in the policy: every node drains and goes, nothing is created. */
  removed?: boolean;
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
  /** Why each node in `drain` that was not draining before drains now. */
  drainReasons: Record<string, DrainReason>;
  /** Every node's state before this plan. */
  states: Record<string, NodeState>;
  /** Human-readable, in order of the decision. */
  reasons: string[];
  /** true when the pool held because of a failed or stale observation. */
  held: boolean;
  memory: PoolMemory;
}
