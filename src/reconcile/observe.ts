/**
 * observe: the pool as it is, from the truth (DESIGN "Node lifecycle (v2)"). The nodes are the
 * ones in the pool's Terraform state (read with `terraform state pull`, for every backend), joined
 * by name with the runners that carry this pool's ownership marker; the history record only adds
 * what no platform remembers (when a node was drained and why, when its runner was first online).
 * Pure: the caller reads the state, the probe and the history; observe joins them.
 *
 * - A node in state whose history is missing is adopted (its creation time from the state).
 * - A node the history knew that is gone from the state vanished (spot reclaim, deleted by hand):
 *   it is forgotten and its runner removed, never re-created under its old name.
 * - A marked runner of this pool with no VM is an orphan (a crash between register and apply, or
 *   a VM that vanished).
 * - A runner seen paused with no drain recorded was paused by a cycle that crashed before its
 *   record: the node is draining from now.
 * Online tracking (onlineAt, offlineSince) moves only on a complete probe: a failed or partial
 * probe says nothing about a runner it did not list.
 * - A stopped node (standby: its power state in Terraform state) is expected to have its runner
 *   offline, paused or gone: nothing of its runner is tracked while it is stopped (not broken, not
 *   draining anew, not an orphan). Its last start from standby comes from the history record.
 */
import { assignJobs } from '../decide/match.js';
import { scheduledDemand } from '../decide/prewarm.js';
import type { EmitterKind, Job, NodeView, ScheduledDemand } from '../decide/types.js';
import type { ProbeResult, RunnerInfo } from '../emitters/types.js';
import type { NodeRecord, PoolRecord } from '../history/types.js';
import type { Policy, PoolConfig } from '../policy/types.js';
import type { StateNode } from '../terraform/state.js';

export interface PoolTruth {
  observed: { queued: number; running: number; nodes: number; busy: number };
  upcoming: number;
  jobs: Job[];
  /** Scheduled runs due soon whose jobs would come to this pool, matched as queued jobs are (decide/prewarm.ts). */
  scheduled: ScheduledDemand[];
  /** This pool's marked runners by name. */
  runners: Map<string, RunnerInfo>;
  /** The nodes in state, as decide sees them. */
  views: NodeView[];
  /** The node records to keep (state ⋈ history), updated with what this observation saw. */
  records: NodeRecord[];
  /** Nodes the history knew that the state no longer has. */
  vanished: string[];
  /** This pool's marked runners that no VM in state backs. */
  orphans: RunnerInfo[];
  /** Nodes whose runner was found paused with no drain recorded. */
  pausedUnrecorded: string[];
  /** Nodes whose credential resources are in the state (the others are rendered without them). */
  withCredential: Set<string>;
  /** The nodes in state by name (power state, credential generation, local input). */
  stateNodes: ReadonlyMap<string, StateNode>;
}

export interface ObserveInput {
  policy: Policy;
  pool: PoolConfig;
  kind: EmitterKind;
  probe: ProbeResult | undefined;
  rec: PoolRecord | undefined;
  state: readonly StateNode[];
  /** The spec new nodes get (stacks/spec.ts); a node recorded with another is outdated. */
  spec: string;
  now: number;
  /** Pools of the same emitter in the policy, in policy order, for matching jobs. */
  poolsOfEmitter: readonly PoolConfig[];
  /** The pool is no longer in the policy: it gets no queued job, only the jobs its runners run. */
  removed?: boolean;
  /**
   * Failover: the pool has several stacks. `elsewhere`: the nodes of its other stacks (their
   * runners are theirs, never this stack's orphans, and the jobs they run are theirs); `leaving`:
   * this stack's platform is one the pool is leaving — it gets no queued job, only the jobs its
   * runners run.
   */
  placement?: { elsewhere: ReadonlySet<string>; leaving: boolean };
}

