/**
 * GitHub App authentication and several credentials per emitter, end to end against the emulator
 * over real HTTP: a real RS256 JWT exchanged for installation tokens, a token replaced before it
 * expires, a revoked token recovered from once, a bad private key refused without quoting it, and
 * calls spread across two tokens and an app by remaining rate limit, with the probe's budget in
 * its metadata. Nothing secret may appear in a result, a reason or the metadata.
 */
import { createSign, generateKeyPairSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { GithubEmitter, type GithubSecrets } from '../../src/emitters/github.js';
import { HttpClient } from '../../src/emitters/http.js';
import { EmitterError, type ProbeResult } from '../../src/emitters/types.js';
import { issuedSecrets } from '../emulators/base.js';
import { GithubEmulator } from '../emulators/github.js';
import { expectNoSecrets } from '../secret-scan.js';
import { emitterContract } from './contract.js';
import { githubHarness } from './github-harness.js';
import type { EmitterConfig } from '../../src/policy/types.js';

const pair = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } });
const KEY = pair();
const OTHER = pair();
issuedSecrets.add(KEY.privateKey);
issuedSecrets.add(OTHER.privateKey);
const APP = { appId: 123, installationId: 456 };

type GithubConfig = Extract<EmitterConfig, { type: 'github' }>;
function githubConfig(url: string, extra: Partial<GithubConfig> = {}): GithubConfig {
  return { name: 'gh', type: 'github', owner: 'acme', repos: ['api', 'web'], app: { appId: APP.appId, installationId: APP.installationId, privateKey: '${env:APP_KEY}' }, runnerOwner: 'org', runnerGroupId: 1, apiUrl: url, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra };
}

