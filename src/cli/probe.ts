import { forTerminal } from '../policy/text.js';
import { removedPools } from '../reconcile/known-pools.js';
import { Prober } from '../reconcile/prober.js';
import { CycleQueue } from '../reconcile/services.js';
import type { ProbeResult } from '../emitters/types.js';
import { parse } from './args.js';
import { fleetClock, loadFleet, openEmitters, openHistoryFor } from './context.js';
import { UsageError, type Io } from './errors.js';
import { cycleLogger } from './log.js';
import { deadlineOf, leaseTtl, listenAddress, onSignals, openListener, ownerId, redisUrlFor, webhookTargets } from './service.js';

const HELP = `Usage: parmanu probe [--policy PATH] [--watch [--for DURATION]] [--listen HOST:PORT|none] [--json] [-v|-q]

The prober of services mode: probes each emitter of the policy (its jobs and Parmanu's runners)
and writes the observation to Redis with its time and a version, for the scalers
(\`parmanu reconcile --watch --from-redis\`), which never probe. The version grows only when what was
seen changed; a change enqueues the pools whose part of it changed on the scalers' queue at once. Without
--watch: one probe of each emitter. Needs REDIS_URL.

Options:
  --policy PATH   policy file or directory (default policies/)
  --watch         probe each emitter at its probeInterval until SIGTERM/SIGINT (the probe
                  running finishes, the emitters' leases are released, exit 0). Several probers
                  may run: each emitter is probed by the one holding its lease (@probe-<emitter>,
                  PARMANU_LEASE_TTL, 30s by default, renewed every third of it); the others stand
                  by and take over within the TTL.
  --for DURATION  with --watch, stop after this long
  --listen HOST:PORT|none
                  with --watch, one HTTP listener (default 127.0.0.1:9464; none or off: none):
                  POST /webhooks/<emitter> for emitters with webhook: { secret } (GitHub
                  workflow_job, GitLab Job Hook; a verified event for a queued job makes this
                  prober probe its emitter at once, and a change enqueues the event's pools as
                  grow-only cycles), /metrics, /healthz (200 while the process serves) and
                  /readyz (200 when Redis answers and the policy is loaded, else 503).
  --json          print one object per observation written: {"emitter", "ok", "partial",
                  "reason", "at", "version", "changed", "written", "webhook", "jobs", "runners",
                  "durationMs", "apiCalls"}
  -v, --verbose   also log debug events
  -q, --quiet     log only warnings and errors
  -h, --help      this help

Environment: REDIS_URL (required), PARMANU_STATE_DIR (default .parmanu/: replay emitters' state),
PARMANU_LEASE_TTL (default 30s).
Exit: 0 ok (--watch: stopped by a signal, or --for is up); 1 a probe failed (without --watch); 2 bad input.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('probe', argv, { policy: { type: 'string' }, watch: { type: 'boolean' }, for: { type: 'string' }, listen: { type: 'string' }, json: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' }, quiet: { type: 'boolean', short: 'q' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const log = cycleLogger(io, { json: values.json ?? false, verbose: values.verbose ?? false, quiet: values.quiet ?? false, stderrIsTTY: Boolean(process.stderr.isTTY) });
  const warn = (msg: string) => log({ level: 'warn', msg });
  const deadline = deadlineOf('probe', values);
  const listen = listenAddress('probe', values);
  const redisUrl = redisUrlFor('probe', io, 'the prober');
  const fleet = loadFleet('probe', io, { ...(values.policy !== undefined ? { policy: values.policy } : {}) }, { secrets: true, warn });
  if (!fleet) return 2;
  const { policy, stateDir } = fleet;
  const leaseTtlMs = leaseTtl('probe', io, 30_000);
  const clock = fleetClock('probe', io, fleet, undefined, warn);
  const history = openHistoryFor('probe', io, stateDir, clock, (msg) => warn(`history: ${msg}`));
  if (history.kind !== 'redis') throw new UsageError('probe: REDIS_URL must name a Redis server (redis://HOST:PORT)');
  // Pools removed from the policy that still have nodes are enqueued on their emitter's changes too.
  const removed = (await removedPools(policy, stateDir, history).catch(() => [])).flatMap((k) => ('problem' in k ? [] : [k.pool]));
  const emitters = openEmitters('probe', io, { policy, pools: [...policy.pools, ...removed.filter((p) => policy.emitters[p.emitter])] }, clock);
  const targets = webhookTargets('probe', io, policy, emitters);
  if (targets.size && values.watch && !listen) warn(`no listener, so no webhooks for ${[...targets.keys()].join(', ')}: polling only`);
  const queue = new CycleQueue({ redisUrl });
  const { listener, metrics, wakes } = await openListener('probe', { listen, policy, targets, history, log }).catch(async (err: unknown) => {
    await queue.close();
    await history.close();
    throw err;
  });
  const owner = ownerId();
  const signals = values.watch ? onSignals() : undefined;
  const stopping = () => (signals?.stopping() ?? false) || (deadline !== undefined && Date.now() >= deadline);
  let failed = false;
  const printProbe = (p: ProbeResult, r: { version: number; changed: boolean; written: boolean; webhook: boolean }) => {
    if (!p.ok) failed = true;
    if (r.changed) metrics?.observationChanged(p.emitter);
    if (values.json) {
      io.out(JSON.stringify({ emitter: p.emitter, ok: p.ok, partial: p.partial, reason: p.reason ?? null, at: new Date(p.at).toISOString(), version: r.version, changed: r.changed, written: r.written, webhook: r.webhook, jobs: p.jobs.length, runners: p.runners.length, durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls }));
      return;
    }
    // Without --watch every probe is printed; with it, only what changed or failed.
    if (values.watch && p.ok && !r.changed) return;
    const queued = p.jobs.filter((j) => j.status === 'queued').length;
    const running = p.jobs.filter((j) => j.status === 'running').length;
    const what = p.ok ? `${queued} queued, ${running} running, ${p.runners.length} runner${p.runners.length === 1 ? '' : 's'}${p.partial ? ` (partial: ${p.reason ?? ''})` : ''}` : `probe failed: ${p.reason ?? 'unknown reason'}`;
    io.out(forTerminal(`${p.emitter}: ${what}; ${r.written ? `version ${r.version}${r.changed ? ' (changed: its pools enqueued)' : ''}` : 'not written (a newer observation is stored)'}${r.webhook ? ' [webhook]' : ''}`));
  };
  const poolsOf = (emitter: string) => [...policy.pools, ...removed].filter((p) => p.emitter === emitter).map((p) => p.name);
  const prober = new Prober({ policy, emitters, history, queue, owner, leaseTtlMs, intervalMs: (e) => (policy.emitters[e]?.probeIntervalMs ?? 30_000) / clock.rate, poolsOf, stopping, ...(wakes ? { wakes } : {}), ...(metrics ? { metrics } : {}), log, onProbe: printProbe });
  try {
    if (!values.watch) {
      try {
        await history.ping();
      } catch (err) {
        throw new UsageError(`probe: ${(err as Error).message}`);
      }
      for (const name of emitters.keys()) await prober.probe(name, false);
      return failed ? 1 : 0;
    }
    log({ level: 'info', msg: `prober ${owner}: ${emitters.size} emitter${emitters.size === 1 ? '' : 's'} (${[...emitters.keys()].join(', ')}), lease TTL ${Math.round(leaseTtlMs / 1000)}s` });
    await prober.run();
    log({ level: 'info', msg: signals?.stopping() ? 'stopped by a signal: leases released' : '--for is up: leases released' });
    return 0;
  } finally {
    signals?.dispose();
    await listener?.close();
    await queue.close();
    await history.close();
  }
}
