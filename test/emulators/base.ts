/**
 * Shared machinery of the CI platform emulators: a real HTTP server on 127.0.0.1 and a free port,
 * routes by method and path, latency, injected faults (status codes with bodies and headers,
 * delays past the client's timeout, malformed JSON, empty pages), a request log, and a strict mode
 * in which any request no route expects is recorded and answered 501 so that the test fails.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmuRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
  rawBody: string;
  params: string[];
}

export interface EmuResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Sent as is instead of JSON. */
  raw?: string;
}

export interface Fault {
  method?: string;
  path: RegExp;
  /** Also match the query string (e.g. /page=2/ for a page in the middle). */
  query?: RegExp;
  /** How many matching requests it applies to (default: all). */
  times?: number;
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Wait this long before answering (beyond the client's timeout: a timeout). */
  delayMs?: number;
  /** Answer with a body that is not JSON. */
  malformed?: boolean;
  /** Answer 200 with an empty list, keeping the pagination headers of the real page. */
  emptyPage?: boolean;
}

type Handler = (req: EmuRequest) => EmuResponse | Promise<EmuResponse>;

/** The emulator's own record of one job on one runner (start and end in epoch ms). */
export interface JobRecord {
  job: string;
  runner: string;
  start: number;
  end?: number;
}

/**
 * A runner registration (or Jenkins node) that was removed, and whether the platform's own state
 * says it was running a job at that moment: an invariant independent of what Parmanu believed.
 */
export interface RunnerRemoval {
  runner: string;
  at: number;
  /** Running (or assigned) a job when it was removed. */
  busy: boolean;
  /** The jobs it was running then. */
  jobs: string[];
}

/** A request that changed a runner (pause, resume, delete, toggleOffline), by the runner's name. */
export interface RunnerTouch {
  runner: string;
  request: string;
  at: number;
}

/** A webhook the platform delivers to (a project, group or organization webhook). */
export interface WebhookTarget {
  url: string;
  secret: string;
}

/** One webhook delivery the platform made (or lost): its id, event, body and the answer it got. */
export interface WebhookDelivery {
  id: string;
  event: string;
  body: string;
  at: number;
  /** Never sent (the loss knob): webhooks get lost. */
  lost: boolean;
  status?: number;
  error?: string;
}

/**
 * Every credential an emulator has accepted or handed out in this process (API tokens, runner
 * tokens, agent secrets), for the secret scan: none of them may appear in what Parmanu prints,
 * logs, returns as JSON or sends in a request body.
 */
export const issuedSecrets = new Set<string>();
/** Emulators started in this process whose request bodies the scan after each test has not read yet (a stopped one leaves once read). */
export const liveEmulators = new Set<Emulator>();

export abstract class Emulator {
  url = '';
  latencyMs = 0;
  strict = true;
  readonly faults: Fault[] = [];
  readonly log: string[] = [];
  readonly unexpected: string[] = [];
  /** Raw request bodies received, in order, with the request line: the secret scan reads them. */
  readonly bodies: Array<{ request: string; body: string }> = [];
  /** Which runner ran which job, and when: kept by the emulator's job helpers. */
  readonly jobRecords: JobRecord[] = [];
  /** Every removal of a runner registration or node, with whether it was running a job then. */
  readonly removals: RunnerRemoval[] = [];
  /** Every request that changed a runner, by the runner's name (found, not 404). */
  readonly touches: RunnerTouch[] = [];
  /** Every runner credential handed out through the API (runner token, JIT config, agent node), by the runner's name. */
  readonly credentials: Array<{ runner: string; at: number }> = [];
  /** Where webhook events go (undefined: no webhook configured). Deliveries are POSTed over HTTP, fire and forget. */
  webhook: WebhookTarget | undefined;
  /** How many of the next deliveries are lost (never sent), as the platforms now and then lose one. */
  loseWebhooks = 0;
  /** Every delivery made or lost, in order. */
  readonly deliveries: WebhookDelivery[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private server: Server | undefined;
  private readonly routes: Array<{ method: string; re: RegExp; handler: Handler }> = [];

  protected route(method: string, re: RegExp, handler: Handler): void {
    this.routes.push({ method, re, handler });
  }

  /** Requests whose path matches, counted. */
  count(method: string, path: RegExp): number {
    return this.log.filter((l) => l.startsWith(`${method} `) && path.test(l.slice(method.length + 1))).length;
  }

  /** The last removal of the runner of that name, if it was removed. */
  runnerDeleted(name: string): RunnerRemoval | undefined {
    return this.removals.filter((r) => r.runner === name).at(-1);
  }

  /** Removals of runners that were running a job (a busy runner's registration or VM removed). */
  removedWhileBusy(): RunnerRemoval[] {
    return this.removals.filter((r) => r.busy);
  }

  /** The requests that changed the runner of that name. */
  touched(name: string): string[] {
    return this.touches.filter((t) => t.runner === name).map((t) => t.request);
  }

  /**
   * Delivers one webhook event to `webhook` over HTTP with the platform's headers (`headers` gets
   * the body and the delivery id); nothing when no webhook is configured.
   */
  protected sendWebhook(event: string, payload: unknown, headers: (body: string, id: string, secret: string) => Record<string, string>): void {
    const target = this.webhook;
    if (!target) return;
    issuedSecrets.add(target.secret);
    const body = JSON.stringify(payload);
    const d: WebhookDelivery = { id: randomUUID(), event, body, at: Date.now(), lost: this.loseWebhooks > 0 };
    this.deliveries.push(d);
    if (d.lost) {
      this.loseWebhooks--;
      return;
    }
    const p = fetch(target.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers(body, d.id, target.secret) }, body, signal: AbortSignal.timeout(10_000) })
      .then(async (r) => {
        d.status = r.status;
        await r.body?.cancel();
      })
      .catch((err: Error) => {
        d.error = err.message;
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  /** Resolves once every delivery sent so far has been answered (or failed). */
  async webhooksSettled(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  protected recordRemoval(runner: string, runningJobs: string[]): void {
    this.removals.push({ runner, at: Date.now(), busy: runningJobs.length > 0, jobs: runningJobs });
  }

  protected touch(runner: string, req: EmuRequest): void {
    this.touches.push({ runner, request: `${req.method} ${req.path}`, at: Date.now() });
  }

  protected recordStart(job: string | number, runner: string): void {
    this.jobRecords.push({ job: String(job), runner, start: Date.now() });
  }

  protected recordEnd(job: string | number): void {
    const r = this.jobRecords.find((x) => x.job === String(job) && x.end === undefined);
    if (r) r.end = Date.now();
  }

  /** The credential this emulator accepts. */
  abstract token: string;

  /** A credential handed out (runner token, agent secret), recorded for the secret scan. */
  protected issue(secret: string, runner?: string): string {
    issuedSecrets.add(secret);
    if (runner !== undefined) this.credentials.push({ runner, at: Date.now() });
    return secret;
  }

  async start(): Promise<this> {
    issuedSecrets.add(this.token);
    liveEmulators.add(this);
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
    this.server = undefined;
  }

  protected abstract authorize(req: EmuRequest): EmuResponse | undefined;

  private scanned = 0;
  get serving(): boolean {
    return this.server !== undefined;
  }

  /** Request bodies received since the last call. */
  takeBodies(): Array<{ request: string; body: string }> {
    const out = this.bodies.slice(this.scanned);
    this.scanned = this.bodies.length;
    return out;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    let body: unknown = undefined;
    const ct = req.headers['content-type'] ?? '';
    if (rawBody) {
      if (ct.includes('application/json')) {
        try {
          body = JSON.parse(rawBody);
        } catch {
          body = undefined;
        }
      } else if (ct.includes('application/x-www-form-urlencoded')) body = Object.fromEntries(new URLSearchParams(rawBody));
      else body = rawBody;
    }
    const method = req.method ?? 'GET';
    this.log.push(`${method} ${u.pathname}${u.search}`);
    if (rawBody) this.bodies.push({ request: `${method} ${u.pathname}`, body: rawBody });
    if (this.latencyMs) await new Promise((r) => setTimeout(r, this.latencyMs));
    const route = this.routes.find((r) => r.method === method && r.re.test(u.pathname));
    const ereq: EmuRequest = { method, path: u.pathname, query: u.searchParams, headers: req.headers, body, rawBody, params: route ? (route.re.exec(u.pathname)?.slice(1).map(decodeURIComponent) ?? []) : [] };

    const fault = this.faults.find((f) => (f.method ?? method) === method && f.path.test(u.pathname) && (!f.query || f.query.test(u.search)) && (f.times === undefined || f.times > 0));
    if (fault && !fault.emptyPage) {
      if (fault.times !== undefined) fault.times--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.malformed) return this.send(res, { status: 200, raw: '{"id": 1, "status": ', headers: { 'content-type': 'application/json' } });
      if (fault.status) return this.send(res, this.faultResponse({ status: fault.status, body: fault.body ?? { message: `${fault.status} injected` }, ...(fault.headers ? { headers: fault.headers } : {}) }));
    }
    const denied = this.authorize(ereq);
    if (denied) return this.send(res, denied);
    if (!route) {
      if (this.strict) this.unexpected.push(`${method} ${u.pathname}${u.search}`);
      return this.send(res, { status: this.strict ? 501 : 404, body: { message: `emulator: no route for ${method} ${u.pathname}` } });
    }
    // A changed page is never Not Modified: an empty-page fault bypasses the client's ETag.
    if (fault?.emptyPage) delete ereq.headers['if-none-match'];
    let out = await route.handler(ereq);
    if (fault?.emptyPage) {
      if (fault.times !== undefined) fault.times--;
      out = { ...out, status: 200, body: this.emptied(out.body), headers: { ...(out.headers ?? {}), etag: `W/"emptied-${Date.now()}"` } };
    }
    this.send(res, out);
  }

  private send(res: ServerResponse, out: EmuResponse): void {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...this.commonHeaders(), ...(out.headers ?? {}) };
    res.writeHead(out.status, headers);
    if (out.status === 204 || out.status === 304) return void res.end();
    res.end(out.raw ?? (out.body === undefined ? '' : typeof out.body === 'string' && !headers['content-type']?.includes('json') ? out.body : JSON.stringify(out.body)));
  }

  protected commonHeaders(): Record<string, string> {
    return {};
  }

  /** A listing's body with its items gone (the page came back empty). */
  protected emptied(_body: unknown): unknown {
    return [];
  }

  /** How the platform shapes an injected fault (GitHub's 429s carry its secondary-limit body). */
  protected faultResponse(out: EmuResponse): EmuResponse {
    return out;
  }
}

/** GitLab-style offset pagination of a list: the page, and the x-* and Link headers. */
export function paginate<T>(items: T[], req: EmuRequest, baseUrl: string, defaultPerPage = 20): { page: T[]; headers: Record<string, string> } {
  const perPage = Math.min(100, Number(req.query.get('per_page') ?? defaultPerPage) || defaultPerPage);
  const page = Math.max(1, Number(req.query.get('page') ?? 1) || 1);
  const totalPages = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((page - 1) * perPage, page * perPage);
  const link = (p: number) => {
    const q = new URLSearchParams(req.query);
    q.set('page', String(p));
    q.set('per_page', String(perPage));
    return `${baseUrl}${req.path}?${q.toString()}`;
  };
  const links: string[] = [];
  if (page < totalPages) links.push(`<${link(page + 1)}>; rel="next"`);
  if (page > 1) links.push(`<${link(page - 1)}>; rel="prev"`);
  links.push(`<${link(1)}>; rel="first"`, `<${link(totalPages)}>; rel="last"`);
  return {
    page: slice,
    headers: {
      'x-page': String(page),
      'x-per-page': String(perPage),
      'x-total': String(items.length),
      'x-total-pages': String(totalPages),
      'x-next-page': page < totalPages ? String(page + 1) : '',
      'x-prev-page': page > 1 ? String(page - 1) : '',
      link: links.join(', '),
    },
  };
}