const http = (concurrency = 8) => new HttpClient({ timeoutMs: 2000, retries: 3, concurrency, backoffMs: 5 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const started: GithubEmulator[] = [];
afterEach(async () => {
  for (const e of started.splice(0)) {
    expect(e.unexpected, 'requests the emulator did not expect').toEqual([]);
    await e.stop();
  }
});

async function emulator(): Promise<GithubEmulator> {
  const emu = await new GithubEmulator().start();
  started.push(emu);
  emu.repos.push('api', 'web');
  emu.addApp({ appId: APP.appId, publicKey: KEY.publicKey, installations: [APP.installationId], slug: 'parmanu-test' });
  emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
  emu.addRun('web', [{ labels: ['self-hosted', 'linux'] }]);
  return emu;
}

const appSecrets = (privateKey = KEY.privateKey): GithubSecrets => ({ app: { ...APP, privateKey } });
const req = { node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false };

/** Every secret the test handed out or the emulator issued, none of which may be in `text`. */
function scan(where: string, text: string): void {
  expectNoSecrets(where, text);
  for (const s of [KEY.privateKey, OTHER.privateKey]) for (const line of s.split('\n').filter((l) => l.length > 40)) expect(text, where).not.toContain(line);
}

/** A JWT signed by hand (the emulator's checks, apart from the emitter's own signing). */
function jwt(payload: Record<string, unknown>, key = KEY.privateKey): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc(payload)}`;
  return `${head}.${createSign('RSA-SHA256').update(head).sign(key).toString('base64url')}`;
}

describe('GitHub App authentication', () => {
  it('the emulator verifies the JWT as GitHub does: signature, issuer, a lifetime of at most 10 minutes, expiry', async () => {
    const emu = await emulator();
    const now = Math.floor(Date.now() / 1000);
    const exchange = (token: string) => fetch(`${emu.url}/app/installations/${APP.installationId}/access_tokens`, { method: 'POST', headers: { authorization: `Bearer ${token}`, accept: 'application/vnd.github+json' } });
    const ok = await exchange(jwt({ iat: now - 30, exp: now + 570, iss: APP.appId }));
    expect(ok.status).toBe(201);
    const body = (await ok.json()) as { token: string; expires_at: string; permissions: object; repository_selection: string };
    expect(body).toMatchObject({ token: expect.stringMatching(/^ghs_[A-Za-z0-9]{36}$/), repository_selection: 'all', permissions: expect.any(Object) });
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(3_590_000);
    expect(body.expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const refused = async (token: string) => {
      const r = await exchange(token);
      return { status: r.status, message: ((await r.json()) as { message: string }).message };
    };
    expect(await refused(jwt({ iat: now - 30, exp: now + 570, iss: APP.appId }, OTHER.privateKey))).toEqual({ status: 401, message: 'A JSON web token could not be decoded' });
    expect(await refused(jwt({ iat: now - 60, exp: now + 600, iss: APP.appId }))).toEqual({ status: 401, message: "'Expiration time' claim ('exp') is too far in the future" });
    expect(await refused(jwt({ iat: now - 700, exp: now - 100, iss: APP.appId }))).toEqual({ status: 401, message: "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires" });
    expect(await refused(jwt({ iat: now - 30, exp: now + 570, iss: 999 }))).toEqual({ status: 401, message: 'Integration not found' });
    // An installation token is no JWT, and a JWT no installation token.
    expect((await refused(body.token)).status).toBe(401);
    const asJwt = await fetch(`${emu.url}/orgs/acme/actions/runners`, { headers: { authorization: `Bearer ${jwt({ iat: now - 30, exp: now + 570, iss: APP.appId })}` } });
    expect(asJwt.status).toBe(401);
    const asToken = await fetch(`${emu.url}/orgs/acme/actions/runners`, { headers: { authorization: `token ${body.token}` } });
    expect(asToken.status).toBe(200);
    expect(asToken.headers.get('x-ratelimit-remaining')).toBe('4999');
    expect(emu.exchanges).toHaveLength(1);
  });

  it('exchanges a real JWT for an installation token and reuses it while it is good', async () => {
    const emu = await emulator();
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(), http());
    const first = await e.probe();
    expect(first).toMatchObject({ ok: true, partial: false });
    expect(first.jobs).toHaveLength(2);
    await e.register(req);
    await e.probe();
    expect(emu.exchanges).toHaveLength(1);
    expect(emu.callsBy.get('pat')).toBeUndefined();
    expect(emu.callsBy.get(`installation:${APP.installationId}`)).toBeGreaterThan(5);
    expect(emu.badCredentials).toBe(0);
    // The sticky comment's author is the app's bot (GET /app with the JWT).
    const c = await e.ensureComment({ project: 'api', number: 7 }, '<!-- m -->', '<!-- m --> hello');
    expect(c.action).toBe('created');
    expect(emu.comments[0]?.user.login).toBe('parmanu-test[bot]');
    expect((await e.ensureComment({ project: 'api', number: 7 }, '<!-- m -->', '<!-- m --> hello')).action).toBe('unchanged');
    scan('probe result', JSON.stringify(first));
  });

  it('replaces a token that expires within the margin before using it: a second exchange while the first token is still good, no 401', async () => {
    const emu = await emulator();
    emu.tokenLifetimeMs = 6000;
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(), http());
    expect((await e.probe()).ok).toBe(true);
    expect(emu.exchanges).toHaveLength(1);
    const t0 = emu.exchanges[0] as { at: number; expiresAt: number };
    // Within half the token's lifetime of its expiry (the margin for a short-lived token), still valid.
    await sleep(Math.max(0, t0.at + (t0.expiresAt - t0.at) / 2 - Date.now()) + 300);
    expect((await e.probe()).ok).toBe(true);
    expect(emu.exchanges).toHaveLength(2);
    expect((emu.exchanges[1] as { at: number }).at).toBeLessThan(t0.expiresAt);
    expect(emu.badCredentials).toBe(0);
  });

  it('recovers from a revoked token once: one 401, a new exchange, the call succeeds', async () => {
    const emu = await emulator();
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(), http(1));
    expect((await e.probe()).ok).toBe(true);
    expect(emu.revokeInstallationTokens()).toBe(1);
    const cred = await e.register(req);
    expect(cred).toEqual({ kind: 'github', jitConfig: expect.any(String) });
    expect(emu.badCredentials).toBe(1);
    expect(emu.exchanges).toHaveLength(2);
    const second = await e.probe();
    expect(second).toMatchObject({ ok: true, partial: false });
    expect(emu.badCredentials).toBe(1);
  });

  it('a second 401 is an EmitterError naming the endpoint, never the token', async () => {
    const emu = await emulator();
    // Every installation token is already expired when it arrives.
    emu.tokenLifetimeMs = -2000;
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(), http());
    const err = await e.register(req).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EmitterError);
    expect((err as EmitterError).message).toBe('POST /orgs/acme/actions/runners/generate-jitconfig: HTTP 401 Bad credentials (check the token)');
    expect(emu.exchanges).toHaveLength(2);
    expect(emu.badCredentials).toBe(2);
    const probed = await e.probe();
    expect(probed).toMatchObject({ ok: false });
    expect(probed.reason).toMatch(/: HTTP 401 Bad credentials/);
    scan('error', (err as Error).message);
    scan('probe', JSON.stringify(probed));
    for (const x of emu.exchanges) expect(JSON.stringify(probed)).not.toContain(x.token);
  });

  it('a private key that does not parse is a clear error that quotes none of it, and nothing is sent', async () => {
    const emu = await emulator();
    const broken = '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAnot-really-a-key-SECRETPART-0123456789abcdef\n-----END RSA PRIVATE KEY-----\n';
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(broken), http());
    expect(e.preflight()).toEqual([expect.stringMatching(/^app:123\/456: the private key does not parse as a PEM private key/)]);
    const r = await e.probe();
    expect(r).toMatchObject({ ok: false, jobs: [], runners: [] });
    expect(r.reason).toMatch(/app:123\/456: the private key does not parse/);
    expect(JSON.stringify(r)).not.toContain('SECRETPART');
    await expect(e.register(req)).rejects.toThrow(/app:123\/456: the private key does not parse/);
    expect(emu.log).toEqual([]);
  });

  it('a key that is not the app\'s: the exchange is refused and the reason says so, without the key', async () => {
    const emu = await emulator();
    const e = new GithubEmitter(githubConfig(emu.url), appSecrets(OTHER.privateKey), http());
    expect(e.preflight()).toEqual([]);
    const r = await e.probe();
    expect(r.ok).toBe(false);
    expect(r.reason).toMatch(/app:123\/456: no installation token: POST \/app\/installations\/456\/access_tokens: HTTP 401 A JSON web token could not be decoded \(check the app id and that the private key is the app's current one\)/);
    scan('probe', JSON.stringify(r));
    const notInstalled = new GithubEmitter(githubConfig(emu.url), { app: { appId: APP.appId, installationId: 999, privateKey: KEY.privateKey } }, http());
    expect((await notInstalled.probe()).reason).toMatch(/HTTP 404 Not Found \(the app is not installed there: check installationId\)/);
  });
});

describe('several credentials', () => {
  /** Two tokens (two users, so two budgets) and the app, in that order: token:1, token:2, app:123/456; one request on the wire at a time. */
  async function three(o: { a: number; b: number; app: number; concurrency?: number }) {
    const emu = await emulator();
    for (let i = 0; i < 8; i++) emu.addRun(i % 2 ? 'api' : 'web', [{ labels: ['self-hosted', 'linux'] }]);
    const a = emu.addToken('a');
    const b = emu.addToken('b');
    emu.setRateLimit('a', { limit: 5000, remaining: o.a });
    emu.setRateLimit('b', { limit: 5000, remaining: o.b });
    emu.setRateLimit(`installation:${APP.installationId}`, { limit: 5000, remaining: o.app });
    const concurrency = o.concurrency ?? 1;
    const e = new GithubEmitter(githubConfig(emu.url, { concurrency }), { credentials: [{ token: a }, { token: b }, { app: { ...APP, privateKey: KEY.privateKey } }] }, http(concurrency));
    const calls = () => ({ a: emu.callsBy.get('a') ?? 0, b: emu.callsBy.get('b') ?? 0, app: emu.callsBy.get(`installation:${APP.installationId}`) ?? 0 });
    return { emu, e, calls, a, b };
  }
  const APPLABEL = `installation:${APP.installationId}`;

  it('sends each call through the credential with the most remaining, and carries the budget in the probe meta', async () => {
    const { emu, e, calls } = await three({ a: 100, b: 3000, app: 200 });
    const r = await e.probe();
    expect(r).toMatchObject({ ok: true, partial: false });
    const n = calls();
    // Calls picked before a credential's budget is known count it as full (less the calls in
    // flight): each gets some while it is learned (the app's first answer waits for its token
    // exchange). Once known, b, with the most, takes the rest.
    expect(n.a).toBeGreaterThanOrEqual(1);
    expect(n.app).toBeGreaterThanOrEqual(1);
    expect(n.b).toBeGreaterThan(n.a + n.app);
    const left = { a: emu.rateLimit('a').remaining, b: emu.rateLimit('b').remaining, app: emu.rateLimit(APPLABEL).remaining };
    expect(r.meta.rateLimit).toEqual({
      used: 100 - left.a + 3000 - left.b + 200 - left.app,
      remaining: left.a + left.b + left.app,
      limit: 15_000,
      credentials: [
        { id: 'token:1', remaining: left.a, limit: 5000, resetAt: emu.rateLimit('a').reset * 1000, calls: n.a },
        { id: 'token:2', remaining: left.b, limit: 5000, resetAt: emu.rateLimit('b').reset * 1000, calls: n.b },
        { id: 'app:123/456', remaining: left.app, limit: 5000, resetAt: emu.rateLimit(APPLABEL).reset * 1000, calls: n.app },
      ],
    });
    expect(r.meta.rateLimit?.used).toBe(n.a + n.b + n.app);
    // Known budgets: every call of the next probe goes to b (the others are below a tenth of their limit, so not even their ETags keep them).
    emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
    const second = await e.probe();
    const m = calls();
    expect(m.a - n.a).toBe(0);
    expect(m.app - n.app).toBe(0);
    expect(m.b - n.b).toBe(second.meta.apiCalls);
    expect(second.meta.rateLimit?.credentials.map((c) => c.calls)).toEqual([0, second.meta.apiCalls, 0]);
  });

  it('an unchanged probe is answered by 304s from the credentials that hold the ETags, and spends nothing', async () => {
    const { emu, e, calls } = await three({ a: 900, b: 900, app: 900, concurrency: 4 });
    await e.probe();
    const before = calls();
    const spent = () => emu.rateLimit('a').remaining + emu.rateLimit('b').remaining + emu.rateLimit(APPLABEL).remaining;
    const left = spent();
    const r = await e.probe();
    expect(r.meta.notModified).toBe(r.meta.apiCalls);
    expect(r.meta.rateLimit?.used).toBe(0);
    expect(spent()).toBe(left);
    const after = calls();
    expect(after.a + after.b + after.app - before.a - before.b - before.app).toBe(r.meta.apiCalls);
  });

  it('an ETag read with one token is no good with another: the emulator answers 200, as GitHub does', async () => {
    const { emu, a, b } = await three({ a: 900, b: 900, app: 900 });
    const path = `${emu.url}/orgs/acme/actions/runners`;
    const first = await fetch(path, { headers: { authorization: `token ${a}` } });
    const etag = first.headers.get('etag') as string;
    expect((await fetch(path, { headers: { authorization: `token ${a}`, 'if-none-match': etag } })).status).toBe(304);
    expect((await fetch(path, { headers: { authorization: `token ${b}`, 'if-none-match': etag } })).status).toBe(200);
  });

  it('moves calls away from a credential that runs low, skips an exhausted one until its reset, and fails with the earliest reset when all are spent', async () => {
    const { emu, e, calls } = await three({ a: 100, b: 3000, app: 200 });
    await e.probe();
    // b runs low behind the emitter's back: the calls already picked for it learn so, and the rest move to the app.
    emu.setRateLimit('b', { remaining: 50 });
    emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
    let before = calls();
    const low = await e.probe();
    expect(low).toMatchObject({ ok: true, partial: false });
    let now = calls();
    expect(now.b - before.b).toBeLessThanOrEqual(4);
    expect(now.a - before.a).toBe(0);
    expect(now.app - before.app).toBeGreaterThanOrEqual(10);
    expect(emu.rateLimit('b').remaining).toBeGreaterThanOrEqual(46);

    // The app is spent (GitHub answers 403 with x-ratelimit-remaining: 0): one refusal, the calls
    // queued for it are not sent, and they and every later call go to the others.
    emu.setRateLimit(APPLABEL, { remaining: 0, resetInS: 900 });
    before = calls();
    const skipped = await e.probe();
    expect(skipped).toMatchObject({ ok: true, partial: false });
    now = calls();
    expect(emu.rateLimitedBy.get(APPLABEL)).toBe(1);
    expect(now.app - before.app).toBe(1);
    expect(now.a - before.a + now.b - before.b).toBeGreaterThanOrEqual(10);
    expect(skipped.meta.rateLimit?.credentials[2]).toEqual({ id: 'app:123/456', remaining: 0, limit: 5000, resetAt: emu.rateLimit(APPLABEL).reset * 1000, calls: 1 });
    const again = await e.probe();
    expect(again.ok).toBe(true);
    expect(emu.rateLimitedBy.get(APPLABEL)).toBe(1);

    // Every credential spent: the probe fails (its pools hold) and says when the earliest resets.
    emu.setRateLimit('a', { remaining: 0, resetInS: 1200 });
    emu.setRateLimit('b', { remaining: 0, resetInS: 600 });
    const spent = await e.probe();
    expect(spent).toMatchObject({ ok: false, jobs: [], runners: [] });
    const earliest = new Date(emu.rateLimit('b').reset * 1000).toISOString();
    expect(spent.reason).toContain(`GitHub rate limit spent on every credential (token:1, token:2, app:123/456); the earliest resets at ${earliest}`);
    // Nothing more is sent with a spent credential: one refusal each, then the probe and a registration fail at once.
    const refusals = () => [...emu.rateLimitedBy.values()].reduce((x, y) => x + y, 0);
    expect(refusals()).toBe(3);
    const sent = emu.log.length;
    await expect(e.register(req)).rejects.toThrow(/^POST \/orgs\/acme\/actions\/runners\/generate-jitconfig: GitHub rate limit spent on every credential .* the earliest resets at /);
    expect((await e.probe()).reason).toContain(`the earliest resets at ${earliest}`);
    expect(emu.log.length).toBe(sent);
    scan('probe', JSON.stringify([low, skipped, again, spent]));
  });

  it('a 429 refusal (GitHub documents 403 or 429) moves the call as well', async () => {
    const { emu, e, calls } = await three({ a: 0, b: 300, app: 200 });
    emu.rateLimitStatus = 429;
    const r = await e.probe();
    expect(r).toMatchObject({ ok: true, partial: false });
    expect(emu.rateLimitedBy.get('a')).toBe(1);
    expect(calls().a).toBe(1);
  });

  it('secrets never appear in results, reasons, errors or the metadata', async () => {
    const { emu, e, a, b } = await three({ a: 5, b: 5, app: 5, concurrency: 4 });
    const results: ProbeResult[] = [];
    for (let i = 0; i < 4; i++) results.push(await e.probe());
    emu.revokeInstallationTokens();
    results.push(await e.probe());
    const err = await e.register(req).catch((x: unknown) => (x as Error).message);
    const text = JSON.stringify({ results, err });
    for (const s of [a, b, KEY.privateKey, ...emu.exchanges.map((x) => x.token)]) expect(text).not.toContain(s);
    scan('results', text);
    expect(results.at(-1)?.ok).toBe(false);
  });
});

emitterContract(
  'github (app credentials)',
  async () => {
    const emu = await new GithubEmulator().start();
    emu.repos.push('api', 'web');
    emu.addApp({ appId: APP.appId, publicKey: KEY.publicKey, installations: [APP.installationId] });
    const emitter = new GithubEmitter(githubConfig(emu.url), appSecrets(), new HttpClient({ timeoutMs: 400, retries: 3, concurrency: 8, backoffMs: 5 }));
    const register = emitter.register.bind(emitter);
    emitter.register = (r) => register({ ...r, ephemeral: true });
    return githubHarness(emu, emitter, KEY.privateKey);
  },
  { paginated: true, duplicateNames: false },
);
