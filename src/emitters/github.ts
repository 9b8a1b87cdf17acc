/**
 * GitHub Actions through @octokit/rest with the throttling plugin (primary and secondary rate
 * limits, `Retry-After`) and the retry plugin (5xx, timeouts), over Parmanu's HTTP client (timeout,
 * concurrency limit, call counting). Every GET is conditional: an unchanged page is answered 304
 * from its ETag, which costs no rate limit (octokit throws on 304; the cached page is used).
 *
 * Endpoints: GET /orgs/{org}/repos (when `repos` is omitted), GET /repos/{o}/{r}/actions/runs
 * ?status=queued|in_progress, GET /repos/{o}/{r}/actions/runs/{id}/jobs?filter=latest,
 * GET /orgs/{org}/actions/runners (or /repos/{o}/{r}/actions/runners), GET …/runners/{id},
 * POST …/runners/generate-jitconfig (ephemeral pools), POST …/runners/registration-token
 * (long-lived runners), DELETE …/runners/{id}; for ensureComment GET /user (or GET /app with app
 * credentials), GET/POST /repos/{o}/{r}/issues/{n}/comments, PATCH /repos/{o}/{r}/issues/comments/{id};
 * for runnerRelease GET /repos/actions/runner/releases/latest or …/releases/tags/v{version} (with
 * the emitter's token, against apiUrl: on GHES its own copy of actions/runner, e.g. synced with
 * actions-sync), the checksums read from the release notes' `BEGIN SHA` markers.
 * Token permissions: Actions read on the repositories; Self-hosted runners read and write on the
 * organization (org runners) or Administration read and write on the repository (repo runners).
 * GitHub has no pause: pause() deletes the runner registration; GitHub refuses with 422 while the
 * runner runs a job, which is a RunnerBusyError (the runner finishes its job and, being
 * just-in-time, leaves).
 * Ownership: a runner is Parmanu's when one of its labels is `parmanu-pool-<pool>` (JIT runners get
 * it from generate-jitconfig; long-lived ones from the bootstrap's `config.sh --labels`). Runner
 * look-ups by name read every page of the runner list and never return an unmarked runner.
 * Busy truth: the runner's `busy` flag lags the job by minutes, so isIdle() also reads, without
 * ETags, the in-progress runs of the watched repositories and their jobs' `runner_name`.
 * The ETag cache is bounded (least recently used out past ETAG_CACHE_MAX entries); each entry
 * remembers the credential that read it (GitHub's ETags are specific to the token).
 * Credentials: one token, one GitHub App installation, or several of either (`credentials`), each
 * with its own client; calls spread across them by remaining rate limit, installation tokens are
 * replaced before they expire and once on a 401 (github-auth.ts). The sticky comment is written and
 * recognised with the first credential only, so that its author is one identity.
 */
import { z } from 'zod';
import type { Job } from '../decide/types.js';
import { redact } from '../policy/secrets.js';
import { githubRunnerUrl, type EmitterConfig, type RunnerCredential } from '../policy/types.js';
import { Credential, CredentialPool, credentialId, InstallationTokens, isAppPath, privateKeyProblem, REFRESH_MARGIN_MS, ThrottledOctokit, type GithubCredentialSecret } from './github-auth.js';
import { beginProbe, HttpClient, LruCache, ProbeProblems } from './http.js';
import { GITHUB_ASSETS, parseGithubChecksums, ReleaseCache, releaseVersion } from './release.js';
import { EmitterError, markerLabel, poolFromLabels, RunnerBusyError, type CommentResult, type CommentTarget, type Emitter, type ProbeResult, type RegisterRequest, type RunnerInfo, type RunnerRelease } from './types.js';

/** Conditional GETs remembered at most (least recently used out first). */
export const ETAG_CACHE_MAX = 500;

type GithubConfig = Extract<EmitterConfig, { type: 'github' }>;

