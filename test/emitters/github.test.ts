import { describe, expect, it } from 'vitest';
import { ETAG_CACHE_MAX, GithubEmitter } from '../../src/emitters/github.js';
import { RunnerBusyError } from '../../src/emitters/types.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { GithubEmulator } from '../emulators/github.js';
import { emitterContract, type Harness } from './contract.js';
import { githubHarness } from './github-harness.js';

type GithubConfig = Extract<EmitterConfig, { type: 'github' }>;
export function githubConfig(url: string, extra: Partial<GithubConfig> = {}): GithubConfig {
  return { name: 'gh', type: 'github', owner: 'acme', token: '${env:GITHUB_TOKEN}', runnerOwner: 'org', runnerGroupId: 1, apiUrl: url, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra };
}
const fastHttp = () => new HttpClient({ timeoutMs: 400, retries: 3, concurrency: 8, backoffMs: 5 });

async function harness(): Promise<Harness> {
  const emu = await new GithubEmulator().start();
  emu.repos.push('api', 'web');
  const emitter = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
  return githubHarness(emu, emitter, emu.token);
}

emitterContract('github', async () => {
  const h = await harness();
  // Long-lived runners register through config.sh; the contract exercises them, and JIT below.
  const register = h.emitter.register.bind(h.emitter);
  h.emitter.register = async (req) => {
    const cred = await register({ ...req, ephemeral: true });
    return cred;
  };
  return h;
}, { paginated: true, duplicateNames: false });

describe('github emitter', () => {
  it('answers an unchanged second probe entirely from ETags (304s, no rate limit spent)', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api', 'web');
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }, { labels: ['self-hosted', 'windows'] }]);
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      const first = await e.probe();
      expect(first.jobs).toHaveLength(2);
      const before = emu.rateLimitRemaining;
      const second = await e.probe();
      expect(second.jobs).toEqual(first.jobs);
      expect(second.meta.notModified).toBe(second.meta.apiCalls);
      expect(emu.rateLimitRemaining).toBe(before);
      expect(emu.unexpected).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('issues just-in-time configs for ephemeral pools and registration tokens otherwise', async () => {
    const emu = await new GithubEmulator().start();
    try {
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      const jit = await e.register({ node: 'p-1', pool: 'p', labels: ['linux', 'big'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      expect(jit).toEqual({ kind: 'github', jitConfig: expect.any(String) });
      expect(emu.runners[0]).toMatchObject({ name: 'p-1', labels: ['self-hosted', 'linux', 'big', 'parmanu-pool-p'] });
      const reg = await e.register({ node: 'p-2', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      expect(reg).toEqual({ kind: 'github', url: `${emu.url}/acme`, registrationToken: expect.stringMatching(/^AREG/) });
    } finally {
      await emu.stop();
    }
  });

  it('rejects with RunnerBusyError when GitHub answers 422 to removing a runner mid-job, and keeps the runner', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api');
      emu.busyLagMs = 60_000;
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      emu.connect('p-1');
      emu.startJob('p-1');
      await expect(e.pause('p-1')).rejects.toBeInstanceOf(RunnerBusyError);
      const err = await e.deregister('p-1').catch((x: unknown) => x);
      expect(err).toBeInstanceOf(RunnerBusyError);
      expect((err as RunnerBusyError).status).toBe(422);
      expect((err as Error).message).not.toContain(emu.token);
      expect(emu.runners.map((r) => r.name)).toEqual(['p-1']);
      expect(emu.removedWhileBusy()).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('says not idle while the busy flag lags but a job in progress names the runner', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api', 'web');
      emu.busyLagMs = 60_000;
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      emu.connect('p-1');
      expect(await e.isIdle('p-1')).toBe(true);
      const job = emu.startJob('p-1', 'web');
      // The platform's flag still says idle, in the listing and in the runner's own record.
      const probed = await e.probe();
      expect(probed.runners.find((r) => r.name === 'p-1')?.busy).toBe(false);
      expect(await e.isIdle('p-1')).toBe(false);
      emu.finishJob(job.id);
      expect(await e.isIdle('p-1')).toBe(true);
    } finally {
      await emu.stop();
    }
  });

  it('says not idle when the runner itself reports busy although no listed job names it', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api');
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      (emu.runners[0] as { busy: boolean }).busy = true;
      expect(await e.isIdle('p-1')).toBe(false);
    } finally {
      await emu.stop();
    }
  });

  it('reads every repository of the owner for the busy check when repos is omitted, and fails rather than guess', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api', 'tools');
      const e = new GithubEmitter(githubConfig(emu.url, { repos: undefined }), { token: emu.token }, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      emu.busyLagMs = 60_000;
      emu.startJob('p-1', 'tools');
      expect(await e.isIdle('p-1')).toBe(false);
      emu.faults.push({ path: /\/actions\/runs$/, status: 500 });
      await expect(e.isIdle('p-1')).rejects.toThrow(/500/);
    } finally {
      await emu.stop();
    }
  });

  it('finds a runner on any page of the runner list', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api');
      for (let i = 0; i < 250; i++) emu.configureRunner(`someone-${i}`, ['linux']);
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      // A fresh emitter (another process): nothing cached, the runner is on page 3.
      const other = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, fastHttp());
      await other.pause('p-1');
      expect(emu.runnerDeleted('p-1')).toMatchObject({ runner: 'p-1', busy: false });
      expect(emu.count('GET', /\/actions\/runners\?.*page=3/)).toBeGreaterThan(0);
    } finally {
      await emu.stop();
    }
  });

  it('keeps at most ETAG_CACHE_MAX conditional pages, the least recently used leaving first', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api');
      for (let i = 0; i < ETAG_CACHE_MAX + 40; i++) emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      const e = new GithubEmitter(githubConfig(emu.url, { repos: ['api'] }), { token: emu.token }, fastHttp());
      const r = await e.probe();
      expect(r).toMatchObject({ ok: true, partial: false });
      expect(r.jobs).toHaveLength(ETAG_CACHE_MAX + 40);
      expect(e.etags.size).toBe(ETAG_CACHE_MAX);
    } finally {
      await emu.stop();
    }
  });
});
