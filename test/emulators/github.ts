/**
 * A GitHub REST API emulator, from GitHub's public docs: repositories of an organization, workflow
 * runs by status, jobs of a run (`runs-on` labels, runner name), self-hosted runners of an org or a
 * repository, `generate-jitconfig`, `registration-token`, runner deletion (422 while it runs a job),
 * issue comments with their `user` (a comment is edited only by its author: 403 otherwise) and
 * `GET /user` (the token's user; an installation token — the workflow's GITHUB_TOKEN,
 * `installationToken` — gets 403 "Resource not accessible by integration" and writes as
 * `github-actions[bot]`).
 * The actions runner's releases (`GET /repos/actions/runner/releases/latest`, `…/releases/tags/{tag}`),
 * with release notes as actions/runner's releaseNote.md renders them: the SHA-256 of each package
 * between `<!-- BEGIN SHA <asset> -->` and `<!-- END SHA <asset> -->`.
 * `Link` pagination, `x-ratelimit-*` headers, ETags with `If-None-Match` → 304 that costs no rate
 * limit, GitHub's error bodies ({"message", "documentation_url"}), and secondary rate limits as
 * GitHub sends them (429 with `Retry-After` and the "secondary rate limit" message).
 *
 * The inconvenient parts, as GitHub has them: a runner's `busy` flag (listing and GET /runners/:id)
 * lags the job by `busyLagMs` after the job started on it, while the job's own record (status
 * `in_progress`, `runner_name`) is immediate; DELETE of a runner that is running a job is refused
 * with 422 `Bad request - Runner "NAME" is still running a job"` (GitHub's stray quote included);
 * a just-in-time runner is `offline` until its machine boots (`connect`) and, being ephemeral, is
 * removed by GitHub when its job completes. With `webhook` set, an organization webhook gets a
 * `workflow_job` delivery (queued, in_progress, completed) with GitHub's headers and signature
 * whenever a job is added, starts or completes; `loseWebhooks` loses the next ones. GitHub's API cannot tell a runner that never came
 * online from one that went offline: so neither can this one.
 *
 * Credentials, as GitHub's docs describe them: personal access tokens (`token` and any `addToken`),
 * each of a user, and GitHub Apps (`addApp`: the app id, optional client id, its RSA public key and
 * its installations). `POST /app/installations/{installation_id}/access_tokens` and `GET /app` take
 * `Authorization: Bearer <JWT>` (RS256, signed with the app's private key; `iss` the app id or client
 * id; `exp` in the future and at most 10 minutes after `iat`; `iat` not in the future beyond 60 s of
 * drift) and answer 401 with GitHub's messages otherwise; the exchange answers 201 with an
 * installation token (`ghs_…`, `expires_at` after `tokenLifetimeMs`, default one hour), which is 401
 * "Bad credentials" past its expiry or once revoked (`revokeInstallationTokens`); a JWT is refused
 * on every other endpoint and an installation token on the /app ones.
 * Primary rate limits per budget: a user's (every token of the same user shares it, as on GitHub)
 * or an installation's (every installation token of it shares it), with `x-ratelimit-limit`,
 * `-remaining`, `-used`, `-reset` and `-resource` on each answer; each authorized request counts
 * except a 304, and at 0 remaining GitHub answers 403 (or 429: `rateLimitStatus`) "API rate limit
 * exceeded for user ID N." / "… for installation ID N." with `x-ratelimit-remaining: 0` until the
 * reset (`setRateLimit` sets a credential's limit, remaining and reset). ETags are specific to the
 * token that read them, as GitHub support confirms (eclipse-csi/otterdog#201, github/docs#34689): an
 * ETag read with one token gets a 200, not a 304, with another (a refreshed installation token too).
 * `callsBy` counts the requests per credential (a PAT's label, or `installation:<id>`).
 */
