/**
 * The HTTP policy every emitter shares: a concurrency limit per emitter, a timeout per request,
 * retries with exponential backoff and jitter on 5xx, 429, rate-limit 403s, timeouts and network
 * errors, `Retry-After` (and rate-limit reset headers) honoured, and the API calls and remaining
 * rate limit counted for the probe's metadata. Errors name the method and path, never a header, so
 * no token reaches a message.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import { EmitterError, type ProbeResult } from './types.js';

export interface HttpPolicy {
  timeoutMs: number;
  retries: number;
  concurrency: number;
  /** First backoff; doubles per attempt (with jitter), capped at 30 s. */
  backoffMs?: number;
  /** The longest wait a Retry-After may impose before the request is given up. */
  maxRetryAfterMs?: number;
}

export interface HttpStats {
  calls: number;
  notModified: number;
  rateLimitRemaining: number | undefined;
}

type FetchFn = typeof fetch;

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

export class HttpClient {
  readonly stats: HttpStats = { calls: 0, notModified: 0, rateLimitRemaining: undefined };
  private readonly limit: LimitFunction;

  constructor(
    readonly policy: HttpPolicy,
    private readonly fetchImpl: FetchFn = fetch,
  ) {
    this.limit = pLimit(policy.concurrency);
  }

  /** The client an emitter's own settings call for (timeout, retries, concurrency). */
  static forEmitter(cfg: { requestTimeoutMs: number; retries: number; concurrency: number }): HttpClient {
    return new HttpClient({ timeoutMs: cfg.requestTimeoutMs, retries: cfg.retries, concurrency: cfg.concurrency });
  }

  resetStats(): void {
    this.stats.calls = 0;
    this.stats.notModified = 0;
    this.stats.rateLimitRemaining = undefined;
  }

  /**
   * A fetch with the policy applied. `retry: false` leaves retries to the caller (octokit's plugins).
   * Within the request's turn under the concurrency limit, `hooks.gate` may answer it instead,
   * unsent, and `hooks.seen` sees the answer before the next request's turn (GitHub: a credential
   * found spent is not used by the requests that waited behind the one that found it).
   */
  fetch = (input: string | URL | Request, init: RequestInit = {}, retry = true, hooks: { gate?: () => Response | undefined; seen?: (res: Response) => void } = {}): Promise<Response> =>
    this.limit(async () => {
      const answer = hooks.gate?.();
      if (answer) return answer;
      const res = await this.attempt(input, init, retry);
      hooks.seen?.(res);
      return res;
    });

  private async attempt(input: string | URL | Request, init: RequestInit, retry: boolean): Promise<Response> {
    const req = input instanceof Request ? input : undefined;
    const method = init.method ?? req?.method ?? 'GET';
    const url = new URL(req ? req.url : String(input));
    const what = `${method} ${url.pathname}`;
    const retries = retry ? this.policy.retries : 0;
    let lastProblem = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      let res: Response;
      try {
        this.stats.calls++;
        const signal = AbortSignal.timeout(this.policy.timeoutMs);
        res = req ? await this.fetchImpl(new Request(req, { signal })) : await this.fetchImpl(url, { ...init, signal });
      } catch (err) {
        lastProblem = networkProblem(err, url, this.policy.timeoutMs);
        if (attempt < retries) {
          await sleep(this.backoff(attempt));
          continue;
        }
        throw new EmitterError(`${what}: ${lastProblem}`);
      }
      this.noteRateLimit(res.headers);
      if (res.status === 304) this.stats.notModified++;
      const rateLimited403 = res.status === 403 && (res.headers.get('x-ratelimit-remaining') === '0' || res.headers.has('retry-after'));
      if ((RETRYABLE.has(res.status) || rateLimited403) && attempt < retries) {
        const wait = this.retryAfter(res.headers) ?? this.backoff(attempt);
        if (wait > (this.policy.maxRetryAfterMs ?? 60_000)) return res;
        await res.body?.cancel().catch(() => undefined);
        lastProblem = `HTTP ${res.status}`;
        await sleep(wait);
        continue;
      }
      return res;
    }
    throw new EmitterError(`${what}: ${lastProblem || 'gave up'}`);
  }

  private backoff(attempt: number): number {
    const base = this.policy.backoffMs ?? 250;
    const exp = Math.min(30_000, base * 2 ** attempt);
    return exp / 2 + Math.random() * (exp / 2);
  }

  private retryAfter(h: Headers): number | undefined {
    const ra = h.get('retry-after');
    if (ra) {
      const s = Number(ra);
      if (Number.isFinite(s)) return Math.max(0, s * 1000);
      const at = Date.parse(ra);
      if (!Number.isNaN(at)) return Math.max(0, at - Date.now());
    }
    const reset = h.get('x-ratelimit-reset');
    if (h.get('x-ratelimit-remaining') === '0' && reset) return Math.max(0, Number(reset) * 1000 - Date.now());
    return undefined;
  }

  private noteRateLimit(h: Headers): void {
    const v = h.get('ratelimit-remaining') ?? h.get('x-ratelimit-remaining');
    if (v === null) return;
    const n = Number(v);
    if (Number.isFinite(n)) this.stats.rateLimitRemaining = Math.min(this.stats.rateLimitRemaining ?? Infinity, n);
  }
}

