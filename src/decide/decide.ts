/**
 * decide: one pool's plan for one cycle. Pure and synchronous: time, observations, history and ids
 * come in; a plan value goes out (Karpenter's Command): desired count, nodes to create, drain,
 * destroy and resume, with reasons. One component (reconcile, or the simulator) executes it.
 *
 * Order of the decision:
 *   1. classify nodes (DESIGN "Node lifecycle (v2)"): booting (not online yet, within
 *      bootTimeout), ready (online), busy, outdated (spec differs from the policy, or older than
 *      maxLifetime: capacity until drained), broken (never online within bootTimeout, or offline
 *      longer than that), spent (ephemeral, job done), draining;
 *   2. demand: ⌈(queued + running) ÷ jobsPerNode⌉ + spare; with `predict`, at least the forecast
 *      from history and the upcoming jobs;
 *   3. scale-down is held by a stabilization window: the count may only fall to the highest demand
 *      of the last `scaleDownAfter` (a forecast is applied as it is, never held);
 *   4. floors: `min`, the schedule in force, and a pre-warm before a scheduled pipeline (prewarm.ts);
 *   5. the single final clamp to [floor, max] — every path goes through it (a removed pool: 0);
 *      a cost budget's cap (`input.budget`, decide/budget.ts) is a hard ceiling in it, below the
 *      floor too;
 *   6. actions: broken and spent nodes drain; outdated nodes drain for rollout, at most
 *      `rollout.maxUnavailable` at a time, idle first; resume nodes drained for scale-down before
 *      creating new ones; create within maxStep and max; drain idle victims (outdated first, then
 *      unregistered, then longest idle, then oldest), never a busy one, none younger than
 *      minLifetime; rollout and scale-down drains share the disruption budget; destroy only nodes
 *      drained in an earlier cycle that are idle now. A removed pool drains every node.
 *   7. standby (`scaling.standby`, DESIGN "Events, standby and services"): stopped nodes are never
 *      capacity; scale-up resumes drained nodes, then starts standby (newest first, within max),
 *      then creates; a drained idle paused node that has been online since its last start is
 *      stopped instead of destroyed while standby is under its target (never an outdated one,
 *      nor an ephemeral one that ran its job); outdated standby and standby over the target go;
 *      while demand is met, standby under its target is filled by nodes that boot once, are
 *      drained as soon as they are online and stop when idle (`memory.filling`); `auto` sizes it
 *      from history (`standbyForecast`), and the target falls only after `scaleDownAfter`.
 * A webhook-driven cycle (`growOnly`) only grows: no drain, stop or destroy.
 * Fail static: with no, a failed or a stale observation the pool holds (no drain, no destroy;
 * creates only to reach the floor, within maxStep); with partial data it may grow within maxStep
 * but never shrinks.
 */
import { combine, rateForecast, recurringForecast, standbyForecast, DEFAULT_FORECAST, type ForecastOptions } from './predict.js';
import { prewarmFloor } from './prewarm.js';
import { activeSchedule } from './schedule.js';
import type { DecideInput, DrainReason, NodeState, NodeView, PoolMemory, PoolPlan } from './types.js';

export interface DecideOptions {
  forecast?: Partial<ForecastOptions>;
}

/** The forecast is recomputed at most this often (it moves with the time of day, not by the second). */
export const FORECAST_STEP_MS = 5 * 60_000;

const isIdle = (n: NodeView) => !n.runner?.busy;
const isRegistered = (n: NodeView) => n.runner !== undefined;