const RepoSchema = z.object({ name: z.string(), archived: z.boolean().optional() }).loose();
const RunSchema = z.object({ id: z.number(), status: z.string().nullable() }).loose();
const JobSchema = z.object({
  id: z.number(),
  status: z.string(),
  labels: z.array(z.string()),
  runner_name: z.string().nullable().optional(),
  created_at: z.string(),
  started_at: z.string().nullable().optional(),
}).loose();
const RunnerSchema = z.object({ id: z.number(), name: z.string(), status: z.string(), busy: z.boolean(), labels: z.array(z.object({ name: z.string() }).loose()) }).loose();
const JitSchema = z.object({ runner: z.object({ id: z.number() }).loose(), encoded_jit_config: z.string().min(1) }).loose();
const CommentSchema = z.object({ id: z.number(), body: z.string().nullable().optional(), user: z.object({ login: z.string(), id: z.number() }).loose().nullable() }).loose();
const UserSchema = z.object({ login: z.string(), id: z.number() }).loose();
const AppSchema = z.object({ slug: z.string() }).loose();
const RegTokenSchema = z.object({ token: z.string().min(1) }).loose();
const ReleaseSchema = z.object({ tag_name: z.string(), body: z.string().nullable().optional(), draft: z.boolean().optional() }).loose();

export interface GithubSecrets {
  token?: string;
  /**
   * Whose comments are ours when the token is an installation token that GET /user refuses
   * (the workflow's GITHUB_TOKEN: `github-actions[bot]`). Tokens of a user ask GET /user; app
   * credentials ask GET /app for the bot `<slug>[bot]`.
   */
  botLogin?: string;
  app?: { appId: number | string; installationId: number | string; privateKey: string };
  /** Several credentials (the policy's `credentials`), instead of `token` or `app`. */
  credentials?: GithubCredentialSecret[];
}

export interface GithubOptions {
  /** An installation token expiring within this is replaced before use (default REFRESH_MARGIN_MS; capped at half the token's lifetime). */
  refreshMarginMs?: number;
}

/** The refusal GitHub gives a spent credential, for a call not sent because its credential is known to be spent. */
function spentResponse(c: Credential): Response {
  const headers = { 'content-type': 'application/json', 'x-ratelimit-remaining': '0', ...(c.limit !== undefined ? { 'x-ratelimit-limit': String(c.limit) } : {}), ...(c.resetAt !== undefined ? { 'x-ratelimit-reset': String(Math.ceil(c.resetAt / 1000)) } : {}) };
  return new Response(JSON.stringify({ message: `API rate limit spent for ${c.id} (not sent)` }), { status: 403, headers });
}

/** Whether an Octokit error is GitHub refusing for a spent primary rate limit (403 or 429 with x-ratelimit-remaining: 0). */
function primaryLimited(err: unknown): boolean {
  const e = err as { status?: number; response?: { headers?: Record<string, string | number | undefined> } };
  return (e.status === 403 || e.status === 429) && String(e.response?.headers?.['x-ratelimit-remaining'] ?? '') === '0';
}

export class GithubEmitter implements Emitter {
  readonly kind = 'github' as const;
  readonly name: string;
  readonly http: HttpClient;
  /** The emitter's credentials, each with its own client. */
  readonly pool: CredentialPool;
  /** Conditional GETs' ETags and pages, bounded, with the id of the credential that read them. */
  readonly etags = new LruCache<string, { etag: string; data: unknown; credential: string }>(ETAG_CACHE_MAX);
  private problems = new ProbeProblems((e) => this.reason(e));
  private readonly secrets: string[];
  private readonly botLogin: string | undefined;
  /** runnerRelease resolutions, reused for an hour. */
  readonly releases: ReleaseCache;

  constructor(
    private readonly cfg: GithubConfig,
    secrets: GithubSecrets,
    http?: HttpClient,
    private readonly clock: () => number = Date.now,
    opts: GithubOptions = {},
  ) {
    this.name = cfg.name;
    const list: GithubCredentialSecret[] = secrets.credentials ?? (secrets.app ? [{ app: secrets.app }] : [{ token: secrets.token ?? '' }]);
    this.secrets = list.map((c) => ('token' in c ? c.token : c.app.privateKey));
    this.botLogin = secrets.botLogin;
    this.http = http ?? HttpClient.forEmitter(cfg);
    this.releases = new ReleaseCache(clock);
    this.pool = new CredentialPool(list.map((c, i) => this.credential(c, credentialId(c, i), opts)));
  }

