/**
 * One reconcile cycle: probe every emitter once → for each pool (in parallel up to a limit):
 * lease → node set (history, rebuilt from Terraform state when missing) → decide → pause drained
 * runners, re-check before destroy → register runners for new nodes → render the stack → init,
 * plan, show, guard, apply → deregister destroyed nodes' runners → record → release.
 * One pool failing never stops the others. A pool whose desired node set equals the last applied
 * one runs no terraform at all, except for the periodic drift check.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { decide } from '../decide/decide.js';
import { assignJobs } from '../decide/match.js';
import type { DemandHistory, Job, NodeView } from '../decide/types.js';
import { ownedBy, type Emitter, type ProbeResult } from '../emitters/types.js';
import type { HistoryStore, NodeRecord, PoolRecord } from '../history/types.js';
import type { Policy, PoolConfig, RunnerCredential } from '../policy/types.js';
import { guardPlan } from '../terraform/guard.js';
import { countChanges } from '../terraform/plan.js';
import type { Terraform } from '../terraform/runner.js';
import { readStateNodes } from '../terraform/state.js';
import { placeholderCredential } from '../../stacks/placeholders.js';

export interface PoolOutcome {
  pool: string;
  observed: { queued: number; running: number; nodes: number; busy: number };
  desired: number;
  create: string[];
  drain: string[];
  destroy: string[];
  terraform: { ran: boolean; add: number; change: number; destroy: number };
  durationMs: number;
  /** Time spent running terraform this cycle. */
  terraformMs: number;
  reasons: string[];
  /** Set when the pool failed this cycle: nothing after the failing step was done. */
  error?: string;
  /** Set when another reconciler held the pool's lease. */
  skipped?: string;
}

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
  /** Pools reconciled at once. */
  parallel?: number;
  /** How often a full plan runs even when nothing changed (drift check). */
  driftCheckMs?: number;
  /** A runner registered for a node that no VM backs is removed after this long. */
  orphanGraceMs?: number;
  leaseTtlMs?: number;
  newId?: () => string;
  /** Structured progress: probes, decisions, terraform steps, errors. */
  log?: (event: CycleEvent) => void;
}

export interface CycleEvent {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  pool?: string;
  emitter?: string;
  step?: 'probe' | 'decide' | 'register' | 'terraform-init' | 'terraform-plan' | 'terraform-show' | 'terraform-apply' | 'deregister';
  durationMs?: number;
  [key: string]: unknown;
}

const NODE_TYPE = { aws: 'aws_instance', gcp: 'google_compute_instance', local: 'terraform_data' } as const;
const HISTORY_DAYS = 28;

export function poolDir(stateDir: string, pool: string): string {
  return join(stateDir, 'pools', pool);
}

export async function reconcileOnce(deps: ReconcileDeps): Promise<CycleResult> {
  const pools = deps.policy.pools.filter((p) => !deps.pools || deps.pools.includes(p.name));
  const used = new Set(pools.map((p) => p.emitter));
  const probes = new Map<string, ProbeResult>();
  await Promise.all(
    [...used].map(async (name) => {
      const e = deps.emitters.get(name);
      if (!e) return;
      const p = await e.probe();
      probes.set(name, p);
      deps.log?.({ level: p.ok ? (p.partial ? 'warn' : 'debug') : 'warn', msg: p.ok ? (p.partial ? `probe partial: ${p.reason}` : 'probed') : `probe failed: ${p.reason}`, emitter: name, step: 'probe', durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls, jobs: p.jobs.length });
    }),
  );
  // The label sets of each emitter's jobs, so that `plan` can tell which jobs a new policy leaves behind.
  if (!deps.dryRun) {
    for (const [name, probe] of probes) {
      if (!probe.ok) continue;
      const sets = new Map<string, { labels: string[]; labelExpression?: string; jobs: number }>();
      for (const j of probe.jobs) {
        const key = `${[...j.labels].sort().join(',')}\u0000${j.labelExpression ?? ''}`;
        const e = sets.get(key) ?? { labels: j.labels, ...(j.labelExpression !== undefined ? { labelExpression: j.labelExpression } : {}), jobs: 0 };
        e.jobs++;
        sets.set(key, e);
      }
      const kind = deps.emitters.get(name)?.kind;
      if (kind) await deps.history.putJobLabels(name, { at: probe.at, kind, sets: [...sets.values()] }).catch(() => undefined);
    }
  }
  const limit = pLimit(deps.parallel ?? 4);
  const outcomes = await Promise.all(pools.map((pool) => limit(() => reconcilePool(deps, pool, probes.get(pool.emitter)))));
  // A pool that held because its emitter could not be read did not fail, but the cycle did not
  // see its queue: it is not ok, so that a scheduled run with a revoked token goes red.
  return { ok: outcomes.every((o) => !o.error) && [...probes.values()].every((p) => p.ok), pools: outcomes, probes: [...probes.values()].map((p) => ({ emitter: p.emitter, ok: p.ok, partial: p.partial, durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls })) };
}

