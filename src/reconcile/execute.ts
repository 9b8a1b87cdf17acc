/**
 * execute: the one place that touches runners and terraform. It performs a pool's plan (a value
 * from decide) in steps a reader can follow, each side effect recorded before it is done (intent
 * first), so that a crash between two steps leaves a state the next cycle finishes:
 *
 *   1. finish what a crashed cycle left: intents (registrations without a VM, deregistrations)
 *   2. forget vanished nodes and remove their runners
 *   3. drain: record the drain, then pause the runner (GitHub: remove its registration; a 422
 *      means it runs a job: it stays draining); re-pause draining runners found unpaused
 *   4. resume scale-down drains taken back
 *   4b. start standby nodes (recorded first): GitHub and replay register anew (the old
 *      registration removed first: the name must be free), GitLab and Jenkins unpause their runner
 *   5. register a runner for each new node (recorded first; a failure drops that node)
 *   6. render → init → plan → show → guard; a kept node the plan would create vanished in the
 *      cloud: it is forgotten and the plan redone without it. Started and stopped nodes change
 *      their power state in place (a fresh credential is a new secret version or delivery)
 *   7. the last idle check of every node to destroy or stop, after its runner was paused and right
 *      before the apply; a node found busy is kept draining and the plan redone without it
 *   8. apply
 *   9. remove destroyed nodes' runners (and stopped nodes' on GitHub and replay), remove orphan
 *      runners, record (started nodes: their start, and nothing of their runner's previous run),
 *      sample, events
 */
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { PoolPlan } from '../decide/types.js';
import { freshRunnerOnStart, RunnerBusyError, type Emitter, type ProbeResult, type RunnerRelease } from '../emitters/types.js';
import type { Lease, NodeRecord, PoolRecord } from '../history/types.js';
import type { PlatformConfig, PoolConfig, RunnerCredential } from '../policy/types.js';
import { guardPlan, NODE_PREFIX, nodeOfModule, nodeOfResource, POWER_PREFIX } from '../terraform/guard.js';
import { countChanges, type ResourceChange } from '../terraform/plan.js';
import type { StateNode } from '../terraform/state.js';
import { placeholderAccess } from '../../stacks/placeholders.js';
import { accessOf, CREDENTIALS_VARIABLE, localCredentialFile, secretOf, type NodeInput } from '../../stacks/types.js';
import type { CycleEvent, PoolOutcome, ReconcileDeps } from './cycle.js';
import { recordSpend } from './budget.js';
import { savedConfig, writePoolFile } from './known-pools.js';
import { restart, type PoolTruth } from './observe.js';
import { CapacityFallback } from './fallback.js';
import { observedWaits } from './waits.js';

/** Named points of a pool's cycle where tests and the soak inject faults. */
export type HookPoint = 'observed' | 'drain-recorded' | 'paused' | 'start-recorded' | 'started' | 'registered' | 'planned' | 'before-idle-check' | 'before-apply' | 'applied' | 'recorded';

export interface PoolRun {
  deps: ReconcileDeps;
  pool: PoolConfig;
  platform: PlatformConfig;
  emitter: Emitter;
  dir: string;
  now: number;
  out: PoolOutcome;
  lease: Lease;
  /** Throws when the lease was lost: called before every side effect. */
  check: () => void;
  /**
   * The apply is done: from here a shutdown (SIGTERM) no longer stops the cycle, whose remaining
   * steps record what the apply did (history, runners of destroyed nodes).
   */
  commit: () => void;
  /** Whether commit() was called. */
  committed: () => boolean;
  /** Renews the lease now and throws when it was lost: before each batch of side effects and right before the apply. */
  checkpoint: () => Promise<void>;
  removed: boolean;
  /** The spec new nodes get. */
  spec: string;
  /**
   * The stack this run reconciles (DESIGN "Node identity"): the pool's name on its own platform,
   * `<pool>@<platform>` on a failover platform. Its working directory, state, history record and
   * saved configuration go by it; nodes, runners, samples and events by the pool's name.
   */
  stack: string;
  /**
   * `only`: the pool's one stack. With failover, `active`: the stack that gets new nodes;
   * `leaving`: a stack of a platform the pool is leaving (no samples: the active one counts the pool).
   */
  placement: 'only' | 'active' | 'leaving';
  /** Nodes in the pool's other stacks (failover): not this stack's, never its orphans. */
  elsewhere: ReadonlySet<string>;
  /**
   * Some of the pool's other stacks could not be read this cycle: their nodes are not all in
   * `elsewhere`, so no marked runner is taken for an orphan and no record of the pool forgotten.
   */
  elsewhereUnknown?: boolean;
}

/** Terraform's error when another run holds the state lock: about neither the nodes nor the platform. */
const STATE_LOCK = /state lock|acquiring the state lock/i;

/** Errors of a Terraform step (init, state, plan, show, apply, refresh): what failover counts against a platform. */
const platformErrors = new WeakSet<object>();
export function isPlatformError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && platformErrors.has(err) && !STATE_LOCK.test((err as Error).message);
}

