import { resolve } from 'node:path';
import { reconcileOnce, type CycleEvent, type CycleResult, type ReconcileDeps } from '../reconcile/cycle.js';
import { removedPools } from '../reconcile/known-pools.js';
import type { ReconcileMetrics } from '../reconcile/metrics.js';
import { CycleQueue, fromStored, policyDigest, Scaler } from '../reconcile/services.js';
import { watchLoop } from '../reconcile/webhooks.js';
import { forTerminal } from '../policy/text.js';
import { cycleLogger } from './log.js';
import { Terraform, TerraformError } from '../terraform/runner.js';
import { parse } from './args.js';
import { fleetClock, loadFleet, openEmitters, openHistoryFor } from './context.js';
import { UsageError, type Io } from './errors.js';
import { deadlineOf, leaseTtl, listenAddress, onSignals, openListener, ownerId, redisUrlFor, webhookTargets } from './service.js';

const HELP = `Usage: parmanu reconcile [--policy PATH] [--pool NAME] [--dry-run] [--watch [--for DURATION]] [--from-redis [--concurrency N]] [--listen HOST:PORT|none] [--json] [--now ISO] [-v|-q]

One reconcile cycle: probe the CI platforms; for each pool read its nodes from Terraform state
(terraform state pull) joined with the runners that carry its ownership marker; decide; pause
drained runners, register new ones, and apply through terraform (plan → guard → last idle check →
apply). Pools removed from the policy are drained and destroyed. Safe to run every minute from a
schedule and by hand at the same time: each pool is taken under a fenced lease.

Options:
  --policy PATH   policy file or directory (default policies/)
  --pool NAME     only these pools (comma-separated)
  --dry-run       plan, never apply, never register or pause runners; the output says so
                  ("dry run: …" first, each pool "(dry run)", "would create"; --json: "dryRun": true)
  --watch         loop at the shortest probe interval; SIGTERM/SIGINT: each pool's cycle stops
                  before its next step (the step running finishes), leases are released, exit 0
  --for DURATION  with --watch, stop after this long (e.g. 55m, for a scheduled pipeline): the cycle
                  in progress finishes, no cycle starts after it; exit 0 if the last cycle was ok,
                  else 1 (also when a signal stops it first)
  --listen HOST:PORT|none
                  with --watch, one HTTP listener (default 127.0.0.1:9464; none or off: none):
                  Prometheus metrics at /metrics, and POST /webhooks/<emitter> for emitters with
                  webhook: { secret } (GitHub workflow_job, GitLab Job Hook): a verified event for a
                  queued job runs a grow-only cycle of its pools within seconds (events debounced;
                  a repeated delivery id does nothing twice); polling continues as the backstop.
                  To take webhooks from GitHub or GitLab, listen on an address they reach
                  (e.g. 0.0.0.0:9464, or behind a TLS proxy).
                  /healthz answers 200 while the process serves; /readyz 200 when the history
                  store answers (Redis reachable) and the policy is loaded, else 503.
  --metrics-listen HOST:PORT|none
                  the same as --listen (its older name)
  --from-redis    services mode (a scaler): never probe; read each emitter's latest observation
                  from Redis (written by \`parmanu probe --watch\`; an observation older than twice
                  its probe interval holds the pool). With --watch, take pool cycles from the
                  BullMQ queue on the same Redis, any number of replicas: a Job Scheduler per
                  pool at its probe interval, a changed observation at once; each pool's cycle on
                  one replica at a time (its fenced lease); a dead replica's pools taken over
                  within PARMANU_LEASE_TTL (30s by default in this mode). Needs REDIS_URL. Webhooks
                  are the prober's in this mode. Not with --pool: every replica serves every pool.
  --concurrency N with --from-redis --watch, pool cycles this replica runs at once (default 4;
                  as many again for takeovers of a dead replica's pools)
  --json          print one object a cycle (with --from-redis --watch: a pool's cycle): {"ok", "dryRun",
                  "trigger"? (webhook; with --from-redis --watch: interval, change, webhook or
                  takeover), "pools": [{pool, observed,
                  desired, create, drain, destroy, start, stop (standby nodes started and
                  stopped), terraform, durationMs, reasons, states, vanished,
                  probe: {ok, partial, reason, ageS, stale} (null: not probed), platform? and
                  stacks? (a pool with failover stacks: where new nodes go, and [{stack, platform,
                  role: active|leaving, nodes, terraform, error?}] — the pool's counts are their
                  sums), fallbacks? (spot/zone capacity fallbacks), removed?, error?, skipped?}]}
                  (a failed or stale probe: the pool holds, prints "probe failed: REASON, holding")
  --now ISO       fix the clock (e.g. 2025-01-06T08:00:00Z)
  -v, --verbose   also log debug events (probes, decisions)
  -q, --quiet     log only warnings and errors
Logs go to stderr: JSON lines (pino) when stderr is not a terminal or with --json, else progress lines.
  -h, --help      this help

Environment: REDIS_URL (history in Redis; default: files under PARMANU_STATE_DIR),
PARMANU_STATE_DIR (default .parmanu/), PARMANU_TERRAFORM (default terraform),
PARMANU_LEASE_TTL (default 10m, 30s with --from-redis: how long a pool stays locked by a
reconciler that died; renewed every third of it while a cycle runs).
Exit: 0 ok, 1 a pool failed or a CI platform could not be read (its pools held), 2 bad input;
--watch: 0 when a signal stops it; --watch --for: the last cycle's (0 ok, 1 failed).`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('reconcile', argv, { policy: { type: 'string' }, pool: { type: 'string' }, 'dry-run': { type: 'boolean' }, watch: { type: 'boolean' }, json: { type: 'boolean' }, now: { type: 'string' }, 'metrics-listen': { type: 'string' }, listen: { type: 'string' }, for: { type: 'string' }, 'from-redis': { type: 'boolean' }, concurrency: { type: 'string' }, verbose: { type: 'boolean', short: 'v' }, quiet: { type: 'boolean', short: 'q' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  let fixed: number | undefined;
  if (values.now !== undefined) {
    const t = Date.parse(values.now);
    if (!/^\d{4}-\d{2}-\d{2}T/.test(values.now) || Number.isNaN(t)) throw new UsageError(`reconcile: --now must be an ISO-8601 time such as 2025-01-06T08:00:00Z, not "${values.now}"`);
    fixed = t;
  }
  // The log exists before anything reads the state directory: what is set aside there (a history
  // record, a replay's state) is one of its events, never a plain line among its JSON lines.
  const log = cycleLogger(io, { json: values.json ?? false, verbose: values.verbose ?? false, quiet: values.quiet ?? false, stderrIsTTY: Boolean(process.stderr.isTTY) });
  const warn = (msg: string) => log({ level: 'warn', msg });
  const fleet = loadFleet('reconcile', io, values, { secrets: true, warn });
  if (!fleet) return 2;
  const { policy, wanted, stateDir } = fleet;
  // A policy of replay emitters runs on their virtual clock (trace time at their speed, kept between runs); leases stay on the wall clock.
  const clock = fleetClock('reconcile', io, fleet, fixed, warn);
  // Each GCP platform's credentials file reaches only its own pools' terraform runs (execute.ts),
  // as an absolute path: terraform runs in the pool's working directory.
  for (const p of Object.values(policy.platforms)) if (p.type === 'gcp' && p.credentialsFile) p.credentialsFile = resolve(io.cwd, p.credentialsFile);
  // --watch --for: a bounded watch, on the wall clock from here (whatever clock decide runs on).
  const deadline = deadlineOf('reconcile', values);
  const fromRedis = values['from-redis'] ?? false;
  if (fromRedis && values.pool !== undefined) throw new UsageError('reconcile: --pool cannot go with --from-redis (every replica serves every pool; the queue spreads them)');
  if (values.concurrency !== undefined && !(fromRedis && values.watch)) throw new UsageError('reconcile: --concurrency goes with --from-redis --watch');
  const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`reconcile: --concurrency must be a whole number from 1 to 64, not "${values.concurrency ?? ''}"`);
  // A dry run would take production work off the queue (and mark it done) without doing it.
  if (fromRedis && values.watch && values['dry-run']) throw new UsageError('reconcile: --dry-run cannot go with --from-redis --watch (it would take pool cycles off the scalers\' queue without doing them); use reconcile --from-redis --dry-run for one cycle of every pool');
  const redisUrl = fromRedis ? redisUrlFor('reconcile', io, '--from-redis') : undefined;
  const terraform = new Terraform({ bin: io.env.PARMANU_TERRAFORM ?? 'terraform' });
  try {
    await terraform.version();
  } catch (err) {
    if (err instanceof TerraformError) throw new UsageError(`reconcile: ${err.message}`);
    throw err;
  }
  const emitters = openEmitters('reconcile', io, fleet, clock);
  const listen = listenAddress('reconcile', values);
  const ml = listen?.text ?? 'none';
  // In services mode the prober serves the webhooks.
  const targets = fromRedis ? new Map() : webhookTargets('reconcile', io, policy, emitters);
  if (targets.size && values.watch && !listen) warn(`${ml}: no listener, so no webhooks for ${[...targets.keys()].join(', ')}: polling only`);
  const leaseTtlMs = leaseTtl('reconcile', io, fromRedis ? 30_000 : 10 * 60_000);
  const history = openHistoryFor('reconcile', io, stateDir, clock, (msg) => warn(`history: ${msg}`));
  const { listener, metrics, wakes } = await openListener('reconcile', { listen, policy, targets, history, log, ...(wanted ? { pools: wanted } : {}) }).catch(async (err: unknown) => {
    await history.close();
    throw err;
  });
  // Pools removed from the policy still have nodes to drain: their emitters are built too, when the
  // policy still has them (a removed pool whose emitter cannot be built fails with the reason).
  for (const k of await removedPools(policy, stateDir, history).catch(() => [])) {
    if ('problem' in k || emitters.has(k.pool.emitter) || !policy.emitters[k.pool.emitter]) continue;
    if (wanted && !wanted.includes(k.pool.name)) continue;
    try {
      for (const [name, e] of openEmitters('reconcile', io, { policy, pools: [k.pool] }, clock)) emitters.set(name, e);
    } catch (err) {
      log({ level: 'warn', pool: k.pool.name, msg: `removed from the policy; its emitter ${k.pool.emitter} cannot be used (${(err as Error).message}): it is not drained this cycle` });
    }
  }
  const owner = ownerId();
  const signals = values.watch ? onSignals() : undefined;
  const stopping = () => signals?.stopping() ?? false;
  // Probe intervals are on the clock decide runs on: a replay's virtual clock runs `rate` times faster.
  const interval = Math.min(...policy.pools.map((p) => policy.emitters[p.emitter]?.probeIntervalMs ?? 30_000)) / clock.rate;
  let code = 0;
  const dryRun = values['dry-run'] ?? false;
  // A replay pool on the local platform gets a credential file resource per node once its runner is
  // registered; a dry run registers none, so its plan does not have them.
  const credentialFiles = new Set(policy.pools.filter((p) => policy.emitters[p.emitter]?.type === 'replay' && policy.platforms[p.platform]?.type === 'local').map((p) => p.name));
  const deps: ReconcileDeps = { policy, emitters, history, terraform, stateDir, clock, owner, log, leaseTtlMs, dryRun, stopping, ...(wanted ? { pools: wanted } : {}), ...(metrics ? { onLease: (pool: string, held: boolean, l: { takenOverFrom?: string }) => metrics.lease(pool, held, l.takenOverFrom) } : {}) };
  try {
    if (fromRedis && redisUrl !== undefined && values.watch) {
      code = await runScaler({ io, deps, redisUrl, concurrency, leaseTtlMs, interval: (emitter) => (policy.emitters[emitter]?.probeIntervalMs ?? 30_000) / clock.rate, stopping, ...(deadline !== undefined ? { deadline } : {}), ...(metrics ? { metrics } : {}), json: values.json ?? false, dryRun, credentialFiles, log });
    } else if (!values.watch) {
      const result = await reconcileOnce(fromRedis ? { ...deps, observe: async (emitter) => fromStored(emitter, await history.getObservation(emitter), clock()) } : deps);
      code = result.ok ? 0 : 1;
      print(io, result, { json: values.json ?? false, dryRun, first: true, credentialFiles });
    } else {
      let cycles = 0;
      // Polling at the probe interval; webhook events wake grow-only cycles in between.
      const r = await watchLoop({
        deps,
        intervalMs: interval,
        ...(deadline !== undefined ? { deadline } : {}),
        stopping,
        ...(wakes ? { wakes } : {}),
        ...(metrics ? { metrics } : {}),
        onCycle: (result, info) => {
          if (info.webhook) log({ level: 'info', msg: `webhook cycle: ${info.events} event${info.events === 1 ? '' : 's'} for ${result.pools.map((p) => p.pool).join(', ') || 'no pool'}`, events: info.events });
          print(io, result, { json: values.json ?? false, dryRun, first: cycles++ === 0, credentialFiles, webhook: info.webhook });
        },
      });
      code = r.code;
      if (deadline !== undefined) log({ level: 'info', msg: `${stopping() ? 'stopped by a signal' : `--for ${values.for ?? ''} is up`} after ${r.cycles} cycle${r.cycles === 1 ? '' : 's'}; the last one ${code === 0 ? 'was ok' : 'failed'}` });
    }
  } finally {
    signals?.dispose();
    await listener?.close();
    await history.close();
  }
  // A bounded watch ends with its last cycle's code, so that a scheduled pipeline shows red.
  return values.watch && deadline === undefined ? 0 : code;
}

interface ScalerRun {
  io: Io;
  deps: ReconcileDeps;
  redisUrl: string;
  concurrency: number;
  leaseTtlMs: number;
  /** A pool's interval on the wall clock, from its emitter's probe interval. */
  interval: (emitter: string) => number;
  stopping: () => boolean;
  deadline?: number;
  metrics?: ReconcileMetrics;
  json: boolean;
  dryRun: boolean;
  credentialFiles: ReadonlySet<string>;
  log: (e: CycleEvent) => void;
}

/**
 * `reconcile --watch --from-redis`: one scaler replica. Keeps a Job Scheduler per pool (the
 * policy's and those removed from it that still have nodes; refreshed every minute) and runs the
 * queue's pool cycles until a signal (or --for); then the running cycles stop before their next
 * step, their leases are released, and the worker closes. Exit 0 (a signal), or --for's last cycle.
 */
async function runScaler(o: ScalerRun): Promise<number> {
  const { deps, log } = o;
  const queue = new CycleQueue({ redisUrl: o.redisUrl });
  let last = 0;
  let cycles = 0;
  const digest = policyDigest(deps.policy);
  // Terraform state kept on this host is not seen by replicas on other hosts (any of a pool's
  // stacks: its own platform's and its failover platforms').
  const local = deps.policy.pools.filter((p) => [p.platform, ...(p.failover ?? []).map((f) => f.platform)].some((name) => (deps.policy.platforms[name]?.backend?.type ?? 'local') === 'local'));
  if (local.length) log({ level: 'warn', msg: `pools ${local.map((p) => p.name).join(', ')} keep their terraform state on this host (a local backend, under PARMANU_STATE_DIR): every scaler replica must share that directory (one host, or one shared volume), or use an s3/gcs backend`, pools: local.map((p) => p.name) });
  const scaler = new Scaler({
    queue,
    redisUrl: o.redisUrl,
    deps,
    history: deps.history,
    concurrency: o.concurrency,
    lockMs: o.leaseTtlMs,
    policy: digest,
    onPolicy: (current) => log({ level: current ? 'info' : 'warn', msg: current ? `policy ${digest} is the one the scalers run: taking pool cycles` : `policy ${digest} is not the one the newest scaler loaded: standing by (no cycle, no schedule change) until it is`, policy: digest }),
    onCycle: (result, job, ms) => {
      const p = result.pools[0];
      if (p?.skipped && !o.json) return void log({ level: 'debug', msg: `${p.pool}: skipped (${p.skipped})`, pool: p.pool });
      if (p) o.metrics?.poolCycled(p.pool, job.trigger, ms / 1000);
      o.metrics?.record(result, ms);
      if (job.at !== undefined && p?.terraform.ran) o.metrics?.webhookApplied(p.pool, (Date.now() - job.at) / 1000);
      last = result.ok ? 0 : 1;
      print(o.io, result, { json: o.json, dryRun: o.dryRun, first: cycles++ === 0, credentialFiles: o.credentialFiles, webhook: job.trigger === 'webhook', trigger: job.trigger });
    },
    onError: (pool, err) => log({ level: 'error', msg: `pool ${pool}: ${err.message}`, pool }),
  });
  const schedule = async () => {
    // Only the replicas of the policy in force touch the schedules.
    if (!(await scaler.isCurrent())) return;
    const removed = await removedPools(deps.policy, deps.stateDir, deps.history).catch(() => []);
    const pools = [...deps.policy.pools.map((p) => ({ pool: p.name, emitter: p.emitter })), ...removed.flatMap((k) => ('problem' in k ? [] : [{ pool: k.pool.name, emitter: k.pool.emitter }]))];
    await queue.schedule(pools.map((p) => ({ pool: p.pool, intervalMs: o.interval(p.emitter) })));
  };
  try {
    await scaler.start();
    await schedule();
  } catch (err) {
    await queue.close();
    throw new UsageError(`reconcile: cannot reach the work queue in Redis: ${(err as Error).message.split('\n')[0]}`);
  }
  log({ level: 'info', msg: `scaler ${deps.owner}: taking pool cycles from the queue (${o.concurrency} at once, lease TTL ${Math.round(o.leaseTtlMs / 1000)}s, policy ${digest})` });
  const running = scaler.run();
  const timer = setInterval(() => void schedule().catch((err: Error) => log({ level: 'warn', msg: `cannot refresh the pools' schedules: ${err.message}` })), 60_000);
  timer.unref();
  while (!o.stopping() && (o.deadline === undefined || Date.now() < o.deadline)) await new Promise<void>((r) => setTimeout(r, 50));
  clearInterval(timer);
  log({ level: 'info', msg: o.stopping() ? 'stopping: the running steps finish, leases are released' : '--for is up: the running cycles finish' });
  await scaler.close();
  await running.catch(() => undefined);
  await queue.close();
  return o.deadline !== undefined && !o.stopping() ? last : 0;
}

function print(io: Io, result: CycleResult, o: { json: boolean; dryRun: boolean; first: boolean; credentialFiles: ReadonlySet<string>; webhook?: boolean; trigger?: string }): void {
  if (o.json) {
    io.out(JSON.stringify({ ok: result.ok, dryRun: o.dryRun, ...(o.trigger ? { trigger: o.trigger } : o.webhook ? { trigger: 'webhook' } : {}), pools: result.pools.map((p) => ({ pool: p.pool, observed: p.observed, desired: p.desired, create: p.create, drain: p.drain, destroy: p.destroy, start: p.start ?? [], stop: p.stop ?? [], terraform: p.terraform, durationMs: p.durationMs, reasons: p.reasons, states: p.states, vanished: p.vanished, probe: p.probe ?? null, ...(p.stacks ? { platform: p.platform, stacks: p.stacks } : {}), ...(p.fallbacks?.length ? { fallbacks: p.fallbacks } : {}), ...(p.removed ? { removed: true } : {}), ...(p.error ? { error: p.error } : {}), ...(p.skipped ? { skipped: p.skipped } : {}) })) }));
    return;
  }
  if (o.dryRun && o.first) io.out('dry run: nothing is applied, no runner is registered or paused');
  for (const p of result.pools) {
    const uncounted = o.credentialFiles.has(p.pool) && p.create.length ? ` (+${p.create.length} runner credential file${p.create.length === 1 ? '' : 's'} not counted: a dry run registers no runner)` : '';
    const tf = !p.terraform.ran ? 'terraform not run' : o.dryRun ? `terraform plan +${p.terraform.add} ~${p.terraform.change} -${p.terraform.destroy}, not applied${uncounted}` : `terraform +${p.terraform.add} ~${p.terraform.change} -${p.terraform.destroy}`;
    const starts = p.start?.length ?? 0;
    const stops = p.stop?.length ?? 0;
    const standby = o.dryRun ? `${starts ? `, start ${starts}` : ''}${stops ? `, stop ${stops}` : ''}` : `${starts ? ` start ${starts}` : ''}${stops ? ` stop ${stops}` : ''}`;
    const nodes = o.dryRun ? `${p.observed.nodes} → ${p.desired} nodes, would create ${p.create.length}, drain ${p.drain.length}, destroy ${p.destroy.length}${standby}; ${tf}` : `${p.observed.nodes} → ${p.desired} nodes (+${p.create.length} drain ${p.drain.length} -${p.destroy.length}${standby}), ${tf}`;
    const state = p.error ? `FAILED: ${p.error}` : p.skipped ? `skipped: ${p.skipped}` : nodes;
    // A pool whose probe failed or is stale holds: its zero jobs are not a reading.
    const probe = p.probe;
    const seen = probe && !probe.ok ? `probe failed: ${probe.reason ?? 'unknown reason'}, holding` : probe?.stale ? `probe stale (${probe.ageS}s old), holding` : `${p.observed.queued} queued, ${p.observed.running} running${probe?.partial ? ` (probe partial: ${probe.reason ?? 'some data missing'})` : ''}`;
    // Runner names, reasons and errors come from the CI platforms: no control characters reach the terminal.
    io.out(forTerminal(`${p.pool}${p.removed ? ' (removed from the policy)' : ''}${o.dryRun ? ' (dry run)' : ''}: ${seen}; ${state} [${p.durationMs} ms]`));
    for (const r of p.reasons) io.out(forTerminal(`  · ${r}`));
  }
}