/** A map bounded to `max` entries: reading or writing an entry makes it the most recent; the least recent leaves first. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    this.map.delete(key);
    this.map.set(key, v);
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    while (this.map.size > this.max) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.map.delete(oldest.value);
    }
  }

  has(key: K): boolean {
    return this.map.has(key);
  }
}

/** What Node's sockets and undici say, in a few words. */
const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'no such host',
  EAI_AGAIN: 'DNS lookup failed, try again',
  ETIMEDOUT: 'connecting timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connecting timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPIPE: 'connection closed',
  UND_ERR_SOCKET: 'the server closed the connection',
};

interface SocketErrorShape {
  code?: unknown;
  address?: unknown;
  port?: unknown;
  hostname?: unknown;
  message?: unknown;
  errors?: unknown;
}

/**
 * A request that got no HTTP answer, in one line naming the host and the cause:
 * `ECONNREFUSED 127.0.0.1:8080 (connection refused)`, `ENOTFOUND gitlab.example.invalid (no such
 * host)`, `timed out after 10000 ms waiting for 10.0.0.1:443`. fetch (undici) throws a TypeError
 * whose `cause` is the socket's error (code, address, port), or an AggregateError of one per
 * address tried; a timeout is an AbortSignal's TimeoutError. Every emitter's requests go through
 * HttpClient, so this is the one place such errors are described (octokit wraps the resulting
 * EmitterError in a RequestError whose `cause` it is: see GithubEmitter.asError).
 */
