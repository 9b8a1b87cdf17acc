/**
 * GitHub credentials of one emitter: personal access tokens and GitHub App installations, each
 * with its own Octokit client, and the pool that spreads calls across them by remaining rate limit.
 *
 * App installations: @octokit/auth-app signs the JWT (RS256, `iat` 30 s back, 10 minutes) and
 * exchanges it (`POST /app/installations/{id}/access_tokens`, through the emitter's HTTP client);
 * its own cache keeps a token 59 minutes from creation whatever `expires_at` says and never drops
 * one on a 401, so the installation token is held here instead: replaced before use when it expires
 * within REFRESH_MARGIN_MS (at most half its lifetime, so a short-lived token is not exchanged on
 * every call), and dropped on a 401, the request then retried once with a fresh one.
 *
 * Rate limits: every answer's `x-ratelimit-remaining/-limit/-reset` is the budget of the credential
 * that sent it (a user's for a PAT — every PAT of one user shares it — or the installation's). A
 * call goes to the credential with the most remaining, less its calls in flight (unknown counts
 * as GitHub's default budget, 5,000); a conditional GET goes back to the credential whose ETag it
 * holds while that one has more than a tenth of its limit left (GitHub's ETags are specific to the
 * token, and a 304 is free); a credential at 0 is skipped until its reset; when every one is at 0
 * the call fails with the earliest reset. Labels (`token:<n>`, `app:<appId>/<installationId>`)
 * never carry a secret.
 */
import { createPrivateKey } from 'node:crypto';
import { createAppAuth } from '@octokit/auth-app';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import { z } from 'zod';
import { EmitterError } from './types.js';

export const ThrottledOctokit = Octokit.plugin(throttling, retry);
export type Client = InstanceType<typeof ThrottledOctokit>;

/** A credential as resolved from the policy: a token, or a GitHub App installation. */
export type GithubCredentialSecret = { token: string } | { app: { appId: number | string; installationId: number | string; privateKey: string } };

/** An installation token expiring within this is replaced before use (capped at half its lifetime). */
export const REFRESH_MARGIN_MS = 5 * 60_000;

/** A conditional GET stays with its ETag's credential while that one has more than this share of its limit left. */
const STICKY_SHARE = 0.1;
/** How long a credential refused without a reset time is left alone (GitHub: "wait for at least one minute"). */
const UNKNOWN_RESET_MS = 60_000;
/** The /app endpoints: JWT-authenticated, the app's own budget (the token exchange, GET /app). */
export const isAppPath = (path: string): boolean => /^(?:\/api\/v3)?\/app(?:\/|$)/.test(path);
/** What a credential whose limit GitHub has not told yet counts as: GitHub's default budget (PATs, installations). */
const UNKNOWN_BUDGET = 5000;

const InstallationAuthSchema = z.object({ token: z.string().min(1), expiresAt: z.string() }).loose();

/** The credential's non-secret label: `token:<n>` by position (from 1), or `app:<appId>/<installationId>`. */
export function credentialId(c: GithubCredentialSecret, index: number): string {
  return 'token' in c ? `token:${index + 1}` : `app:${c.app.appId}/${c.app.installationId}`;
}

/**
 * What is wrong with an App private key, in words that quote none of it (undefined: a usable RSA
 * private key). Keys from environment variables often carry `\n` escapes: those are line breaks.
 */
export function privateKeyProblem(pem: string): string | undefined {
  const text = pem.replace(/\\n/g, '\n');
  try {
    const key = createPrivateKey(text);
    if (key.asymmetricKeyType !== 'rsa') return `the private key is ${key.asymmetricKeyType ?? 'not'} an RSA key: GitHub App keys are RSA (the .pem file the app's settings page generates)`;
    return undefined;
  } catch {
    return 'the private key does not parse as a PEM private key (-----BEGIN RSA PRIVATE KEY----- or -----BEGIN PRIVATE KEY-----, as the app\'s settings page generates it)';
  }
}

/** An installation's tokens: exchanged on demand, replaced before expiry, dropped on a 401. */
export class InstallationTokens {
  private held: { token: string; expiresAt: number; obtainedAt: number } | undefined;
  private pending: Promise<string> | undefined;
  private readonly auth: ReturnType<typeof createAppAuth>;
  /** Exchanges made. */
  exchanges = 0;
  /** Every installation token received (for redaction). */
  readonly issued = new Set<string>();

