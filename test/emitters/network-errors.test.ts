/**
 * A CI platform that cannot be reached, as each emitter reports it: the host and the cause
 * (`ECONNREFUSED 127.0.0.1:PORT`, `ENOTFOUND host`, a timeout naming the host), never
 * `network error (TypeError)`. Real sockets: a closed port on 127.0.0.1, a port that accepts and
 * never answers, and a name under .invalid (RFC 6761: never resolves).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient, networkProblem } from '../../src/emitters/http.js';
import { JenkinsEmitter } from '../../src/emitters/jenkins.js';
import type { Emitter } from '../../src/emitters/types.js';

const TIMEOUT_MS = 300;
const http = () => new HttpClient({ timeoutMs: TIMEOUT_MS, retries: 1, concurrency: 4, backoffMs: 5 });
const common = { probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 4, requestTimeout: '300ms', requestTimeoutMs: TIMEOUT_MS, retries: 1 };

const emitters: Record<string, (url: string) => Emitter> = {
  gitlab: (url) => new GitlabEmitter({ name: 'gl', type: 'gitlab', url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' }, ...common }, 'glpat-secret', http()),
  github: (url) => new GithubEmitter({ name: 'gh', type: 'github', owner: 'acme', token: '${env:T}', runnerOwner: 'org', runnerGroupId: 1, apiUrl: url, repos: ['app'], ...common }, { token: 'ghp_secret' }, http()),
  jenkins: (url) => new JenkinsEmitter({ name: 'jk', type: 'jenkins', url, user: '${env:U}', token: '${env:T}', crumb: false, ...common }, 'bot', 'jenkins-secret', http()),
};

let closedPort = 0;
let silent: Server;
let silentPort = 0;
const sockets: Socket[] = [];

beforeAll(async () => {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  // Accepts connections and never answers.
  silent = createServer((s) => void sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  silentPort = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

describe.each(Object.keys(emitters))('%s emitter, platform unreachable', (kind) => {
  const make = emitters[kind] as (url: string) => Emitter;

  it('a refused connection names the address and port', async () => {
    const e = make(`http://127.0.0.1:${closedPort}`);
    const p = await e.probe();
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(new RegExp(`^(GET|POST) /\\S*: ECONNREFUSED 127\\.0\\.0\\.1:${closedPort} \\(connection refused\\)$`));
    // An action fails the same way (GitHub's octokit wraps it: unwrapped).
    await expect(e.isIdle('some-node')).rejects.toThrow(`ECONNREFUSED 127.0.0.1:${closedPort} (connection refused)`);
  });

  it('a host that does not resolve is ENOTFOUND with its name', async () => {
    const p = await make('http://parmanu-test.nonexistent.invalid:8080').probe();
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(/: ENOTFOUND parmanu-test\.nonexistent\.invalid \(no such host\)$/);
  });

  it('a server that never answers times out, naming the host', async () => {
    const p = await make(`http://127.0.0.1:${silentPort}`).probe();
    expect(p.ok).toBe(false);
    expect(p.reason).toMatch(new RegExp(`: timed out after ${TIMEOUT_MS} ms waiting for 127\\.0\\.0\\.1:${silentPort}$`));
  });
});

describe('networkProblem', () => {
  it('lists every address tried when fetch gave up on several (happy eyeballs: an AggregateError)', () => {
    // The shape undici gives when a name resolves to an IPv6 and an IPv4 address and both refuse.
    const refused = (address: string) => Object.assign(new Error(`connect ECONNREFUSED ${address}:8080`), { code: 'ECONNREFUSED', address, port: 8080 });
    const err = new TypeError('fetch failed', { cause: new AggregateError([refused('::1'), refused('127.0.0.1')]) });
    expect(networkProblem(err, new URL('http://localhost:8080/api'), 1000)).toBe('ECONNREFUSED ::1:8080, 127.0.0.1:8080 (connection refused)');
  });

  it('names the default port of the scheme when the URL has none, and the message when there is no code', () => {
    const err = new TypeError('fetch failed', { cause: new Error('other side closed') });
    expect(networkProblem(err, new URL('https://gitlab.example.com/api'), 1000)).toBe('network error reaching gitlab.example.com:443 (other side closed)');
  });
});
