import { describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { GithubEmulator } from '../emulators/github.js';
import { emitterContract, type Harness } from './contract.js';

type GithubConfig = Extract<EmitterConfig, { type: 'github' }>;
export function githubConfig(url: string, extra: Partial<GithubConfig> = {}): GithubConfig {
  return { name: 'gh', type: 'github', owner: 'acme', token: '${env:GITHUB_TOKEN}', runnerOwner: 'org', runnerGroupId: 1, apiUrl: url, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra };
}
const fastHttp = () => new HttpClient({ timeoutMs: 400, retries: 3, concurrency: 8, backoffMs: 5 });

async function harness(): Promise<Harness> {
  const emu = await new GithubEmulator().start();
  emu.repos.push('api', 'web');
  const emitter = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, ['linux-pool'], fastHttp());
  return {
    emitter,
    emu,
    token: emu.token,
    pool: 'linux-pool',
    queueJob: (labels) => void emu.addRun('api', [{ labels }]),
    runOn: (node) => {
      const r = emu.runners.find((x) => x.name === node);
      if (!r) throw new Error(`no runner ${node}`);
      r.busy = true;
      emu.addRun('web', [{ labels: ['self-hosted', 'linux'], status: 'in_progress', runner: node }]);
    },
    finishAll: () => {
      for (const j of emu.jobs) if (j.status === 'in_progress') j.status = 'completed';
      for (const r of emu.runs) if (r.status === 'in_progress') r.status = 'completed';
      for (const r of emu.runners) r.busy = false;
    },
    bringOnline: (node) => {
      const r = emu.runners.find((x) => x.name === node);
      if (r) r.status = 'online';
    },
    listPath: /\/actions\/runs$/,
    pagedPath: /\/orgs\/acme\/actions\/runners$/,
    middlePage: /[?&]page=2(&|$)/,
    seedMany: () => {
      for (let i = 0; i < 250; i++) emu.runners.push({ id: 90_000 + i, name: `someone-else-${i}`, os: 'linux', status: 'online', busy: false, labels: ['self-hosted'], ephemeral: false });
    },
    pauseKeeps: false,
    close: () => emu.stop(),
  };
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
}, { paginated: true });

describe('github emitter', () => {
  it('answers an unchanged second probe entirely from ETags (304s, no rate limit spent)', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('api', 'web');
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }, { labels: ['self-hosted', 'windows'] }]);
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, ['p'], fastHttp());
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
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, ['p'], fastHttp());
      const jit = await e.register({ node: 'p-1', pool: 'p', labels: ['linux', 'big'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      expect(jit).toEqual({ kind: 'github', jitConfig: expect.any(String) });
      expect(emu.runners[0]).toMatchObject({ name: 'p-1', labels: ['self-hosted', 'linux', 'big'] });
      const reg = await e.register({ node: 'p-2', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      expect(reg).toEqual({ kind: 'github', url: `${emu.url}/acme`, registrationToken: expect.stringMatching(/^AREG/) });
    } finally {
      await emu.stop();
    }
  });

  it('keeps a busy runner when asked to pause it (GitHub refuses to delete it mid-job)', async () => {
    const emu = await new GithubEmulator().start();
    try {
      const e = new GithubEmitter(githubConfig(emu.url), { token: emu.token }, ['p'], fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: true, acceptUntagged: false });
      (emu.runners[0] as { busy: boolean }).busy = true;
      await e.pause('p-1');
      expect(emu.runners.map((r) => r.name)).toEqual(['p-1']);
      expect(await e.isIdle('p-1')).toBe(false);
    } finally {
      await emu.stop();
    }
  });
});