export function networkProblem(err: unknown, url: URL, timeoutMs: number): string {
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  const target = `${url.hostname}:${port}`;
  const e = (err ?? {}) as { name?: unknown; message?: unknown; cause?: unknown };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `timed out after ${timeoutMs} ms waiting for ${target}`;
  const cause = (e.cause ?? {}) as SocketErrorShape;
  const attempts = (Array.isArray(cause.errors) ? (cause.errors as SocketErrorShape[]) : [cause]).filter((a) => typeof a?.code === 'string');
  const code = typeof cause.code === 'string' ? cause.code : (attempts[0]?.code as string | undefined);
  if (!code) {
    const msg = typeof (cause as { message?: unknown }).message === 'string' && cause.message ? cause.message : typeof e.message === 'string' ? e.message : String(err);
    return `network error reaching ${target} (${String(msg).slice(0, 200)})`;
  }
  const where = (a: SocketErrorShape) => (code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? (typeof a.hostname === 'string' ? a.hostname : url.hostname) : typeof a.address === 'string' && a.address ? `${a.address}:${typeof a.port === 'number' || typeof a.port === 'string' ? String(a.port) : port}` : target);
  const places = [...new Set((attempts.length ? attempts : [cause]).map(where))].join(', ');
  const hint = NETWORK_HINTS[code] ?? (typeof cause.message === 'string' && cause.message ? cause.message.slice(0, 200) : undefined);
  return `${code} ${places}${hint ? ` (${hint})` : ''}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads a JSON body; malformed JSON is an EmitterError naming the endpoint. */
export async function readJson(res: Response, what: string): Promise<unknown> {
  const text = await res.text();
  try {
    return text === '' ? null : (JSON.parse(text) as unknown);
  } catch {
    throw new EmitterError(`${what}: malformed JSON in the response (HTTP ${res.status})`, res.status);
  }
}

/** A short, token-free description of a failed response. */
export async function describeFailure(res: Response, what: string): Promise<EmitterError> {
  let detail = '';
  try {
    const text = (await res.text()).slice(0, 300);
    const body = JSON.parse(text) as { message?: unknown; error?: unknown };
    const m = body.message ?? body.error;
    detail = typeof m === 'string' ? m : m ? JSON.stringify(m) : '';
  } catch {
    /* not JSON: status alone */
  }
  const hint = res.status === 401 ? ' (check the token)' : res.status === 403 ? ' (the token lacks a permission)' : res.status === 404 ? ' (not found, or the token cannot see it)' : '';
  // GitLab's messages repeat the status ("401 Unauthorized"): say it once.
  if (detail.startsWith(`${res.status} `)) detail = detail.slice(String(res.status).length + 1);
  return new EmitterError(`${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}${hint}`, res.status);
}

/** A probe's result with its metadata from the HTTP client's counters since `t0`. */
type ProbeBody = Omit<ProbeResult, 'emitter' | 'at' | 'meta'>;

/**
 * What went wrong in parts of one probe — a listing that failed, a list that came back short —
 * and how that folds into its result: every unit failed → the probe failed; some → ok but
 * partial, with up to three distinct reasons.
 */
export class ProbeProblems {
  private readonly reasons: string[] = [];
  constructor(private readonly describe: (err: unknown) => string) {}

  add(reason: string): void {
    this.reasons.push(reason);
  }

  /** The values of the fulfilled results; each rejection is recorded. */
  settle<T>(results: ReadonlyArray<PromiseSettledResult<T>>): { values: T[]; failed: number } {
    const values: T[] = [];
    let failed = 0;
    for (const r of results) {
      if (r.status === 'fulfilled') values.push(r.value);
      else {
        failed++;
        this.add(this.describe(r.reason));
      }
    }
    return { values, failed };
  }

  /** A failed probe when all `units` failed (and there were some), else undefined. */
  allFailed(units: number, failed: number, what: string): ProbeBody | undefined {
    return units > 0 && failed === units ? { ok: false, partial: false, reason: this.reasons[0] ?? `every ${what} failed`, jobs: [], runners: [] } : undefined;
  }

  ok(jobs: ProbeResult['jobs'], runners: ProbeResult['runners']): ProbeBody {
    const partial = this.reasons.length > 0;
    return { ok: true, partial, ...(partial ? { reason: [...new Set(this.reasons)].slice(0, 3).join('; ') } : {}), jobs, runners };
  }
}

/** The start of a probe: the clock read, the client's counters reset, a fresh ProbeProblems, and `done` to build the result. */
export function beginProbe(emitter: string, clock: () => number, http: HttpClient, describe: (err: unknown) => string): { t0: number; problems: ProbeProblems; done: (r: ProbeBody) => ProbeResult } {
  const t0 = clock();
  http.resetStats();
  return { t0, problems: new ProbeProblems(describe), done: (r) => probeResult(emitter, t0, clock, http.stats, r) };
}

export function probeResult(emitter: string, t0: number, clock: () => number, stats: HttpStats, r: Omit<ProbeResult, 'emitter' | 'at' | 'meta'>): ProbeResult {
  return {
    emitter,
    at: t0,
    ...r,
    meta: { durationMs: clock() - t0, apiCalls: stats.calls, notModified: stats.notModified, ...(stats.rateLimitRemaining !== undefined ? { rateLimitRemaining: stats.rateLimitRemaining } : {}) },
  };
}