  /** One credential with its own client: its answers' rate-limit headers are its own. */
  private credential(c: GithubCredentialSecret, id: string, opts: GithubOptions): Credential {
    const retries = this.cfg.retries;
    const maxWaitS = (this.http.policy.maxRetryAfterMs ?? 60_000) / 1000;
    const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    let self: Credential | undefined;
    const octokit = new ThrottledOctokit({
      baseUrl: this.cfg.apiUrl.replace(/\/$/, ''),
      userAgent: 'parmanu',
      log: quiet,
      // Retries belong to the plugins here; the HTTP client only times out, limits and counts.
      request: {
        fetch: async (input: string | URL | Request, init?: RequestInit) => {
          // A call picked before its credential was found spent (calls are picked as they are queued) is not sent
          // when its turn comes: GitHub asks for no requests while the limit is spent. It gets the refusal GitHub
          // would give, and moves to another credential.
          const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
          return this.http.fetch(input, init, false, {
            gate: () => (self?.exhausted(Date.now()) && !isAppPath(path) ? spentResponse(self) : undefined),
            seen: (res) => self?.observe(path, res.status, res.headers),
          });
        },
      },
      throttle: {
        // A spent primary limit: another credential takes the call; with none, wait only for a reset within maxRetryAfterMs.
        onRateLimit: (after: number, _options: unknown, _o: unknown, retryCount: number) => retryCount < retries && after <= maxWaitS && !(self && this.pool.hasOther(self)),
        onSecondaryRateLimit: (_after: number, _options: unknown, _o: unknown, retryCount: number) => retryCount < retries,
      },
      // GitHub's 429s are rate limits, the throttling plugin's to handle (secondary: wait; primary: another credential).
      retry: { retries, retryAfterBaseValue: this.http.policy.backoffMs ?? 1000, doNotRetry: [400, 401, 403, 404, 410, 422, 429, 451] },
    });
    if ('token' in c) self = new Credential(id, octokit, c.token, undefined, undefined);
    else {
      const problem = privateKeyProblem(c.app.privateKey);
      const tokens = new InstallationTokens(c.app.appId, c.app.installationId, c.app.privateKey, octokit.request, opts.refreshMarginMs ?? REFRESH_MARGIN_MS);
      self = new Credential(id, octokit, undefined, tokens, problem);
    }
    return self;
  }

  /** A private key that cannot sign is a configuration problem no probe mends. */
  preflight(): string[] {
    return this.pool.all.filter((c) => c.keyProblem).map((c) => `${c.id}: ${c.keyProblem as string}`);
  }

  /**
   * One REST call through the pool: the credential with the most remaining (or `sticky`'s, or
   * `pinned`), its installation token refreshed first. A 401 on an installation token drops it and
   * retries once with a fresh one; a spent primary limit moves the call to the next credential
   * (pinned: no move). Octokit's errors are rethrown as they are, tagged with the credential's id.
   */
  private async send(what: string, route: string, params: Record<string, unknown> = {}, o: { sticky?: Credential; pinned?: Credential; headers?: (c: Credential) => Record<string, string> } = {}): Promise<{ res: { data: unknown; headers: Record<string, string | number | undefined> }; cred: Credential }> {
    const spent = new Set<Credential>();
    let renewed = false;
    let cred = o.pinned ?? this.pickOrFail(what, spent, o.sticky);
    for (;;) {
      const c = cred;
      const auth = await c.authorization().catch((err: unknown) => {
        throw this.exchangeError(err, what, c);
      });
      c.inFlight++;
      try {
        const res = await c.octokit.request(route, { ...params, headers: { ...(o.headers?.(c) ?? {}), authorization: auth.header } });
        return { res: res as { data: unknown; headers: Record<string, string | number | undefined> }, cred: c };
      } catch (err) {
        const status = (err as { status?: number }).status;
        if (status === 401 && c.app && !renewed) {
          c.app.invalidate(auth.token);
          renewed = true;
          continue;
        }
        if (primaryLimited(err) && !o.pinned) {
          c.spend(undefined);
          spent.add(c);
          cred = this.pickOrFail(what, spent);
          continue;
        }
        if (err && typeof err === 'object') (err as { credential?: string }).credential = c.id;
        throw err;
      } finally {
        c.inFlight--;
      }
    }
  }