type Platform = Policy['platforms'][string];

/** One pool's cycle under its lease: each step below, in order; any throw fails this pool only. */
async function reconcilePool(deps: ReconcileDeps, pool: PoolConfig, probe: ProbeResult | undefined): Promise<PoolOutcome> {
  const t0 = Date.now();
  const now = deps.clock();
  const out: PoolOutcome = { pool: pool.name, observed: { queued: 0, running: 0, nodes: 0, busy: 0 }, desired: 0, create: [], drain: [], destroy: [], terraform: { ran: false, add: 0, change: 0, destroy: 0 }, durationMs: 0, terraformMs: 0, reasons: [] };
  const finish = () => ({ ...out, durationMs: Date.now() - t0 });
  let leased = false;
  try {
    if (!(await deps.history.acquireLease(pool.name, deps.owner, deps.leaseTtlMs ?? 10 * 60_000))) {
      out.skipped = 'another reconciler holds this pool\'s lease';
      return finish();
    }
    leased = true;
    const platform = deps.policy.platforms[pool.platform];
    const emitter = deps.emitters.get(pool.emitter);
    if (!platform || !emitter) throw new Error(`pool ${pool.name}: its emitter or platform is not in the policy`);
    const dir = poolDir(deps.stateDir, pool.name);
    mkdirSync(dir, { recursive: true, mode: 0o700 });

    const { rec, stateNames } = await loadNodeSet(deps, pool, platform, dir, now, out);
    const seen = observe(deps, pool, emitter, probe, rec);
    out.observed = seen.observed;
    const plan = decide({
      pool,
      now,
      observation: probe ? { at: probe.at, ok: probe.ok, partial: probe.partial, ...(probe.reason ? { reason: probe.reason } : {}), queued: seen.observed.queued, running: seen.observed.running, upcoming: seen.upcoming } : undefined,
      staleAfterMs: 2 * (deps.policy.emitters[pool.emitter]?.probeIntervalMs ?? 30_000),
      nodes: seen.views,
      memory: rec.memory,
      ...(pool.scaling.predict ? { history: await demandHistory(deps.history, pool.name, now) } : {}),
      newId: deps.newId ?? (() => randomBytes(4).toString('hex').slice(0, 6)),
    });
    out.desired = plan.desired;
    out.reasons.push(...plan.reasons);
    deps.log?.({ level: 'debug', msg: `desired ${plan.desired}`, pool: pool.name, step: 'decide', create: plan.create.length, drain: plan.drain.length, destroy: plan.destroy.length, reasons: plan.reasons });

    const { destroy, credentials } = await runnersBeforeApply(deps, pool, emitter, plan, rec, now, out);
    const created = [...credentials.keys()];
    out.create = created;
    out.drain = plan.drain;
    out.destroy = destroy;

    const after = rec.nodes.filter((n) => !destroy.includes(n.name)).map((n) => n.name).concat(created).sort();
    const driftDue = now - (rec.lastFullPlanAt ?? 0) >= (deps.driftCheckMs ?? 3_600_000);
    const unchanged = created.length === 0 && destroy.length === 0 && rec.applied !== undefined && sameSet(rec.applied.names, after) && (stateNames === undefined || sameSet(stateNames, after));
    if (!unchanged || driftDue) {
      await applyStack(deps, pool, platform, dir, rec, credentials, destroy, out);
      if (!deps.dryRun) rec.lastFullPlanAt = now;
    }
    if (deps.dryRun) return finish();

    await recordApplied(deps, pool, emitter, probe, rec, seen, { created, destroy, memory: plan.memory, desired: plan.desired }, now, out);
    return finish();
  } catch (err) {
    out.error = (err as Error).message;
    deps.log?.({ level: 'error', msg: out.error, pool: pool.name });
    await deps.history.addEvent({ at: now, pool: pool.name, kind: 'error', detail: out.error }).catch(() => undefined);
    return finish();
  } finally {
    if (leased) await deps.history.releaseLease(pool.name, deps.owner).catch(() => undefined);
  }
}