  constructor(
    readonly appId: number | string,
    readonly installationId: number | string,
    privateKey: string,
    request: Client['request'],
    private readonly marginMs: number = REFRESH_MARGIN_MS,
    private readonly now: () => number = Date.now,
  ) {
    const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
    this.auth = createAppAuth({ appId, privateKey, installationId, request, log: quiet });
  }

  /** The token to send now: the held one unless it expires within the margin, else a fresh exchange (one at a time). */
  async token(): Promise<string> {
    const h = this.held;
    if (h && h.expiresAt - this.now() > Math.min(this.marginMs, (h.expiresAt - h.obtainedAt) / 2)) return h.token;
    this.pending ??= this.exchange().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  /** Forgets `token` if it is the one held (a 401 said it is no longer good). */
  invalidate(token: string): void {
    if (this.held?.token === token) this.held = undefined;
  }

  /** A JWT for the /app endpoints. */
  async jwt(): Promise<string> {
    return (await this.auth({ type: 'app' })).token;
  }

  /** When the held token expires (epoch ms), if one is held. */
  get expiresAt(): number | undefined {
    return this.held?.expiresAt;
  }

  private async exchange(): Promise<string> {
    const obtainedAt = this.now();
    this.exchanges++;
    const got = InstallationAuthSchema.parse(await this.auth({ type: 'installation', refresh: true }));
    this.issued.add(got.token);
    const expiresAt = Date.parse(got.expiresAt);
    this.held = { token: got.token, expiresAt: Number.isNaN(expiresAt) ? obtainedAt + 3_600_000 : expiresAt, obtainedAt };
    return got.token;
  }
}

/** The rate-limit figures of one credential in a probe's metadata. */
export interface CredentialMeta {
  id: string;
  remaining?: number;
  limit?: number;
  /** When its window resets (epoch ms). */
  resetAt?: number;
  /** Requests sent with its token since the probe began (304s included). */
  calls: number;
}

/** One credential: its client, what GitHub last said about its budget, and its counters. */
export class Credential {
  remaining: number | undefined;
  limit: number | undefined;
  /** Epoch ms. */
  resetAt: number | undefined;
  inFlight = 0;
  /** Since the last resetCounters(): requests sent with its token, and those that spent quota (not 304, not refused for the limit). */
  calls = 0;
  used = 0;

  constructor(
    readonly id: string,
    readonly octokit: Client,
    private readonly pat: string | undefined,
    readonly app: InstallationTokens | undefined,
    readonly keyProblem: string | undefined,
  ) {}

  /** The Authorization header value for a REST call (an installation token is exchanged or refreshed first). */
  async authorization(): Promise<{ header: string; token: string }> {
    if (this.keyProblem) throw new EmitterError(`${this.id}: ${this.keyProblem}`);
    const token = this.pat ?? (await (this.app as InstallationTokens).token());
    return { header: `token ${token}`, token };
  }

  /** Records a response's rate-limit headers and counts it (the /app endpoints, JWT-authenticated, are the app's budget, not this one's). */
  observe(path: string, status: number, headers: Headers): void {
    if (isAppPath(path)) return;
    this.calls++;
    const remaining = num(headers.get('x-ratelimit-remaining'));
    const refused = (status === 403 || status === 429) && remaining === 0;
    if (status !== 304 && !refused) this.used++;
    const resource = headers.get('x-ratelimit-resource');
    if (resource && resource !== 'core') return;
    const limit = num(headers.get('x-ratelimit-limit'));
    const reset = num(headers.get('x-ratelimit-reset'));
    if (remaining !== undefined) this.remaining = remaining;
    if (limit !== undefined) this.limit = limit;
    if (reset !== undefined) this.resetAt = reset * 1000;
    else if (remaining === 0) this.resetAt = Date.now() + UNKNOWN_RESET_MS;
  }

  /** What is left now: the last figure, or the whole limit once its reset has passed (unknown: undefined). */
  left(now: number): number | undefined {
    if (this.resetAt !== undefined && this.resetAt <= now) return this.limit;
    return this.remaining;
  }

