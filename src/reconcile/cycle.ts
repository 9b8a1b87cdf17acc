/**
 * One reconcile cycle, read top to bottom (DESIGN "Node lifecycle (v2)"):
 *
 *   probe every emitter once
 *   for each pool — the policy's, and pools removed from it that still have nodes — in parallel:
 *     lease (fenced, renewed while the cycle runs)
 *     observe   terraform state pull ⋈ the pool's marked runners ⋈ the history  (observe.ts)
 *     decide    pure: the plan as a value                                     (src/decide)
 *     execute   the one place that touches runners and terraform              (execute.ts)
 *     release
 *
 * One pool failing never stops the others.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import pLimit from 'p-limit';
import { decide } from '../decide/decide.js';
import type { DemandHistory, PoolPlan } from '../decide/types.js';
import type { Emitter, ProbeResult } from '../emitters/types.js';
import type { HistoryStore, Lease, PoolRecord } from '../history/types.js';
import type { StateNode } from '../terraform/state.js';
import type { PlatformConfig, Policy, PoolConfig } from '../policy/types.js';
import type { Terraform } from '../terraform/runner.js';
import { nodeSpec } from '../../stacks/spec.js';
import { executePlan, pullState, ShuttingDown, type HookPoint, type PoolRun } from './execute.js';
import { emptyOutcome, reconcileStacks, type StackLine } from './failover.js';
import { stacksOf, type PoolStackRef } from '../policy/stacks.js';
import { poolBudget } from './budget.js';
import { LEASE_HELD, LeaseKeeper } from './lease.js';
import { poolDir, recordedStacks, removedPools, savedPlatformName, stackDirs } from './known-pools.js';
import { observe, probeStatus, staleAfterMs as staleAfter, type PoolTruth, type ProbeStatus } from './observe.js';

export { poolDir } from './known-pools.js';
export type { HookPoint } from './execute.js';
export { ShuttingDown } from './execute.js';

export interface PoolOutcome {
  pool: string;
  observed: { queued: number; running: number; nodes: number; busy: number };
  desired: number;
  create: string[];
  drain: string[];
  destroy: string[];
  /** Standby nodes started this cycle, and drained idle nodes stopped into standby. */
  start?: string[];
  stop?: string[];
  terraform: { ran: boolean; add: number; change: number; destroy: number };
  durationMs: number;
  /** Time spent running terraform this cycle. */
  terraformMs: number;
  reasons: string[];
  /** Each node's lifecycle state before this cycle's plan (booting, ready, busy, outdated, broken, spent, draining). */
  states: Record<string, string>;
  /** Nodes that had vanished from the cloud: forgotten, their runners removed. */
  vanished: string[];
  /** Capacity fallbacks of new nodes this cycle (src/reconcile/fallback.ts), one per step: re-rendered on-demand, moved to the next subnet/zone, or dropped. */
  fallbacks?: Array<{ node: string; kind: 'spot-capacity' | 'spot-price' | 'spot-count' | 'zone-capacity'; to: 'on-demand' | 'next-zone' | 'dropped'; where?: string }>;
  /** Set for a pool no longer in the policy (or torn down with `teardown`), drained and destroyed. */
  removed?: boolean;
  /** Set for a pool torn down on purpose (`teardown`) although the policy still has it. */
  teardown?: boolean;
  /** The nodes whose runner reported a job when observed (set once the pool was observed). */
  busyNodes?: string[];
  /** Set when the pool failed this cycle: nothing after the failing step was done. */
  error?: string;
  /** Set when another reconciler held the pool's lease, or the process was shutting down. */
  skipped?: string;
  /** Set when this cycle took the pool's lease from an owner whose lease expired unreleased (a dead replica). */
  takenOverFrom?: string;
  /** The probe this pool's plan rests on (absent when its emitter was not probed). */
  probe?: ProbeStatus;
  /**
   * Failover (a pool with several stacks, DESIGN "Node identity"): the platform its new nodes go
   * to, and one line per stack that has nodes or ran (the pool's counts and `terraform` are their sums).
   */
  platform?: string;
  stacks?: StackLine[];
}

export type { ProbeStatus } from './observe.js';

export interface CycleResult {
  /** No pool failed and every probe succeeded (a failed probe makes its pools hold). */
  ok: boolean;
  pools: PoolOutcome[];
  probes: Array<{ emitter: string; ok: boolean; partial: boolean; durationMs: number; apiCalls: number }>;
}