  private pickOrFail(what: string, spent: ReadonlySet<Credential>, sticky?: Credential): Credential {
    try {
      return this.pool.pick(spent, sticky);
    } catch (err) {
      throw err instanceof EmitterError ? new EmitterError(`${what}: ${err.message}`, err.status) : err;
    }
  }

  /** An installation token that could not be had: the exchange's answer, naming the credential, never a key or token. */
  private exchangeError(err: unknown, what: string, c: Credential): EmitterError {
    if (err instanceof EmitterError) return new EmitterError(`${what}: ${err.message}`, err.status);
    const app = c.app as InstallationTokens;
    const inner = this.asError(err, `POST /app/installations/${app.installationId}/access_tokens`);
    const hint = inner.status === 401 ? ' (check the app id and that the private key is the app\'s current one)' : inner.status === 404 ? ' (the app is not installed there: check installationId)' : '';
    const message = hint ? inner.message.replace(/ \((?:check the token|the token|not found, or the token)[^()]*\)$/, '') : inner.message;
    return new EmitterError(`${what}: ${c.id}: no installation token: ${message}${hint}`, inner.status);
  }

  private get runnerScope(): string {
    return this.cfg.runnerOwner === 'org' ? `/orgs/${this.cfg.owner}` : `/repos/${this.cfg.owner}/${this.cfg.runnerOwner.repo}`;
  }