/**
 * The pool's node set: its history record, reconciled with local Terraform state (the truth)
 * where it can be read, or rebuilt from state (local or remote) when the history has none.
 */
async function loadNodeSet(deps: ReconcileDeps, pool: PoolConfig, platform: Platform, dir: string, now: number, out: PoolOutcome): Promise<{ rec: PoolRecord; stateNames: string[] | undefined }> {
  const localState = (platform.backend?.type ?? 'local') === 'local' ? (platform.backend?.type === 'local' && platform.backend.path ? platform.backend.path : join(dir, 'terraform.tfstate')) : undefined;
  let rec = await deps.history.getPool(pool.name);
  let stateNames = localState ? readStateNodes(localState).map((n) => n.name) : undefined;
  if (!rec && !stateNames) stateNames = await remoteStateNodes(deps, pool, platform, dir);
  if (!rec) {
    // Without history the scale-down window is unknown: hold the current size for a full window.
    rec = { pool: pool.name, nodes: (stateNames ?? []).map((name) => ({ name, createdAt: now })), pendingRunners: {}, seenJobs: [], memory: { targets: [{ at: now, nodes: stateNames?.length ?? 0 }] } };
    if (stateNames?.length) out.reasons.push(`history was empty: rebuilt ${stateNames.length} node${stateNames.length === 1 ? '' : 's'} from Terraform state`);
  } else if (stateNames) {
    const known = new Set(rec.nodes.map((n) => n.name));
    for (const name of stateNames) if (!known.has(name)) rec.nodes.push({ name, createdAt: now });
  }
  return { rec, stateNames };
}

interface Observed {
  observed: PoolOutcome['observed'];
  upcoming: number;
  jobs: Job[];
  runners: Map<string, NonNullable<ProbeResult['runners']>[number]>;
  views: NodeView[];
  /** The pool a runner name belongs to (its node's pool, else the longest matching prefix). */
  nodeOwner: (runner: string) => string | undefined;
}

/** This pool's share of the probe: its jobs (matched among the emitter's pools), its runners, its nodes as decide sees them. */
function observe(deps: ReconcileDeps, pool: PoolConfig, emitter: Emitter, probe: ProbeResult | undefined, rec: PoolRecord): Observed {
  const kind = emitter.kind;
  const poolsOfEmitter = deps.policy.pools.filter((p) => p.emitter === pool.emitter);
  const owners = new Map(rec.nodes.map((n) => [n.name, pool.name]));
  const byPrefix = ownedBy(poolsOfEmitter.map((p) => p.name));
  const nodeOwner = (runner: string) => owners.get(runner) ?? byPrefix(runner);
  const jobs = probe?.ok ? (assignJobs(kind, probe.jobs, poolsOfEmitter, nodeOwner).byPool.get(pool.name) ?? []) : [];
  const runners = new Map((probe?.runners ?? []).map((r) => [r.name, r]));
  const views: NodeView[] = rec.nodes.map((n) => {
    const v: NodeView = { name: n.name, createdAt: n.createdAt };
    if (n.drainingSince !== undefined) v.drainingSince = n.drainingSince;
    if (n.lastBusyAt !== undefined) v.lastBusyAt = n.lastBusyAt;
    const r = runners.get(n.name);
    if (kind === 'replay') v.runner = { online: true, busy: false, paused: n.drainingSince !== undefined };
    else if (r) v.runner = { online: r.online, busy: r.busy, paused: r.paused };
    return v;
  });
  const count = (status: string) => jobs.filter((j) => j.status === status).length;
  return { observed: { queued: count('queued'), running: count('running'), nodes: views.length, busy: views.filter((v) => v.runner?.busy).length }, upcoming: count('upcoming'), jobs, runners, views, nodeOwner };
}