export interface ReconcileDeps {
  policy: Policy;
  emitters: Map<string, Emitter>;
  history: HistoryStore;
  terraform: Terraform;
  stateDir: string;
  clock: () => number;
  /** This reconciler's identity for leases. */
  owner: string;
  dryRun?: boolean;
  /** Only these pools. */
  pools?: readonly string[];
  /** A cycle woken by a webhook event: decide may only grow pools (no drain, destroy or stop); polling does the rest. */
  growOnly?: boolean;
  /**
   * Pools torn down on purpose this run (`parmanu destroy`): reconciled like pools removed from
   * the policy (every node drained, destroyed once idle, runners removed, record deleted when empty).
   */
  teardown?: readonly string[];
  /** Pools reconciled at once. */
  parallel?: number;
  /**
   * Where each emitter's observation comes from; absent: the emitter is probed (`emitter.probe()`).
   * Services mode (`reconcile --from-redis`) reads the prober's latest observation instead: the
   * scaler never probes, and an observation older than twice its probe interval holds the pool.
   */
  observe?: (emitter: string) => Promise<ProbeResult>;
  /**
   * True once the process is shutting down (SIGTERM): a pool's cycle stops before its next step
   * (the step running finishes; nothing is left that the next cycle does not finish) and its lease
   * is released.
   */
  stopping?: () => boolean;
  /** A pool's lease was taken (`takenOverFrom`: from an owner whose lease expired unreleased) or released. */
  onLease?: (pool: string, held: boolean, lease: { token: number; takenOverFrom?: string }) => void;
  /** How often a full plan runs even when nothing changed (drift check). */
  driftCheckMs?: number;
  /** A marked runner that no VM backs, and that no crash of ours explains, is removed after this long. */
  orphanGraceMs?: number;
  leaseTtlMs?: number;
  newId?: () => string;
  /** Structured progress: probes, decisions, terraform steps, errors. */
  log?: (event: CycleEvent) => void;
  /**
   * Called at each named point of a pool's cycle (tests and the soak inject faults there: a job
   * landing between the idle check and the apply, a crash after a pause and before its record).
   */
  hook?: (point: HookPoint, info: { pool: string; nodes: readonly string[] }) => void | Promise<void>;
}

export interface CycleEvent {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  pool?: string;
  emitter?: string;
  step?: 'probe' | 'observe' | 'decide' | 'pause' | 'register' | 'idle-check' | 'terraform-init' | 'terraform-state' | 'terraform-plan' | 'terraform-show' | 'terraform-apply' | 'terraform-refresh' | 'deregister';
  durationMs?: number;
  [key: string]: unknown;
}

const HISTORY_DAYS = 28;

export async function reconcileOnce(deps: ReconcileDeps): Promise<CycleResult> {
  const selected = (name: string) => !deps.pools || deps.pools.includes(name);
  const pools: Array<{ pool: PoolConfig; platform: PlatformConfig | undefined; removed: boolean }> = deps.policy.pools.filter((p) => selected(p.name)).map((p) => ({ pool: p, platform: deps.policy.platforms[p.platform], removed: deps.teardown?.includes(p.name) === true }));
  const problems: PoolOutcome[] = [];
  // The history may be unreachable: each pool then fails on its lease with the reason. (When only
  // pools of the policy are selected — a scaler's one pool — none of them can be a removed one.)
  const onlyPolicyPools = deps.pools !== undefined && deps.pools.every((name) => deps.policy.pools.some((p) => p.name === name));
  const removed = onlyPolicyPools ? [] : await removedPools(deps.policy, deps.stateDir, deps.history).catch((err: Error) => {
    deps.log?.({ level: 'warn', msg: `cannot list pools removed from the policy: ${err.message}` });
    return [];
  });
  for (const k of removed) {
    if ('problem' in k) {
      if (selected(k.name)) problems.push({ ...emptyOutcome(k.name), removed: true, error: k.problem });
      continue;
    }
    if (selected(k.pool.name)) pools.push({ pool: k.pool, platform: k.platform, removed: true });
  }

  const used = new Set(pools.map((p) => p.pool.emitter));
  const probes = new Map<string, ProbeResult>();
  await Promise.all(
    [...used].map(async (name) => {
      const e = deps.emitters.get(name);
      if (!e) return;
      const p = deps.observe ? await deps.observe(name) : await e.probe();
      probes.set(name, p);
      deps.log?.({ level: p.ok ? (p.partial || p.reason ? 'warn' : 'debug') : 'warn', msg: p.ok ? (p.partial ? `probe partial: ${p.reason}` : p.reason ? `probed (${p.reason})` : 'probed') : `probe failed: ${p.reason}`, emitter: name, step: 'probe', durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls, jobs: p.jobs.length });
    }),
  );
  // (From Redis, the prober records them.)
  if (!deps.dryRun && !deps.observe) await recordJobLabels(deps.history, probes, deps.emitters);
  const limit = pLimit(deps.parallel ?? 4);
  // The failover stacks' working directories, listed once for the cycle's pools.
  const dirs = stackDirs(deps.stateDir);
  const outcomes = await Promise.all(pools.map((p) => limit(() => reconcilePool(deps, p, probes.get(p.pool.emitter), dirs))));
  outcomes.push(...problems);
  // A pool that held because its emitter could not be read did not fail, but the cycle did not
  // see its queue: it is not ok, so that a scheduled run with a revoked token goes red.
  return { ok: outcomes.every((o) => !o.error) && [...probes.values()].every((p) => p.ok), pools: outcomes, probes: [...probes.values()].map((p) => ({ emitter: p.emitter, ok: p.ok, partial: p.partial, durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls })) };
}

