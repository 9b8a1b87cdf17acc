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

/**
 * A scheduled pipeline expected soon (GitLab pipeline schedules): when it is due and the jobs its
 * previous runs had, by label set. `description` and `project` come from the CI platform: untrusted.
 */
export interface ScheduledRun {
  /** The platform's schedule id. */
  id: string;
  /** The project's path (or id). */
  project: string;
  description: string;
  /** When it is due (epoch ms; GitLab `next_run_at`). */
  nextRunAt: number;
  /** The jobs expected, by label set (the most of the last runs read). */
  jobs: Array<{ labels: string[]; count: number }>;
  /** How many previous runs the estimate rests on. */
  runs: number;
}

/** One pool's share of a scheduled run: its jobs that would go to the pool (decide/prewarm.ts). */
export interface ScheduledDemand {
  /** When the run is due (epoch ms). */
  at: number;
  jobs: number;
  /** Which schedule, for the reason (untrusted text, made printable by prewarm.ts). */
  schedule: string;
  project: string;
  /** How many previous runs the estimate rests on. */
  runs: number;
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
  /**
   * The VM's power state (Terraform state: AWS `aws_ec2_instance_state`, GCP `desired_status`,
   * local `input.power`); undefined: running. A stopped node is standby: never capacity.
   */
  power?: 'running' | 'stopped';
  /**
   * When it was last started from standby. Its boot clock (bootTimeout) runs from here, and what
   * was seen of its runner before (onlineAt, offlineSince, seenRunner) belongs to its previous
   * run: execute resets them on start.
   */
  startedAt?: number;
  /**
   * Starts from standby that failed in a row (an apply that tried to start it failed: no capacity
   * in the zone, a quota), and when the last one did. decide starts it again only after a pause,
   * and destroys it after `MAX_START_FAILURES`.
   */
  startFailures?: number;
  startFailedAt?: number;
  /** A stop decided earlier that the plan did not make: the node is destroyed rather than stopped again. */
  stopFailedAt?: number;
}

/** Why a node drains. */
export type DrainReason = 'scale-down' | 'outdated' | 'lifetime' | 'broken' | 'spent' | 'removed' | 'standby' | 'failover';

/**
 * A node's lifecycle state as decide sees it (DESIGN "Node lifecycle (v2)"): booting → ready →
 * busy/idle → draining → destroyed; broken (never online within bootTimeout, or offline longer
 * than that); outdated (capacity until drained). Vanished nodes never reach decide: observe
 * forgets them. `standby`: stopped, kept ready to start (never capacity).
 */
export type NodeState = 'booting' | 'ready' | 'busy' | 'outdated' | 'broken' | 'spent' | 'draining' | 'standby';

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
  /** Scheduled runs due soon whose jobs would come to this pool (pre-warm, `scaling.prewarm`). */
  scheduled?: ScheduledDemand[];
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
  /** `standby: auto`: job slots of the burst expected within one boot at this time, for the step it was computed for. */
  standbyForecast?: { step: number; slots: number };
  /** Nodes created to become standby: booted once (caches warm, runner registered), then stopped. */
  filling?: string[];
  /** Recent standby targets: the target falls only to the highest of the last scaleDownAfter. */
  standbyTargets?: Array<{ at: number; nodes: number }>;
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
  /**
   * These nodes are on a platform the pool is leaving (BCDR failover, decide/failover.ts): nothing
   * is created or started here; `keep` of the nodes that serve stay (online idle ones first) until
   * the platform the pool moves to serves, the others drain (a busy one finishes its job first)
   * and go. Standby here goes.
   */
  evacuate?: { keep: number; reason: string };
  /**
   * A cycle driven by a webhook event: scale-up only (no drain, destroy or stop; demand that is
   * lower than capacity is not recorded as a target). Polling cycles do the rest.
   */
  growOnly?: boolean;
  /**
   * How long a fresh node takes to boot and come online (`standby: auto` sizes for one boot);
   * default: the median boot of the pool's nodes (`observedBootMs`), else 90 s.
   */
  bootMs?: number;
  /**
   * Cost budgets (`budgetCap` in decide/budget.ts): the running nodes the pool may have at most,
   * and why. A hard ceiling in the single final clamp, below `min` and schedules too: creates and
   * starts stop at it (standby is counted by the caller at its stopped cost); nodes over it go
   * through the normal scale-down (idle ones, minLifetime and disruptionBudget kept), a busy one
   * never. Absent: no budget covers the pool.
   */
  budget?: { maxNodes: number; reason: string };
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
  /**
   * Standby (stopped) nodes to start, before any create: GitHub gets a new JIT config, a GitLab
   * runner is unpaused, a Jenkins agent reconnects. Not in `keep` (which lists the nodes left as they are, stopped ones included).
   */
  start: string[];
  /**
   * Drained idle nodes (paused in an earlier cycle, confirmed idle like a destroy) to stop into
   * standby instead of destroying. Not in `keep`.
   */
  stop: string[];
  /** The standby target this cycle (stopped nodes wanted); 0 without `scaling.standby`. */
  standby: number;
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
