/**
 * The `reconcile --watch` service's one HTTP listener (`--listen HOST:PORT`): Prometheus metrics at
 * `/metrics` and webhook deliveries at `POST /webhooks/<emitter>` for emitters with
 * `webhook: { secret }`; and the watch loop, which polls at the probe interval and, between two
 * polls, runs a grow-only cycle for the pools a verified event for a queued job matches.
 *
 * A delivery is answered before any cycle runs: 202 once verified, read and both its delivery id
 * and its body's SHA-256 claimed in the history store (a repeated id does nothing twice, and neither
 * does a signed body resent under a new id: the signature covers the body, not the id); 401 for a
 * bad signature or token (no detail; a wrong GitLab token or a GitHub signature header that is not
 * `sha256=<64 hex>` is refused before any of the body is read), 413 past 1 MiB (nothing more is
 * read), 400 for a body that is not the event, 404 for an emitter without webhooks, 405 for anything
 * but POST. The listener takes at most MAX_CONNECTIONS connections at once and gives a request 10 s.
 * Events are collected for `debounceMs` after the last one (at most `maxWaitMs` after the first),
 * so a burst makes one cycle, and a pool's webhook cycles start at least `minGapMs` after its
 * previous one ended, so a flood of distinct valid events cannot run probes back to back. The event
 * only wakes the loop early: its cycle still probes the emitter, and what the probe sees decides.
 * A webhook cycle only grows pools (`growOnly`); polling stays the backstop for lost deliveries
 * and the only way a pool shrinks.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assignJobs } from '../decide/match.js';
import { credentialPlausible, readDelivery, verifyDelivery, type WebhookKind } from '../emitters/webhooks.js';
import type { HistoryStore } from '../history/types.js';
import type { EmitterConfig, Policy } from '../policy/types.js';
import { reconcileOnce, type CycleEvent, type CycleResult, type ReconcileDeps } from './cycle.js';
import type { ReconcileMetrics, WebhookResult } from './metrics.js';

/** The largest body accepted (GitHub caps its payloads at 25 MB; job events are a few KiB). */
export const MAX_BODY_BYTES = 1024 * 1024;
/** How long a claimed delivery id (and body digest) is kept. */
export const DELIVERY_TTL_MS = 24 * 3_600_000;
/** How long a request may take to arrive, headers and body (then 408 and the connection closes). */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Connections the listener holds at once (more are closed as they arrive). */
export const MAX_CONNECTIONS = 256;
/** The least time between the end of a pool's webhook cycle and the start of its next one. */
export const MIN_WEBHOOK_GAP_MS = 2000;

export interface WebhookTarget {
  emitter: EmitterConfig & { type: WebhookKind };
  /** The resolved secret (never logged). */
  secret: string;
}

/** A verified event for a queued job: when it arrived and the pools it matched. */
export interface WakeEvent {
  at: number;
  emitter: string;
  pools: string[];
}

/**
 * Collects events until a cycle is due: `debounceMs` after the last one, or `maxWaitMs` after
 * the first, whichever comes first; and, per pool, no sooner than `minGapMs` after the end of
 * that pool's previous webhook cycle (`ran`).
 */
export class WakeQueue {
  private events: WakeEvent[] = [];
  /** When each pool's last webhook cycle ended (wall clock). */
  private readonly ended = new Map<string, number>();
  constructor(
    readonly debounceMs = 300,
    readonly maxWaitMs = 2000,
    readonly minGapMs = MIN_WEBHOOK_GAP_MS,
  ) {}

  /** A webhook cycle for `pools` ended at `at`. */
  ran(pools: readonly string[], at: number): void {
    for (const p of pools) this.ended.set(p, at);
  }

  /** When a webhook cycle for the pool may start. */
  private readyAt(pool: string): number {
    return (this.ended.get(pool) ?? -Infinity) + this.minGapMs;
  }

  add(e: WakeEvent): void {
    this.events.push(e);
  }

  get size(): number {
    return this.events.length;
  }

  /** When the collected events are due (wall clock, ms); undefined when none is waiting. */
  dueAt(): number | undefined {
    const first = this.events[0];
    const last = this.events.at(-1);
    if (!first || !last) return undefined;
    // A loop, not Math.min(...spread): a long cycle can leave more events waiting than a call takes arguments.
    let ready = Infinity;
    for (const e of this.events) for (const p of e.pools) ready = Math.min(ready, this.readyAt(p));
    return Math.max(Math.min(last.at + this.debounceMs, first.at + this.maxWaitMs), ready);
  }

