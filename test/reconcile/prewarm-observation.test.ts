/**
 * A GitLab probe's scheduled runs (pre-warming) on their way to decide: through the history store
 * as services mode writes and reads them (real Redis, the file store), into each pool's share in
 * observe, and into the prober's digests (a changed estimate is a change of the pools it concerns).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { ProbeResult } from '../../src/emitters/types.js';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import type { HistoryStore } from '../../src/history/types.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { observe } from '../../src/reconcile/observe.js';
import { observationDigest, poolDigests } from '../../src/reconcile/prober.js';
import { fromStored } from '../../src/reconcile/services.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { startRedis, type RedisServer } from '../redis-server.js';
import { MIN, testPool } from '../helpers.js';

const NOW = Date.parse('2026-03-02T10:00:00Z');
const linux = testPool({ emitter: 'gl', labels: ['linux'] }, 'linux');
const docker = testPool({ emitter: 'gl', labels: ['linux', 'docker'] }, 'docker');
const pools = [linux, docker];
const cfg = (url: string): Extract<EmitterConfig, { type: 'gitlab' }> => ({ name: 'gl', type: 'gitlab', url, token: '${env:GITLAB_TOKEN}', groups: ['platform'], runnerOwner: { group: 'platform' }, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 1 });

let redis: RedisServer;
let emu: GitlabEmulator;
let probe: ProbeResult;
const dirs: string[] = [];
beforeAll(async () => {
  redis = await startRedis();
  emu = await new GitlabEmulator().start();
  emu.clock = () => NOW;
  const api = emu.addProject('api', emu.addGroup('platform'));
  const nightly = emu.addSchedule(api, { description: 'nightly "build"\n', cron: '5 10 * * *' });
  emu.finishPipeline(emu.runSchedule(nightly, [...Array.from({ length: 5 }, () => ({ tags: ['linux'] })), { tags: ['docker', 'linux'] }, { tags: ['gpu'] }], { due: false }));
  probe = await new GitlabEmitter(cfg(emu.url), emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 4 }), () => NOW).probe();
});
afterAll(async () => {
  await emu.stop();
  await redis.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const stores: Array<[string, () => HistoryStore]> = [
  ['file', () => {
    const d = mkdtempSync(join(tmpdir(), 'parmanu-prewarm-'));
    dirs.push(d);
    return new FileHistoryStore(d, () => NOW);
  }],
  ['redis', () => new RedisHistoryStore(redis.url, () => NOW, `parmanu:prewarm${Math.random().toString(36).slice(2)}:`)],
];

describe('scheduled runs of a probe', () => {
  it('come from the GitLab emulator through the real client', () => {
    expect(probe.scheduled).toEqual([expect.objectContaining({ description: 'nightly "build"\n', nextRunAt: NOW + 5 * MIN, runs: 1 })]);
  });

  it.each(stores)('survive a round trip through the %s store as the prober writes them and a scaler reads them', async (_name, make) => {
    const store = make();
    try {
      const p = probe;
      await store.putObservation({ observation: { emitter: p.emitter, at: p.at, ok: p.ok, partial: p.partial, jobs: p.jobs, runners: p.runners, ...(p.scheduled ? { scheduled: p.scheduled } : {}), meta: { durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls, notModified: p.meta.notModified } }, digest: observationDigest(p), prober: 't' });
      const back = fromStored('gl', await store.getObservation('gl'), NOW);
      expect(back.scheduled).toEqual(p.scheduled);
      // Each pool gets its share, matched as queued jobs are; the gpu job goes nowhere.
      const share = (pool: typeof linux) => observe({ policy: { emitters: {}, platforms: {}, pools }, pool, kind: 'gitlab', probe: back, rec: undefined, state: [], spec: 'S', now: NOW, poolsOfEmitter: pools }).scheduled;
      expect(share(linux)).toEqual([{ at: NOW + 5 * MIN, jobs: 5, schedule: 'nightly "build"\n', project: 'platform/api', runs: 1 }]);
      expect(share(docker)).toEqual([expect.objectContaining({ jobs: 1 })]);
      // A stack the pool is leaving (failover) gets no queued job, and no pre-warm either; nor does a removed pool.
      const base = { policy: { emitters: {}, platforms: {}, pools }, pool: linux, kind: 'gitlab' as const, probe: back, rec: undefined, state: [], spec: 'S', now: NOW, poolsOfEmitter: pools };
      expect(observe({ ...base, placement: { elsewhere: new Set<string>(), leaving: true } }).scheduled).toEqual([]);
      expect(observe({ ...base, placement: { elsewhere: new Set<string>(), leaving: false } }).scheduled).toHaveLength(1);
      expect(observe({ ...base, removed: true }).scheduled).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('a changed estimate is a change of the pools it concerns, and only of those', () => {
    const before = poolDigests(probe, 'gitlab', pools, ['linux', 'docker']);
    const run = probe.scheduled?.[0];
    if (!run) throw new Error('no scheduled run');
    const more: ProbeResult = { ...probe, scheduled: [{ ...run, jobs: run.jobs.map((j) => (j.labels.length === 1 && j.labels[0] === 'linux' ? { ...j, count: j.count + 1 } : j)) }] };
    const after = poolDigests(more, 'gitlab', pools, ['linux', 'docker']);
    expect(after.get('linux')).not.toBe(before.get('linux'));
    expect(after.get('docker')).toBe(before.get('docker'));
    expect(observationDigest(more)).not.toBe(observationDigest(probe));
    // Moved to another time: a change too.
    const later = poolDigests({ ...probe, scheduled: [{ ...run, nextRunAt: run.nextRunAt + MIN }] }, 'gitlab', pools, ['linux', 'docker']);
    expect(later.get('docker')).not.toBe(before.get('docker'));
    // No scheduled run: the digests of an observation without the field (unchanged from before pre-warming).
    const none: ProbeResult = { ...probe };
    delete none.scheduled;
    expect(observationDigest({ ...none, scheduled: [] })).toBe(observationDigest(none));
  });
});