/** Arrivals per minute from the recorded samples, for predict; undefined with no samples. */
async function demandHistory(store: HistoryStore, pool: string, now: number): Promise<DemandHistory | undefined> {
  const samples = await store.samples(pool, now - HISTORY_DAYS * 86_400_000);
  if (!samples.length) return undefined;
  const arrivals = new Map<number, number>();
  for (const s of samples) if (s.arrivals) arrivals.set(Math.floor(s.at / 60_000), (arrivals.get(Math.floor(s.at / 60_000)) ?? 0) + s.arrivals);
  return { bucketMs: 60_000, arrivals, since: Math.floor((samples[0] as { at: number }).at / 60_000) };
}

/**
 * The runner side before terraform: pause newly drained runners, resume the ones taken back,
 * re-check idleness right before a destroy (a busy node keeps draining), and register a runner
 * for each new node (a failure drops that node, not the cycle).
 */
async function runnersBeforeApply(deps: ReconcileDeps, pool: PoolConfig, emitter: Emitter, plan: ReturnType<typeof decide>, rec: PoolRecord, now: number, out: PoolOutcome): Promise<{ destroy: string[]; credentials: Map<string, RunnerCredential> }> {
  const byName = new Map(rec.nodes.map((n) => [n.name, n]));
  const newDrains = plan.drain.filter((n) => byName.get(n)?.drainingSince === undefined);
  if (!deps.dryRun) for (const n of newDrains) await emitter.pause(n);
  for (const n of newDrains) (byName.get(n) as NodeRecord).drainingSince = now;
  for (const n of plan.resume) delete (byName.get(n) as NodeRecord).drainingSince;
  if (!deps.dryRun && plan.resume.length && emitter.resume) for (const n of plan.resume) await emitter.resume(n);

  const destroy: string[] = [];
  for (const n of plan.destroy) {
    if (deps.dryRun || (await emitter.isIdle(n))) destroy.push(n);
    else out.reasons.push(`${n} picked up a job after it was drained: kept draining`);
  }

  const credentials = new Map<string, RunnerCredential>();
  for (const name of plan.create) {
    if (deps.dryRun) {
      credentials.set(name, placeholderCredential(deps.policy.emitters[pool.emitter], pool));
      continue;
    }
    try {
      credentials.set(name, await emitter.register({ node: name, pool: pool.name, labels: pool.labels, jobsPerNode: pool.runner.jobsPerNode, ephemeral: pool.runner.ephemeral, acceptUntagged: pool.acceptUntagged }));
      rec.pendingRunners[name] = now;
    } catch (err) {
      out.reasons.push(`could not register a runner for ${name}: ${(err as Error).message}`);
    }
  }
  return { destroy, credentials };
}

/**
 * Render the pool's stack for its kept and new nodes and run init → plan → (show → guard →
 * apply when the plan changes anything). Kept nodes carry a placeholder credential: their
 * bootstrap already ran, and a real one is never written twice. Throws when the guard refuses.
 */
async function applyStack(deps: ReconcileDeps, pool: PoolConfig, platform: Platform, dir: string, rec: PoolRecord, credentials: Map<string, RunnerCredential>, destroy: string[], out: PoolOutcome): Promise<void> {
  const created = [...credentials.keys()];
  const kept = rec.nodes.filter((n) => !destroy.includes(n.name)).map((n) => n.name);
  const placeholder = placeholderCredential(deps.policy.emitters[pool.emitter], pool);
  const { renderPool, writeStack } = await import('../../stacks/render.js');
  const json = renderPool({ pool, platform, stateDir: deps.stateDir, nodes: [...kept.map((name) => ({ name, credential: placeholder })), ...created.map((name) => ({ name, credential: credentials.get(name) as RunnerCredential }))] });
  writeStack(dir, json);
  const tfStart = Date.now();
  const backendHash = createHash('sha256').update(JSON.stringify((json.terraform as { backend?: unknown } | undefined)?.backend ?? {})).digest('hex');
  const step = async <T>(name: NonNullable<CycleEvent['step']>, f: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    deps.log?.({ level: 'debug', msg: `${name.replace('-', ' ')}…`, pool: pool.name, step: name });
    const r = await f();
    deps.log?.({ level: 'info', msg: `${name.replace('-', ' ')} done`, pool: pool.name, step: name, durationMs: Date.now() - t });
    return r;
  };
  await step('terraform-init', () => deps.terraform.init(dir, backendHash));
  out.terraform.ran = true;
  const changed = await step('terraform-plan', () => deps.terraform.plan(dir, 'parmanu.tfplan'));
  if (changed) {
    const shown = await step('terraform-show', () => deps.terraform.show(dir, 'parmanu.tfplan'));
    out.terraform = { ran: true, ...countChanges(shown.resource_changes) };
    const violations = guardPlan(shown.resource_changes, { pool: pool.name, nodeType: NODE_TYPE[platform.type], mayCreate: new Set([...created, ...kept]), mayDestroy: new Set(destroy) });
    if (violations.length) throw new Error(`plan guard refused the plan, nothing applied: ${violations.slice(0, 3).join('; ')}${violations.length > 3 ? ` (+${violations.length - 3} more)` : ''}`);
    if (!deps.dryRun) await step('terraform-apply', () => deps.terraform.apply(dir, 'parmanu.tfplan'));
  }
  out.terraformMs = Date.now() - tfStart;
}