/** The type of a node's own resource: its VM, or (module platform) Parmanu's record of the node's module call beside `module.node_<name>`. */
const NODE_TYPE = { aws: 'aws_instance', gcp: 'google_compute_instance', local: 'terraform_data', module: 'terraform_data' } as const;

type Intent = PoolRecord['intents'][number];

/** Terraform's backend settings for the pool, hashed: init runs again when they change. */
function backendHash(run: PoolRun): string {
  return createHash('sha256').update(JSON.stringify({ backend: run.platform.backend ?? { type: 'local' }, pool: run.stack, stateDir: run.deps.stateDir })).digest('hex');
}

/** The process is shutting down (SIGTERM): a pool's cycle stops before its next step. */
export class ShuttingDown extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShuttingDown';
  }
}

async function step<T>(run: PoolRun, name: NonNullable<CycleEvent['step']>, f: () => Promise<T>): Promise<T> {
  // The step running when SIGTERM came finishes; the next one does not start.
  if (run.deps.stopping?.() && !run.committed()) throw new ShuttingDown(`shutting down: pool ${run.pool.name} stopped before its next step (${name}; the next cycle goes on from there)`);
  const t = Date.now();
  run.deps.log?.({ level: 'debug', msg: `${name.replace('-', ' ')}…`, pool: run.pool.name, step: name });
  let r: T;
  try {
    r = await f();
  } catch (err) {
    if (name.startsWith('terraform-') && typeof err === 'object' && err !== null) platformErrors.add(err);
    throw err;
  }
  run.deps.log?.({ level: 'info', msg: `${name.replace('-', ' ')} done`, pool: run.pool.name, step: name, durationMs: Date.now() - t });
  return r;
}

/**
 * The pool's nodes as its backend holds them (`terraform state pull`, the same for every
 * backend). A working directory that was never initialized gets a stack with the backend alone.
 */
export async function pullState(run: PoolRun): Promise<StateNode[]> {
  const t = Date.now();
  if (!existsSync(join(run.dir, 'cdk.tf.json'))) await renderTo(run, []);
  await step(run, 'terraform-init', () => run.deps.terraform.init(run.dir, backendHash(run), cloudEnv(run)));
  const nodes = await step(run, 'terraform-state', () => run.deps.terraform.pullState(run.dir, cloudEnv(run)));
  run.out.terraformMs += Date.now() - t;
  return nodes;
}

/** A node as the pool's stack renders it: stacks' own input type (a type import, nothing loaded). */
type RenderNode = NodeInput;

/** Environment every terraform call of the pool gets: its platform's own credentials file (GCP). */
function cloudEnv(run: PoolRun): Record<string, string> {
  return run.platform.type === 'gcp' && run.platform.credentialsFile ? { GOOGLE_APPLICATION_CREDENTIALS: run.platform.credentialsFile } : {};
}

async function renderTo(run: PoolRun, nodes: RenderNode[]): Promise<void> {
  const { renderPool, writeStack } = await import('../../stacks/render.js');
  writeStack(run.dir, renderPool({ pool: run.pool, platform: run.platform, stateDir: run.deps.stateDir, nodes, ...(run.stack !== run.pool.name ? { stack: run.stack } : {}) }));
}