/** The label sets of each emitter's jobs, so that `plan` can tell which jobs a new policy leaves behind. */
export async function recordJobLabels(history: HistoryStore, probes: ReadonlyMap<string, ProbeResult>, emitters: ReadonlyMap<string, Pick<Emitter, 'kind'>>): Promise<void> {
  for (const [name, probe] of probes) {
    if (!probe.ok) continue;
    const sets = new Map<string, { labels: string[]; labelExpression?: string; jobs: number }>();
    for (const j of probe.jobs) {
      const key = `${[...j.labels].sort().join(',')}\u0000${j.labelExpression ?? ''}`;
      const e = sets.get(key) ?? { labels: j.labels, ...(j.labelExpression !== undefined ? { labelExpression: j.labelExpression } : {}), jobs: 0 };
      e.jobs++;
      sets.set(key, e);
    }
    const kind = emitters.get(name)?.kind;
    if (kind) await history.putJobLabels(name, { at: probe.at, kind, sets: [...sets.values()] }).catch(() => undefined);
  }
}


/** One pool's cycle under its lease: observe → decide → execute; any throw fails this pool only. */
async function reconcilePool(deps: ReconcileDeps, target: { pool: PoolConfig; platform: PlatformConfig | undefined; removed: boolean }, probe: ProbeResult | undefined, dirs: readonly string[]): Promise<PoolOutcome> {
  const { pool, platform, removed } = target;
  const t0 = Date.now();
  const now = deps.clock();
  const teardown = removed && deps.policy.pools.some((p) => p.name === pool.name);
  const out: PoolOutcome = { ...emptyOutcome(pool.name), ...(removed ? { removed: true } : {}), ...(teardown ? { teardown: true } : {}) };
  const finish = () => ({ ...out, durationMs: Date.now() - t0 });
  const staleAfterMs = staleAfter(deps.policy, pool);
  if (probe) out.probe = probeStatus(probe, now, staleAfterMs);
  let keeper: LeaseKeeper | undefined;
  try {
    const ttl = deps.leaseTtlMs ?? 10 * 60_000;
    const lease = await deps.history.acquireLease(pool.name, deps.owner, ttl);
    if (!lease) {
      out.skipped = LEASE_HELD;
      return finish();
    }
    keeper = new LeaseKeeper(deps.history, lease, ttl, deps.stopping);
    deps.onLease?.(pool.name, true, { token: lease.token, ...(lease.takenOverFrom !== undefined ? { takenOverFrom: lease.takenOverFrom } : {}) });
    if (lease.takenOverFrom !== undefined) out.takenOverFrom = lease.takenOverFrom;
    keeper.check();
    const emitter = deps.emitters.get(pool.emitter);
    if (!platform) throw new Error(`pool ${pool.name}: platform ${pool.platform} is not in the policy`);
    if (!emitter) throw new Error(removed ? `pool ${pool.name} was removed from the policy, but its emitter ${pool.emitter} is gone too: its nodes cannot be drained safely (put the emitter back until the pool is empty)` : `pool ${pool.name}: emitter ${pool.emitter} is not in the policy`);
    const k = keeper;
    const ctx: StackContext = { deps, emitter, now, lease, keeper: k, removed, teardown, probe, staleAfterMs };
    const own: PoolStackRef = { stack: pool.name, pool, platform };
    const many = (pool.failover?.length ?? 0) > 0;
    // A pool's own stack first: its record names the failover stacks that may hold nodes.
    const primary = await prepareStack(ctx, own, out).catch((err: Error) => {
      if (!many || err instanceof ShuttingDown) throw err;
      return err;
    });
    // (Its record read on its own when its state could not be: the stacks it names still count.)
    const ownRec = primary instanceof Error ? await deps.history.getPool(pool.name).catch(() => undefined) : primary.rec;
    const unreachable: Array<{ stack: string; why: string }> = [];
    const recorded = await recordedStacks(deps.history, deps.policy, pool, ownRec, (stack, why) => unreachable.push({ stack, why }), deps.stateDir, dirs);
    const stacks = stacksOf(deps.policy, pool, platform, recorded);
    if (stacks.length === 1 && !(primary instanceof Error) && !unreachable.length) {
      await finishStack(ctx, primary, { placement: 'only', elsewhere: new Set() });
      return finish();
    }
    await reconcileStacks(ctx, pool, stacks, primary, ownRec, out, { prepare: prepareStack, finish: finishStack }, unreachable);
    return finish();
  } catch (err) {
    if (err instanceof ShuttingDown) {
      out.skipped = err.message;
      deps.log?.({ level: 'info', msg: err.message, pool: pool.name });
      return finish();
    }
    out.error = (err as Error).message;
    deps.log?.({ level: 'error', msg: out.error, pool: pool.name });
    await deps.history.addEvent({ at: now, pool: pool.name, kind: 'error', detail: out.error }).catch(() => undefined);
    return finish();
  } finally {
    if (keeper) {
      await keeper.release();
      deps.onLease?.(pool.name, false, { token: keeper.lease.token });
    }
  }
}