/**
 * After a successful apply: remove destroyed nodes' runners, record the new node set, remove
 * runners no VM backs once their grace period is over, and write the sample and scale events.
 */
async function recordApplied(deps: ReconcileDeps, pool: PoolConfig, emitter: Emitter, probe: ProbeResult | undefined, rec: PoolRecord, seen: Observed, change: { created: string[]; destroy: string[]; memory: PoolRecord['memory']; desired: number }, now: number, out: PoolOutcome): Promise<void> {
  const { created, destroy } = change;
  for (const n of destroy) await emitter.deregister(n).catch((err: Error) => out.reasons.push(`could not remove the runner of ${n}: ${err.message}`));
  rec.nodes = rec.nodes.filter((n) => !destroy.includes(n.name));
  for (const name of created) rec.nodes.push({ name, createdAt: now });
  for (const n of rec.nodes) {
    const r = seen.runners.get(n.name);
    if (r?.busy) n.lastBusyAt = now;
    if (r && n.registeredAt === undefined) n.registeredAt = now;
    if (r) delete rec.pendingRunners[n.name];
  }
  // Runners of this pool that no node backs (a crash between register and apply): removed after a grace period.
  const nodeNames = new Set(rec.nodes.map((n) => n.name));
  for (const r of seen.runners.values()) {
    if (seen.nodeOwner(r.name) !== pool.name || nodeNames.has(r.name)) continue;
    const since = rec.pendingRunners[r.name] ?? now;
    rec.pendingRunners[r.name] = since;
    if (now - since >= (deps.orphanGraceMs ?? 15 * 60_000) && !r.busy) {
      await emitter.deregister(r.name).then(
        () => {
          delete rec.pendingRunners[r.name];
          out.reasons.push(`removed runner ${r.name}: no VM backs it`);
        },
        (err: Error) => out.reasons.push(`could not remove orphan runner ${r.name}: ${err.message}`),
      );
    }
  }
  for (const name of Object.keys(rec.pendingRunners)) if (nodeNames.has(name) && seen.runners.has(name)) delete rec.pendingRunners[name];
  rec.memory = change.memory;
  rec.applied = { names: rec.nodes.map((n) => n.name).sort(), at: now, stackHash: '' };
  let arrivals = 0;
  if (probe?.ok) {
    const seenIds = new Set(rec.seenJobs);
    const ids = seen.jobs.filter((j) => j.status !== 'upcoming').map((j) => j.id);
    arrivals = ids.filter((id) => !seenIds.has(id)).length;
    rec.seenJobs = ids.slice(-5000);
  }
  await deps.history.putPool(rec);
  await deps.history.addSample(pool.name, { at: now, queued: seen.observed.queued, running: seen.observed.running, arrivals, nodes: rec.nodes.length, desired: change.desired });
  if (created.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-up', detail: `+${created.length}: ${created.join(' ')}` });
  if (destroy.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-down', detail: `-${destroy.length}: ${destroy.join(' ')}` });
}

/** A remote backend's node set, read through terraform (only when the history has none). */
async function remoteStateNodes(deps: ReconcileDeps, pool: PoolConfig, platform: Policy['platforms'][string], dir: string): Promise<string[]> {
  const { renderPool, writeStack } = await import('../../stacks/render.js');
  const json = renderPool({ pool, platform, stateDir: deps.stateDir, nodes: [] });
  writeStack(dir, json);
  await deps.terraform.init(dir, createHash('sha256').update(JSON.stringify((json.terraform as { backend?: unknown } | undefined)?.backend ?? {})).digest('hex'));
  return deps.terraform.stateNodes(dir);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}
