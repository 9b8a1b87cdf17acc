/**
 * `parmanu destroy`: tear pools down on purpose. Nothing of its own touches runners or terraform:
 * it runs reconcile cycles for the chosen pools with `teardown`, which reconciles them as pools
 * removed from the policy are (every runner paused, idle nodes destroyed, busy ones once their job
 * ends — never while busy —, runners removed, the pool's record deleted once empty).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Emitter } from '../emitters/types.js';
import { parseDuration } from '../policy/duration.js';
import { inCi } from '../policy/env.js';
import { forTerminal } from '../policy/text.js';
import type { PoolConfig } from '../policy/types.js';
import { reconcileOnce, type PoolOutcome } from '../reconcile/cycle.js';
import { removedPools } from '../reconcile/known-pools.js';
import { Terraform, TerraformError } from '../terraform/runner.js';
import { durationArg, parse } from './args.js';
import { fleetClock, loadFleet, openEmitters, openHistoryFor } from './context.js';
import { UsageError, type Io } from './errors.js';
import { cycleLogger } from './log.js';

export const HELP = `Usage: parmanu destroy (--pool NAME | --all) [--yes] [--dry-run] [--timeout DURATION] [--policy PATH]

Tears pools down on purpose: every runner of the pool is paused, idle nodes are destroyed through
terraform (plan → guard → last idle check → apply), a node running a job is destroyed only once
its job has ended; the runners are removed and the pool's record deleted. Runs reconcile cycles
for those pools alone, one line per cycle, until they are empty or --timeout passes.
A pool still in the policy is sized again by the next reconcile, and a scheduled or watching one
(the shipped pipelines run \`reconcile --watch\` 55 minutes of every hour) does so within seconds:
remove the pool from the policy instead (reconcile then drains and destroys it itself), or set its
scaling.max to 0, or stop the schedule first. Should such a pool grow back while destroy runs,
destroy stops (exit 1).

Options:
  --pool NAME     the pools to tear down (comma-separated): pools of the policy, or pools removed
                  from it that still have nodes
  --all           every pool of the policy and every removed pool that still has nodes
  --yes           confirm: always needed with --all; with --pool, needed unless CI is set (not to false, 0, no or off)
  --dry-run       show what would go; pause, destroy and remove nothing
  --timeout D     stop waiting for busy nodes after this long (default 30m)
  --policy PATH   policy file or directory (default policies/)
  -v, --verbose   also log debug events
  -h, --help      this help

Environment: REDIS_URL, PARMANU_STATE_DIR (default .parmanu/), PARMANU_TERRAFORM (default
terraform), CI (set: a non-interactive CI job, --pool runs without --yes).
Exit: 0 the pools are empty (--dry-run: the plan was shown); 1 --timeout passed, a pool kept
failing or grew back; 2 bad input, including a missing --yes.`;

/** A pool failing this many cycles in a row stops the command (exit 1). */
const MAX_FAILURES = 3;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('destroy', argv, { policy: { type: 'string' }, pool: { type: 'string' }, all: { type: 'boolean' }, yes: { type: 'boolean' }, 'dry-run': { type: 'boolean' }, timeout: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  // Every refusal comes before anything is read or touched.
  if (values.all && values.pool !== undefined) throw new UsageError('destroy: give --pool NAME or --all, not both');
  if (!values.all && values.pool === undefined) throw new UsageError('destroy: name the pools to tear down with --pool NAME, or --all');
  const dry = values['dry-run'] ?? false;
  if (!dry && !values.yes) {
    if (values.all) throw new UsageError('destroy: --all destroys every pool: add --yes to confirm');
    if (!inCi(io.env)) throw new UsageError(`destroy: this destroys every node of ${values.pool}: add --yes to confirm (in CI, with CI set, --pool needs no --yes)`);
  }
  const timeoutMs = durationArg('destroy', 'timeout', values.timeout ?? '30m', parseDuration) as number;
  const named = values.pool?.split(',').map((s) => s.trim()).filter(Boolean);
  if (named?.length === 0) throw new UsageError('destroy: --pool needs at least one pool name');

  const fleet = loadFleet('destroy', io, { policy: values.policy });
  if (!fleet) return 2;
  const { policy, stateDir } = fleet;
  for (const p of Object.values(policy.platforms)) if (p.type === 'gcp' && p.credentialsFile) p.credentialsFile = resolve(io.cwd, p.credentialsFile);
  const terraform = new Terraform({ bin: io.env.PARMANU_TERRAFORM ?? 'terraform' });
  try {
    await terraform.version();
  } catch (err) {
    if (err instanceof TerraformError) throw new UsageError(`destroy: ${err.message}`);
    throw err;
  }
  // Pools removed from the policy are listed from the state directory and the history (read on the wall clock).
  const lister = openHistoryFor('destroy', io, stateDir);
  let removed: Awaited<ReturnType<typeof removedPools>>;
  try {
    removed = await removedPools(policy, stateDir, lister);
  } finally {
    await lister.close();
  }
  let history: ReturnType<typeof openHistoryFor> | undefined;
  try {
    const removedOk = removed.flatMap((k) => ('problem' in k ? [] : [k.pool]));
    const known = [...policy.pools.map((p) => p.name), ...removed.map((k) => ('problem' in k ? k.name : k.pool.name))];
    for (const n of named ?? []) if (!known.includes(n)) throw new UsageError(`destroy: no pool named "${n}" in the policy or the state (pools: ${known.join(', ') || 'none'})`);
    const targets = named ?? known;
    if (!targets.length) {
      io.out('destroy: no pools: nothing to do');
      return 0;
    }
    const inPolicy = targets.filter((n) => policy.pools.some((p) => p.name === n));
    const pools: PoolConfig[] = [...policy.pools.filter((p) => inPolicy.includes(p.name)), ...removedOk.filter((p) => targets.includes(p.name))];
    // The clock reconcile runs these pools on: a replay's virtual clock (trace time), else the wall clock.
    const clock = fleetClock('destroy', io, { policy, pools, stateDir });
    history = openHistoryFor('destroy', io, stateDir, clock);
    const emitters = new Map<string, Emitter>();
    for (const p of pools) {
      if (emitters.has(p.emitter)) continue;
      if (!policy.emitters[p.emitter]) continue; // the cycle fails that pool with the reason
      for (const [name, e] of openEmitters('destroy', io, { policy, pools: [p] }, clock)) emitters.set(name, e);
    }
    const log = cycleLogger(io, { json: false, verbose: values.verbose ?? false, quiet: !values.verbose, stderrIsTTY: Boolean(process.stderr.isTTY) });
    const owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const deps = { policy, emitters, history, terraform, stateDir, clock, owner, log, pools: targets, teardown: targets, orphanGraceMs: 0 };
    // Wall-clock wait between cycles: probe intervals are on the replay's clock, which runs `rate` times faster.
    const interval = Math.min(...pools.map((p) => policy.emitters[p.emitter]?.probeIntervalMs ?? 30_000), 30_000) / clock.rate;

    // Said before anything is done: a reconcile running on a schedule undoes this within seconds.
    if (inPolicy.length) io.out(forTerminal(stillInPolicyNote(inPolicy)));

    if (dry) {
      const r = await reconcileOnce({ ...deps, dryRun: true });
      for (const p of r.pools) io.out(forTerminal(dryLine(p)));
      return r.ok ? 0 : 1;
    }

    const started = Date.now();
    const failures = new Map<string, number>();
    /** Each pool's last whole cycle (neither failed nor skipped): the nodes it left, to see others come. */
    const last = new Map<string, PoolOutcome>();
    let left = [...targets];
    for (let cycle = 1; ; cycle++) {
      const r = await reconcileOnce({ ...deps, pools: left });
      const done: string[] = [];
      const grew: string[] = [];
      for (const p of r.pools) {
        const gone = !p.error && !p.skipped && (await history.getPool(p.pool)) === undefined;
        if (gone) done.push(p.pool);
        failures.set(p.pool, p.error ? (failures.get(p.pool) ?? 0) + 1 : 0);
        io.out(forTerminal(cycleLine(cycle, p, gone)));
        if (p.error || p.skipped) continue;
        const prev = last.get(p.pool);
        last.set(p.pool, p);
        const added = prev ? newNodes(prev, p) : [];
        if (added.length && inPolicy.includes(p.pool)) grew.push(`${p.pool} (new nodes ${added.join(', ')})`);
      }
      if (grew.length) {
        const it = grew.length === 1 ? 'it' : 'them';
        io.err(forTerminal(`destroy: ${grew.join(', ')} grew back: another reconcile (a scheduled or watching one?) sizes ${it} again, as ${grew.length === 1 ? 'it is' : 'they are'} still in the policy: stopped; remove ${it} from the policy, set scaling.max: 0 or stop the schedule, then run destroy again`));
        return 1;
      }
      left = left.filter((n) => !done.includes(n));
      if (!left.length) break;
      const failing = left.filter((n) => (failures.get(n) ?? 0) >= MAX_FAILURES);
      if (failing.length) {
        io.err(`destroy: ${failing.join(', ')} failed ${MAX_FAILURES} cycles in a row: stopped; nodes still draining stay paused`);
        return 1;
      }
      if (Date.now() - started >= timeoutMs) {
        io.err(`destroy: --timeout ${values.timeout ?? '30m'} passed with ${left.join(', ')} not empty: nodes still draining stay paused; run destroy again to finish`);
        return 1;
      }
      // Nodes paused this cycle are destroyed by the next one once idle: it comes soon; otherwise
      // the pools wait for jobs to end, probed at their emitters' interval.
      const pausedNow = r.pools.some((p) => p.drain.some((n) => p.states[n] !== 'draining'));
      await new Promise((r) => setTimeout(r, Math.min(pausedNow ? Math.min(interval, 5_000) : interval, Math.max(0, timeoutMs - (Date.now() - started)))));
    }
    return 0;
  } finally {
    await history?.close();
  }
}

/** The warning printed before the first cycle when pools torn down are still in the policy. */
export function stillInPolicyNote(pools: readonly string[]): string {
  const one = pools.length === 1;
  return `note: ${pools.join(', ')} ${one ? 'is' : 'are'} still in the policy: a scheduled or watching reconcile (the pipelines' reconcile --watch) sizes ${one ? 'it' : 'them'} again, within seconds; to keep ${one ? 'it' : 'them'} empty, remove ${one ? 'it' : 'them'} from the policy instead (reconcile then drains and destroys ${one ? 'it' : 'them'} itself), or set scaling.max: 0, or stop the schedule first`;
}

/**
 * The nodes of a pool's cycle that its previous whole cycle neither saw nor destroyed: a teardown
 * creates none, so another reconciler did (the pool grew back).
 */
export function newNodes(prev: Pick<PoolOutcome, 'states' | 'destroy'>, next: Pick<PoolOutcome, 'states'>): string[] {
  const had = new Set(Object.keys(prev.states).filter((n) => !prev.destroy.includes(n)));
  return Object.keys(next.states).filter((n) => !had.has(n)).sort();
}

const list = (names: readonly string[]) => (names.length ? names.join(', ') : 'none');

/** What one cycle did to a pool being torn down. */
function cycleLine(cycle: number, p: PoolOutcome, gone: boolean): string {
  if (p.error) return `cycle ${cycle}: ${p.pool}: FAILED: ${p.error}`;
  if (p.skipped) return `cycle ${cycle}: ${p.pool}: skipped: ${p.skipped}`;
  const left = p.observed.nodes - p.destroy.length;
  const busy = new Set(p.busyNodes ?? []);
  const parts = [`${left} node${left === 1 ? '' : 's'} left`];
  if (p.destroy.length) parts.push(`destroyed ${p.destroy.join(', ')}`);
  const paused = p.drain.filter((n) => p.states[n] !== 'draining');
  if (paused.length) parts.push(`paused ${paused.join(', ')}`);
  const waiting = p.drain.filter((n) => busy.has(n));
  if (waiting.length) parts.push(`waiting for the job${waiting.length === 1 ? '' : 's'} of ${waiting.join(', ')}`);
  if (gone) parts.push('empty: forgotten');
  const held = p.reasons.find((r) => /holding/.test(r));
  if (held) parts.push(held);
  return `cycle ${cycle}: ${p.pool}: ${parts.join('; ')}`;
}

/** What a teardown would do, from a dry-run cycle: every node's runner paused; idle ones destroyed next, busy ones after their job. */
function dryLine(p: PoolOutcome): string {
  if (p.error) return `${p.pool}: FAILED: ${p.error}`;
  if (p.skipped) return `${p.pool}: skipped: ${p.skipped}`;
  const nodes = Object.keys(p.states).sort();
  const busy = nodes.filter((n) => p.busyNodes?.includes(n));
  const idle = nodes.filter((n) => !busy.includes(n));
  return `${p.pool}: would destroy ${nodes.length} node${nodes.length === 1 ? '' : 's'}: idle ${list(idle)}; busy (destroyed once their job ends) ${list(busy)} (dry run: nothing changed)`;
}