export async function executePlan(run: PoolRun, plan: PoolPlan, truth: PoolTruth, prior: PoolRecord | undefined, probe: ProbeResult | undefined): Promise<void> {
  const { deps, pool, emitter, out, now } = run;
  const dry = deps.dryRun === true;
  const hook = (point: HookPoint, nodes: readonly string[]) => deps.hook?.(point, { pool: pool.name, nodes });
  const rec: PoolRecord = {
    pool: run.stack,
    nodes: truth.records,
    ...(prior?.memory ? { memory: prior.memory } : {}),
    ...(prior?.applied ? { applied: prior.applied } : {}),
    ...(prior?.lastFullPlanAt !== undefined ? { lastFullPlanAt: prior.lastFullPlanAt } : {}),
    ...(prior?.release ? { release: prior.release } : {}),
    ...(prior?.failover ? { failover: prior.failover } : {}),
    pendingRunners: { ...(prior?.pendingRunners ?? {}) },
    seenJobs: prior?.seenJobs ?? [],
    ...(prior?.runningJobs ? { runningJobs: prior.runningJobs } : {}),
    intents: [...(prior?.intents ?? [])],
    config: savedConfig(pool, run.platform, run.stack),
  };
  const byName = new Map(rec.nodes.map((n) => [n.name, n]));
  /** A start from standby that did not happen: decide pauses before the next and gives up after a few. */
  const startFailed = (n: string) => {
    const r = byName.get(n);
    if (!r) return;
    r.startFailures = (r.startFailures ?? 0) + 1;
    r.startFailedAt = now;
  };
  const inState = new Set(rec.nodes.map((n) => n.name));
  const save = async () => {
    if (dry) return;
    run.check();
    await deps.history.putPool(rec, run.lease);
  };
  const say = (s: string) => out.reasons.push(s);
  /** Removes a runner; false (with a reason) when the platform refused or could not be reached. */
  const removeRunner = async (node: string, why: string): Promise<boolean> => {
    if (dry) return true;
    run.check();
    try {
      await step(run, 'deregister', () => emitter.deregister(node));
      return true;
    } catch (err) {
      say(`could not remove the runner of ${node} (${why}): ${(err as Error).message}`);
      return false;
    }
  };
  const dropIntents = (node: string, actions?: ReadonlyArray<Intent['action']>) => {
    rec.intents = rec.intents.filter((i) => i.node !== node || (actions !== undefined && !actions.includes(i.action)));
  };

  // 1. Intents left by an earlier cycle: a registration or destroy whose node is not in state
  //    leaves a runner no VM will ever back: it goes now, not after a grace period.
  //    A stopped node that is not started now has no registration (GitHub, replay) or a paused
  //    runner (GitLab, Jenkins): a stop applied before a crash is finished, a start that crashed
  //    before its apply is undone, whatever the intents say (a lost history loses none of it).
  //    (A start that was applied was finished by observe: the node is running in state.)
  const fresh = freshRunnerOnStart(emitter.kind);
  const standbyChores: Array<{ node: string; undo: 'deregister' | 'pause' }> = [];
  for (const sn of truth.stateNodes.values()) {
    const r = truth.runners.get(sn.name);
    if (sn.power !== 'stopped' || plan.start.includes(sn.name) || !r || r.busy) continue;
    if (fresh) standbyChores.push({ node: sn.name, undo: 'deregister' });
    else if (!r.paused) standbyChores.push({ node: sn.name, undo: 'pause' });
  }
  const leftover = new Set<string>();
  for (const i of [...rec.intents]) {
    if (inState.has(i.node) && (i.action === 'stop' || i.action === 'start')) {
      if (!standbyChores.some((c) => c.node === i.node)) dropIntents(i.node, [i.action]);
      continue;
    }
    if (inState.has(i.node)) {
      // A pause whose runner is paused (or gone) now was done; one still to do is redone below.
      const r = truth.runners.get(i.node);
      const paused = !r || r.paused;
      if (i.action !== 'pause' || paused || byName.get(i.node)?.drainingSince === undefined) dropIntents(i.node, [i.action]);
      continue;
    }
    if (i.action === 'register' || i.action === 'destroy' || i.action === 'deregister') leftover.add(i.node);
  }

  // 2. Vanished nodes: forgotten, runner removed, never re-created under their name.
  for (const name of truth.vanished) {
    out.vanished.push(name);
    leftover.add(name);
  }
  if (truth.vanished.length) say(`${truth.vanished.length} node${truth.vanished.length === 1 ? '' : 's'} vanished outside Parmanu (${truth.vanished.join(', ')}): forgotten, runner${truth.vanished.length === 1 ? '' : 's'} removed, replaced with fresh credentials if demand needs`);
  for (const name of leftover) {
    if (!rec.intents.some((i) => i.node === name && i.action === 'deregister')) rec.intents.push({ node: name, action: 'deregister', at: now });
  }
  if (leftover.size) await save();
  for (const name of leftover) {
    // Removing an absent runner succeeds (idempotent); one that reports a job waits (GitHub would answer 422).
    if (truth.runners.get(name)?.busy) {
      say(`runner ${name} has no VM but reports a job: left for now`);
      continue;
    }
    if (await removeRunner(name, 'no VM backs it')) dropIntents(name);
  }
  for (const c of standbyChores) {
    if (dry) break;
    if (c.undo === 'deregister') {
      if (await removeRunner(c.node, 'its node is stopped')) dropIntents(c.node, ['start', 'stop']);
      continue;
    }
    run.check();
    try {
      await step(run, 'pause', () => emitter.pause(c.node));
      dropIntents(c.node, ['start', 'stop']);
    } catch (err) {
      say(`could not pause the runner of ${c.node} (its node is stopped): ${(err as Error).message}`);
    }
  }

  // 3. Drains: intent first (drainingSince recorded), then pause.
  const newDrains = plan.drain.filter((n) => byName.get(n)?.drainingSince === undefined);
  for (const n of newDrains) {
    const r = byName.get(n) as NodeRecord;
    r.drainingSince = now;
    r.drainReason = plan.drainReasons[n] ?? 'scale-down';
    rec.intents.push({ node: n, action: 'pause', at: now });
  }
  const repause = plan.drain.filter((n) => !newDrains.includes(n) && truth.runners.get(n) !== undefined && !truth.runners.get(n)?.paused);
  for (const n of plan.resume) {
    const r = byName.get(n) as NodeRecord;
    delete r.drainingSince;
    delete r.stopFailedAt;
    delete r.drainReason;
    rec.intents.push({ node: n, action: 'resume', at: now });
  }
  if (newDrains.length || plan.resume.length) {
    await save();
    await hook('drain-recorded', newDrains);
  }
  if (!dry && newDrains.length + repause.length) await run.checkpoint();
  for (const n of [...newDrains, ...repause]) {
    if (dry) break;
    run.check();
    try {
      await step(run, 'pause', () => emitter.pause(n));
      dropIntents(n, ['pause']);
    } catch (err) {
      if (err instanceof RunnerBusyError) {
        dropIntents(n, ['pause']);
        say(`${n} is running a job: its runner stays until the job ends, the node keeps draining`);
      } else say(`could not pause the runner of ${n}: ${(err as Error).message}`);
    }
  }
  if (newDrains.length) await hook('paused', newDrains);

  // 4. Resumes.
  if (!dry && plan.resume.length && emitter.resume) {
    for (const n of plan.resume) {
      run.check();
      await emitter.resume(n);
      dropIntents(n, ['resume']);
    }
  }

  // 4b. Starts from standby, each recorded before its runner is touched. GitHub and replay get a
  //     new registration and credential (the old registration removed first: a JIT runner's name
  //     must be free); GitLab and Jenkins unpause the runner the node kept.
  const registerRequest = (node: string) => ({ node, pool: pool.name, labels: pool.labels, jobsPerNode: pool.runner.jobsPerNode, ephemeral: pool.runner.ephemeral, acceptUntagged: pool.acceptUntagged });
  const starting: string[] = [];
  const startCredentials = new Map<string, RunnerCredential>();
  if (plan.start.length && !dry) {
    for (const n of plan.start) if (!rec.intents.some((i) => i.node === n && i.action === 'start')) rec.intents.push({ node: n, action: 'start', at: now });
    await save();
    await hook('start-recorded', plan.start);
    await run.checkpoint();
  }
  for (const n of plan.start) {
    if (dry) {
      starting.push(n);
      continue;
    }
    run.check();
    try {
      if (fresh) {
        await step(run, 'deregister', () => emitter.deregister(n));
        startCredentials.set(n, await step(run, 'register', () => emitter.register(registerRequest(n))));
      } else if (emitter.resume) {
        const resume = emitter.resume.bind(emitter);
        await step(run, 'register', () => resume(n));
      }
      starting.push(n);
    } catch (err) {
      say(`could not prepare the runner of ${n} to start it: ${(err as Error).message}; it stays in standby`);
    }
  }
  if (starting.length && !dry) await hook('started', starting);
  // Stops: decided for drained nodes confirmed idle; the last idle check comes right before the apply.
  let stopping = [...plan.stop];

  // 5. Registrations, each recorded before it is made.
  const credentials = new Map<string, RunnerCredential>();
  if (plan.create.length && !dry) {
    for (const name of plan.create) rec.intents.push({ node: name, action: 'register', at: now });
    await save();
    await run.checkpoint();
  }
  const placeholder = placeholderAccess(deps.policy.emitters[pool.emitter], pool);
  const dryCreated: string[] = [];
  for (const name of plan.create) {
    if (dry) {
      dryCreated.push(name);
      continue;
    }
    run.check();
    try {
      credentials.set(name, await step(run, 'register', () => emitter.register(registerRequest(name))));
    } catch (err) {
      say(`could not register a runner for ${name}: ${(err as Error).message}`);
    }
  }
  if (credentials.size) await hook('registered', [...credentials.keys()]);
  const created = [...credentials.keys(), ...dryCreated];
  // New nodes' secrets reach terraform only through its environment, as the ephemeral variable
  // (supplied again to the apply of the saved plan); they are in no file Parmanu writes.
  const secrets: Record<string, string> = {};
  for (const [name, cred] of [...credentials, ...startCredentials]) {
    const secret = secretOf(cred);
    if (secret !== undefined) secrets[name] = secret;
  }
  // Started nodes whose fresh credential goes to the secret store (a new version or delivery).
  const renew = new Set([...startCredentials.keys()].filter((n) => secrets[n] !== undefined));
  const planEnv: Record<string, string> = { ...cloudEnv(run), [`TF_VAR_${CREDENTIALS_VARIABLE}`]: JSON.stringify(secrets) };
  // New nodes download a pinned runner and verify its published checksum (kept nodes keep theirs).
  const release = created.length ? await pinRelease(run, rec, say) : undefined;

  // 6–8. Terraform, with the last idle check right before the apply.
  // New nodes whose apply failed for capacity are placed again (on-demand, next subnet/zone): fallback.ts.
  const fb = new CapacityFallback(pool, run.platform);
  let destroy = [...plan.destroy];
  let kept = rec.nodes.map((n) => n.name).filter((n) => !destroy.includes(n));
  const stateSpec = new Map(truth.views.map((v) => [v.name, v]));
  const driftDue = now - (rec.lastFullPlanAt ?? 0) >= (deps.driftCheckMs ?? 3_600_000);
  /** The power state each started or stopped node is to have. */
  const powerTo = () => new Map<string, 'running' | 'stopped'>([...starting.map((n): [string, 'running'] => [n, 'running']), ...stopping.map((n): [string, 'stopped'] => [n, 'stopped'])]);
  const renderNodes = (): RenderNode[] => {
    const to = powerTo();
    return [
      // A kept node keeps exactly the resources it has: one without credential resources in the
      // state (made before they existed, or an apply that failed between its VM and its credential)
      // is never given a new, empty one; if it cannot come online, the lifecycle finds it broken.
      // Its power state is the state's, unless this apply starts or stops it.
      ...kept.map((name) => {
        const sn = truth.stateNodes.get(name);
        const power = to.get(name) ?? sn?.power;
        const renewed = renew.has(name);
        return {
          name,
          access: placeholder,
          createdAt: byName.get(name)?.createdAt ?? now,
          credential: truth.withCredential.has(name) || renewed,
          ...(stateSpec.get(name)?.outdated ? {} : { spec: run.spec }),
          ...(power !== undefined ? { power } : {}),
          // A power state in the state (AWS: its power resource) stays rendered, standby or not.
          ...(sn?.power !== undefined ? { powerResource: true } : {}),
          // Its record as the state holds it: a module node's call is rendered again from it (stacks/module-node.ts).
          ...(to.has(name) ? { powerChange: true } : {}),
          ...(sn?.input ? { recorded: sn.input } : {}),
          generation: (sn?.generation ?? 1) + (renewed ? 1 : 0),
        };
      }),
      ...created.map((name) => {
        const cred = credentials.get(name);
        return { name, access: cred ? accessOf(cred) : placeholder, spec: run.spec, createdAt: now, power: 'running' as const, ...(release ? { release } : {}), ...fb.render(name) };
      }),
    ];
  };
  let applied = false;
  /** The changes of the plan that passed the guard (none when terraform planned nothing). */
  let planned: readonly ResourceChange[] | undefined;
  if (created.length || destroy.length || starting.length || stopping.length || driftDue) {
    const tfStart = Date.now();
    for (let round = 0; ; round++) {
      if (round - fb.rounds > 4) throw new Error('the plan kept changing while nodes vanished or picked up jobs: stopped before applying');
      await renderTo(run, renderNodes());
      const changed = await step(run, 'terraform-plan', () => deps.terraform.plan(run.dir, 'parmanu.tfplan', planEnv));
      out.terraform.ran = true;
      planned = fb.earlier.length ? [...fb.earlier] : undefined;
      if (!changed) {
        // After a capacity fallback, nothing left to do: the failed apply did all the rest.
        if (fb.rounds) {
          applied = true;
          run.commit();
        }
        break;
      }
      const shown = await step(run, 'terraform-show', () => deps.terraform.show(run.dir, 'parmanu.tfplan'));
      // A kept node the refreshed plan would create is gone from the cloud: never re-created under its old name.
      let gone = recreated(shown.resource_changes, NODE_TYPE[run.platform.type], new Set(kept), new Set([...truth.runners.values()].filter((r) => r.busy).map((r) => r.name)));
      // A module node of which only part is gone (its VM, or a module that gained a resource): its
      // runner is asked now, as before any destroy; one that is not idle is kept (the guard then
      // refuses the change and the pool holds, saying why).
      const partly = partlyRecreated(shown.resource_changes, new Set(gone));
      for (const n of partly) {
        if (dry || !truth.runners.has(n)) continue;
        run.check();
        const idle = await step(run, 'idle-check', () => emitter.isIdle(n)).catch(() => false);
        if (!idle) gone = gone.filter((x) => x !== n);
      }
      if (gone.length) {
        kept = kept.filter((n) => !gone.includes(n));
        rec.nodes = rec.nodes.filter((n) => !gone.includes(n.name));
        for (const n of gone) {
          out.vanished.push(n);
          // (A runner that reports a job is left: an orphan now, removed once idle.)
          if (truth.runners.has(n) && !truth.runners.get(n)?.busy && (await removeRunner(n, 'its VM vanished'))) dropIntents(n);
        }
        say(`${gone.length} node${gone.length === 1 ? '' : 's'} vanished from the cloud (${gone.join(', ')}): forgotten, not re-created`);
        // Saved to the state now, so that the next cycle's state pull no longer lists them.
        if (!dry) {
          await run.checkpoint();
          await step(run, 'terraform-refresh', () => deps.terraform.refreshOnly(run.dir, planEnv));
        }
        continue;
      }
      out.terraform = { ran: true, ...countChanges(shown.resource_changes) };
      const violations = guardPlan(shown.resource_changes, { pool: pool.name, nodeType: NODE_TYPE[run.platform.type], mayCreate: new Set(created), mayDestroy: new Set([...destroy, ...out.vanished]), kept: new Set(kept), poolEmptied: kept.length === 0 && created.length === 0, power: powerTo(), renew });
      if (violations.length) throw new Error(`plan guard refused the plan, nothing applied: ${violations.slice(0, 3).join('; ')}${violations.length > 3 ? ` (+${violations.length - 3} more)` : ''}`);
      planned = [...fb.earlier, ...shown.resource_changes];
      await hook('planned', destroy);
      if (dry) break;
      // 7. The last idle check: the runners were paused in an earlier cycle; nothing may have started since.
      if (destroy.length || stopping.length) {
        await hook('before-idle-check', [...destroy, ...stopping]);
        run.check();
        const busy: string[] = [];
        for (const n of [...destroy, ...stopping]) {
          const idle = await step(run, 'idle-check', () => emitter.isIdle(n)).catch((err: Error) => {
            say(`cannot tell whether ${n} is idle (${err.message}): not destroyed`);
            return false;
          });
          if (!idle) busy.push(n);
        }
        if (busy.length) {
          say(`${busy.join(', ')} picked up a job after ${busy.length === 1 ? 'it was' : 'they were'} drained: kept draining`);
          kept.push(...busy.filter((n) => destroy.includes(n)));
          destroy = destroy.filter((n) => !busy.includes(n));
          stopping = stopping.filter((n) => !busy.includes(n));
          // decide made room under max for the destroys and stops: without them, creates beyond max
          // wait. Standby (stopped, staying stopped) is on top of max.
          const to = powerTo();
          const over = kept.filter((n) => (to.get(n) ?? truth.stateNodes.get(n)?.power) !== 'stopped').length + created.length - pool.scaling.max;
          if (over > 0) {
            const dropped = created.splice(created.length - over, over);
            say(`not creating ${dropped.join(', ')} this cycle: the nodes kept draining still count against max ${pool.scaling.max}`);
            for (const n of dropped) {
              credentials.delete(n);
              delete secrets[n];
              if (await removeRunner(n, 'its node was not created')) dropIntents(n);
            }
            planEnv[`TF_VAR_${CREDENTIALS_VARIABLE}`] = JSON.stringify(secrets);
          }
          continue;
        }
        for (const n of destroy) rec.intents.push({ node: n, action: 'destroy', at: now });
        for (const n of stopping) if (!rec.intents.some((i) => i.node === n && i.action === 'stop')) rec.intents.push({ node: n, action: 'stop', at: now });
        await save();
      }
      await hook('before-apply', [...destroy, ...starting, ...stopping]);
      await run.checkpoint();
      writePoolFile(run.dir, pool, run.platform, run.stack);
      // The apply does not wait for the state lock: a long wait would put time between the last
      // idle check and the destroy. Held by someone else, it fails now and the next cycle checks again.
      const applyFrom = Date.now();
      try {
        await step(run, 'terraform-apply', () => deps.terraform.apply(run.dir, 'parmanu.tfplan', { lockTimeout: '0s', env: planEnv }));
        // The fencing record: which lease this apply ran under, and when (wall clock).
        await deps.history.addEvent({ at: now, pool: pool.name, kind: 'apply', detail: `applied under lease ${run.lease.token} of ${run.lease.owner}`, lease: { owner: run.lease.owner, token: run.lease.token, from: applyFrom, to: Date.now() } }).catch(() => undefined);
      } catch (err) {
        // New nodes that got no capacity (and nothing else failed): placed again, planned and applied again.
        const fell = fb.onApplyError((err as { output?: string }).output ?? (err as Error).message, created, planned);
        if (fell) {
          for (const s of fell.steps) say(s.reason);
          for (const n of fell.dropped) {
            created.splice(created.indexOf(n), 1);
            credentials.delete(n);
            delete secrets[n];
            if (run.platform.type === 'local') rmSync(localCredentialFile(deps.stateDir, pool.name, n), { force: true });
            if (await removeRunner(n, 'no capacity for its node')) dropIntents(n);
          }
          planEnv[`TF_VAR_${CREDENTIALS_VARIABLE}`] = JSON.stringify(secrets);
          continue;
        }
        // A start that failed (no capacity in the zone, a quota): recorded on its node, so that
        // decide pauses before trying it again and gives up on it after a few. Its runner is undone
        // by the start intent next cycle, if the node is not started then; a node the apply did
        // start anyway is found running by observe, whose restart clears the count.
        // Only the starts the error names (terraform names the failing resource: node_<name>,
        // power_<name>), or all of them when it names none; never for a held state lock, which
        // says nothing about the nodes.
        const message = (err as Error).message;
        const named = starting.filter((n) => message.includes(n));
        const blamed = STATE_LOCK.test(message) ? [] : named.length ? named : starting;
        if (blamed.length) {
          for (const n of blamed) startFailed(n);
          // The apply's error is the one reported.
          await save().catch(() => undefined);
        }
        throw err;
      }
      applied = true;
      run.commit();
      break;
    }
    out.terraformMs += Date.now() - tfStart;
    if (!dry) rec.lastFullPlanAt = now;
  } else if (!dry && !existsSync(join(run.dir, 'parmanu-pool.json'))) writePoolFile(run.dir, pool, run.platform, run.stack);
  // Nodes whose destroy was not applied stay (a dry run, or a plan with nothing to do).
  if (!applied) destroy = destroy.filter((n) => !inState.has(n) || dry);
  // A start or stop is done when the state already has the node's power so (nothing to do), or
  // the plan changed its power (its VM's or its power resource). One the plan left alone otherwise
  // is not done: never recorded as started or stopped, its runner not touched after the apply (a
  // start's intent undoes its runner next cycle); the next cycle decides again.
  const moved = (n: string) => (applied || dry) && (planned ?? []).some((r) => r.mode === 'managed' && nodeOfResource(r.name) === n && (r.name.startsWith(NODE_PREFIX) || r.name.startsWith(POWER_PREFIX)) && r.change.actions.some((a) => a === 'update' || a === 'create'));
  const unmoved = [...powerTo()].filter(([n, p]) => (truth.stateNodes.get(n)?.power ?? 'running') !== p && !moved(n)).map(([n]) => n);
  if (unmoved.length) {
    // Never decided the same way again and again: a start the plan did not make counts as a failed
    // start (decide pauses, then replaces the node), a stop makes decide destroy the node instead.
    say(`the plan did not change the power state of ${unmoved.join(', ')}: not ${unmoved.length === 1 ? 'its' : 'their'} start or stop (a start counts as a failed one; a node that would not stop is destroyed instead)`);
    if (!dry) {
      for (const n of unmoved) {
        if (starting.includes(n)) startFailed(n);
        else {
          const r = byName.get(n);
          if (r) r.stopFailedAt = now;
        }
      }
    }
    starting.splice(0, starting.length, ...starting.filter((n) => !unmoved.includes(n)));
    stopping = stopping.filter((n) => !unmoved.includes(n));
  }
  out.create = created;
  out.drain = plan.drain.filter((n) => !destroy.includes(n));
  out.destroy = destroy;
  out.start = starting;
  out.stop = stopping;
  const fallbacks = fb.outcome();
  if (fallbacks) out.fallbacks = fallbacks;
  if (dry) return;
  await hook('applied', [...destroy, ...starting, ...stopping]);

  // 9. After the apply.
  for (const n of destroy) if (await removeRunner(n, 'its VM was destroyed')) dropIntents(n);
  // Stopped: on GitHub and replay the registration goes (a JIT runner's name must be free for the
  // next start); GitLab and Jenkins keep their paused runner. The drain stays recorded: its runner
  // is paused (or gone) while the node is standby.
  for (const n of stopping) {
    if (!fresh || (await removeRunner(n, 'its node stopped'))) dropIntents(n, ['stop']);
  }
  // Started: its boot clock runs from now, and what was seen of its runner belongs to its previous run.
  for (const n of starting) {
    const r = byName.get(n);
    if (r) restart(r, now);
    dropIntents(n, ['start']);
  }
  // The local platform's credential files of nodes that are gone (a destroy-time provisioner never
  // runs for a resource removed from the configuration).
  if (run.platform.type === 'local') for (const n of [...destroy, ...out.vanished]) rmSync(localCredentialFile(deps.stateDir, pool.name, n), { force: true });
  rec.nodes = rec.nodes.filter((n) => !destroy.includes(n.name));
  for (const name of created) {
    rec.nodes.push({ name, createdAt: now, ...fb.record(name, now) });
    dropIntents(name, ['register']);
  }
  if (!run.elsewhereUnknown) await removeOrphans(run, rec, truth, new Set([...rec.nodes.map((n) => n.name), ...created]), removeRunner);
  else say('not every stack of the pool could be read: no runner is taken for an orphan this cycle');
  const names = rec.nodes.map((n) => n.name).sort();
  rec.applied = { names, at: now, stackHash: '' };
  let arrivals = 0;
  let waits: number[] = [];
  if (probe?.ok) {
    const seenIds = new Set(rec.seenJobs);
    const ids = truth.jobs.filter((j) => j.status !== 'upcoming').map((j) => j.id);
    arrivals = ids.filter((id) => !seenIds.has(id)).length;
    // Jobs seen starting since the last probe, and how long they waited (for the report).
    const started = observedWaits(truth.jobs, rec.runningJobs ? { running: rec.runningJobs, seen: rec.seenJobs } : undefined, probe.at);
    waits = started.waits;
    rec.runningJobs = started.running.slice(-5000);
    rec.seenJobs = ids.slice(-5000);
  }
  rec.memory = plan.memory;
  // A removed pool's stacks, and a failover stack the pool left, are forgotten once empty (the
  // pool's own record stays while the pool is in the policy: it keeps its platforms' health).
  // (A removed pool's own record goes last: it names the failover stacks still draining.)
  const forget = !run.elsewhereUnknown && ((run.removed && (run.stack !== pool.name || run.elsewhere.size === 0)) || (run.placement === 'leaving' && run.stack !== pool.name));
  if (forget && rec.nodes.length === 0 && truth.orphans.length === 0 && rec.intents.length === 0) {
    run.check();
    await deps.history.deletePool(run.stack, run.lease);
    rmSync(join(run.dir, 'parmanu-pool.json'), { force: true });
    say(run.removed ? `pool ${pool.name}${run.stack !== pool.name ? ` (stack ${run.stack})` : ''} is empty: forgotten` : `stack ${run.stack} is empty: forgotten`);
  } else await save();
  await hook('recorded', names);
  // The pool's sample (demand, nodes of all its stacks) comes from the stack that gets new nodes.
  if (run.placement !== 'leaving') await deps.history.addSample(pool.name, { at: now, queued: out.observed.queued, running: out.observed.running, arrivals, nodes: rec.nodes.length + run.elsewhere.size, desired: plan.desired, ...(waits.length ? { waits } : {}) }, run.lease);
  // Cost budgets: what the stack's nodes cost since its last record (reconcile/budget.ts).
  await recordSpend(deps.history, pool, run.lease, { views: truth.views, created, destroyed: destroy, started: starting, stopped: stopping }, now, run.stack);
  if (created.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-up', detail: `+${created.length}: ${created.join(' ')}`, reasons: plan.reasons });
  if (destroy.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-down', detail: `-${destroy.length}: ${destroy.join(' ')}`, reasons: plan.reasons });
  if (starting.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-up', detail: `started from standby: ${starting.join(' ')}`, reasons: plan.reasons });
  if (stopping.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'scale-down', detail: `stopped into standby: ${stopping.join(' ')}`, reasons: plan.reasons });
  if (out.vanished.length) await deps.history.addEvent({ at: now, pool: pool.name, kind: 'orphan', detail: `vanished: ${out.vanished.join(' ')}` });
  for (const e of fb.events(pool.name, now)) await deps.history.addEvent(e);
}

/**
 * The runner release the pool's new nodes are pinned to: the policy's `runner.version` (`latest`
 * included) resolved by the emitter (cached there an hour) and recorded on the pool. A failure to
 * resolve never holds the scale-up (CI would wait on a release feed): the last release resolved
 * for the same version and emitter kind is used, and without one the nodes download the version
 * as written, unverified; either way a reason says so. Pools that use a pre-installed runner, and
 * emitters without runner binaries (Jenkins: agent.jar comes from the controller), resolve nothing.
 */
async function pinRelease(run: PoolRun, rec: PoolRecord, say: (s: string) => void): Promise<RunnerRelease | undefined> {
  const { pool, emitter } = run;
  if (pool.runner.install !== 'download' || !emitter.runnerRelease) return undefined;
  const requested = pool.runner.version;
  try {
    const r = await emitter.runnerRelease(requested);
    rec.release = { kind: emitter.kind, requested, version: r.version, sha256: { ...r.sha256 }, at: run.now };
    return r;
  } catch (err) {
    const why = (err as Error).message;
    const last = rec.release?.kind === emitter.kind && rec.release.requested === requested ? rec.release : undefined;
    if (last) {
      say(`could not resolve runner ${requested} (${why}): new nodes pinned to ${last.version}, the release resolved ${Math.round((run.now - last.at) / 60_000)} min ago`);
      return { version: last.version, sha256: { ...last.sha256 } };
    }
    say(`could not resolve runner ${requested} (${why}): new nodes download ${requested === 'latest' ? 'the latest release' : requested} without checksum verification`);
    return undefined;
  }
}

/** Kept nodes (not decided new) whose VM (or any resource of their module) the plan would create: it is gone from the cloud. */
export function recreated(changes: readonly ResourceChange[], nodeType: string, kept: ReadonlySet<string>, busy: ReadonlySet<string> = new Set()): string[] {
  const created = new Set<string>();
  // A module node whose whole module is to be created is gone. One whose module would create only
  // some resources lost them outside Terraform (its VM, say) — or its module gained a resource: it
  // is taken for vanished only while its runner reports no job; a busy one is kept (the guard then
  // refuses the change and the pool holds, saying why), so a busy node's VM is never destroyed for it.
  const moduleKept = new Set<string>();
  for (const r of changes) {
    if (r.mode !== 'managed') continue;
    const inModule = r.module_address !== undefined ? nodeOfModule(r.module_address) : undefined;
    const node = inModule ?? (r.type === nodeType && r.name.startsWith('node_') ? nodeOfResource(r.name) : undefined);
    if (!node || !kept.has(node)) continue;
    const create = r.change.actions.length === 1 && r.change.actions[0] === 'create';
    if (inModule !== undefined && !create) moduleKept.add(node);
    else if (create) created.add(node);
  }
  return [...created].filter((n) => !moduleKept.has(n) || !busy.has(n));
}

/** Module nodes among `nodes` whose module the plan would create only in part (some of it stays). */
export function partlyRecreated(changes: readonly ResourceChange[], nodes: ReadonlySet<string>): string[] {
  const out = new Set<string>();
  for (const r of changes) {
    const node = r.mode === 'managed' && r.module_address !== undefined ? nodeOfModule(r.module_address) : undefined;
    if (node && nodes.has(node) && !(r.change.actions.length === 1 && r.change.actions[0] === 'create')) out.add(node);
  }
  return [...out];
}

/**
 * Marked runners of this pool that no VM backs and no crash of ours explains (those went in step
 * 1): removed once they have been seen for the grace period, never while they report a job.
 */
async function removeOrphans(run: PoolRun, rec: PoolRecord, truth: PoolTruth, nodes: ReadonlySet<string>, removeRunner: (n: string, why: string) => Promise<boolean>): Promise<void> {
  const grace = run.deps.orphanGraceMs ?? 15 * 60_000;
  for (const name of Object.keys(rec.pendingRunners)) if (nodes.has(name) || !truth.runners.has(name)) delete rec.pendingRunners[name];
  for (const r of truth.orphans) {
    if (nodes.has(r.name) || run.out.vanished.includes(r.name)) continue;
    const since = rec.pendingRunners[r.name] ?? run.now;
    rec.pendingRunners[r.name] = since;
    if (run.now - since >= grace && !r.busy && (await removeRunner(r.name, 'no VM backs it'))) {
      delete rec.pendingRunners[r.name];
      run.out.reasons.push(`removed runner ${r.name}: no VM backs it`);
    }
  }
}