  /** At 0 until its reset. */
  exhausted(now: number): boolean {
    return this.left(now) === 0;
  }

  /** Marks the credential spent until `resetAt` (a refusal said so). */
  spend(resetAt: number | undefined): void {
    this.remaining = 0;
    const now = Date.now();
    this.resetAt = resetAt ?? (this.resetAt !== undefined && this.resetAt > now ? this.resetAt : now + UNKNOWN_RESET_MS);
  }

  resetCounters(): void {
    this.calls = 0;
    this.used = 0;
  }

  meta(now: number): CredentialMeta {
    const left = this.left(now);
    return { id: this.id, ...(left !== undefined ? { remaining: left } : {}), ...(this.limit !== undefined ? { limit: this.limit } : {}), ...(this.resetAt !== undefined ? { resetAt: this.resetAt } : {}), calls: this.calls };
  }
}

function num(v: string | null): number | undefined {
  if (v === null || v.trim() === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Every credential of an emitter. */
export class CredentialPool {
  constructor(
    readonly all: readonly Credential[],
    private readonly now: () => number = Date.now,
  ) {
    if (all.length === 0) throw new EmitterError('a github emitter needs a credential');
  }

  /** The first credential (comments are written and recognised as one identity). */
  get first(): Credential {
    return this.all[0] as Credential;
  }

  /**
   * The credential for the next call: `pinned` if given and not excluded; else `sticky` (the
   * credential an ETag belongs to) while it has more than a tenth of its limit left; else the one
   * with the most remaining. Throws when every credential not excluded is spent.
   */
  pick(exclude: ReadonlySet<Credential> = new Set(), sticky?: Credential): Credential {
    const now = this.now();
    const open = this.all.filter((c) => !exclude.has(c) && !c.exhausted(now));
    if (open.length === 0) throw this.spentError(now);
    const score = (c: Credential) => (c.left(now) ?? c.limit ?? UNKNOWN_BUDGET) - c.inFlight;
    if (sticky && open.includes(sticky)) {
      const low = sticky.limit !== undefined ? sticky.limit * STICKY_SHARE : 0;
      if (score(sticky) > low) return sticky;
    }
    let best = open[0] as Credential;
    for (const c of open) if (score(c) > score(best)) best = c;
    return best;
  }

  /** Whether another credential than `c` may take a call now. */
  hasOther(c: Credential): boolean {
    const now = this.now();
    return this.all.some((x) => x !== c && !x.exhausted(now));
  }

  private spentError(now: number): EmitterError {
    const resets = this.all.map((c) => (c.exhausted(now) ? c.resetAt : undefined)).filter((x): x is number => x !== undefined && x > now);
    const earliest = resets.length ? Math.min(...resets) : undefined;
    const which = this.all.map((c) => c.id).join(', ');
    const when = earliest !== undefined ? `; the earliest resets at ${new Date(earliest).toISOString()} (in ${Math.ceil((earliest - now) / 1000)} s)` : '';
    return new EmitterError(`GitHub rate limit spent on every credential (${which})${when}`, 403);
  }

  resetCounters(): void {
    for (const c of this.all) c.resetCounters();
  }

  /** The probe's rate-limit figures (undefined until some credential's limit is known). */
  meta(): { used: number; remaining: number; limit: number; credentials: CredentialMeta[] } | undefined {
    const now = this.now();
    const credentials = this.all.map((c) => c.meta(now));
    if (!credentials.some((c) => c.limit !== undefined)) return undefined;
    return {
      used: this.all.reduce((n, c) => n + c.used, 0),
      remaining: credentials.reduce((n, c) => n + (c.limit !== undefined ? (c.remaining ?? c.limit) : 0), 0),
      limit: credentials.reduce((n, c) => n + (c.limit ?? 0), 0),
      credentials,
    };
  }

  /** Every secret the pool holds or has received (PATs, private keys, installation tokens), for redaction. */
  secrets(extra: readonly string[]): string[] {
    return [...extra, ...this.all.flatMap((c) => (c.app ? [...c.app.issued] : []))];
  }
}
