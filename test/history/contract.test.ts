/** One contract suite for the HistoryStore interface, run against the file store and real Redis. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { HistoryError, type HistoryStore, type PoolRecord } from '../../src/history/types.js';
import { startRedis, type RedisServer } from '../redis-server.js';

let redis: RedisServer;
const dirs: string[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Each maker opens a store on a namespace: stores opened on the same namespace share data. */
const makers: Array<[string, (clock: () => number, ns?: string) => HistoryStore]> = [
  ['file', (clock, ns) => {
    const d = ns ? join(tmpdir(), `parmanu-hist-${ns}`) : mkdtempSync(join(tmpdir(), 'parmanu-hist-'));
    dirs.push(d);
    return new FileHistoryStore(d, clock);
  }],
  ['redis', (clock, ns) => new RedisHistoryStore(redis.url, clock, `parmanu:t${ns ?? Math.random().toString(36).slice(2)}:`)],
];

describe.each(makers)('%s history store', (_name, make) => {
  const T = 1_764_000_000_000;

  it('stores and returns pool records, validated', async () => {
    const s = make(() => T);
    expect(await s.getPool('p')).toBeUndefined();
    const rec: PoolRecord = { pool: 'p', nodes: [{ name: 'p-a', createdAt: T, drainingSince: T + 1 }], memory: { targets: [{ at: T, nodes: 2 }] }, applied: { names: ['p-a'], at: T, stackHash: 'abc' }, lastFullPlanAt: T, pendingRunners: { 'p-b': T }, seenJobs: ['1', '2'] };
    await s.putPool(rec);
    expect(await s.getPool('p')).toEqual(rec);
    await s.clear();
    expect(await s.getPool('p')).toBeUndefined();
    await s.close();
  });

  it('keeps samples in time order and returns those since a time', async () => {
    const s = make(() => T);
    for (let i = 0; i < 5; i++) await s.addSample('p', { at: T + i * 60_000, queued: i, running: 0, arrivals: i, nodes: 1, desired: 1 });
    expect((await s.samples('p', T + 2 * 60_000)).map((x) => x.queued)).toEqual([2, 3, 4]);
    expect(await s.samples('other', 0)).toEqual([]);
    await s.close();
  });

  it('appends and reads events', async () => {
    const s = make(() => T);
    await s.addEvent({ at: T, pool: 'p', kind: 'scale-up', detail: '+2' });
    await s.addEvent({ at: T + 1000, pool: 'p', kind: 'drain', detail: 'p-a' });
    expect((await s.events(0)).map((e) => e.kind)).toEqual(['scale-up', 'drain']);
    await s.close();
  });

  it('keeps the latest job label sets per emitter', async () => {
    const s = make(() => T);
    expect(await s.getJobLabels('gl')).toBeUndefined();
    const labels = { at: T, kind: 'gitlab' as const, sets: [{ labels: ['linux'], jobs: 3 }, { labels: ['gpu'], jobs: 1 }] };
    await s.putJobLabels('gl', labels);
    expect(await s.getJobLabels('gl')).toEqual(labels);
    await s.close();
  });

  it('gives a pool lease to one owner at a time, renews it for its owner, and releases it only for its owner', async () => {
    let now = T;
    const s = make(() => now);
    expect(await s.acquireLease('p', 'a', 10_000)).toBe(true);
    expect(await s.acquireLease('p', 'b', 10_000)).toBe(false);
    expect(await s.acquireLease('p', 'a', 10_000)).toBe(true);
    await s.releaseLease('p', 'b');
    expect(await s.acquireLease('p', 'b', 10_000)).toBe(false);
    await s.releaseLease('p', 'a');
    expect(await s.acquireLease('p', 'b', 10_000)).toBe(true);
    expect(await s.acquireLease('q', 'a', 10_000)).toBe(true);
    now += 60_000;
    await s.close();
  });

  it('lets exactly one of many concurrent owners take a lease', async () => {
    const ns = Math.random().toString(36).slice(2);
    const stores = Array.from({ length: 8 }, () => make(() => T, ns));
    const got = await Promise.all(stores.map((s, i) => s.acquireLease('race', `owner-${i}`, 10_000)));
    expect(got.filter(Boolean)).toHaveLength(1);
    await Promise.all(stores.map((s) => s.close()));
  });
});

describe('lease expiry', () => {
  it('file store: an expired lease is taken over', async () => {
    let now = 1_000_000;
    const d = mkdtempSync(join(tmpdir(), 'parmanu-hist-'));
    dirs.push(d);
    const s = new FileHistoryStore(d, () => now);
    expect(await s.acquireLease('p', 'a', 1000)).toBe(true);
    expect(await s.acquireLease('p', 'b', 1000)).toBe(false);
    now += 5000;
    expect(await s.acquireLease('p', 'b', 1000)).toBe(true);
  });

  it('redis store: an expired lease is taken over', async () => {
    const s = new RedisHistoryStore(redis.url);
    expect(await s.acquireLease('exp', 'a', 100)).toBe(true);
    expect(await s.acquireLease('exp', 'b', 100)).toBe(false);
    await new Promise((r) => setTimeout(r, 200));
    expect(await s.acquireLease('exp', 'b', 100)).toBe(true);
    await s.close();
  });

  it('redis store: an unreachable Redis is a HistoryError with a clear reason', async () => {
    const s = new RedisHistoryStore('redis://127.0.0.1:1');
    await expect(s.getPool('p')).rejects.toThrowError(HistoryError);
    await expect(s.getPool('p')).rejects.toThrowError(/^redis GET: cannot connect to 127\.0\.0\.1:1 \(is Redis running at REDIS_URL\?\)$/);
    await s.close();
  });
});
