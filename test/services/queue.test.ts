/**
 * The scalers' queue, in process and deterministic (the same Prober, CycleQueue and Scaler the
 * commands run, over a real Redis and BullMQ, with real terraform and the GitLab emulator):
 * - an observation that changes while its pool's cycle runs gets a cycle of its own afterwards
 *   (one job per version: the running job's id does not swallow it);
 * - a change job that finds the pool's lease held is retried until the lease is free, then runs;
 * - a change job whose version a cycle already saw does nothing;
 * - two jobs of one pool on one replica never run its cycle twice at once (the replica's own lease);
 * - a replica whose policy is not the newest one runs nothing until it is;
 * - an observation older than twice its probe interval holds the pool.
 */
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { CycleResult } from '../../src/reconcile/cycle.js';
import { Prober } from '../../src/reconcile/prober.js';
import { CycleQueue, policyDigest, Scaler, type CycleJob } from '../../src/reconcile/services.js';
import { gitlabGroup, reconcileDeps, useRedisSuite } from '../reconcile/suite.js';

const suite = useRedisSuite();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('the scalers\' queue', () => {
  it('runs a cycle for a change that lands while the pool\'s cycle runs, retries a change while the lease is held, and skips a version already seen', { timeout: 120_000 }, async () => {
    const { emu, project, emitter: gitlab } = await gitlabGroup();
    const policy = normalize({
      emitters: new Map([['ci', gitlab]]),
      platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
      pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], scaling: { predict: false, spare: 0, minLifetime: '0s' } })]]),
    });
    const emitter = new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 }));
    const prefix = `q${Math.random().toString(36).slice(2)}`;
    const history = new RedisHistoryStore(suite.url);
    const queue = new CycleQueue({ redisUrl: suite.url, prefix, retryMs: 200 });
    const prober = new Prober({ policy, emitters: new Map([['ci', emitter]]), history, queue, owner: 'prober', leaseTtlMs: 4000, intervalMs: () => 600_000, poolsOf: () => ['p'], stopping: () => false });
    const cycles: Array<{ job: CycleJob; out: CycleResult['pools'][number] | undefined; from: number; to: number }> = [];
    let midCycle: (() => Promise<void>) | undefined;
    const now = { t: Date.now() };
    const deps = reconcileDeps(policy, emitter, history, suite.tempDir('parmanu-queue-'), now, {
      leaseTtlMs: 4000,
      hook: async (point) => {
        if (point === 'observed' && midCycle) {
          const f = midCycle;
          midCycle = undefined;
          await f();
        }
      },
    });
    const digest = policyDigest(policy);
    // Two slots: two jobs of one pool could run at once, were it not for the replica's running set.
    const scaler = new Scaler({ queue, redisUrl: suite.url, deps, history, concurrency: 2, lockMs: 4000, policy: digest, onCycle: (result, job, ms) => cycles.push({ job, out: result.pools[0], from: Date.now() - ms, to: Date.now() }) });
    let running: Promise<void> | undefined;
    const until = async (f: () => boolean | Promise<boolean>, what: string) => {
      for (const end = Date.now() + 60_000; !(await f()); await sleep(50)) if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(cycles.map((c) => [c.job, c.out?.create, c.out?.skipped]))}`);
    };
    try {
      // v1: nothing queued. While its cycle runs (after it observed v1), a job is queued and probed: v2.
      midCycle = async () => {
        emu.addJob(project, 'pending', ['linux']);
        await prober.probe('ci', false);
      };
      await prober.probe('ci', false);
      const v1 = (await history.getObservation('ci'))!.version;
      // A second job of the pool waiting at the same time (the two slots take both at once).
      await queue.change('p', v1, { webhook: true });
      running = scaler.run();
      await until(() => cycles.some((c) => c.job.version > v1), 'the cycle of the change that landed mid-cycle');
      const v2 = (await history.getObservation('ci'))!.version;
      expect(cycles.filter((c) => c.job.version === v1).length).toBeGreaterThanOrEqual(1);
      expect(cycles.find((c) => c.job.version === v2)?.out?.create).toHaveLength(1);
      expect(await queue.versionsOf('done', ['p'])).toEqual([v2]);

      // A change while another replica holds the lease: retried until it is released, then run.
      const other = (await history.acquireLease('p', 'another-replica', 60_000))!;
      emu.addJob(project, 'pending', ['linux']);
      await prober.probe('ci', false);
      const v3 = (await history.getObservation('ci'))!.version;
      const job3 = () => queue.queue.getJob(`change-p-${v3}`);
      await until(async () => ((await job3())?.attemptsMade ?? 0) >= 2, 'two tries while the lease is held');
      expect(cycles.some((c) => c.job.version === v3)).toBe(false);
      await history.releaseLease(other);
      await until(() => cycles.some((c) => c.job.version === v3 && !c.out?.skipped), 'the retried change running once the lease is free');
      expect(cycles.find((c) => c.job.version === v3 && !c.out?.skipped)?.out?.create).toHaveLength(1);
      expect(await queue.versionsOf('done', ['p'])).toEqual([v3]);

      // A version already seen: the job does nothing (no cycle).
      const before = cycles.length;
      await queue.change('p', v3);
      await sleep(1500);
      expect(cycles.length).toBe(before);
      // No two cycles of the pool overlapped, and none failed (a second cycle on the replica's own lease would have).
      const sorted = [...cycles].sort((a, b) => a.from - b.from);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.from).toBeGreaterThanOrEqual(sorted[i - 1]!.to - 5);
      expect(cycles.filter((c) => c.out?.error)).toEqual([]);

      // A newer replica with another policy is live: this one runs nothing until that one's
      // heartbeat lapses (it died: its policy no longer counts).
      await queue.heartbeat('newer-replica', 'another-policy', Date.now() + 1, 2500);
      emu.addJob(project, 'pending', ['linux']);
      await prober.probe('ci', false);
      const v4 = (await history.getObservation('ci'))!.version;
      await sleep(1500);
      expect(cycles.some((c) => c.job.version === v4)).toBe(false);
      await until(() => cycles.some((c) => c.job.version === v4 && c.out?.create.length === 1), 'the change running once the newer replica has lapsed');

      // An observation older than twice its probe interval (30 s here) holds the pool: a queued job it shows creates nothing.
      const stored = (await history.getObservation('ci'))!;
      const old = Date.now() - 3 * 30_000;
      const stale = { ...stored.observation, at: old, jobs: [...stored.observation.jobs, { id: 'stale-job', labels: ['linux'], status: 'queued' as const, queuedAt: old }] };
      await history.clear();
      const v5 = (await history.putObservation({ observation: stale, digest: 'stale', prober: 'test' })).version;
      await queue.change('p', v5);
      await until(() => cycles.some((c) => c.job.version === v5), 'the cycle of the stale observation');
      const held = cycles.find((c) => c.job.version === v5)!;
      expect(held.out?.probe?.stale).toBe(true);
      expect(held.out?.create).toEqual([]);
    } finally {
      await scaler.close();
      await running?.catch(() => undefined);
      await queue.close();
      await history.close();
      await emu.stop();
    }
  });
});