/** What a pool's cycle shares between its stacks: one lease, one probe, one clock. */
export interface StackContext {
  deps: ReconcileDeps;
  emitter: Emitter;
  now: number;
  lease: Lease;
  keeper: LeaseKeeper;
  removed: boolean;
  teardown: boolean;
  probe: ProbeResult | undefined;
  staleAfterMs: number;
}

/** A stack whose record and state were read. */
export interface PreparedStack {
  st: PoolStackRef;
  run: PoolRun;
  rec: PoolRecord | undefined;
  state: StateNode[];
}

/** A stack's working directory, history record and Terraform state (`terraform state pull`). */
async function prepareStack(ctx: StackContext, st: PoolStackRef, out: PoolOutcome): Promise<PreparedStack> {
  const { deps, emitter, now, lease, keeper: k, removed } = ctx;
  const { pool, platform } = st;
  const dir = poolDir(deps.stateDir, st.stack);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const run: PoolRun = { deps, pool, platform, emitter, dir, now, out, lease, check: () => k.check(), checkpoint: () => k.checkpoint(), commit: () => k.commit(), committed: () => k.committed, removed, spec: nodeSpec(pool, deps.policy.emitters[pool.emitter], platform), stack: st.stack, placement: 'only', elsewhere: new Set() };

  // observe
  // The lease was taken, so the store answers: a record it cannot read is set aside (rebuilt
  // from the truth and overwritten by this cycle) rather than failing the pool on every cycle.
  const rec = await deps.history.getPool(st.stack).catch((err: Error) => {
    out.reasons.push(`history record unreadable (${err.message}): rebuilt from Terraform state`);
    return undefined;
  });
  const state = await pullState(run);
  // A stack is its platform's: one whose nodes were made on another (the pool's own platform
  // changed, say swapped with a failover one) would be refreshed through the wrong provider, and
  // its VMs taken for vanished. Refused, saying how to move a pool. The platform it was made on:
  // its record's, or (a history lost) the configuration saved beside its state; its nodes: the
  // state's (a read only), or the record's.
  const was = rec?.config?.platform.name ?? savedPlatformName(dir);
  const held = Math.max(state.length, rec?.nodes.length ?? 0);
  if (typeof was === 'string' && was !== platform.name && held > 0) {
    throw new Error(`stack ${st.stack} holds ${held} node${held === 1 ? '' : 's'} made on platform ${was}, but the policy puts it on ${platform.name}: a pool's platform does not change under its nodes (a platform renamed in the policy too). To move the pool, list ${platform.name} under failover and mark ${was} evacuate: true (or put ${was} back); once its nodes are on ${platform.name}, make ${platform.name} the pool's own platform (its failover stack then drains into the pool's own)`);
  }
  return { st, run, rec, state };
}