  /** The web URL runners register against (GitHub Enterprise: the host of apiUrl). */
  // ---------------------------------------------------------------- conditional GETs
  private async get(path: string, query: Record<string, string | number> = {}, conditional = true, pinned?: Credential): Promise<{ data: unknown; link: string | undefined }> {
    const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString();
    const key = `${path}?${qs}`;
    const cached = conditional ? this.etags.get(key) : undefined;
    // An ETag is good only with the token that read it: the request goes back to that credential, and sends it only there.
    const sticky = cached ? this.pool.all.find((c) => c.id === cached.credential) : undefined;
    try {
      const { res, cred } = await this.send(`GET ${path}`, `GET ${path}${qs ? `?${qs}` : ''}`, {}, { ...(sticky ? { sticky } : {}), ...(pinned ? { pinned } : {}), headers: (c): Record<string, string> => (cached && c.id === cached.credential ? { 'if-none-match': cached.etag } : {}) });
      const etag = typeof res.headers.etag === 'string' ? res.headers.etag : undefined;
      const link = typeof res.headers.link === 'string' ? res.headers.link : undefined;
      if (conditional && etag) this.etags.set(key, { etag, data: { data: res.data, link }, credential: cred.id });
      return { data: res.data, link };
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 304 && cached) return cached.data as { data: unknown; link: string | undefined };
      throw this.asError(err, `GET ${path}`);
    }
  }

  /**
   * Every page of a list (GitHub Link pagination); for objects, compares with total_count. A short
   * list marks the probe partial, or with `fresh` (unconditional requests, for the look-ups that
   * decide on a runner) is an error: what is missing cannot be known.
   */
  private async all<T extends z.ZodType>(path: string, item: T, key?: string, query: Record<string, string | number> = {}, fresh = false, pinned?: Credential): Promise<Array<z.output<T>>> {
    const out: Array<z.output<T>> = [];
    let total: number | undefined;
    for (let page = 1; page <= 100; page++) {
      const { data, link } = await this.get(path, { ...query, per_page: 100, page }, !fresh, pinned);
      let items: unknown;
      if (key) {
        const obj = z.object({ total_count: z.number() }).loose().parse(data);
        total = obj.total_count;
        items = (obj as Record<string, unknown>)[key];
      } else items = data;
      out.push(...z.array(item).parse(items));
      if (!link || !/rel="next"/.test(link)) break;
    }
    if (total !== undefined && out.length < total) {
      const problem = `GET ${path}: ${out.length} of ${total} items came back`;
      if (fresh) throw new EmitterError(problem);
      this.problems.add(problem);
    }
    return out;
  }

  private asError(err: unknown, what: string): EmitterError {
    if (err instanceof EmitterError) return err;
    // A request that got no answer: octokit wraps the HTTP client's EmitterError (which names the
    // host and the cause) in a RequestError "HTTP 500" whose cause it is.
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof EmitterError) return cause;
    if (err instanceof z.ZodError) return new EmitterError(`${what}: unexpected response shape: ${err.issues[0]?.path.join('.') ?? ''} ${err.issues[0]?.message ?? ''}`.trim());
    const e = err as { status?: number; message?: string; response?: { data?: unknown }; credential?: string };
    const msg = redact((e.message ?? String(err)).split(' - ')[0] ?? '', this.pool.secrets(this.secrets));
    const who = e.credential && this.pool.all.length > 1 ? ` ${e.credential}` : '';
    const hint = e.status === 401 ? ` (check the token${who})` : primaryLimited(err) ? ` (rate limit spent${who})` : e.status === 403 ? ` (the token${who} lacks a permission)` : e.status === 404 ? ` (not found, or the token${who} cannot see it)` : '';
    return new EmitterError(`${what}: HTTP ${e.status ?? '?'} ${msg}${hint}`.trim(), e.status);
  }

  private reason(err: unknown): string {
    return err instanceof EmitterError ? err.message : this.asError(err, 'request').message;
  }

  // ---------------------------------------------------------------- probe
  async probe(): Promise<ProbeResult> {
    const begun = beginProbe(this.name, this.clock, this.http, (e) => this.reason(e));
    this.pool.resetCounters();
    // The rate-limit budget: what this probe spent, and what each credential has left.
    const done: typeof begun.done = (r) => {
      const out = begun.done(r);
      const rateLimit = this.pool.meta();
      if (rateLimit) out.meta.rateLimit = rateLimit;
      return out;
    };
    this.problems = begun.problems;
    try {
      const repos = this.cfg.repos ?? (await this.all(`/orgs/${this.cfg.owner}/repos`, RepoSchema)).filter((r) => !r.archived).map((r) => r.name);
      const runsByRepo = await Promise.allSettled(
        repos.flatMap((repo) => (['queued', 'in_progress'] as const).map(async (status) => ({ repo, runs: await this.all(`/repos/${this.cfg.owner}/${repo}/actions/runs`, RunSchema, 'workflow_runs', { status }) }))),
      );
      const listed = this.problems.settle(runsByRepo);
      const none = this.problems.allFailed(runsByRepo.length, listed.failed, 'repository');
      if (none) return done(none);
      const runs = listed.values.flatMap((r) => r.runs.map((run) => ({ repo: r.repo, id: run.id })));
      const jobLists = await Promise.allSettled(runs.map((run) => this.all(`/repos/${this.cfg.owner}/${run.repo}/actions/runs/${run.id}/jobs`, JobSchema, 'jobs', { filter: 'latest' })));
      const jobs: Job[] = [];
      for (const list of this.problems.settle(jobLists).values) {
        for (const j of list) {
          if (j.status === 'completed') continue;
          const job: Job = { id: String(j.id), labels: j.labels, status: j.status === 'in_progress' ? 'running' : 'queued', queuedAt: Date.parse(j.created_at) };
          if (j.started_at) job.startedAt = Date.parse(j.started_at);
          if (j.runner_name) job.runner = j.runner_name;
          jobs.push(job);
        }
      }
      return done(this.problems.ok(jobs, await this.runners()));
    } catch (err) {
      return done({ ok: false, partial: false, reason: this.reason(err), jobs: [], runners: [] });
    }
  }

  /** Every page of the runner list; `fresh`: unconditional, and a short list is an error. */
  private runnerList(fresh = false): Promise<Array<z.output<typeof RunnerSchema>>> {
    return this.all(`${this.runnerScope}/actions/runners`, RunnerSchema, 'runners', {}, fresh);
  }

  /** The marked runners. GitHub cannot tell a runner that never came online from one that went offline: `contacted` stays unset. */
  private async runners(): Promise<RunnerInfo[]> {
    const out: RunnerInfo[] = [];
    for (const r of await this.runnerList()) {
      const labels = r.labels.map((l) => l.name);
      const pool = poolFromLabels(labels);
      if (!pool) continue;
      out.push({ id: String(r.id), name: r.name, labels, pool, online: r.status === 'online', busy: r.busy, paused: false });
    }
    return out;
  }

  // ---------------------------------------------------------------- registration
  async register(req: RegisterRequest): Promise<RunnerCredential> {
    try {
      if (req.ephemeral) {
        const { res } = await this.send(`POST ${this.runnerScope}/actions/runners/generate-jitconfig`, `POST ${this.runnerScope}/actions/runners/generate-jitconfig`, {
          name: req.node,
          runner_group_id: this.cfg.runnerGroupId,
          // The marker is one more label: jobs match labels as a subset, so it takes nothing away.
          labels: [...req.labels, markerLabel(req.pool)],
          work_folder: '_work',
        });
        const jit = JitSchema.parse(res.data);
        return { kind: 'github', jitConfig: jit.encoded_jit_config };
      }
      const { res } = await this.send(`POST ${this.runnerScope}/actions/runners/registration-token`, `POST ${this.runnerScope}/actions/runners/registration-token`);
      return { kind: 'github', url: githubRunnerUrl(this.cfg), registrationToken: RegTokenSchema.parse(res.data).token };
    } catch (err) {
      throw this.asError(err, `POST ${this.runnerScope}/actions/runners/${req.ephemeral ? 'generate-jitconfig' : 'registration-token'}`);
    }
  }

  /**
   * The node's runner: a runner named `node` carrying Parmanu's marker, found on any page of the
   * runner list (undefined when there is none; an unmarked runner of that name is never returned).
   */
  private async ownRunner(node: string, fresh: boolean): Promise<z.output<typeof RunnerSchema> | undefined> {
    try {
      return (await this.runnerList(fresh)).find((r) => r.name === node && poolFromLabels(r.labels.map((l) => l.name)) !== undefined);
    } catch (err) {
      throw this.asError(err, `GET ${this.runnerScope}/actions/runners`);
    }
  }

  /** DELETE of the registration: 404 is gone; 422 is GitHub refusing while the runner runs a job. */
  private async remove(node: string): Promise<void> {
    const r = await this.ownRunner(node, true);
    if (!r) return;
    const what = `DELETE ${this.runnerScope}/actions/runners/${r.id}`;
    try {
      await this.send(what, what);
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 404) return;
      if (status === 422) throw new RunnerBusyError(`${what}: HTTP 422 the runner ${node} is running a job`, 422);
      throw this.asError(err, what);
    }
  }

  /** GitHub cannot pause a runner: the registration is deleted; a busy runner is refused (RunnerBusyError). */
  async pause(node: string): Promise<void> {
    await this.remove(node);
  }

  async deregister(node: string): Promise<void> {
    await this.remove(node);
  }

  /**
   * Idle only when no job that has not completed names the runner (in-progress runs of the watched
   * repositories, read without ETags) and the runner's own record is not busy. Any request that
   * fails makes it reject: the node must then not be destroyed.
   */
  async isIdle(node: string): Promise<boolean> {
    const [named, runner] = await Promise.all([this.jobNamesRunner(node), this.ownRunner(node, true)]);
    if (named) return false;
    if (!runner) return true;
    const path = `${this.runnerScope}/actions/runners/${runner.id}`;
    try {
      const { data } = await this.get(path, {}, false);
      return !RunnerSchema.parse(data).busy;
    } catch (err) {
      if (err instanceof EmitterError && err.status === 404) return true;
      throw err instanceof EmitterError ? err : this.asError(err, `GET ${path}`);
    }
  }

  /** Whether a job of an in-progress run, not completed, names the runner (fresh requests). */
  private async jobNamesRunner(node: string): Promise<boolean> {
    const owner = this.cfg.owner;
    const repos = this.cfg.repos ?? (await this.all(`/orgs/${owner}/repos`, RepoSchema, undefined, {}, true)).filter((r) => !r.archived).map((r) => r.name);
    const runs = (await Promise.all(repos.map(async (repo) => (await this.all(`/repos/${owner}/${repo}/actions/runs`, RunSchema, 'workflow_runs', { status: 'in_progress' }, true)).map((run) => ({ repo, id: run.id }))))).flat();
    const jobs = await Promise.all(runs.map((run) => this.all(`/repos/${owner}/${run.repo}/actions/runs/${run.id}/jobs`, JobSchema, 'jobs', { filter: 'latest' }, true)));
    return jobs.flat().some((j) => j.status !== 'completed' && j.runner_name === node);
  }

  // ---------------------------------------------------------------- comments
  /** Who the credentials are: a user (GET /user, matched on id) or a bot login (app credentials, installation token). */
  private async whoAmI(): Promise<{ id?: number; login: string }> {
    const first = this.pool.first;
    if (first.app) {
      if (first.keyProblem) throw new EmitterError(`GET /app: ${first.id}: ${first.keyProblem}`);
      try {
        const jwt = await first.app.jwt();
        const res = await first.octokit.request('GET /app', { headers: { authorization: `bearer ${jwt}` } });
        return { login: `${AppSchema.parse(res.data).slug}[bot]` };
      } catch (err) {
        throw this.asError(err, 'GET /app');
      }
    }
    try {
      const { res } = await this.send('GET /user', 'GET /user', {}, { pinned: first });
      const u = UserSchema.parse(res.data);
      return { id: u.id, login: u.login };
    } catch (err) {
      const status = (err as { status?: number }).status;
      // An installation token (the workflow's GITHUB_TOKEN) may not read GET /user: its comments are the bot's.
      if ((status === 403 || status === 401) && this.botLogin) return { login: this.botLogin };
      throw this.asError(err, 'GET /user');
    }
  }

  /**
   * The sticky comment on a pull request: among the comments written by the credentials' own
   * user (GET /user by id, or the bot login of an app or installation token), the one carrying
   * `marker`; a comment by anyone else is never edited, whatever it contains.
   */
  async ensureComment(target: CommentTarget, marker: string, body: string): Promise<CommentResult> {
    if (!body.includes(marker)) throw new EmitterError('ensureComment: the body must contain the marker');
    const [owner, repo] = target.project.includes('/') ? (target.project.split('/', 2) as [string, string]) : [this.cfg.owner, target.project];
    const base = `/repos/${owner}/${repo}/issues`;
    const me = await this.whoAmI();
    const first = this.pool.first;
    const comments = await this.all(`${base}/${target.number}/comments`, CommentSchema, undefined, {}, true, first).catch((err: unknown) => {
      throw this.asError(err, `GET ${base}/${target.number}/comments`);
    });
    const mine = comments.find((c) => c.user && (me.id !== undefined ? c.user.id === me.id : c.user.login === me.login) && (c.body ?? '').includes(marker));
    try {
      if (mine) {
        if (mine.body === body) return { action: 'unchanged', id: mine.id };
        await this.send(`PATCH ${base}/comments/${mine.id}`, `PATCH ${base}/comments/${mine.id}`, { body }, { pinned: first });
        return { action: 'updated', id: mine.id };
      }
      const { res } = await this.send(`POST ${base}/${target.number}/comments`, `POST ${base}/${target.number}/comments`, { body }, { pinned: first });
      return { action: 'created', id: z.object({ id: z.number() }).loose().parse(res.data).id };
    } catch (err) {
      throw this.asError(err, mine ? `PATCH ${base}/comments/${mine.id}` : `POST ${base}/${target.number}/comments`);
    }
  }

  // ---------------------------------------------------------------- runner release
  /**
   * The actions runner release `version` names (`latest` or e.g. 2.321.0), from the emitter's own
   * API with its token (never an unauthenticated call), and the SHA-256 its release notes publish
   * for every asset a node downloads.
   */
  runnerRelease(version: string): Promise<RunnerRelease> {
    return this.releases.get(version, async (v) => {
      const path = v === 'latest' ? '/repos/actions/runner/releases/latest' : `/repos/actions/runner/releases/tags/v${releaseVersion(v, 'runner version')}`;
      let data: unknown;
      try {
        data = (await this.send(`GET ${path}`, `GET ${path}`)).res.data;
      } catch (err) {
        throw this.asError(err, `GET ${path}`);
      }
      const rel = ReleaseSchema.safeParse(data);
      if (!rel.success) throw new EmitterError(`GET ${path}: unexpected response shape`);
      const concrete = releaseVersion(rel.data.tag_name, `GET ${path}`);
      if (v !== 'latest' && concrete !== releaseVersion(v, 'runner version')) throw new EmitterError(`GET ${path}: the release is ${concrete}, not ${v}`);
      return { version: concrete, sha256: parseGithubChecksums(rel.data.body ?? '', GITHUB_ASSETS, `GET ${path}`) };
    });
  }
}