  /**
   * The events collected so far, for the pools whose gap has passed at `now` (every pool without
   * `now`: a polling cycle covers them all), and forgets them; the rest wait for their pools' gap.
   */
  take(now?: number): WakeEvent[] {
    if (now === undefined) {
      const out = this.events;
      this.events = [];
      return out;
    }
    const out: WakeEvent[] = [];
    const keep: WakeEvent[] = [];
    for (const e of this.events) {
      const ready = e.pools.filter((p) => this.readyAt(p) <= now);
      const later = e.pools.filter((p) => this.readyAt(p) > now);
      if (ready.length) out.push({ ...e, pools: ready });
      if (later.length) keep.push({ ...e, pools: later });
    }
    this.events = keep;
    return out;
  }
}

export interface ReceiverOptions {
  policy: Policy;
  /** Emitters that take webhooks, by name. */
  targets: ReadonlyMap<string, WebhookTarget>;
  history: HistoryStore;
  wakes: WakeQueue;
  /** Only these pools are woken (`--pool`). */
  pools?: readonly string[];
  metrics?: ReconcileMetrics;
  log?: (e: CycleEvent) => void;
  deliveryTtlMs?: number;
}

/** Handles `/webhooks/<emitter>` requests. */
export class WebhookReceiver {
  constructor(private readonly o: ReceiverOptions) {}

  handle(req: IncomingMessage, res: ServerResponse, name: string): void {
    const at = Date.now();
    const target = this.o.targets.get(name);
    if (!target) {
      this.count(undefined, 'unknown_emitter');
      drain(req);
      return void reply(res, 404, 'no webhooks for this emitter\n');
    }
    if (req.method !== 'POST') {
      drain(req);
      return void reply(res, 405, 'POST only\n', { allow: 'POST' });
    }
    // A credential that cannot be right is refused before any of the body is read (nothing buffered for it).
    if (!credentialPlausible(target.emitter.type, target.secret, req.headers)) return this.unauthorized(req, res, target, true);
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return this.tooLarge(req, res, name);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        done = true;
        chunks.length = 0;
        this.tooLarge(req, res, name);
        return;
      }
      chunks.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      if (done) return;
      done = true;
      void this.delivered(target, Buffer.concat(chunks), req, res, at).catch((err: Error) => {
        this.o.log?.({ level: 'error', msg: `webhook ${name}: ${err.message}`, emitter: name });
        if (!res.headersSent) reply(res, 500, 'internal error\n');
      });
    });
  }

  private tooLarge(req: IncomingMessage, res: ServerResponse, name: string): void {
    this.count(name, 'too_large');
    this.o.log?.({ level: 'warn', msg: `webhook ${name}: a delivery over ${MAX_BODY_BYTES} bytes refused`, emitter: name });
    // Nothing more is read or kept: the connection closes once the answer is out.
    req.pause();
    res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' });
    res.end('body too large\n', () => req.socket.destroy());
  }

  /** 401, without detail; `unread`: the body was not read, the connection closes once the answer is out. */
  private unauthorized(req: IncomingMessage, res: ServerResponse, target: WebhookTarget, unread: boolean): void {
    const name = target.emitter.name;
    this.count(name, 'bad_signature');
    this.o.log?.({ level: 'warn', msg: `webhook ${name}: a delivery with a bad ${target.emitter.type === 'github' ? 'signature' : 'token'} refused`, emitter: name });
    if (!unread) return void reply(res, 401, 'unauthorized\n');
    req.pause();
    res.writeHead(401, { 'content-type': 'text/plain', connection: 'close' });
    res.end('unauthorized\n', () => req.socket.destroy());
  }

  private async delivered(target: WebhookTarget, body: Buffer, req: IncomingMessage, res: ServerResponse, at: number): Promise<void> {
    const name = target.emitter.name;
    if (!verifyDelivery(target.emitter.type, target.secret, req.headers, body)) return this.unauthorized(req, res, target, false);
    const event = readDelivery(target.emitter, req.headers, body, at);
    if (event.type === 'malformed') {
      this.count(name, 'malformed');
      this.o.log?.({ level: 'warn', msg: `webhook ${name}: a malformed delivery refused (${event.reason})`, emitter: name });
      return void reply(res, 400, `malformed: ${event.reason}\n`);
    }
    if (event.type === 'ignored') {
      this.count(name, 'ignored');
      this.o.log?.({ level: 'debug', msg: `webhook ${name}: ignored (${event.reason})`, emitter: name });
      return void reply(res, event.ping ? 200 : 202, event.ping ? 'pong\n' : 'ignored\n');
    }
    if (event.job.status !== 'queued') {
      this.count(name, 'ignored');
      return void reply(res, 202, 'ignored: not a queued job\n');
    }
    // The job's pools (one, as the probe would assign it; every pool of the emitter when the event
    // does not carry the job's labels).
    const pools = this.o.policy.pools.filter((p) => p.emitter === name && (!this.o.pools || this.o.pools.includes(p.name)));
    const matched = event.labelsKnown ? [...assignJobs(target.emitter.type, [event.job], pools).byPool].filter(([, jobs]) => jobs.length > 0).map(([pool]) => pool) : pools.map((p) => p.name);
    if (matched.length === 0) {
      this.count(name, 'ignored');
      this.o.log?.({ level: 'debug', msg: `webhook ${name}: job ${event.job.id} matches no pool`, emitter: name });
      return void reply(res, 202, 'ignored: no pool matches the job\n');
    }
    let first: boolean;
    try {
      // The id and the body both: a signed body resent under a fresh id (the signature does not cover
      // the id) is a repeat too. GitHub's and GitLab's own redeliveries carry the identical body.
      const ttl = this.o.deliveryTtlMs ?? DELIVERY_TTL_MS;
      // (The space keeps a digest's key apart from every delivery id: ids are printable ASCII without spaces.)
      const digest = `body sha256:${createHash('sha256').update(body).digest('hex')}`;
      const claims = await Promise.all([this.o.history.claimDelivery(name, event.delivery, ttl), this.o.history.claimDelivery(name, digest, ttl)]);
      first = claims.every(Boolean);
    } catch (err) {
      // Without the history a repeat cannot be told: the platform sees a failure, polling takes over.
      this.o.log?.({ level: 'warn', msg: `webhook ${name}: cannot record the delivery (${(err as Error).message}); refused with 503, the next probe sees the job`, emitter: name });
      return void reply(res, 503, 'history unavailable\n');
    }
    if (!first) {
      this.count(name, 'duplicate');
      this.o.log?.({ level: 'debug', msg: `webhook ${name}: delivery seen before, nothing to do`, emitter: name });
      return void reply(res, 202, 'duplicate\n');
    }
    this.count(name, 'accepted');
    this.o.wakes.add({ at, emitter: name, pools: matched });
    this.o.log?.({ level: 'info', msg: `webhook ${name}: job ${event.job.id} queued for ${matched.join(', ')}`, emitter: name, pools: matched });
    reply(res, 202, 'accepted\n');
  }

  private count(emitter: string | undefined, result: WebhookResult): void {
    this.o.metrics?.webhook(emitter, result);
  }
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain', ...headers }).end(text);
}

