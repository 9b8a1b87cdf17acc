/**
 * BCDR failover: one pool, several stacks (DESIGN "Node identity"): `<pool>` on the pool's own
 * platform, `<pool>@<platform>` on each failover platform. One cycle of such a pool, under its one
 * lease:
 *
 *   read every stack's record and state          (a failure counts against its platform)
 *   choose the platform that gets new nodes      (decide/failover.ts: evacuate marks, health)
 *   the active stack: observe → decide → execute, as any pool (its demand: the queue, and the jobs
 *                                                  its own runners run)
 *   each other stack with nodes: its nodes keep serving only while the active one's ready nodes
 *                                do not cover the pool (make before break), the rest drain and go
 *   record each platform's health on the pool's own record; one outcome for the pool, with a
 *   line per stack (`stacks`)
 *
 * A stack that failed this cycle fails the pool only when it is the active one; the failing
 * platform a pool is leaving says so in the reasons and in its stack's line.
 */
import { chooseActive, nextHealth, retainOnOthers, type PlatformHealth } from '../decide/failover.js';
import type { PoolPlan } from '../decide/types.js';
import type { PoolRecord } from '../history/types.js';
import type { PoolStackRef } from '../policy/stacks.js';
import type { PoolConfig } from '../policy/types.js';
import type { PoolOutcome, PreparedStack, StackContext } from './cycle.js';
import { isPlatformError, ShuttingDown, type PoolRun } from './execute.js';
import { savedConfig } from './known-pools.js';
import type { PoolTruth } from './observe.js';

export interface StackFns {
  prepare: (ctx: StackContext, st: PoolStackRef, out: PoolOutcome) => Promise<PreparedStack>;
  finish: (ctx: StackContext, prepared: PreparedStack, where: { placement: PoolRun['placement']; elsewhere: ReadonlySet<string>; elsewhereUnknown?: boolean; evacuate?: { keep: number; reason: string } }) => Promise<{ plan: PoolPlan; truth: PoolTruth }>;
}

/** A pool's line per stack in the outcome (`--json` `stacks`, status, report). */
export interface StackLine {
  stack: string;
  platform: string;
  /** `active`: gets new nodes; `leaving`: its nodes drain once the active one serves. */
  role: 'active' | 'leaving';
  nodes: number;
  terraform: PoolOutcome['terraform'];
  error?: string;
}

type Failover = NonNullable<PoolRecord['failover']>;

/**
 * One cycle of a pool with several stacks (see the top of this file). `primary` is the pool's own
 * stack, already prepared (or the error that stopped it), and `prior` its record (read once by the caller); `out` gets the merged outcome.
 */