/**
 * A stack's observe → decide → execute, once its state was read (prepareStack). With failover,
 * `placement` says whether it gets new nodes or its platform is one the pool is leaving, and the
 * nodes of the pool's other stacks.
 */
async function finishStack(ctx: StackContext, prepared: PreparedStack, where: { placement: PoolRun['placement']; elsewhere: ReadonlySet<string>; elsewhereUnknown?: boolean; evacuate?: { keep: number; reason: string } }): Promise<{ plan: PoolPlan; truth: PoolTruth }> {
  const { deps, emitter, now, removed, teardown, probe, staleAfterMs } = ctx;
  const { rec, state } = prepared;
  const run: PoolRun = { ...prepared.run, placement: where.placement, elsewhere: where.elsewhere, ...(where.elsewhereUnknown ? { elsewhereUnknown: true } : {}) };
  const { pool, out } = run;
  const leaving = where.placement === 'leaving';
  const truth = observe({ policy: deps.policy, pool, kind: emitter.kind, probe, rec, state, spec: run.spec, now, poolsOfEmitter: deps.policy.pools.filter((p) => p.emitter === pool.emitter), removed, ...(where.placement !== 'only' ? { placement: { elsewhere: where.elsewhere, leaving } } : {}) });
  out.observed = truth.observed;
  out.busyNodes = truth.views.filter((v) => v.runner?.busy).map((v) => v.name);
  if (!rec && state.length) out.reasons.push(`history was empty: rebuilt ${state.length} node${state.length === 1 ? '' : 's'} from Terraform state`);
  await deps.hook?.('observed', { pool: pool.name, nodes: state.map((n) => n.name) });

  // decide (cost budgets: the running nodes the budgets covering the pool allow, from the history's spend)
  const budget = removed || leaving ? undefined : await poolBudget(deps.history, deps.policy, pool, truth.views, now, run.stack);
  const plan = decide({
    pool,
    now,
    observation: probe ? { at: probe.at, ok: probe.ok, partial: probe.partial, ...(probe.reason ? { reason: probe.reason } : {}), queued: truth.observed.queued, running: truth.observed.running, upcoming: truth.upcoming, ...(truth.scheduled.length ? { scheduled: truth.scheduled } : {}) } : undefined,
    staleAfterMs,
    nodes: truth.views,
    // Without history the scale-down window is unknown: hold the current size for a full window.
    memory: rec?.memory ?? { targets: [{ at: now, nodes: state.length }] },
    ...(pool.scaling.predict && !removed && !leaving ? { history: await demandHistory(deps.history, pool.name, now) } : {}),
    newId: deps.newId ?? (() => randomBytes(4).toString('hex').slice(0, 6)),
    removed,
    ...(deps.growOnly ? { growOnly: true } : {}),
    ...(budget ? { budget } : {}),
    ...(where.evacuate && !removed ? { evacuate: where.evacuate } : {}),
  });
  out.desired = plan.desired;
  out.states = plan.states;
  out.reasons.push(...plan.reasons.map((r) => (teardown ? r.replace(/^pool removed from the policy:/, 'pool torn down on purpose:') : r)));
  deps.log?.({ level: 'debug', msg: `desired ${plan.desired}`, pool: pool.name, step: 'decide', create: plan.create.length, drain: plan.drain.length, destroy: plan.destroy.length, reasons: plan.reasons });

  // execute
  await executePlan(run, plan, truth, rec, probe);
  return { plan, truth };
}

/** Arrivals per minute from the recorded samples, for predict; undefined with no samples. */
async function demandHistory(store: HistoryStore, pool: string, now: number): Promise<DemandHistory | undefined> {
  const samples = await store.samples(pool, now - HISTORY_DAYS * 86_400_000);
  if (!samples.length) return undefined;
  const arrivals = new Map<number, number>();
  for (const s of samples) if (s.arrivals) arrivals.set(Math.floor(s.at / 60_000), (arrivals.get(Math.floor(s.at / 60_000)) ?? 0) + s.arrivals);
  return { bucketMs: 60_000, arrivals, since: Math.floor((samples[0] as { at: number }).at / 60_000) };
}