/** Reads and drops a body nobody wants (up to the limit; past it the connection closes). */
function drain(req: IncomingMessage): void {
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size > MAX_BODY_BYTES) req.socket.destroy();
  });
  req.on('error', () => undefined);
}

/**
 * The service's one HTTP listener: `/metrics`, `/healthz` (200 while the process serves),
 * `/readyz` (200 when `ready` finds nothing wrong — the history store answers, the policy is
 * loaded — else 503 with the reason) and, with a receiver, `/webhooks/<emitter>`.
 */
export class Listener {
  private server: Server | undefined;
  constructor(
    private readonly metrics: ReconcileMetrics,
    private readonly receiver?: WebhookReceiver,
    private readonly limits: { maxConnections?: number; requestTimeoutMs?: number } = {},
    /** Why the service is not ready, or undefined when it is. */
    private readonly ready: () => Promise<string | undefined> = async () => undefined,
  ) {}

  /** Listens on host:port (port 0: any free port); resolves the base URL (`http://ADDRESS:PORT`). */
  async listen(host: string, port: number): Promise<string> {
    // Timeouts are checked every second (Node's default is 30 s, which would let 10 s become 40).
    const server = createServer({ connectionsCheckingInterval: 1000 }, (req, res) => this.route(req, res));
    // A slow client cannot hold a connection for long (slowloris), nor can many hold many.
    const timeout = this.limits.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    server.headersTimeout = timeout;
    server.requestTimeout = timeout;
    server.maxConnections = this.limits.maxConnections ?? MAX_CONNECTIONS;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    const a = server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/metrics') {
      drain(req);
      return this.metrics.serve(res);
    }
    if (path === '/healthz') {
      drain(req);
      return void reply(res, 200, 'ok\n');
    }
    if (path === '/readyz') {
      drain(req);
      // A check that hangs (an unreachable Redis) answers 503 within 2 s, never holds the probe.
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<string>((r) => (timer = setTimeout(() => r('readiness check timed out'), 2000)));
      void Promise.race([this.ready().catch((err: Error) => err.message), late]).then((why) => {
        clearTimeout(timer);
        if (why === undefined) reply(res, 200, 'ready\n');
        else reply(res, 503, `not ready: ${why.replace(/[\r\n]+/g, ' ')}\n`);
      });
      return;
    }
    const m = /^\/webhooks\/([^/]+)\/?$/.exec(path);
    if (m && this.receiver) return this.receiver.handle(req, res, decodeURIComponentSafe(m[1] as string));
    drain(req);
    reply(res, 404, this.receiver ? 'not found: try /metrics, /healthz, /readyz or POST /webhooks/<emitter>\n' : 'not found: try /metrics, /healthz or /readyz\n');
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

// ---------------------------------------------------------------- the watch loop

export interface WatchOptions {
  /** Every cycle's dependencies (`pools`: the `--pool` selection). */
  deps: ReconcileDeps;
  /** Between two polling cycles (wall clock). */
  intervalMs: number;
  /** No cycle starts after this (wall clock, `--for`). */
  deadline?: number;
  stopping: () => boolean;
  /** Webhook events; absent: polling only. */
  wakes?: WakeQueue;
  metrics?: ReconcileMetrics;
  /** After each cycle (printing): `events` is how many webhook events it answered (0: a polling cycle that covered none). */
  onCycle?: (result: CycleResult, info: { webhook: boolean; events: number }) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls at `intervalMs` (the first cycle at once); between two polls, runs a grow-only cycle for
 * the pools of the webhook events that are due. A polling cycle also answers the events that
 * arrived before it started (its probe comes after them). Returns the last cycle's code (0 ok, 1
 * failed) and the number of cycles.
 */
export async function watchLoop(o: WatchOptions): Promise<{ code: number; cycles: number }> {
  let code = 0;
  let cycles = 0;
  let nextPoll = Date.now();
  const open = () => !o.stopping() && (o.deadline === undefined || Date.now() < o.deadline || cycles === 0);
  while (open()) {
    const now = Date.now();
    const due = o.wakes?.dueAt();
    const poll = now >= nextPoll;
    if (poll || (due !== undefined && now >= due)) {
      const events = (poll ? o.wakes?.take() : o.wakes?.take(now)) ?? [];
      // (Never empty when due: dueAt waits for a pool's gap. Defensive: no cycle for no pool.)
      if (!poll && events.length === 0) {
        await sleep(25);
        continue;
      }
      const pools = poll ? undefined : [...new Set(events.flatMap((e) => e.pools))];
      if (poll) nextPoll = now + o.intervalMs;
      const r = await runCycle(o, events, pools);
      if (pools) o.wakes?.ran(pools, Date.now());
      code = r.ok ? 0 : 1;
      cycles++;
      o.onCycle?.(r, { webhook: !poll, events: events.length });
      continue;
    }
    const until = Math.min(nextPoll, due ?? Infinity, o.deadline ?? Infinity);
    await sleep(Math.max(1, Math.min(25, until - now)));
  }
  return { code, cycles };
}

/**
 * One cycle: every pool (`pools` undefined) or a webhook's pools, grow-only; the event → apply
 * latencies recorded (the apply of the plan: not the refresh-only apply that forgets vanished nodes).
 */
async function runCycle(o: WatchOptions, events: WakeEvent[], pools: string[] | undefined): Promise<CycleResult> {
  const started = Date.now();
  const applied = new Map<string, number>();
  const log = o.deps.log;
  const deps: ReconcileDeps = {
    ...o.deps,
    ...(pools ? { pools: o.deps.pools ? pools.filter((p) => o.deps.pools?.includes(p)) : pools, growOnly: true } : {}),
    log: (e) => {
      if (e.step === 'terraform-apply' && e.pool && e.durationMs !== undefined) applied.set(e.pool, Date.now());
      log?.(e);
    },
  };
  const result = await reconcileOnce(deps);
  o.metrics?.record(result, Date.now() - started);
  for (const e of events) for (const p of e.pools) {
    const end = applied.get(p);
    if (end !== undefined) o.metrics?.webhookApplied(p, (end - e.at) / 1000);
  }
  return result;
}