export async function reconcileStacks(ctx: StackContext, pool: PoolConfig, stacks: readonly PoolStackRef[], primary: PreparedStack | Error, prior: PoolRecord | undefined, out: PoolOutcome, fns: StackFns, unreachable: ReadonlyArray<{ stack: string; why: string }> = []): Promise<void> {
  const { deps, now } = ctx;
  const health: Record<string, PlatformHealth> = { ...(prior?.failover?.health ?? {}) };
  const listed = [pool.platform, ...(pool.failover ?? []).map((f) => f.platform)].filter((p) => deps.policy.platforms[p] !== undefined);
  const evacuated = new Set(listed.filter((p) => deps.policy.platforms[p]?.evacuate === true));
  const choice = ctx.removed ? undefined : chooseActive({ platforms: listed, evacuated, health, failoverAfter: pool.failoverAfter ?? 3, failbackAfterMs: pool.failbackAfterMs ?? 600_000, now });

  // Read every stack: a failure counts against its platform (a cloud API that does not answer).
  const outs = new Map<string, PoolOutcome>();
  const prepared = new Map<string, PreparedStack>();
  const errors = new Map<string, Error>();
  for (const st of stacks) {
    const o: PoolOutcome = { ...emptyOutcome(pool.name), ...(ctx.removed ? { removed: true } : {}) };
    outs.set(st.stack, o);
    if (st.stack === pool.name) {
      if (primary instanceof Error) errors.set(st.stack, primary);
      else {
        // Its reasons so far (an unreadable record) belong to its line.
        o.reasons.push(...out.reasons.splice(0));
        prepared.set(st.stack, { ...primary, run: { ...primary.run, out: o } });
      }
      continue;
    }
    try {
      prepared.set(st.stack, await fns.prepare(ctx, st, o));
    } catch (err) {
      if (err instanceof ShuttingDown) throw err;
      errors.set(st.stack, err as Error);
    }
  }
  // A stack whose state could not be read: the nodes its record knows (and registered) stand in
  // for its state, and no stack takes a marked runner for an orphan this cycle (its nodes are not
  // all known), nor forgets a record of the pool.
  const unread = new Map<string, string[]>();
  for (const st of stacks) {
    if (prepared.has(st.stack)) continue;
    const rec = st.stack === pool.name ? prior : await deps.history.getPool(st.stack).catch(() => undefined);
    unread.set(st.stack, [...(rec?.nodes.map((n) => n.name) ?? []), ...(rec?.intents.filter((i) => i.action === 'register').map((i) => i.node) ?? [])]);
  }
  const names = (s: string): string[] => prepared.get(s)?.state.map((n) => n.name) ?? unread.get(s) ?? [];
  // (A stack that cannot even be named — its platform gone with its saved configuration — too.)
  const elsewhereUnknown = unread.size > 0 || unreachable.length > 0;
  const elsewhere = (s: string) => new Set(stacks.filter((o) => o.stack !== s).flatMap((o) => names(o.stack)));
  const run = async (st: PoolStackRef, where: Parameters<StackFns['finish']>[2]) => {
    const p = prepared.get(st.stack);
    if (!p) return undefined;
    try {
      return await fns.finish(ctx, p, where);
    } catch (err) {
      if (err instanceof ShuttingDown) throw err;
      errors.set(st.stack, err as Error);
      return undefined;
    }
  };

  // The active stack first: what its ready nodes cover decides what the others keep.
  const active = choice ? stacks.find((s) => s.platform.name === choice.active) : undefined;
  let keep = Infinity;
  if (active) {
    (outs.get(active.stack) as PoolOutcome).reasons.push(...(choice?.reasons ?? []));
    const r = await run(active, { placement: 'active', elsewhere: elsewhere(active.stack), elsewhereUnknown });
    // The active stack did not run (its platform failed this cycle): the others keep every node.
    // On probation (a platform that failed, tried again): the same until a Terraform run there works.
    if (r && !(choice?.probation && !(worked(outs.get(active.stack)) && !errors.has(active.stack)))) keep = retainOnOthers(r.plan.desired, Object.values(r.plan.states).filter((s) => s === 'ready' || s === 'busy').length);
  }
  for (const st of stacks) {
    if (st === active) continue;
    const p = prepared.get(st.stack);
    if (!p) continue;
    // Nothing there, nothing recorded: nothing to do (a removed pool's records go too, once empty).
    if (!p.state.length && !p.rec?.nodes.length && !p.rec?.intents.length && !(ctx.removed && p.rec)) continue;
    const platform = st.platform.name;
    const why = ctx.removed
      ? 'pool removed from the policy'
      : evacuated.has(platform)
        ? `platform ${platform} is evacuated`
        : choice?.failing.includes(platform)
          ? `platform ${platform} is failing`
          : listed.includes(platform)
            ? `the pool runs on ${choice?.active ?? '?'} now`
            : `platform ${platform} is no longer in the pool's failover list`;
    const r = await run(st, { placement: 'leaving', elsewhere: elsewhere(st.stack), elsewhereUnknown, ...(ctx.removed ? {} : { evacuate: { keep: Number.isFinite(keep) ? keep : 1_000_000, reason: `${why}: nodes on ${platform} go` } }) });
    if (r && Number.isFinite(keep)) keep = Math.max(0, keep - r.plan.desired);
  }

  // Health: a failed Terraform run counts against its platform, and so do new nodes the active
  // stack dropped for capacity (spot and zone fallbacks exhausted: the platform could not make
  // them). Only the active stack's whole run over nodes — refreshed existing ones, or made new
  // ones — clears the count: a platform that still destroys and refreshes but cannot create is
  // not healthy, and a failed one is tried again only after failbackAfter, on probation. A state
  // read alone, or a plan of an empty stack, says nothing either way (it calls no cloud API).
  for (const st of stacks) {
    const platform = st.platform.name;
    const err = errors.get(st.stack);
    const o = outs.get(st.stack);
    const dropped = o?.fallbacks?.filter((f) => f.to === 'dropped').map((f) => f.node) ?? [];
    if (err && isPlatformError(err)) health[platform] = nextHealth(health[platform], { failed: true, error: err.message }, now);
    else if (dropped.length) health[platform] = nextHealth(health[platform], { failed: true, error: `no capacity for new node${dropped.length === 1 ? '' : 's'} ${dropped.join(', ')}` }, now);
    else if (!err && st.stack === active?.stack && worked(o)) health[platform] = nextHealth(health[platform], { failed: false }, now);
  }
  // Platforms the pool no longer lists keep no health.
  for (const p of Object.keys(health)) if (!listed.includes(p)) delete health[p];
  // The failover stacks that may hold nodes after this cycle (made now, or there before): found again after the policy drops their platform.
  const stackNames = [...stacks.filter((s) => s.stack !== pool.name && (names(s.stack).length > 0 || (outs.get(s.stack)?.create.length ?? 0) > 0 || errors.has(s.stack) || prepared.get(s.stack)?.rec !== undefined)).map((s) => s.stack), ...unreachable.map((u) => u.stack)];
  if (!ctx.removed && choice) await saveFailover(ctx, pool, stacks[0] as PoolStackRef, { active: choice.active, health, stacks: stackNames }, prior);

  merge(out, stacks, outs, errors, active?.stack, ctx.removed);
  // A stack that may hold nodes and cannot be reached fails the pool: nothing of it is forgotten.
  if (unreachable.length) out.error = [out.error, ...unreachable.map((u) => u.why)].filter(Boolean).join('; ');
  for (const [stack, err] of errors) {
    deps.log?.({ level: stack === active?.stack ? 'error' : 'warn', msg: `stack ${stack}: ${err.message}`, pool: pool.name });
    await deps.history.addEvent({ at: now, pool: pool.name, kind: 'error', detail: `stack ${stack}: ${err.message}` }).catch(() => undefined);
  }
  if (choice && prior?.failover && prior.failover.active !== choice.active) {
    await deps.history.addEvent({ at: now, pool: pool.name, kind: 'failover', detail: `new nodes go to ${choice.active} (were going to ${prior.failover.active})`, reasons: choice.reasons }).catch(() => undefined);
  }
}