export function decide(input: DecideInput, options: DecideOptions = {}): PoolPlan {
  const { pool, now, nodes, observation: obs } = input;
  const s = pool.scaling;
  const perNode = pool.runner.ephemeral ? 1 : pool.runner.jobsPerNode;
  const reasons: string[] = [];

  // 1. classify
  // Stopped nodes are standby: never capacity, never draining; they start, stop or go (below).
  const stopped = nodes.filter((n) => n.power === 'stopped');
  const running = nodes.filter((n) => n.power !== 'stopped');
  const draining = running.filter((n) => n.drainingSince !== undefined);
  const active = running.filter((n) => n.drainingSince === undefined);
  const broken = active.filter((n) => isBroken(n, now, s.bootTimeoutMs));
  const brokenSet = new Set(broken.map((n) => n.name));
  // Spent: an ephemeral node whose one job is done — it says so, or its runner, once online, has
  // left the platform (a just-in-time runner unregisters itself after its job).
  const spent = pool.runner.ephemeral ? active.filter((n) => !brokenSet.has(n.name) && (((n.runner?.jobsStarted ?? 0) >= 1 && isIdle(n)) || (n.runner === undefined && (onlineSinceStart(n) !== undefined || n.seenRunner === true)))) : [];
  const unhealthy = new Set([...broken, ...spent].map((n) => n.name));
  const tooOld = (n: NodeView) => s.maxLifetimeMs !== undefined && now - n.createdAt >= s.maxLifetimeMs;
  const isOutdated = (n: NodeView) => n.outdated === true || tooOld(n);
  // Nodes created to become standby (booted once, then stopped): not capacity unless they took a job.
  const fillNames = new Set(input.memory?.filling ?? []);
  const filling = active.filter((n) => fillNames.has(n.name) && !unhealthy.has(n.name) && !isOutdated(n) && !n.runner?.busy && (n.runner?.jobsStarted ?? 0) === 0);
  const fillSet = new Set(filling.map((n) => n.name));
  const inService = active.filter((n) => !unhealthy.has(n.name) && !fillSet.has(n.name));
  const outdated = inService.filter(isOutdated);
  const outdatedSet = new Set(outdated.map((n) => n.name));
  const states: Record<string, NodeState> = {};
  for (const n of nodes) {
    states[n.name] =
      n.power === 'stopped' ? 'standby'
      : n.drainingSince !== undefined ? 'draining'
      : brokenSet.has(n.name) ? 'broken'
      : spent.includes(n) ? 'spent'
      : outdatedSet.has(n.name) ? 'outdated'
      : n.runner?.online !== true ? 'booting'
      : n.runner.busy ? 'busy'
      : 'ready';
  }
  // Booting nodes count: they are capacity on its way (creating more while they boot would overshoot).
  const capacity = inService.length;

  // Fail static.
  const stale = obs !== undefined && now - obs.at > input.staleAfterMs;
  const hold = obs === undefined || !obs.ok || stale;
  const partial = !hold && obs.partial;
  // A webhook-driven cycle only grows: the polls that follow do the rest.
  const growOnly = input.growOnly === true;
  // A removed pool's nodes all go, but only on a complete observation and never in a webhook cycle.
  const retiring = input.removed === true && !hold && !partial && !growOnly;
  // Nodes on a platform the pool is leaving (failover): none created here, those over `keep` drain.
  const evac = input.removed === true ? undefined : input.evacuate;
  const evacuating = evac !== undefined && !hold && !partial && !growOnly;
  /** Nothing new here: a removed pool, or a platform the pool is leaving. */
  const noNew = input.removed === true || evac !== undefined;
  if (hold) {
    reasons.push(
      obs === undefined
        ? 'no observation yet: holding (no scale-down)'
        : !obs.ok
          ? `probe failed (${obs.reason ?? 'unknown reason'}): holding (no scale-down)`
          : `observation is ${Math.round((now - obs.at) / 1000)}s old (stale after ${Math.round(input.staleAfterMs / 1000)}s): holding (no scale-down)`,
    );
  } else if (partial) {
    reasons.push(`partial observation (${obs.reason ?? 'some data missing'}): growing within maxStep only, no scale-down`);
  }

  // 2. demand
  const memory = pruneMemory(input.memory, now, s.scaleDownAfterMs);
  let target: number;
  let demandTarget = 0;
  if (hold) {
    target = capacity;
  } else {
    const slots = obs.queued + obs.running;
    let need = Math.ceil(slots / perNode);
    target = need + s.spare;
    demandTarget = target;
    reasons.push(
      `${obs.queued} queued + ${obs.running} running job${slots === 1 ? '' : 's'} ÷ ${perNode} per node = ${need}${s.spare ? `, +${s.spare} spare = ${target}` : ''}`,
    );
    if (s.predict) {
      if (obs.upcoming > 0) {
        const withUpcoming = Math.ceil((slots + obs.upcoming) / perNode);
        if (withUpcoming > need) {
          need = withUpcoming;
          target = Math.max(target, withUpcoming + s.spare);
          reasons.push(`predict: ${obs.upcoming} upcoming job${obs.upcoming === 1 ? '' : 's'} in running pipelines → ${withUpcoming}`);
        }
      }
      if (input.history) {
        const base: ForecastOptions = { ...DEFAULT_FORECAST, ...options.forecast };
        // With standby, a job that finds no warm node waits for a start, not a boot: warm nodes
        // are kept for likelier bursts only.
        const fopts: ForecastOptions = s.standby !== 0 ? { ...base, threshold: Math.max(base.threshold, STANDBY_WARM_THRESHOLD) } : base;
        // The rate model moves with the time of day: recomputed every FORECAST_STEP_MS. The
        // recurring check looks only a few minutes ahead: recomputed every history bucket.
        const rateStep = Math.floor(now / FORECAST_STEP_MS);
        const recStep = Math.floor(now / input.history.bucketMs);
        let cached = memory.forecast;
        if (!cached || cached.rateStep !== rateStep) {
          const r = rateForecast(input.history, now, fopts);
          cached = { rateStep, recStep: -1, rate: { likelihood: r.likelihood, burstSize: r.burstSize, ratePerMin: r.ratePerMin, samples: r.samples }, rec: { share: 0, size: 0 } };
        }
        if (cached.recStep !== recStep) cached = { ...cached, recStep, rec: recurringForecast(input.history, now, fopts) };
        memory.forecast = cached;
        const fc = combine(cached.rate, cached.rec, fopts);
        const f = { warm: Math.ceil(fc.warmSlots / perNode), likelihood: fc.likelihood };
        if (f.warm > s.spare) {
          const warmTarget = need + f.warm;
          if (warmTarget > target) {
            target = warmTarget;
            reasons.push(
              cached.rec.share >= fopts.recurringShare
                ? `predict: ${Math.round(cached.rec.share * 100)}% of comparable past days had jobs in the next ${fmt(fopts.leadMs)}; keeping ${f.warm} warm → ${target}`
                : `predict: a burst in the next ${fmt(fopts.windowMs)} is ${Math.round(f.likelihood * 100)}% likely from past days and today; keeping ${f.warm} warm → ${target}`,
            );
          }
        }
      }
    }
  }

  // 3. stabilization window: scale down only to the highest target of the last scaleDownAfter.
  // Only real demand is held: a forecast is no demand, and holding it would keep warm nodes for a
  // whole window after the likely time has passed.
  if (!hold && (!growOnly || demandTarget >= capacity)) memory.targets.push({ at: now, nodes: demandTarget });
  let proposed = target;
  if (target < capacity) {
    const windowMax = Math.max(target, ...memory.targets.map((t) => t.nodes));
    const held = Math.min(capacity, windowMax);
    if (held > target) reasons.push(`demand has not stayed lower for ${fmt(s.scaleDownAfterMs)}: keeping ${held}`);
    proposed = held;
  }
  if (hold || partial || growOnly) proposed = Math.max(proposed, capacity);

  // 4. floors
  let floor = s.min;
  const sched = activeSchedule(s.schedules, now);
  if (sched && sched.schedule.min > floor) {
    floor = sched.schedule.min;
    if (proposed < floor) reasons.push(`schedule ${sched.index + 1} ("${sched.schedule.cron}" ${sched.schedule.timezone}) holds at least ${floor}`);
  } else if (proposed < floor) reasons.push(`min ${floor}`);
  // Pre-warm before a scheduled pipeline (prewarm.ts): a floor like a schedule's min.
  const warm = hold ? undefined : prewarmFloor(pool, obs, now, perNode, input.bootMs ?? observedBootMs(nodes) ?? DEFAULT_BOOT_MS);
  if (warm && warm.nodes > floor) {
    floor = warm.nodes;
    if (proposed < floor) reasons.push(warm.reason);
  }

  // 5. the single final clamp
  let desired = Math.min(s.max, Math.max(floor, proposed));
  if (Math.max(floor, proposed) > s.max) reasons.push(`max ${s.max}`);
  // A cost budget (decide/budget.ts) is a hard ceiling in the same clamp, below the floor too:
  // creates and starts stop at it; nodes over it drain only through the scale-down below (idle
  // ones), never a busy one.
  const costBudget = input.removed ? undefined : input.budget;
  const cap = costBudget ? Math.max(0, costBudget.maxNodes) : Infinity;
  if (costBudget && desired > cap) {
    desired = cap;
    const below = floor === s.min ? `the pool's min ${floor}` : sched && sched.schedule.min === floor ? `the schedule's min ${floor}` : `the floor of ${floor}`;
    reasons.push(cap < floor ? `${costBudget.reason}; a budget is a hard ceiling, below ${below}` : costBudget.reason);
  }
  if (input.removed) {
    desired = 0;
    reasons.length = 0;
    reasons.push(`pool removed from the policy: draining and destroying its ${nodes.length} node${nodes.length === 1 ? '' : 's'}`);
  } else if (evac) {
    // Nodes drained for an earlier move can serve again (the new platform's did not come).
    desired = Math.min(capacity + draining.filter((n) => n.drainReason === 'failover' && isRegistered(n)).length, Math.max(0, evac.keep));
    const held = reasons.filter((r) => r.includes('holding') || r.startsWith('partial observation'));
    reasons.length = 0;
    reasons.push(`${evac.reason}: ${desired ? `keeping ${desired} of ${capacity} serving until the new platform's nodes do` : capacity ? `draining its ${capacity} node${capacity === 1 ? '' : 's'}` : 'no node serves here'}`, ...held);
  }

  // Standby: the stopped nodes wanted (a count, or sized from history), held like demand: it
  // falls only to the highest target of the last scaleDownAfter.
  let standby = 0;
  if (!noNew) {
    let raw = typeof s.standby === 'number' ? s.standby : 0;
    if (s.standby === 'auto') {
      if (input.history && !hold) {
        const step = Math.floor(now / FORECAST_STEP_MS);
        let f = input.memory?.standbyForecast;
        if (!f || f.step !== step) f = { step, slots: standbyForecast(input.history, now, input.bootMs ?? observedBootMs(nodes) ?? DEFAULT_BOOT_MS, { ...DEFAULT_FORECAST, ...options.forecast }) };
        memory.standbyForecast = f;
        raw = Math.ceil(f.slots / perNode);
      } else raw = Math.max(0, ...(input.memory?.standbyTargets ?? []).map((t) => t.nodes));
    }
    const window = (input.memory?.standbyTargets ?? []).filter((t) => t.at > now - s.scaleDownAfterMs && t.at <= now);
    if (!hold && !growOnly) window.push({ at: now, nodes: raw });
    memory.standbyTargets = window;
    // No more than max could ever start from it.
    standby = Math.min(s.max, Math.max(raw, ...window.map((t) => t.nodes)));
    if (s.standby === 'auto') reasons.push(input.history ? `standby auto: ${standby} (the burst expected within one boot at this time${standby > raw ? `, held for ${fmt(s.scaleDownAfterMs)}` : ''})` : `standby auto: ${standby} (no load history yet)`);
  }

  // 6. actions
  const destroy: string[] = [];
  const start: string[] = [];
  const stop: string[] = [];
  const drain: string[] = [];
  const resume: string[] = [];
  const create: string[] = [];
  const drainReasons: Record<string, DrainReason> = {};
  const newDrain = (n: NodeView, why: DrainReason) => {
    drain.push(n.name);
    drainReasons[n.name] = why;
  };
  const mayShrink = !hold && !partial && !growOnly;
  let budget = s.disruptionBudget ?? Infinity;

  // Broken and spent nodes go whatever the demand (they serve nothing); a removed pool's all go.
  if (mayShrink) {
    for (const n of broken) newDrain(n, 'broken');
    if (broken.length) reasons.push(`replacing ${broken.length} broken node${broken.length === 1 ? '' : 's'} (runner not online within ${fmt(s.bootTimeoutMs)})`);
    for (const n of spent) newDrain(n, 'spent');
    if (spent.length) reasons.push(`replacing ${spent.length} ephemeral node${spent.length === 1 ? '' : 's'} that finished ${spent.length === 1 ? 'its job' : 'their jobs'}`);
  }
  if (retiring) {
    // Pausing a busy runner lets its job finish and gives it no other: every node drains.
    for (const n of [...inService, ...filling]) newDrain(n, 'removed');
  }
  if (evacuating) {
    // The nodes kept serving take new jobs: online idle ones first, then booting ones, newest
    // first; the rest drain (a busy one finishes its job first).
    const order = [...inService].sort((a, b) => rank(a) - rank(b) || b.createdAt - a.createdAt);
    for (const n of [...order.slice(desired), ...filling]) newDrain(n, 'failover');
  }
  // A stopped node is standby when Parmanu stopped it and can start it again: not outdated (or too
  // old), not given up on after MAX_START_FAILURES failed starts, and not stopped outside Parmanu —
  // no drain recorded (Parmanu keeps the drain on the nodes it stops) although it was seen online,
  // or its runner still registered and not paused: never drained, and an ephemeral node may have
  // run a job on that disk. (A node Parmanu stopped whose history was lost has neither: its runner
  // is paused or gone.) A removed pool has none.
  const stray = (n: NodeView) => n.drainingSince === undefined && (n.onlineAt !== undefined || (n.runner !== undefined && !n.runner.paused));
  const usable = (n: NodeView) => !noNew && !isOutdated(n) && (n.startFailures ?? 0) < MAX_START_FAILURES && !stray(n);
  // The others go, outdated ones first (they serve nothing, so they are free to replace). A stopped
  // node whose runner still says busy (stopped outside Parmanu mid-job, or the platform's flag
  // lagging) waits until the platform says idle, like any other.
  const unusable = stopped.filter((n) => !usable(n) && isIdle(n));
  if (mayShrink || retiring) {
    destroy.push(...unusable.map((n) => n.name));
    const outdatedN = input.removed ? 0 : unusable.filter(isOutdated).length;
    const strays = unusable.filter((n) => !isOutdated(n) && stray(n)).length;
    const failed = input.removed ? 0 : unusable.length - outdatedN - strays;
    if (outdatedN) reasons.push(`replacing ${outdatedN} outdated standby node${outdatedN === 1 ? '' : 's'}`);
    if (strays && !input.removed) reasons.push(`destroying ${strays} node${strays === 1 ? '' : 's'} stopped outside Parmanu (never drained: not standby)`);
    if (failed) reasons.push(`replacing ${failed} standby node${failed === 1 ? '' : 's'} that failed to start ${MAX_START_FAILURES} times`);
  }
  // Standby: usable and idle.
  const standbyOk = stopped.filter((n) => usable(n) && isIdle(n));
  // Nodes that have booted once to become standby are drained (paused) now, stopped once idle.
  const filled = mayShrink && !noNew ? filling.filter((n) => n.runner?.online === true && onlineSinceStart(n) !== undefined) : [];
  for (const n of filled) newDrain(n, 'standby');

  // Rollout: outdated nodes drain, at most maxUnavailable at a time (counting those already
  // draining for it), idle first, within the disruption budget; their replacements are created below.
  let rollout: NodeView[] = [];
  if (mayShrink && !noNew && outdated.length) {
    const mu = s.rollout.maxUnavailable;
    const limit = 'count' in mu ? mu.count : Math.max(1, Math.ceil((mu.percent / 100) * active.length));
    // Unavailable: nodes draining for the rollout, and nodes still booting (a replacement that is
    // not online yet serves nothing: draining the next one would take the pool below its size).
    const inFlight = draining.filter((n) => n.drainReason === 'outdated' || n.drainReason === 'lifetime').length + inService.filter((n) => n.runner?.online !== true && !outdatedSet.has(n.name)).length;
    const room = Math.max(0, Math.min(limit - inFlight, budget));
    rollout = [...outdated].sort((a, b) => Number(!isIdle(a)) - Number(!isIdle(b)) || a.createdAt - b.createdAt).slice(0, room);
    for (const n of rollout) newDrain(n, n.outdated ? 'outdated' : 'lifetime');
    budget -= rollout.length;
    if (rollout.length) reasons.push(`rollout: replacing ${rollout.length} of ${outdated.length} outdated node${outdated.length === 1 ? '' : 's'} (maxUnavailable ${'count' in mu ? mu.count : `${mu.percent}%`})`);
    else reasons.push(`rollout: ${outdated.length} outdated node${outdated.length === 1 ? '' : 's'} wait${outdated.length === 1 ? 's' : ''} (${inFlight} already draining or booting, maxUnavailable ${'count' in mu ? mu.count : `${mu.percent}%`})`);
  }
  const rolled = new Set(rollout.map((n) => n.name));
  const serving = retiring ? [] : inService.filter((n) => !rolled.has(n.name) && drainReasons[n.name] !== 'failover');

  // Nodes drained in an earlier cycle: resume scale-down drains if capacity is short, else destroy when idle.
  let short = desired - serving.length;
  // Standby is refilled only while demand is met: after a burst, its drained nodes become standby.
  const growing = short > 0;
  // Drained for scale-down or to become standby, and not an ephemeral node that ran its job: fit to serve again.
  const reusable = (n: NodeView) => ['scale-down', 'standby', 'failover'].includes(n.drainReason ?? 'scale-down') && !(pool.runner.ephemeral && (n.runner?.jobsStarted ?? 0) >= 1);
  const resumable = draining
    .filter((n) => reusable(n) && isRegistered(n))
    .sort((a, b) => b.createdAt - a.createdAt);
  for (const n of resumable) {
    if (short <= 0 || hold) break;
    resume.push(n.name);
    short--;
  }
  if (resume.length) reasons.push(`resuming ${resume.length} drained node${resume.length === 1 ? '' : 's'} instead of booting new ones`);
  // Then standby, newest first: a start is faster than a fresh boot. Within max (standby is on top of it).
  const runningAfterResume = running.length - destroy.filter((n) => !stopped.some((x) => x.name === n)).length;
  if (!noNew) {
    const room = Math.max(0, Math.min(Math.min(s.max, cap) - runningAfterResume, s.maxStep));
    // A node whose last start failed waits START_RETRY_MS before it is tried again: creates take its place.
    const startable = standbyOk.filter((n) => n.startFailedAt === undefined || now - n.startFailedAt >= START_RETRY_MS);
    if (short > 0 && startable.length < standbyOk.length) reasons.push(`${standbyOk.length - startable.length} standby node${standbyOk.length - startable.length === 1 ? '' : 's'} failed to start recently: not started again before ${fmt(START_RETRY_MS)}`);
    for (const n of [...startable].sort((a, b) => b.createdAt - a.createdAt)) {
      if (short <= 0 || start.length >= room) break;
      start.push(n.name);
      short--;
    }
    if (start.length) reasons.push(`starting ${start.length} standby node${start.length === 1 ? '' : 's'} instead of booting new ones`);
  }
  let standbyNow = standbyOk.length - start.length;
  // Drained nodes that will be idle standby material: booted (online since their last start), not
  // outdated, not an ephemeral node that ran its job, drained for scale-down or to become standby.
  const mayStandby = (n: NodeView) => reusable(n) && onlineSinceStart(n) !== undefined && !isOutdated(n) && n.stopFailedAt === undefined;
  // Destroyed (or stopped) only once its runner is seen paused (or its registration gone): a runner
  // that a crash or a failed call left unpaused could take a job after the last idle check.
  const pausedNow = (n: NodeView) => n.runner === undefined || n.runner.paused;
  const firstDestroy = destroy.length;
  for (const n of draining) {
    if (resume.includes(n.name)) continue;
    if ((mayShrink || retiring) && (n.drainingSince as number) < now && isIdle(n) && pausedNow(n)) {
      if (!noNew && standbyNow < standby && mayStandby(n)) {
        stop.push(n.name);
        standbyNow++;
      } else destroy.push(n.name);
    } else drain.push(n.name);
  }
  if (stop.length) reasons.push(`stopping ${stop.length} drained idle node${stop.length === 1 ? '' : 's'} into standby (target ${standby})`);
  const destroyedDrained = destroy.length - firstDestroy;
  if (destroyedDrained) reasons.push(`destroying ${destroyedDrained} drained idle node${destroyedDrained === 1 ? '' : 's'}`);
  // Standby over its target goes, oldest first.
  if (mayShrink && standbyNow > standby) {
    const extra = standbyOk.filter((n) => !start.includes(n.name)).sort((a, b) => a.createdAt - b.createdAt).slice(0, standbyNow - standby);
    destroy.push(...extra.map((n) => n.name));
    standbyNow -= extra.length;
    reasons.push(`destroying ${extra.length} standby node${extra.length === 1 ? '' : 's'} over the target of ${standby}`);
  }
  const stillBusy = draining.filter((n) => drain.includes(n.name) && n.runner?.busy);
  if (stillBusy.length) reasons.push(`waiting for ${stillBusy.length} draining node${stillBusy.length === 1 ? '' : 's'} to finish ${stillBusy.length === 1 ? 'its job' : 'their jobs'}`);

  if (short > 0 && !noNew) {
    const existingAfter = running.length + start.length - stop.length - destroy.filter((n) => !stopped.some((x) => x.name === n)).length;
    const room = Math.max(0, Math.min(s.max, cap) - existingAfter);
    const step = s.maxStep - start.length;
    const n = Math.min(short, step, room);
    for (let i = 0; i < n; i++) create.push(`${pool.name}-${input.newId(i)}`);
    if (n < short) reasons.push(n === step ? `adding ${n + start.length} this cycle (maxStep ${s.maxStep})` : `adding ${n}: ${existingAfter} nodes still exist and ${cap < s.max ? `the budget allows ${cap}` : `max is ${s.max}`}`);
  } else if (short < 0 && mayShrink && !noNew) {
    const want = -short;
    const victims = serving
      .filter((n) => isIdle(n) && now - n.createdAt >= s.minLifetimeMs)
      .sort((a, b) => Number(outdatedSet.has(b.name)) - Number(outdatedSet.has(a.name)) || Number(isRegistered(a)) - Number(isRegistered(b)) || (a.lastBusyAt ?? a.createdAt) - (b.lastBusyAt ?? b.createdAt) || a.createdAt - b.createdAt);
    const take = Math.min(want, budget, victims.length);
    for (const v of victims.slice(0, take)) newDrain(v, 'scale-down');
    if (take > 0) reasons.push(`draining ${take} idle node${take === 1 ? '' : 's'}`);
    if (take < want) {
      const why = take === budget ? `disruption budget ${s.disruptionBudget}` : 'the others are busy or younger than minLifetime';
      reasons.push(`${want - take} more could go: ${why}`);
    }
  }

  // Standby under its target while demand is met: nodes are created that boot once (register, warm
  // their caches), are drained as soon as they are online and stopped once idle. What will become
  // standby anyway counts: nodes booting for it, and drained nodes that will be stopped when idle.
  const stillFilling = filling.filter((n) => !filled.includes(n) && !drain.includes(n.name));
  if (standby > 0 && mayShrink && !noNew && !growing) {
    const pending = stillFilling.length + running.filter((n) => drain.includes(n.name) && mayStandby({ ...n, drainReason: n.drainReason ?? drainReasons[n.name] })).length;
    const deficit = standby - standbyNow - pending;
    const total = nodes.length - destroy.length + create.length;
    // Nodes filling standby run while they boot: within the budget's running nodes.
    const runningAfter = running.length + start.length + create.length - stop.length - destroy.filter((x) => !stopped.some((y) => y.name === x)).length;
    const n = Math.max(0, Math.min(deficit, s.maxStep - create.length, s.max + standby - total, cap - runningAfter));
    for (let i = 0; i < n; i++) {
      const name = `${pool.name}-${input.newId(create.length)}`;
      create.push(name);
      stillFilling.push({ name, createdAt: now });
    }
    if (n > 0) reasons.push(`standby ${standbyNow + pending} of ${standby}: creating ${n} node${n === 1 ? '' : 's'} to boot once and stop`);
  }
  if (stillFilling.length) memory.filling = stillFilling.map((n) => n.name);

  const leaving = new Set([...drain, ...destroy, ...stop, ...start, ...resume]);
  const keep = nodes.filter((n) => !leaving.has(n.name)).map((n) => n.name);
  return { pool: pool.name, desired, keep, create, drain, destroy, resume, start, stop, standby, drainReasons, states, reasons, held: hold, memory };
}

/** Which nodes of a platform the pool is leaving keep serving first: online idle, then booting, then busy. */
function rank(n: NodeView): number {
  return n.runner?.busy ? 2 : n.runner?.online === true ? 0 : 1;
}

/** When its runner was first seen online since the node's last start (or its creation). */
function onlineSinceStart(n: NodeView): number | undefined {
  return n.onlineAt !== undefined && n.onlineAt >= (n.startedAt ?? -Infinity) ? n.onlineAt : undefined;
}

/**
 * Never online within bootTimeout of its creation (or of its last start from standby), or offline
 * (once online) for longer than that.
 */
function isBroken(n: NodeView, now: number, bootTimeoutMs: number): boolean {
  if (n.runner?.online) return false;
  const onlineAt = onlineSinceStart(n);
  if (onlineAt === undefined) return now - Math.max(n.createdAt, n.startedAt ?? -Infinity) >= bootTimeoutMs;
  return n.offlineSince !== undefined && n.offlineSince >= onlineAt && now - n.offlineSince >= bootTimeoutMs;
}

/** Failed starts from standby after which the stopped node is replaced. */
export const MAX_START_FAILURES = 3;
/** How long after a failed start a standby node is not started again. */
export const START_RETRY_MS = 5 * 60_000;

/** The warm-node threshold (ForecastOptions.threshold) of a pool with standby. */
export const STANDBY_WARM_THRESHOLD = 0.2;

/** A fresh node's boot, when neither the caller nor the pool's nodes tell it. */
export const DEFAULT_BOOT_MS = 90_000;

/** The median boot (creation → runner online) of the pool's nodes that never were standby; undefined: none booted yet. */
export function observedBootMs(nodes: readonly NodeView[]): number | undefined {
  const boots = nodes.filter((n) => n.startedAt === undefined && n.onlineAt !== undefined && n.onlineAt >= n.createdAt).map((n) => (n.onlineAt as number) - n.createdAt);
  if (!boots.length) return undefined;
  boots.sort((a, b) => a - b);
  return boots[Math.floor((boots.length - 1) / 2)];
}

function pruneMemory(m: PoolMemory | undefined, now: number, windowMs: number): PoolMemory {
  const targets = (m?.targets ?? []).filter((t) => t.at > now - windowMs && t.at <= now);
  return m?.forecast ? { targets, forecast: m.forecast } : { targets };
}

function fmt(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${Math.round(ms / 1000)}s`;
}
