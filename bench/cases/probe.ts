import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { GithubEmulator } from '../../test/emulators/github.js';
import { Worker } from 'node:worker_threads';
import { DEFAULT_CONCURRENCY } from '../../src/policy/load.js';
import { round, type BenchCase } from '../harness.js';

/** 500 projects under one group, 5,000 pending jobs, 50 ms emulator latency per request. */
export const probeGitlab500: BenchCase = {
  name: 'probe-gitlab-500-projects',
  async run() {
    const worker = new Worker(new URL('../emulator-worker.js', import.meta.url), { workerData: { kind: 'gitlab-projects', projects: 500, jobsPerProject: 10, latencyMs: 50 } });
    try {
      const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      const cfg = { name: 'gl', type: 'gitlab' as const, url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' }, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: DEFAULT_CONCURRENCY.gitlab, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3 };
      const e = new GitlabEmitter(cfg, token);
      const r = await e.probe();
      if (!r.ok || r.partial) throw new Error(`probe failed: ${r.reason}`);
      const jobs = r.jobs.filter((j) => j.status === 'queued').length;
      const floor = (r.meta.apiCalls * 0.05) / cfg.concurrency;
      return [
        { name: 'probe-gitlab-500-projects', value: round(r.meta.durationMs / 1000, 2), unit: 's', baseline: { name: `calls × 50 ms ÷ concurrency ${cfg.concurrency}`, value: round(floor, 2) }, ratio: round(r.meta.durationMs / 1000 / floor), note: `${jobs} jobs, ${r.meta.apiCalls} API calls, emulator in a worker thread (target ≤ 5 s)` },
      ];
    } finally {
      worker.postMessage('stop');
      await new Promise((resolve) => worker.once('exit', resolve));
    }
  },
};

/** Share of requests answered 304 Not Modified on an unchanged second probe. */
export const probeGithubEtag: BenchCase = {
  name: 'probe-github-etag',
  async run() {
    const emu = await new GithubEmulator().start();
    try {
      for (let i = 0; i < 20; i++) emu.repos.push(`repo-${i}`);
      for (let i = 0; i < 40; i++) emu.addRun(`repo-${i % 20}`, [{ labels: ['self-hosted', 'linux'] }, { labels: ['self-hosted', 'linux', 'big'] }]);
      const cfg = { name: 'gh', type: 'github' as const, owner: 'acme', token: '${env:T}', runnerOwner: 'org' as const, runnerGroupId: 1, apiUrl: emu.url, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3 };
      const e = new GithubEmitter(cfg, { token: emu.token });
      const first = await e.probe();
      const before = emu.rateLimitRemaining;
      const second = await e.probe();
      if (!second.ok) throw new Error(second.reason);
      return [
        { name: 'probe-github-etag', value: round((100 * second.meta.notModified) / second.meta.apiCalls, 1), unit: '% 304', note: `${second.meta.notModified} of ${second.meta.apiCalls} requests; rate limit spent: ${before - emu.rateLimitRemaining} (first probe: ${first.meta.apiCalls} calls; target 100%)` },
      ];
    } finally {
      await emu.stop();
    }
  },
};
