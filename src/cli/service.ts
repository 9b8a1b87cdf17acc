/**
 * What the long-running commands share (`reconcile --watch`, `reconcile --watch --from-redis`,
 * `probe --watch`): the listener address, the webhook targets, the lease TTL, and signals.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Emitter } from '../emitters/types.js';
import { parseDuration } from '../policy/duration.js';
import { resolveSecret, SecretResolutionError } from '../policy/secrets.js';
import type { Policy } from '../policy/types.js';
import type { HistoryStore } from '../history/types.js';
import type { CycleEvent } from '../reconcile/cycle.js';
import { ReconcileMetrics } from '../reconcile/metrics.js';
import { Listener, WakeQueue, WebhookReceiver, type WebhookTarget } from '../reconcile/webhooks.js';
import { secretEnv } from './context.js';
import { UsageError, type Io } from './errors.js';

export const DEFAULT_LISTEN = '127.0.0.1:9464';

/** `--listen HOST:PORT|none` (and its older name `--metrics-listen`): the address, or undefined for none. */
export function listenAddress(command: string, values: { listen?: string | undefined; 'metrics-listen'?: string | undefined; watch?: boolean | undefined }): { host: string; port: number; text: string } | undefined {
  if (values.listen !== undefined && values['metrics-listen'] !== undefined && values.listen !== values['metrics-listen']) throw new UsageError(`${command}: --listen and --metrics-listen are the same option; give one (got "${values.listen}" and "${values['metrics-listen']}")`);
  const flag = values.listen !== undefined ? '--listen' : '--metrics-listen';
  const ml = values.listen ?? values['metrics-listen'] ?? (values.watch ? DEFAULT_LISTEN : 'off');
  if (ml === 'off' || ml === 'none') return undefined;
  const m = /^(.*):(\d{1,5})$/.exec(ml);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`${command}: ${flag} must be HOST:PORT, or none (no listener), not "${ml}"`);
  if (!values.watch) throw new UsageError(`${command}: ${flag} needs --watch`);
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1') || '0.0.0.0', port: Number(m[2]), text: ml };
}

/** Emitters that take webhooks (of those given), their secrets resolved like tokens; never printed. */
export function webhookTargets(command: string, io: Io, policy: Policy, emitters: ReadonlyMap<string, Emitter>): Map<string, WebhookTarget> {
  const targets = new Map<string, WebhookTarget>();
  for (const name of emitters.keys()) {
    const cfg = policy.emitters[name];
    if (!cfg || (cfg.type !== 'github' && cfg.type !== 'gitlab') || !cfg.webhook) continue;
    try {
      targets.set(name, { emitter: cfg, secret: resolveSecret(cfg.webhook.secret, secretEnv(io)) });
    } catch (err) {
      if (err instanceof SecretResolutionError) throw new UsageError(`${command}: emitter ${name}: webhook.secret: ${err.message}`);
      throw err;
    }
  }
  return targets;
}

/** PARMANU_LEASE_TTL, or `fallback` when unset. */
export function leaseTtl(command: string, io: Io, fallbackMs: number): number {
  const raw = io.env.PARMANU_LEASE_TTL;
  const ms = raw ? parseDuration(raw) : fallbackMs;
  if (ms === undefined || ms <= 0) throw new UsageError(`${command}: PARMANU_LEASE_TTL must be a duration such as 10m, not "${raw ?? ''}"`);
  return ms;
}

/** `--for DURATION` (with --watch): the wall-clock deadline. */
export function deadlineOf(command: string, values: { for?: string | undefined; watch?: boolean | undefined }): number | undefined {
  if (values.for === undefined) return undefined;
  const ms = parseDuration(values.for);
  if (ms === undefined || ms <= 0) throw new UsageError(`${command}: --for must be a duration such as 55m, not "${values.for}"`);
  if (!values.watch) throw new UsageError(`${command}: --for needs --watch (${command} --watch --for 55m: a bounded watch)`);
  return Date.now() + ms;
}

/** This process' identity for leases: host, pid and a random suffix. */
export function ownerId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/**
 * SIGTERM/SIGINT: the first sets the flag (the step running finishes, leases are released), a
 * second exits at once. The listeners stay registered (not `once`): execa's cleanup (signal-exit)
 * re-raises a signal that it believes no one else handles, which would kill the process in the
 * middle of a terraform run. Returns `stopping()` and a function that removes the listeners.
 */
export function onSignals(onStop?: () => void): { stopping: () => boolean; dispose: () => void } {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(signal === 'SIGINT' ? 130 : 143);
    stopping = true;
    onStop?.();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return {
    stopping: () => stopping,
    dispose: () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    },
  };
}

/** REDIS_URL, which services mode needs (the observations and the queue live there). */
export function redisUrlFor(command: string, io: Io, what: string): string {
  const url = io.env.REDIS_URL;
  if (!url) throw new UsageError(`${command}: ${what} needs REDIS_URL (observations and the work queue live in Redis)`);
  return url;
}

/**
 * The service's one listener, when `listen` is given: metrics, /healthz, /readyz (the history store
 * answers) and, for `targets`, the webhooks (their events collected in `wakes`). Listening fails
 * as a UsageError; the addresses are logged (JSON lines carry them as `url`).
 */
export async function openListener(command: string, o: { listen: { host: string; port: number; text: string } | undefined; policy: Policy; targets: ReadonlyMap<string, WebhookTarget>; history: HistoryStore; log: (e: CycleEvent) => void; pools?: readonly string[] }): Promise<{ listener?: Listener; metrics?: ReconcileMetrics; wakes?: WakeQueue }> {
  if (!o.listen) return {};
  const metrics = new ReconcileMetrics();
  const wakes = o.targets.size ? new WakeQueue() : undefined;
  const receiver = wakes ? new WebhookReceiver({ policy: o.policy, targets: o.targets, history: o.history, wakes, metrics, log: o.log, ...(o.pools ? { pools: o.pools } : {}) }) : undefined;
  const listener = new Listener(metrics, receiver, {}, async () => o.history.ping().then(() => undefined));
  try {
    const base = await listener.listen(o.listen.host, o.listen.port);
    o.log({ level: 'info', msg: `metrics at ${base}/metrics, health at ${base}/healthz and ${base}/readyz`, url: `${base}/metrics` });
    for (const name of o.targets.keys()) o.log({ level: 'info', msg: `webhooks of ${name} at ${base}/webhooks/${name}`, url: `${base}/webhooks/${name}`, emitter: name });
  } catch (err) {
    throw new UsageError(`${command}: cannot listen on ${o.listen.text}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return { listener, metrics, ...(wakes ? { wakes } : {}) };
}