/** The pool's own record keeps its platforms' health (created bare when the pool has none yet). */
async function saveFailover(ctx: StackContext, pool: PoolConfig, own: PoolStackRef, failover: Failover, prior: PoolRecord | undefined): Promise<void> {
  if (ctx.deps.dryRun) return;
  const rec = (await ctx.deps.history.getPool(pool.name).catch(() => undefined)) ?? prior ?? { pool: pool.name, nodes: [], pendingRunners: {}, seenJobs: [], intents: [], config: savedConfig(own.pool, own.platform) };
  ctx.keeper.check();
  await ctx.deps.history.putPool({ ...rec, failover }, ctx.lease);
}

/** Each stack's outcome merged into the pool's: one line per stack, the pool failed only when its active stack did. */
function merge(out: PoolOutcome, stacks: readonly PoolStackRef[], outs: ReadonlyMap<string, PoolOutcome>, errors: ReadonlyMap<string, Error>, active: string | undefined, removed: boolean): void {
  const lines: StackLine[] = [];
  const failed: string[] = [];
  // The active stack's line and reasons first.
  for (const st of [...stacks].sort((a, b) => Number(b.stack === active) - Number(a.stack === active))) {
    const o = outs.get(st.stack) as PoolOutcome;
    const err = errors.get(st.stack);
    const role = st.stack === active ? 'active' : 'leaving';
    const ran = o.terraform.ran || o.observed.nodes > 0 || err !== undefined || st.stack === active || o.vanished.length > 0 || o.reasons.length > 0;
    if (!ran) continue;
    lines.push({ stack: st.stack, platform: st.platform.name, role, nodes: o.observed.nodes, terraform: o.terraform, ...(err ? { error: err.message } : {}) });
    const tag = st.stack === active ? '' : `[${st.stack}] `;
    if (st.stack === active) {
      out.observed.queued += o.observed.queued;
      out.desired = o.desired;
    }
    out.observed.running += o.observed.running;
    out.observed.nodes += o.observed.nodes;
    out.observed.busy += o.observed.busy;
    out.create.push(...o.create);
    out.drain.push(...o.drain);
    out.destroy.push(...o.destroy);
    if (o.start?.length) (out.start ??= []).push(...o.start);
    if (o.stop?.length) (out.stop ??= []).push(...o.stop);
    out.vanished.push(...o.vanished);
    Object.assign(out.states, o.states);
    if (o.busyNodes) (out.busyNodes ??= []).push(...o.busyNodes);
    if (o.fallbacks?.length) (out.fallbacks ??= []).push(...o.fallbacks);
    out.terraform = { ran: out.terraform.ran || o.terraform.ran, add: out.terraform.add + o.terraform.add, change: out.terraform.change + o.terraform.change, destroy: out.terraform.destroy + o.terraform.destroy };
    out.terraformMs += o.terraformMs;
    out.reasons.push(...o.reasons.map((r) => tag + r));
    if (err) {
      // (The active stack's error is the pool's `error`.)
      if (st.stack !== active) out.reasons.push(`${tag}stack ${st.stack} failed: ${err.message}`);
      // A removed pool has no active stack: any stack that fails fails it (its nodes must all go).
      if (st.stack === active || removed || !isPlatformError(err)) failed.push(`${st.stack === active && st.stack === out.pool ? '' : `stack ${st.stack}: `}${err.message}`);
    }
  }
  out.stacks = lines;
  if (active) out.platform = stacks.find((s) => s.stack === active)?.platform.name as string;
  if (failed.length) out.error = failed.join('; ');
}

/** A stack's Terraform run that called the cloud: a plan (or apply) over existing or new nodes. */
function worked(o: PoolOutcome | undefined): boolean {
  return o !== undefined && o.terraform.ran && (o.observed.nodes > 0 || o.create.length > 0);
}

/** A pool's (or a stack's) outcome before anything was observed or done. */
export function emptyOutcome(pool: string): PoolOutcome {
  return { pool, observed: { queued: 0, running: 0, nodes: 0, busy: 0 }, desired: 0, create: [], drain: [], destroy: [], terraform: { ran: false, add: 0, change: 0, destroy: 0 }, durationMs: 0, terraformMs: 0, reasons: [], states: {}, vanished: [] };
}