import { createHash, createHmac, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { Emulator, issuedSecrets, type EmuRequest, type EmuResponse } from './base.js';

export interface GhRun { id: number; repo: string; status: 'queued' | 'in_progress' | 'completed' }
export interface GhJob { id: number; run_id: number; status: 'queued' | 'in_progress' | 'completed'; labels: string[]; runner_name: string | null; created_at: string; started_at: string | null }
/** `busy` set by a test is shown as is; a job started with `startJob` shows busy only after `busyLagMs`. */
export interface GhUser { login: string; id: number; type: 'User' | 'Bot' }
export const GITHUB_ACTIONS_BOT: GhUser = { login: 'github-actions[bot]', id: 41898282, type: 'Bot' };
export interface GhRunner { id: number; name: string; os: string; status: 'online' | 'offline'; busy: boolean; labels: string[]; ephemeral: boolean }
/** An actions/runner release: its version (no `v`) and the SHA-256 of each package by asset (`linux-x64`, …). */
export interface GhRunnerRelease { version: string; sha256: Record<string, string>; prerelease?: boolean }

const DOCS = 'https://docs.github.com/rest';
const RATE_DOCS = 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api';

/** A GitHub App: its id, client id, public key (PEM or KeyObject) and the installations it has. */
export interface GhApp { appId: number; clientId?: string; slug: string; publicKey: KeyObject; installations: number[]; permissions: Record<string, string> }
/** A primary rate-limit budget (a user's or an installation's) in its current one-hour window. */
export interface GhBudget { limit: number; remaining: number; /** Epoch seconds. */ reset: number }
/** One installation token exchange the emulator answered. */
export interface GhExchange { appId: number; installationId: number; at: number; expiresAt: number; token: string }
/** Who a request's credential is: a PAT of a user or an installation token. */
type Caller = { kind: 'pat'; label: string; user: GhUser } | { kind: 'installation'; installationId: number; app: GhApp; token: string };

export class GithubEmulator extends Emulator {
  token = 'emulated-github-token-0000000000000000';
  org = 'acme';
  repos: string[] = [];
  runs: GhRun[] = [];
  jobs: GhJob[] = [];
  runners: GhRunner[] = [];
  /** The user the token belongs to (GET /user; the author of the comments it writes). */
  user: GhUser = { login: 'parmanu-bot', id: 1001, type: 'User' };
  /** The token is an installation token (GitHub Actions' GITHUB_TOKEN): GET /user refuses it, it writes as github-actions[bot]. */
  installationToken = false;
  /** Issue and pull request comments. */
  comments: Array<{ id: number; issue: number; body: string; user: GhUser }> = [];
  /** Responses answered 304 Not Modified. */
  notModified = 0;
  /** How long after a job started on a runner its `busy` flag still says false (0: at once). */
  busyLagMs = 0;
  /** An ephemeral runner leaves (its registration is removed) when its job completes, as on GitHub. */
  ephemeralLeaves = true;
  /** actions/runner releases, oldest first (`latest`: the last one not a pre-release). */
  runnerReleases: GhRunnerRelease[] = [];
  /** GitHub Apps (`addApp`). */
  readonly apps: GhApp[] = [];
  /** How long an installation token lives (GitHub: one hour). */
  tokenLifetimeMs = 3_600_000;
  /** The status of a primary rate-limit refusal: GitHub documents 403 or 429. */
  rateLimitStatus: 403 | 429 = 403;
  /** Every installation token exchange answered, in order. */
  readonly exchanges: GhExchange[] = [];
  /** Requests per credential: a PAT's label (`pat` for `token`), or `installation:<id>`; 304s and rate-limit refusals included, /app routes not. */
  readonly callsBy = new Map<string, number>();
  /** Requests refused 401 "Bad credentials" (an unknown, expired or revoked token). */
  badCredentials = 0;
  /** Requests refused for a spent primary rate limit, per credential label. */
  readonly rateLimitedBy = new Map<string, number>();
  /** Requests answered 304 per credential label. */
  readonly notModifiedBy = new Map<string, number>();
  /** Personal access tokens by value: their label and user (`token` is `pat`, of `user`). */
  private readonly pats = new Map<string, { label: string; user: GhUser }>();
  /** Installation tokens by value. */
  private readonly installationTokens = new Map<string, { installationId: number; appId: number; expiresAt: number; revoked: boolean }>();
  /** Budgets by key: `user:<id>` or `installation:<id>`. */
  private readonly budgets = new Map<string, GhBudget>();
  private readonly callers = new WeakMap<EmuRequest, Caller>();
  private nextId = 5000;

  constructor() {
    super();
    this.route('GET', /^\/app$/, (r) => {
      const app = this.jwtApp.get(r) as GhApp;
      return { status: 200, body: { id: app.appId, slug: app.slug, node_id: `A_${app.appId}`, client_id: app.clientId ?? `Iv23${String(app.appId).padStart(16, '0')}`, owner: { login: this.org, id: this.hash(this.org), type: 'Organization' }, name: app.slug, permissions: app.permissions, events: ['workflow_job'], installations_count: app.installations.length } };
    });
    this.route('POST', /^\/app\/installations\/(\d+)\/access_tokens$/, (r) => {
      const app = this.jwtApp.get(r) as GhApp;
      const installationId = Number(r.params[0]);
      if (!app.installations.includes(installationId)) return this.notFound();
      const now = Date.now();
      // GitHub's expires_at is whole seconds; the token expires then.
      const expiresAt = Math.floor((now + this.tokenLifetimeMs) / 1000) * 1000;
      const token = this.issue(`ghs_${randomBytes(27).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x').slice(0, 36)}`);
      this.installationTokens.set(token, { installationId, appId: app.appId, expiresAt, revoked: false });
      this.exchanges.push({ appId: app.appId, installationId, at: now, expiresAt, token });
      return { status: 201, body: { token, expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'), permissions: app.permissions, repository_selection: 'all' } };
    });
    this.route('GET', /^\/orgs\/([^/]+)\/repos$/, (r) => this.orgOnly(r, () => this.list(r, this.repos.map((name) => ({ id: this.hash(name), name, full_name: `${this.org}/${name}`, archived: false })))));
    this.route('GET', /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs$/, (r) => this.repoOnly(r, (repo) => {
      const status = r.query.get('status');
      return this.list(r, this.runs.filter((x) => x.repo === repo && (!status || x.status === status)).map((x) => ({ id: x.id, status: x.status, name: 'CI', head_branch: 'main' })), 'workflow_runs');
    }));
    this.route('GET', /^\/repos\/([^/]+)\/([^/]+)\/actions\/runs\/(\d+)\/jobs$/, (r) => this.repoOnly(r, () => {
      const run = Number(r.params[2]);
      return this.list(r, this.jobs.filter((j) => j.run_id === run).map((j) => ({ id: j.id, run_id: j.run_id, status: j.status, conclusion: null, labels: j.labels, runner_name: j.runner_name, created_at: j.created_at, started_at: j.started_at, name: `job ${j.id}` })), 'jobs');
    }));
    this.route('GET', /^\/orgs\/([^/]+)\/actions\/runners$/, (r) => this.orgOnly(r, () => this.list(r, this.runners.map((x) => this.runnerBody(x)), 'runners')));
    this.route('GET', /^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/, (r) => this.orgOnly(r, () => {
      const x = this.runners.find((y) => y.id === Number(r.params[1]));
      return x ? this.json(r, this.runnerBody(x)) : this.notFound();
    }));
    this.route('DELETE', /^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/, (r) => this.orgOnly(r, () => {
      const i = this.runners.findIndex((y) => y.id === Number(r.params[1]));
      if (i < 0) return this.notFound();
      const x = this.runners[i] as GhRunner;
      // The truth, not the lagging flag: a job that names the runner and has not completed.
      if (this.runningJobs(x.name).length > 0 || x.busy) return { status: 422, body: { message: `Bad request - Runner "${x.name}" is still running a job"`, documentation_url: `${DOCS}/actions/self-hosted-runners#delete-a-self-hosted-runner-from-an-organization` } };
      this.touch(x.name, r);
      this.recordRemoval(x.name, []);
      this.runners.splice(i, 1);
      return { status: 204 };
    }));
    this.route('POST', /^\/orgs\/([^/]+)\/actions\/runners\/generate-jitconfig$/, (r) => this.orgOnly(r, () => {
      const b = (r.body ?? {}) as { name?: string; runner_group_id?: number; labels?: string[]; work_folder?: string };
      if (!b.name || !b.runner_group_id || !Array.isArray(b.labels) || b.labels.length === 0) return { status: 422, body: { message: 'Invalid request.\n\n"name", "runner_group_id" and "labels" are required', documentation_url: DOCS } };
      if (this.runners.some((x) => x.name === b.name)) return { status: 409, body: { message: 'Already exists - A runner with the same name already exists', documentation_url: DOCS } };
      const runner: GhRunner = { id: this.nextId++, name: b.name, os: 'unknown', status: 'offline', busy: false, labels: ['self-hosted', ...b.labels], ephemeral: true };
      this.runners.push(runner);
      return { status: 201, body: { runner: this.runnerBody(runner), encoded_jit_config: this.issue(Buffer.from(JSON.stringify({ '.runner': runner.name, '.credentials': `jit-${runner.id}-EMULATED` })).toString('base64'), runner.name) } };
    }));
    this.route('GET', /^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/, (r) => this.repoOnly(r, () => this.list(r, this.comments.filter((c) => c.issue === Number(r.params[2])).map((c) => this.commentBody(c)))));
    this.route('POST', /^\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/, (r) => this.repoOnly(r, () => {
      const body = (r.body as { body?: string } | undefined)?.body;
      if (!body) return { status: 422, body: { message: 'Validation Failed', documentation_url: DOCS } };
      const c = { id: this.nextId++, issue: Number(r.params[2]), body, user: { ...this.author(r) } };
      this.comments.push(c);
      return { status: 201, body: this.commentBody(c) };
    }));
    this.route('PATCH', /^\/repos\/([^/]+)\/([^/]+)\/issues\/comments\/(\d+)$/, (r) => this.repoOnly(r, () => {
      const c = this.comments.find((x) => x.id === Number(r.params[2]));
      if (!c) return this.notFound();
      if (c.user.id !== this.author(r).id) return { status: 403, body: { message: 'Must have admin rights to Repository.', documentation_url: `${DOCS}/issues/comments#update-an-issue-comment` } };
      c.body = (r.body as { body?: string } | undefined)?.body ?? c.body;
      return { status: 200, body: this.commentBody(c) };
    }));
    this.route('GET', /^\/user$/, (r) => {
      const me = this.author(r);
      return me.type === 'Bot' ? { status: 403, body: { message: 'Resource not accessible by integration', documentation_url: `${DOCS}/users/users#get-the-authenticated-user`, status: '403' } } : { status: 200, body: { ...me, node_id: `U_${me.id}`, site_admin: false } };
    },
    );
    this.route('GET', /^\/repos\/actions\/runner\/releases\/latest$/, (r) => {
      const rel = this.runnerReleases.filter((x) => !x.prerelease).at(-1);
      return rel ? this.json(r, this.releaseBody(rel)) : this.notFound();
    });
    this.route('GET', /^\/repos\/actions\/runner\/releases\/tags\/([^/]+)$/, (r) => {
      const rel = this.runnerReleases.find((x) => `v${x.version}` === r.params[0]);
      return rel ? this.json(r, this.releaseBody(rel)) : this.notFound();
    });
    this.route('POST', /^\/orgs\/([^/]+)\/actions\/runners\/registration-token$/, (r) => this.orgOnly(r, () => ({ status: 201, body: { token: this.issue(`AREG${this.nextId++}EMULATED`), expires_at: new Date(Date.now() + 3_600_000).toISOString() } })));
  }

  /** The app whose JWT authorized a request to an /app route. */
  private readonly jwtApp = new WeakMap<EmuRequest, GhApp>();

  protected authorize(req: EmuRequest): EmuResponse | undefined {
    const auth = String(req.headers.authorization ?? '');
    const m = /^(token|bearer) (\S+)$/i.exec(auth);
    if (!m) return { status: 401, body: { message: 'Requires authentication', documentation_url: DOCS, status: '401' } };
    const cred = m[2] as string;
    if (/^\/app(?:\/|$)/.test(req.path)) {
      if (!/^bearer$/i.test(m[1] as string)) return { status: 401, body: { message: 'A JSON web token could not be decoded', documentation_url: DOCS, status: '401' } };
      const v = this.verifyJwt(cred);
      if (typeof v === 'string') return { status: 401, body: { message: v, documentation_url: DOCS, status: '401' } };
      this.jwtApp.set(req, v);
      return undefined;
    }
    const caller = this.caller(cred);
    if (!caller) {
      this.badCredentials++;
      return { status: 401, body: { message: 'Bad credentials', documentation_url: DOCS, status: '401' } };
    }
    this.callers.set(req, caller);
    const budget = this.budgetOf(caller);
    if (budget.remaining <= 0) {
      const label = this.labelOf(caller);
      this.rateLimitedBy.set(label, (this.rateLimitedBy.get(label) ?? 0) + 1);
      this.callsBy.set(label, (this.callsBy.get(label) ?? 0) + 1);
      const who = caller.kind === 'pat' ? `user ID ${caller.user.id}` : `installation ID ${caller.installationId}`;
      return { status: this.rateLimitStatus, headers: this.rateHeaders(budget), body: { message: `API rate limit exceeded for ${who}. If you reach out to GitHub Support for help, please include the request ID.`, documentation_url: `${RATE_DOCS}#about-primary-rate-limits`, status: String(this.rateLimitStatus) } };
    }
    return undefined;
  }

  /** Every answer of a route carries its caller's budget; each authorized request but a 304 spends one. */
  protected override route(method: string, re: RegExp, handler: (req: EmuRequest) => EmuResponse | Promise<EmuResponse>): void {
    super.route(method, re, async (req) => {
      const out = await handler(req);
      const caller = this.callers.get(req);
      if (!caller) return out;
      const label = this.labelOf(caller);
      this.callsBy.set(label, (this.callsBy.get(label) ?? 0) + 1);
      const budget = this.budgetOf(caller);
      if (out.status === 304) this.notModifiedBy.set(label, (this.notModifiedBy.get(label) ?? 0) + 1);
      else budget.remaining = Math.max(0, budget.remaining - 1);
      return { ...out, headers: { ...this.rateHeaders(budget), ...(out.headers ?? {}) } };
    });
  }

  protected override commonHeaders(): Record<string, string> {
    return { 'x-github-api-version-selected': '2022-11-28' };
  }

  private rateHeaders(b: GhBudget): Record<string, string> {
    return { 'x-ratelimit-limit': String(b.limit), 'x-ratelimit-remaining': String(b.remaining), 'x-ratelimit-used': String(b.limit - b.remaining), 'x-ratelimit-reset': String(b.reset), 'x-ratelimit-resource': 'core' };
  }

  /** A JWT's app, or GitHub's message for what is wrong with it. */
  private verifyJwt(jwt: string): GhApp | string {
    const undecodable = 'A JSON web token could not be decoded';
    const parts = jwt.split('.');
    if (parts.length !== 3) return undecodable;
    const [h, p, sig] = parts as [string, string, string];
    let header: { alg?: unknown };
    let payload: { iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as typeof header;
      payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as typeof payload;
    } catch {
      return undecodable;
    }
    if (header.alg !== 'RS256') return undecodable;
    const app = this.apps.find((a) => (typeof payload.iss === 'number' || (typeof payload.iss === 'string' && /^\d+$/.test(payload.iss)) ? a.appId === Number(payload.iss) : a.clientId !== undefined && a.clientId === payload.iss));
    if (!app) return typeof payload.iss === 'number' || typeof payload.iss === 'string' ? 'Integration not found' : "'Issuer' claim ('iss') must be an Integer";
    if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), app.publicKey, Buffer.from(sig, 'base64url'))) return undecodable;
    const now = Math.floor(Date.now() / 1000);
    if (!Number.isInteger(payload.iat) || (payload.iat as number) > now + 60) return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
    if (!Number.isInteger(payload.exp) || (payload.exp as number) <= now) return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
    if ((payload.exp as number) - (payload.iat as number) > 600 || (payload.exp as number) > now + 600 + 60) return "'Expiration time' claim ('exp') is too far in the future";
    return app;
  }

  private caller(cred: string): Caller | undefined {
    if (cred === this.token) return { kind: 'pat', label: 'pat', user: this.user };
    const pat = this.pats.get(cred);
    if (pat) return { kind: 'pat', ...pat };
    const it = this.installationTokens.get(cred);
    if (!it || it.revoked || Date.now() >= it.expiresAt) return undefined;
    const app = this.apps.find((a) => a.appId === it.appId) as GhApp;
    return { kind: 'installation', installationId: it.installationId, app, token: cred };
  }

  private labelOf(c: Caller): string {
    return c.kind === 'pat' ? c.label : `installation:${c.installationId}`;
  }

  /** The caller's budget in its current window (a window past its reset starts anew). */
  private budgetOf(c: Caller): GhBudget {
    return this.budget(c.kind === 'pat' ? `user:${c.user.id}` : `installation:${c.installationId}`);
  }

  private budget(key: string): GhBudget {
    const now = Math.floor(Date.now() / 1000);
    let b = this.budgets.get(key);
    if (!b) {
      b = { limit: 5000, remaining: 5000, reset: now + 3600 };
      this.budgets.set(key, b);
    }
    if (now >= b.reset) Object.assign(b, { remaining: b.limit, reset: now + 3600 });
    return b;
  }

  /** The budget key of a credential label: a PAT's label or `installation:<id>`. */
  private budgetKey(label: string): string {
    if (label.startsWith('installation:')) return label;
    if (label === 'pat') return `user:${this.user.id}`;
    const pat = [...this.pats.values()].find((x) => x.label === label);
    if (!pat) throw new Error(`github emulator: no credential ${label}`);
    return `user:${pat.user.id}`;
  }

  // ------------------------------------------------------------------ credentials for tests
  /** What is left of the default token's (its user's) budget; setting it sets the remaining count. */
  get rateLimitRemaining(): number {
    return this.budget(`user:${this.user.id}`).remaining;
  }
  set rateLimitRemaining(n: number) {
    this.budget(`user:${this.user.id}`).remaining = n;
  }

  /**
   * Another personal access token, of `user` (default: a user of its own, so a budget of its own;
   * give the same user to two tokens and they share it, as on GitHub). Returns the token.
   */
  addToken(label: string, user?: GhUser): string {
    const token = `ghp_${createHash('sha256').update(`${label}-${this.nextId++}`).digest('hex').slice(0, 36)}`;
    issuedSecrets.add(token);
    this.pats.set(token, { label, user: user ?? { login: `${label}-user`, id: this.nextId++, type: 'User' } });
    return token;
  }

  /** A GitHub App installed on the org: `publicKey` a PEM (SPKI or PKCS#1) or a KeyObject. */
  addApp(o: { appId: number; publicKey: string | KeyObject; installations: number[]; clientId?: string; slug?: string; permissions?: Record<string, string> }): GhApp {
    const app: GhApp = { appId: o.appId, slug: o.slug ?? `app-${o.appId}`, publicKey: typeof o.publicKey === 'string' ? createPublicKey(o.publicKey) : o.publicKey, installations: o.installations, permissions: o.permissions ?? { actions: 'read', organization_self_hosted_runners: 'write', metadata: 'read' }, ...(o.clientId ? { clientId: o.clientId } : {}) };
    this.apps.push(app);
    return app;
  }

  /** Sets a credential's budget (a PAT's label, or `installation:<id>`): its limit, what remains, and the reset in seconds from now. */
  setRateLimit(label: string, o: { limit?: number; remaining?: number; resetInS?: number }): GhBudget {
    const b = this.budget(this.budgetKey(label));
    if (o.limit !== undefined) b.limit = o.limit;
    if (o.remaining !== undefined) b.remaining = o.remaining;
    if (o.resetInS !== undefined) b.reset = Math.floor(Date.now() / 1000) + o.resetInS;
    return b;
  }

  /** A credential's budget now (a PAT's label, or `installation:<id>`). */
  rateLimit(label: string): GhBudget {
    return { ...this.budget(this.budgetKey(label)) };
  }

  /** Revokes the installation tokens issued so far (of one installation, or all): they answer 401 from now on. */
  revokeInstallationTokens(installationId?: number): number {
    let n = 0;
    for (const t of this.installationTokens.values()) {
      if (installationId !== undefined && t.installationId !== installationId) continue;
      if (!t.revoked) n++;
      t.revoked = true;
    }
    return n;
  }

  protected override faultResponse(out: EmuResponse): EmuResponse {
    if (out.status !== 429) return out;
    const s = GithubEmulator.secondaryLimit(Number(out.headers?.['retry-after'] ?? 60));
    return { ...s, headers: { ...s.headers, ...(out.headers ?? {}) } };
  }

  protected override emptied(body: unknown): unknown {
    if (Array.isArray(body) || !body || typeof body !== 'object') return [];
    return Object.fromEntries(Object.entries(body).map(([k, v]) => [k, Array.isArray(v) ? [] : v]));
  }

  /** GitHub's 429s are secondary rate limits, with this body. */
  static secondaryLimit(retryAfterS: number) {
    return { status: 429, headers: { 'retry-after': String(retryAfterS) }, body: { message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', documentation_url: `${DOCS}/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits` } };
  }

  // ------------------------------------------------------------------ state helpers for tests
  /** The runner's machine booted and the runner connected: `online`. */
  connect(name: string): GhRunner {
    const r = this.runners.find((x) => x.name === name);
    if (!r) throw new Error(`github emulator: no runner ${name}`);
    r.status = 'online';
    return r;
  }
  /**
   * The runner's machine stopped (standby): `offline`. A just-in-time runner never comes back: a
   * start gets a new one (a new JIT config under the same name, once the old one is removed).
   */
  disconnect(name: string): GhRunner {
    const r = this.runners.find((x) => x.name === name);
    if (!r) throw new Error(`github emulator: no runner ${name}`);
    r.status = 'offline';
    return r;
  }
  /** A runner configured with a registration token (config.sh --labels): online at once. */
  configureRunner(name: string, labels: string[], ephemeral = false): GhRunner {
    const r: GhRunner = { id: this.nextId++, name, os: 'linux', status: 'online', busy: false, labels: ['self-hosted', ...labels], ephemeral };
    this.runners.push(r);
    return r;
  }
  /** Starts a job on the runner of that name: the job is in progress and names it at once (its busy flag lags by busyLagMs). */
  startJob(name: string, repo?: string, labels: string[] = ['self-hosted']): GhJob {
    if (!this.runners.some((x) => x.name === name)) throw new Error(`github emulator: no runner ${name}`);
    const run = this.addRun(repo ?? this.repos[0] ?? 'api', [{ labels, status: 'in_progress', runner: name }]);
    const job = this.jobs.find((j) => j.run_id === run.id) as GhJob;
    this.recordStart(job.id, name);
    return job;
  }
  /** Completes a job (by id) or every job of the runner of that name; an ephemeral runner then leaves. */
  finishJob(jobOrRunner: number | string): void {
    for (const j of this.jobs) {
      if (j.status === 'completed') continue;
      if (typeof jobOrRunner === 'number' ? j.id !== jobOrRunner : j.runner_name !== jobOrRunner || j.status !== 'in_progress') continue;
      j.status = 'completed';
      this.recordEnd(j.id);
      this.workflowJobHook('completed', j);
      const run = this.runs.find((x) => x.id === j.run_id);
      if (run && this.jobs.filter((x) => x.run_id === run.id).every((x) => x.status === 'completed')) run.status = 'completed';
      const r = this.runners.find((x) => x.name === j.runner_name);
      if (!r) continue;
      r.busy = false;
      if (r.ephemeral && this.ephemeralLeaves) this.runners = this.runners.filter((x) => x !== r);
    }
  }
  /** The jobs that name the runner and have not completed (the truth the busy flag lags behind). */
  runningJobs(name: string): GhJob[] {
    return this.jobs.filter((j) => j.runner_name === name && j.status !== 'completed');
  }
  /** What the API shows as the runner's busy flag now. */
  shownBusy(x: GhRunner): boolean {
    if (x.busy) return true;
    const now = Date.now();
    return this.jobs.some((j) => j.runner_name === x.name && j.status === 'in_progress' && now - Date.parse(j.started_at ?? new Date(now).toISOString()) >= this.busyLagMs);
  }
  addRun(repo: string, jobs: Array<{ labels: string[]; status?: GhJob['status']; runner?: string }>): GhRun {
    const run: GhRun = { id: this.nextId++, repo, status: jobs.some((j) => j.status === 'in_progress') ? 'in_progress' : 'queued' };
    this.runs.push(run);
    for (const j of jobs) {
      const job: GhJob = { id: this.nextId++, run_id: run.id, status: j.status ?? 'queued', labels: j.labels, runner_name: j.runner ?? null, created_at: new Date(Date.now() - 30_000).toISOString(), started_at: j.status === 'in_progress' ? new Date().toISOString() : null };
      this.jobs.push(job);
      // Every job is queued first; one created in progress was picked up at once.
      this.workflowJobHook('queued', { ...job, status: 'queued', runner_name: null, started_at: null });
      if (job.status === 'in_progress') this.workflowJobHook('in_progress', job);
    }
    return run;
  }

  /** The `workflow_job` delivery GitHub makes when a job is queued, starts or completes (`X-Hub-Signature-256`: HMAC-SHA256 of the body). */
  private workflowJobHook(action: 'queued' | 'in_progress' | 'completed', j: GhJob): void {
    if (!this.webhook) return;
    const repo = this.runs.find((r) => r.id === j.run_id)?.repo ?? this.repos[0] ?? 'api';
    const runner = j.runner_name ? this.runners.find((r) => r.name === j.runner_name) : undefined;
    const payload = {
      action,
      workflow_job: { id: j.id, run_id: j.run_id, workflow_name: 'CI', head_branch: 'main', run_url: `${this.url}/repos/${this.org}/${repo}/actions/runs/${j.run_id}`, run_attempt: 1, node_id: `CR_${j.id}`, head_sha: 'f'.repeat(40), url: `${this.url}/repos/${this.org}/${repo}/actions/jobs/${j.id}`, html_url: `https://github.com/${this.org}/${repo}/actions/runs/${j.run_id}/job/${j.id}`, status: action, conclusion: action === 'completed' ? 'success' : null, created_at: j.created_at, started_at: j.started_at ?? j.created_at, completed_at: action === 'completed' ? new Date().toISOString() : null, name: `job ${j.id}`, steps: [], check_run_url: `${this.url}/repos/${this.org}/${repo}/check-runs/${j.id}`, labels: j.labels, runner_id: runner?.id ?? null, runner_name: action === 'queued' ? null : j.runner_name, runner_group_id: runner ? 1 : null, runner_group_name: runner ? 'Default' : null },
      repository: { id: this.hash(repo), node_id: `R_${repo}`, name: repo, full_name: `${this.org}/${repo}`, private: true, owner: { login: this.org, id: this.hash(this.org), type: 'Organization' } },
      organization: { login: this.org, id: this.hash(this.org) },
      sender: { login: 'octocat', id: 1, type: 'User' },
    };
    this.sendWebhook('workflow_job', payload, (body, id, secret) => ({ 'user-agent': 'GitHub-Hookshot/emulated', 'x-github-event': 'workflow_job', 'x-github-delivery': id, 'x-github-hook-id': '4242', 'x-github-hook-installation-target-type': 'organization', 'x-github-hook-installation-target-id': String(this.hash(this.org)), 'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}` }));
  }

  /** A release as GitHub returns it, its body rendered from actions/runner's releaseNote.md template. */
  private releaseBody(rel: GhRunnerRelease) {
    const v = rel.version;
    const pkg = (asset: string) => `actions-runner-${asset}-${v}.${asset.startsWith('win-') ? 'zip' : 'tar.gz'}`;
    const sums = Object.entries(rel.sha256).map(([asset, sum]) => `- ${pkg(asset)} <!-- BEGIN SHA ${asset} -->${sum}<!-- END SHA ${asset} -->`);
    const body = [
      '## What\'s Changed',
      '* Bump dependencies',
      '',
      '## Linux x64',
      '``` bash',
      '# Create a folder',
      'mkdir actions-runner && cd actions-runner',
      '# Download the latest runner package',
      `curl -O -L https://github.com/actions/runner/releases/download/v${v}/actions-runner-linux-x64-${v}.tar.gz`,
      '```',
      '',
      '## SHA-256 Checksums',
      '',
      'The SHA-256 checksums for the packages included in this build are shown below:',
      '',
      ...sums,
      '',
    ].join('\n');
    const id = this.hash(`release-${v}`);
    return {
      id,
      tag_name: `v${v}`,
      name: `v${v}`,
      draft: false,
      prerelease: rel.prerelease ?? false,
      body,
      html_url: `https://github.com/actions/runner/releases/tag/v${v}`,
      assets: Object.keys(rel.sha256).map((asset, i) => ({ id: id + i + 1, name: pkg(asset), browser_download_url: `https://github.com/actions/runner/releases/download/v${v}/${pkg(asset)}` })),
    };
  }

  /** Who writes with the request's token: its user, the app's bot for an installation token, github-actions[bot] for `installationToken`. */
  private author(r: EmuRequest): GhUser {
    const c = this.callers.get(r);
    if (c?.kind === 'installation') return { login: `${c.app.slug}[bot]`, id: 100_000 + c.app.appId, type: 'Bot' };
    if (c?.kind === 'pat' && c.label !== 'pat') return c.user;
    return this.installationToken ? GITHUB_ACTIONS_BOT : this.user;
  }
  private commentBody(c: { id: number; issue: number; body: string; user: GhUser }) {
    return { id: c.id, body: c.body, user: { ...c.user }, author_association: c.user.id === this.user.id ? 'MEMBER' : 'NONE', html_url: `https://github.com/${this.org}/issues/${c.issue}#issuecomment-${c.id}` };
  }
  private hash(s: string): number {
    return parseInt(createHash('sha1').update(s).digest('hex').slice(0, 8), 16);
  }
  private notFound(): EmuResponse {
    return { status: 404, body: { message: 'Not Found', documentation_url: DOCS, status: '404' } };
  }
  private orgOnly(r: EmuRequest, f: () => EmuResponse): EmuResponse {
    return r.params[0] === this.org ? f() : this.notFound();
  }
  private repoOnly(r: EmuRequest, f: (repo: string) => EmuResponse): EmuResponse {
    return r.params[0] === this.org && this.repos.includes(r.params[1] ?? '') ? f(r.params[1] as string) : this.notFound();
  }
  private runnerBody(x: GhRunner) {
    return { id: x.id, name: x.name, os: x.os, status: x.status, busy: this.shownBusy(x), ephemeral: x.ephemeral, labels: x.labels.map((name, i) => ({ id: i + 1, name, type: i === 0 ? 'read-only' : 'custom' })) };
  }
  /**
   * A JSON answer with an ETag; a matching If-None-Match gets 304 and costs no rate limit (route).
   * The ETag is specific to the token that reads it, as GitHub's are.
   */
  private json(r: EmuRequest, body: unknown, headers: Record<string, string> = {}): EmuResponse {
    const etag = `W/"${createHash('sha1').update(JSON.stringify(body)).update(`\n${String(r.headers.authorization ?? '').replace(/^\S+ /, '')}`).digest('hex')}"`;
    if (r.headers['if-none-match'] === etag) {
      this.notModified++;
      return { status: 304, headers: { etag, ...headers } };
    }
    return { status: 200, body, headers: { etag, ...headers } };
  }
  /** GitHub pagination: `per_page` (max 100), `page`, a Link header; objects carry total_count. */
  private list(r: EmuRequest, items: unknown[], key?: string): EmuResponse {
    const perPage = Math.min(100, Number(r.query.get('per_page') ?? 30) || 30);
    const page = Math.max(1, Number(r.query.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const slice = items.slice((page - 1) * perPage, page * perPage);
    const link = (p: number, rel: string) => {
      const q = new URLSearchParams(r.query);
      q.set('per_page', String(perPage));
      q.set('page', String(p));
      return `<${this.url}${r.path}?${q.toString()}>; rel="${rel}"`;
    };
    const links = [page < last ? link(page + 1, 'next') : '', page < last ? link(last, 'last') : '', page > 1 ? link(1, 'first') : '', page > 1 ? link(page - 1, 'prev') : ''].filter(Boolean);
    return this.json(r, key ? { total_count: items.length, [key]: slice } : slice, links.length ? { link: links.join(', ') } : {});
  }
}