export function observe(input: ObserveInput): PoolTruth {
  const { pool, probe, rec, now, kind } = input;
  const complete = probe?.ok === true && !probe.partial;
  const runners = new Map<string, RunnerInfo>();
  const elsewhere = input.placement?.elsewhere ?? new Set<string>();
  for (const r of probe?.runners ?? []) if (r.pool === pool.name && !elsewhere.has(r.name)) runners.set(r.name, r);
  const inState = new Set(input.state.map((n) => n.name));
  const known = new Map((rec?.nodes ?? []).map((n) => [n.name, n]));

  const records: NodeRecord[] = [];
  const views: NodeView[] = [];
  const pausedUnrecorded: string[] = [];
  for (const s of input.state) {
    const r: NodeRecord = { ...(known.get(s.name) ?? { name: s.name, createdAt: s.createdAt ?? now }) };
    const runner = runners.get(s.name);
    const stopped = s.power === 'stopped';
    // A start recorded as intended whose node runs: the apply was made, its record was not (a crash).
    const start = rec?.intents.find((i) => i.node === s.name && i.action === 'start');
    if (start && !stopped && (r.startedAt ?? -Infinity) < start.at) restart(r, start.at);
    if (complete && !stopped) {
      if (runner?.online) {
        r.onlineAt ??= now;
        delete r.offlineSince;
      } else {
        // A runner that has connected before (the platform says so) was online once, even if the history was lost.
        if (r.onlineAt === undefined && runner?.contacted === true) r.onlineAt = r.createdAt;
        if (r.onlineAt !== undefined) r.offlineSince ??= now;
      }
      if (runner?.busy) r.lastBusyAt = now;
      if (runner && r.registeredAt === undefined) r.registeredAt = now;
      if (runner?.paused && r.drainingSince === undefined) {
        r.drainingSince = now;
        r.drainReason = 'scale-down';
        pausedUnrecorded.push(s.name);
      }
    }
    records.push(r);
    const v: NodeView = { name: r.name, createdAt: r.createdAt };
    if (r.drainingSince !== undefined) v.drainingSince = r.drainingSince;
    if (r.drainReason !== undefined) v.drainReason = r.drainReason as NonNullable<NodeView['drainReason']>;
    if (r.lastBusyAt !== undefined) v.lastBusyAt = r.lastBusyAt;
    if (r.onlineAt !== undefined) v.onlineAt = r.onlineAt;
    if (r.offlineSince !== undefined) v.offlineSince = r.offlineSince;
    if (r.registeredAt !== undefined) v.seenRunner = true;
    if (s.power !== undefined) v.power = s.power;
    if (r.startedAt !== undefined) v.startedAt = r.startedAt;
    if (r.startFailures !== undefined) v.startFailures = r.startFailures;
    if (r.startFailedAt !== undefined) v.startFailedAt = r.startFailedAt;
    if (r.stopFailedAt !== undefined) v.stopFailedAt = r.stopFailedAt;
    if (s.spec !== undefined && s.spec !== input.spec) v.outdated = true;
    // A node made before specs were recorded: outdated when its machine type or image, as the state holds them, differ.
    else if (s.spec === undefined && s.machine && ((s.machine.type !== undefined && pool.machine.type !== undefined && s.machine.type !== pool.machine.type) || (s.machine.image !== undefined && pool.machine.image !== undefined && s.machine.image !== pool.machine.image))) v.outdated = true;
    if (runner) v.runner = { online: runner.online, busy: runner.busy, paused: runner.paused };
    views.push(v);
  }
  // Nodes Parmanu destroyed itself (a destroy intent on record: a crash after the apply) did not vanish.
  const destroyed = new Set((rec?.intents ?? []).filter((i) => i.action === 'destroy').map((i) => i.node));
  const vanished = (rec?.nodes ?? []).filter((n) => !inState.has(n.name) && !destroyed.has(n.name)).map((n) => n.name);
  const orphans = [...runners.values()].filter((r) => !inState.has(r.name));

  // Jobs: matched among the emitter's pools; a runner's pool is the one its marker names.
  const runnerPool = new Map((probe?.runners ?? []).map((r) => [r.name, r.pool]));
  const owner = (runner: string) => runnerPool.get(runner);
  const runsHere = (j: Job) => j.runner !== undefined && owner(j.runner) === pool.name && !elsewhere.has(j.runner);
  const jobs = !probe?.ok ? [] : input.removed || input.placement?.leaving ? probe.jobs.filter(runsHere) : (assignJobs(kind, probe.jobs, input.poolsOfEmitter, owner).byPool.get(pool.name) ?? []).filter((j) => j.runner === undefined || !elsewhere.has(j.runner));
  const count = (status: string) => jobs.filter((j) => j.status === status).length;
  return {
    observed: { queued: count('queued'), running: count('running'), nodes: views.length, busy: views.filter((v) => v.runner?.busy).length },
    upcoming: count('upcoming'),
    jobs,
    scheduled: !probe?.ok || input.removed || input.placement?.leaving ? [] : (scheduledDemand(kind, probe.scheduled, input.poolsOfEmitter).get(pool.name) ?? []),
    runners,
    views,
    records,
    vanished,
    orphans,
    pausedUnrecorded,
    withCredential: new Set(input.state.filter((n) => n.credential).map((n) => n.name)),
    stateNodes: new Map(input.state.map((n) => [n.name, n])),
  };
}

/** A probe as the output shows it: a failed or stale one makes its pools hold. */
export interface ProbeStatus {
  ok: boolean;
  /** Some of it could not be read (ok, but the pool grows within maxStep only). */
  partial: boolean;
  /** Why it failed or is partial; null when it is whole. */
  reason: string | null;
  /** Seconds since the observation, on the cycle's clock. */
  ageS: number;
  /** Older than the pool's staleness limit (twice its emitter's probe interval): the pool holds. */
  stale: boolean;
}

/** How old a pool's probe may be before the pool holds: twice its emitter's probe interval. */
export function staleAfterMs(policy: Pick<Policy, 'emitters'>, pool: Pick<PoolConfig, 'emitter'>): number {
  return 2 * (policy.emitters[pool.emitter]?.probeIntervalMs ?? 30_000);
}

/** `probe` as the output shows it at `now`. */
export function probeStatus(probe: ProbeResult, now: number, staleAfter: number): ProbeStatus {
  return { ok: probe.ok, partial: probe.partial, reason: probe.reason ?? null, ageS: Math.max(0, Math.round((now - probe.at) / 100) / 10), stale: now - probe.at > staleAfter };
}

/** A node started from standby: started at `at`, back in service, nothing seen yet of its runner's new run, no failed start counted. */
export function restart(r: NodeRecord, at: number): void {
  r.startedAt = at;
  delete r.startFailures;
  delete r.startFailedAt;
  delete r.drainingSince;
  delete r.stopFailedAt;
  delete r.drainReason;
  delete r.onlineAt;
  delete r.offlineSince;
  delete r.registeredAt;
}
