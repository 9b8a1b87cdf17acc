/** One contract suite for the HistoryStore interface, run against the file store and real Redis. */
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { HistoryError, LeaseLostError, type HistoryStore, type Lease, type PoolRecord } from '../../src/history/types.js';
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

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const T = 1_764_000_000_000;

/**
 * A test clock for both stores: the file store's leases expire on the clock it is given, Redis'
 * on its own (PX), so `pass` moves the given clock and also lets real time pass.
 */
function testClock() {
  const c = { now: T, clock: () => c.now, pass: async (ms: number) => ((c.now += ms), await sleep(ms)) };
  return c;
}

/** Each maker opens a store on a namespace: stores opened on the same namespace share data. */
const makers: Array<[string, (clock: () => number, ns?: string) => HistoryStore]> = [
  ['file', (clock, ns) => {
    const d = ns ? join(tmpdir(), `parmanu-hist-${ns}`) : mkdtempSync(join(tmpdir(), 'parmanu-hist-'));
    dirs.push(d);
    return new FileHistoryStore(d, clock);
  }],
  ['redis', (clock, ns) => new RedisHistoryStore(redis.url, clock, `parmanu:t${ns ?? Math.random().toString(36).slice(2)}:`)],
];

const record = (pool: string, extra: Partial<PoolRecord> = {}): PoolRecord => ({ pool, nodes: [], pendingRunners: {}, seenJobs: [], intents: [], ...extra });
const ns = () => Math.random().toString(36).slice(2);

describe.each(makers)('%s history store', (_name, make) => {
  /** Two stores on one namespace (two reconcilers), on one test clock. */
  function pair() {
    const c = testClock();
    const n = ns();
    return { c, a: make(c.clock, n), b: make(c.clock, n) };
  }

  it('stores and returns pool records, validated, with intents, config and the lifecycle fields of nodes', async () => {
    const s = make(() => T);
    expect(await s.getPool('p')).toBeUndefined();
    const lease = (await s.acquireLease('p', 'a', 60_000))!;
    const rec: PoolRecord = {
      pool: 'p',
      nodes: [{ name: 'p-a', createdAt: T, drainingSince: T + 1, drainReason: 'outdated', onlineAt: T + 2, offlineSince: T + 3, registeredAt: T, lastBusyAt: T }],
      memory: { targets: [{ at: T, nodes: 2 }] },
      applied: { names: ['p-a'], at: T, stackHash: 'abc' },
      lastFullPlanAt: T,
      pendingRunners: { 'p-b': T },
      seenJobs: ['1', '2'],
      intents: [{ node: 'p-a', action: 'pause', at: T }],
      config: { pool: { image: 'ubuntu' }, platform: { type: 'local' } },
    };
    await s.putPool(rec, lease);
    expect(await s.getPool('p')).toEqual(rec);
    await s.clear();
    expect(await s.getPool('p')).toBeUndefined();
    await s.close();
  });

  it('lists the pools that have a record and deletes one under its lease', async () => {
    const s = make(() => T);
    expect(await s.listPools()).toEqual([]);
    const lb = (await s.acquireLease('b', 'o', 60_000))!;
    const la = (await s.acquireLease('a', 'o', 60_000))!;
    await s.putPool(record('b'), lb);
    await s.putPool(record('a'), la);
    await s.acquireLease('c', 'o', 60_000); // a lease alone is no record
    expect(await s.listPools()).toEqual(['a', 'b']);
    await s.deletePool('b', lb);
    expect(await s.listPools()).toEqual(['a']);
    expect(await s.getPool('b')).toBeUndefined();
    await s.deletePool('b', lb); // deleting what is gone is fine
    await s.close();
  });

  it('keeps samples in time order and returns those since a time, fenced or not', async () => {
    const s = make(() => T);
    const lease = (await s.acquireLease('p', 'o', 60_000))!;
    for (let i = 0; i < 5; i++) await s.addSample('p', { at: T + i * 60_000, queued: i, running: 0, arrivals: i, nodes: 1, desired: 1 }, i % 2 ? lease : undefined);
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

  it('gives a pool lease to one owner at a time; pools are independent', async () => {
    const { a, b } = pair();
    const la = await a.acquireLease('p', 'a', 10_000);
    expect(la).toMatchObject({ pool: 'p', owner: 'a' });
    expect(await b.acquireLease('p', 'b', 10_000)).toBeUndefined();
    expect(await b.acquireLease('q', 'b', 10_000)).toMatchObject({ pool: 'q', owner: 'b' });
    // The holder taking it again gets a new, larger token: the earlier one is superseded.
    const la2 = (await a.acquireLease('p', 'a', 10_000))!;
    expect(la2.token).toBeGreaterThan(la!.token);
    await expect(a.putPool(record('p'), la!)).rejects.toThrowError(LeaseLostError);
    await a.putPool(record('p'), la2);
    await Promise.all([a.close(), b.close()]);
  });

  it('hands out strictly increasing tokens across expiry, takeover, release and clear()', async () => {
    const { c, a, b } = pair();
    const tokens: number[] = [];
    const l1 = (await a.acquireLease('p', 'a', 40))!;
    tokens.push(l1.token);
    await c.pass(80); // expired
    const l2 = (await b.acquireLease('p', 'b', 10_000))!;
    tokens.push(l2.token);
    await b.releaseLease(l2);
    const l3 = (await a.acquireLease('p', 'a', 40))!;
    tokens.push(l3.token);
    await c.pass(80);
    const l4 = (await a.acquireLease('p', 'a', 10_000))!; // the same owner after its own expiry
    tokens.push(l4.token);
    await a.releaseLease(l4);
    await a.clear();
    const l5 = (await b.acquireLease('p', 'b', 10_000))!;
    tokens.push(l5.token);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
    for (const t of tokens) expect(Number.isSafeInteger(t)).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a write fenced with a superseded lease (LeaseLostError) and leaves the record and samples unchanged', async () => {
    const { c, a, b } = pair();
    const old = (await a.acquireLease('p', 'a', 40))!;
    await a.putPool(record('p', { seenJobs: ['by-a'] }), old);
    await c.pass(80);
    const cur = (await b.acquireLease('p', 'b', 10_000))!;
    await b.putPool(record('p', { seenJobs: ['by-b'] }), cur);
    const sample = { at: T, queued: 1, running: 0, arrivals: 0, nodes: 0, desired: 0 };

    const lost = await a.putPool(record('p', { seenJobs: ['late-a'] }), old).catch((e: unknown) => e);
    expect(lost).toBeInstanceOf(LeaseLostError);
    expect(lost).toBeInstanceOf(HistoryError);
    expect((lost as Error).message).toMatch(/superseded/);
    await expect(a.deletePool('p', old)).rejects.toThrowError(LeaseLostError);
    await expect(a.addSample('p', sample, old)).rejects.toThrowError(LeaseLostError);
    expect(await a.getPool('p')).toEqual(record('p', { seenJobs: ['by-b'] }));
    expect(await a.samples('p', 0)).toEqual([]);
    expect(await a.listPools()).toEqual(['p']);
    // An unfenced sample is still taken (the caller chose not to fence it).
    await a.addSample('p', sample);
    expect(await a.samples('p', 0)).toHaveLength(1);
    await Promise.all([a.close(), b.close()]);
  });

  it('still accepts the writes and renewal of a lease that expired when nobody took the pool since', async () => {
    const { c, a, b } = pair();
    const l = (await a.acquireLease('p', 'a', 40))!;
    await c.pass(80);
    await a.putPool(record('p', { seenJobs: ['after-expiry'] }), l);
    expect((await a.getPool('p'))?.seenJobs).toEqual(['after-expiry']);
    expect(await a.renewLease(l, 10_000)).toBe(true);
    // Renewed: held again, so another owner cannot take it.
    expect(await b.acquireLease('p', 'b', 10_000)).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });

  it('renews a held lease past its first expiry, and not once it was taken over', async () => {
    const { c, a, b } = pair();
    const la = (await a.acquireLease('p', 'a', 60))!;
    await c.pass(30);
    expect(await a.renewLease(la, 100)).toBe(true);
    await c.pass(50); // past the first TTL, within the renewed one
    expect(await b.acquireLease('p', 'b', 10_000)).toBeUndefined();
    await c.pass(100);
    const lb = (await b.acquireLease('p', 'b', 10_000))!;
    expect(lb.token).toBeGreaterThan(la.token);
    expect(await a.renewLease(la, 10_000)).toBe(false);
    // The failed renewal did not give it back to a.
    expect(await a.acquireLease('p', 'a', 10_000)).toBeUndefined();
    await b.putPool(record('p'), lb);
    await Promise.all([a.close(), b.close()]);
  });

  it('releasing an old lease does not release the new one', async () => {
    const { c, a, b } = pair();
    const la = (await a.acquireLease('p', 'a', 40))!;
    await c.pass(80);
    const lb = (await b.acquireLease('p', 'b', 10_000))!;
    await a.releaseLease(la);
    await a.releaseLease({ ...lb, owner: 'a' }); // the right token under another owner's name
    expect(await a.acquireLease('p', 'c', 10_000)).toBeUndefined();
    await b.putPool(record('p'), lb);
    expect(await b.renewLease(lb, 10_000)).toBe(true);
    // The same owner name with an older token does not release it either.
    const lb2 = (await b.acquireLease('p', 'b', 10_000))!;
    await b.releaseLease(lb);
    expect(await a.acquireLease('p', 'c', 10_000)).toBeUndefined();
    await b.putPool(record('p'), lb2);
    await Promise.all([a.close(), b.close()]);
  });

  it('ends a released lease: the pool is free, and the released lease neither writes nor renews', async () => {
    const { a, b } = pair();
    const la = (await a.acquireLease('p', 'a', 10_000))!;
    await a.releaseLease(la);
    await expect(a.putPool(record('p'), la)).rejects.toThrowError(LeaseLostError);
    expect(await a.renewLease(la, 10_000)).toBe(false);
    const lb = (await b.acquireLease('p', 'b', 10_000))!;
    expect(lb.token).toBeGreaterThan(la.token);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a lease of another pool, or no lease at all, as a HistoryError that is not a lost lease', async () => {
    const s = make(() => T);
    const lq = (await s.acquireLease('q', 'o', 10_000))!;
    const wrongPool = await s.putPool(record('p'), lq).catch((e: unknown) => e);
    expect(wrongPool).toBeInstanceOf(HistoryError);
    expect(wrongPool).not.toBeInstanceOf(LeaseLostError);
    await expect(s.putPool(record('q'), { pool: 'q', owner: 'o', token: 1.5 } as Lease)).rejects.toThrowError(/not a lease/);
    await expect(s.putPool(record('never'), { pool: 'never', owner: 'o', token: 1 })).rejects.toThrowError(LeaseLostError);
    expect(await s.getPool('p')).toBeUndefined();
    await s.close();
  });

  it('lets exactly one of many concurrent owners take a lease (one process)', async () => {
    const n = ns();
    const stores = Array.from({ length: 8 }, () => make(() => T, n));
    const got = await Promise.all(stores.map((s, i) => s.acquireLease('race', `owner-${i}`, 10_000)));
    expect(got.filter(Boolean)).toHaveLength(1);
    await Promise.all(stores.map((s) => s.close()));
  });

  const obs = (at: number, jobs: Array<{ id: string; status: 'queued' | 'running' }> = []) => ({
    emitter: 'gl',
    at,
    ok: true,
    partial: false,
    jobs: jobs.map((j) => ({ ...j, labels: ['linux'], queuedAt: at - 1000 })),
    runners: [{ id: '7', name: 'p-n1', labels: ['linux'], pool: 'p', online: true, busy: false, paused: false, contacted: true }],
    meta: { durationMs: 12, apiCalls: 3, notModified: 1 },
  });

  it("keeps each emitter's latest observation with a version that grows only when what was seen changed", async () => {
    const { a, b } = pair();
    expect(await a.getObservation('gl')).toBeUndefined();
    const first = await a.putObservation({ observation: obs(T, [{ id: '1', status: 'queued' }]), digest: 'd1', prober: 'p1' });
    expect(first).toMatchObject({ changed: true, written: true });
    expect(first.version).toBeGreaterThan(0);
    // Another prober on the same store reads it back, validated.
    expect(await b.getObservation('gl')).toEqual({ version: first.version, digest: 'd1', prober: 'p1', observation: obs(T, [{ id: '1', status: 'queued' }]) });
    // The same digest later: written (its time moves), the version stays.
    expect(await b.putObservation({ observation: obs(T + 1000, [{ id: '1', status: 'queued' }]), digest: 'd1', prober: 'p2' })).toEqual({ version: first.version, changed: false, written: true });
    expect((await a.getObservation('gl'))?.observation.at).toBe(T + 1000);
    // An older observation (a slow prober) is not written over a newer one.
    expect(await a.putObservation({ observation: obs(T + 500, []), digest: 'd0', prober: 'p1' })).toEqual({ version: first.version, changed: false, written: false });
    // A change: a higher version.
    const changed = await a.putObservation({ observation: obs(T + 2000, [{ id: '1', status: 'running' }]), digest: 'd2', prober: 'p1' });
    expect(changed.changed).toBe(true);
    expect(changed.version).toBeGreaterThan(first.version);
    // Emitters are apart.
    expect(await a.getObservation('gh')).toBeUndefined();
    // Versions keep growing across a clear() (scalers compare them with the ones they saw).
    await a.clear();
    expect(await b.getObservation('gl')).toBeUndefined();
    expect((await b.putObservation({ observation: obs(T, []), digest: 'd3', prober: 'p1' })).version).toBeGreaterThan(changed.version);
    // What is not an observation is refused before it is written.
    await expect(a.putObservation({ observation: { ...obs(T + 9000), at: 'x' } as unknown as ReturnType<typeof obs>, digest: 'd', prober: 'p' })).rejects.toThrow();
    await Promise.all([a.close(), b.close()]);
  });

  it('tells who holds a lease and for how long; a lease taken after another owner\'s expired unreleased names that owner (a takeover)', async () => {
    const { c, a, b } = pair();
    expect(await a.leaseHolder('p')).toBeUndefined();
    const la = (await a.acquireLease('p', 'replica-a', 300))!;
    expect(la.takenOverFrom).toBeUndefined();
    const h = await b.leaseHolder('p');
    expect(h).toMatchObject({ owner: 'replica-a', token: la.token });
    expect(h!.expiresInMs).toBeGreaterThan(0);
    expect(h!.expiresInMs).toBeLessThanOrEqual(300);
    // Released, then taken: no takeover.
    await a.releaseLease(la);
    expect(await b.leaseHolder('p')).toBeUndefined();
    const lb = (await b.acquireLease('p', 'replica-b', 300))!;
    expect(lb.takenOverFrom).toBeUndefined();
    // Expired unreleased (replica-b died), then taken: a takeover from replica-b.
    await c.pass(500);
    expect(await a.leaseHolder('p')).toBeUndefined();
    const la2 = (await a.acquireLease('p', 'replica-a', 60_000))!;
    expect(la2.takenOverFrom).toBe('replica-b');
    // The same owner taking its own expired lease again is no takeover.
    await c.pass(0);
    const lx = (await a.acquireLease('q', 'replica-a', 200))!;
    await c.pass(400);
    expect((await a.acquireLease('q', 'replica-a', 200))!.takenOverFrom).toBeUndefined();
    expect(lx.takenOverFrom).toBeUndefined();
    await a.ping();
    await Promise.all([a.close(), b.close()]);
  });

  it('claims a webhook delivery id once per emitter, shared between stores, until its TTL passes; clear() forgets claims', async () => {
    const { c, a, b } = pair();
    expect(await a.claimDelivery('gh', 'd-1', 60_000)).toBe(true);
    expect(await a.claimDelivery('gh', 'd-1', 60_000)).toBe(false);
    // Another reconciler on the same history sees the claim.
    expect(await b.claimDelivery('gh', 'd-1', 60_000)).toBe(false);
    // Ids are per emitter, and other ids are free.
    expect(await b.claimDelivery('gl', 'd-1', 60_000)).toBe(true);
    expect(await b.claimDelivery('gh', 'd-2', 60_000)).toBe(true);
    // A short claim expires (the file store on its clock, Redis on its own).
    expect(await a.claimDelivery('gh', 'short', 150)).toBe(true);
    expect(await b.claimDelivery('gh', 'short', 150)).toBe(false);
    await c.pass(400);
    expect(await b.claimDelivery('gh', 'short', 60_000)).toBe(true);
    // The long claims outlive the short one.
    expect(await a.claimDelivery('gh', 'd-1', 60_000)).toBe(false);
    await a.clear();
    expect(await b.claimDelivery('gh', 'd-1', 60_000)).toBe(true);
    await a.close();
    await b.close();
  });

  it('gives a delivery id to exactly one of many concurrent claims, and refuses an empty or overlong id as a HistoryError', async () => {
    const n = ns();
    const stores = Array.from({ length: 8 }, () => make(() => T, n));
    const got = await Promise.all(stores.map((s) => s.claimDelivery('gh', '72d3162e-cc78-11e3-81ab-4c9367dc0958', 60_000)));
    expect(got.filter(Boolean)).toHaveLength(1);
    const s = stores[0] as HistoryStore;
    await expect(s.claimDelivery('gh', '', 60_000)).rejects.toBeInstanceOf(HistoryError);
    await expect(s.claimDelivery('gh', 'x'.repeat(201), 60_000)).rejects.toBeInstanceOf(HistoryError);
    expect(await s.claimDelivery('gh', 'x'.repeat(200), 60_000)).toBe(true);
    await Promise.all(stores.map((x) => x.close()));
  });

  it('keeps spend records per stack, fenced, listed together; the spend ledger begins once and clear() forgets both', async () => {
    const { a, b } = pair();
    expect(await a.listSpend()).toEqual([]);
    expect(await a.spendLedger()).toBeUndefined();
    const spend = (pool: string, spent: number) => ({ pool, at: T, running: 3, stopped: 1, hourlyCost: 0.25, stoppedHourlyCost: 0.01, months: { '2025-11': { since: T - 1000, spent, nodeHours: 12 } } });
    const la = (await a.acquireLease('p', 'a', 60_000))!;
    const lb = (await b.acquireLease('q', 'b', 60_000))!;
    await a.putSpend(spend('p', 1.5), la);
    // A failover stack's record is fenced by its pool's lease.
    await a.putSpend(spend('p@gcp', 2), la);
    await expect(b.putSpend(spend('p@aws', 2), lb)).rejects.toBeInstanceOf(HistoryError);
    expect(await b.getSpend('p')).toEqual(spend('p', 1.5));
    expect(await a.listSpend()).toEqual([spend('p', 1.5), spend('p@gcp', 2)]);
    // Fenced: under another pool's lease, or a superseded one, nothing is written.
    await expect(a.putSpend(spend('p', 9), lb)).rejects.toBeInstanceOf(HistoryError);
    const taken = (await b.acquireLease('p', 'b', 1))!;
    expect(taken).toBeUndefined();
    await a.releaseLease(la);
    await b.acquireLease('p', 'b', 60_000);
    await expect(a.putSpend(spend('p', 9), la)).rejects.toBeInstanceOf(LeaseLostError);
    expect((await a.getSpend('p'))?.months['2025-11']?.spent).toBe(1.5);
    // Invalid records are refused before any write.
    await expect(b.putSpend(spend('q', -1), lb)).rejects.toThrow();
    expect(await b.getSpend('q')).toBeUndefined();
    // The ledger: the first start wins, later ones read it.
    expect(await a.spendLedger(T + 5)).toBe(T + 5);
    expect(await b.spendLedger(T + 9)).toBe(T + 5);
    expect(await b.spendLedger()).toBe(T + 5);
    await b.clear();
    expect(await a.listSpend()).toEqual([]);
    expect(await a.getSpend('p')).toBeUndefined();
    expect(await a.spendLedger()).toBeUndefined();
    await Promise.all([a.close(), b.close()]);
  });
});

describe('file store specifics', () => {
  const open = (clock: () => number = () => T) => {
    const d = mkdtempSync(join(tmpdir(), 'parmanu-hist-'));
    dirs.push(d);
    return { d, s: new FileHistoryStore(d, clock) };
  };

  const sample = (i: number) => ({ at: T + i * 60_000, queued: i, running: 0, arrivals: 0, nodes: 1, desired: 1 });
  const dayFile = (d: string, pool = 'p') => join(d, 'history', 'samples', pool, `${Math.floor(T / 86_400_000)}.jsonl`);

  it('sets aside a spend record that does not validate (read back with zod) with a warning: read as absent, not listed', async () => {
    const warned: string[] = [];
    const d = mkdtempSync(join(tmpdir(), 'parmanu-hist-'));
    dirs.push(d);
    const s = new FileHistoryStore(d, () => T, (m) => warned.push(m));
    mkdirSync(join(d, 'history', 'spend'), { recursive: true });
    writeFileSync(join(d, 'history', 'spend', 'p.json'), JSON.stringify({ pool: 'p', at: T, running: -1 }));
    expect(await s.listSpend()).toEqual([]);
    expect(await s.getSpend('p')).toBeUndefined();
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/^the spend record p\.json .* is invalid \(running: .*\): set aside as .*p\.json\.corrupt-.*, its spend is counted afresh from the next cycle$/);
    expect(readdirSync(join(d, 'history', 'spend')).filter((f) => f.includes('.corrupt-'))).toHaveLength(1);
  });

  it('skips a torn sample line with one warning naming the file and line, and the next append is not swallowed by it', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    const lease = (await s.acquireLease('p', 'o', 60_000))!;
    await s.addSample('p', sample(0), lease);
    appendFileSync(dayFile(d), '{"at":1764000060000,"que'); // a crash mid-append: no newline
    await s.addSample('p', sample(2), lease);
    await s.addSample('p', sample(3));
    expect((await s.samples('p', 0)).map((x) => x.queued)).toEqual([0, 2, 3]);
    const aside = `${dayFile(d)}.corrupt-20251124T160000000Z`;
    expect(warned).toEqual([`${dayFile(d)}: skipped 1 unreadable sample of pool p (line 2); moved to ${aside}`]);
    // The file is repaired once: the bad line kept beside it, the good ones in order.
    expect(readFileSync(aside, 'utf8')).toBe('{"at":1764000060000,"que\n');
    expect(readFileSync(dayFile(d), 'utf8').split('\n')).toHaveLength(4);
    // Read again, by this store (the next cycle) or by a new process (the next scheduled run, report): no warning.
    expect(await s.samples('p', 0)).toHaveLength(3);
    const again = new FileHistoryStore(d, () => T);
    again.onWarning = (m) => warned.push(m);
    expect((await again.samples('p', 0)).map((x) => x.queued)).toEqual([0, 2, 3]);
    expect(warned).toHaveLength(1);
  });

  it('still reads a samples file with a bad line when it cannot be repaired (the mutex cannot be taken: a read-only or broken state directory)', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    await s.addSample('p', sample(0));
    appendFileSync(dayFile(d), '{"torn\n' + JSON.stringify(sample(1)) + '\n');
    rmSync(join(d, 'history', 'leases'), { recursive: true, force: true });
    writeFileSync(join(d, 'history', 'leases'), 'not a directory');
    expect((await s.samples('p', 0)).map((x) => x.queued)).toEqual([0, 1]);
    expect(warned).toEqual([`${dayFile(d)}: skipped 1 unreadable sample of pool p (line 2)`]);
  });

  it('only skips a bad last line of a samples file (it may be an append in progress), without rewriting the file', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    await s.addSample('p', sample(0));
    appendFileSync(dayFile(d), '{"at":1764000060000,"que');
    const before = readFileSync(dayFile(d), 'utf8');
    expect((await s.samples('p', 0)).map((x) => x.queued)).toEqual([0]);
    expect(warned).toEqual([`${dayFile(d)}: skipped 1 unreadable sample of pool p (line 2)`]);
    expect(readFileSync(dayFile(d), 'utf8')).toBe(before);
    expect(readdirSync(join(d, 'history', 'samples', 'p'))).toHaveLength(1);
  });

  it('sets aside a samples file with no readable line (a zeroed file after a crash) and starts afresh', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    mkdirSync(join(d, 'history', 'samples', 'p'), { recursive: true });
    writeFileSync(dayFile(d), Buffer.alloc(300));
    expect(await s.samples('p', 0)).toEqual([]);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(new RegExp(`^${escapeRe(dayFile(d))}: no readable sample of pool p in it; set aside as ${escapeRe(dayFile(d))}\\.corrupt-\\d{8}T\\d{9}Z, new samples start a new file$`));
    expect(readdirSync(join(d, 'history', 'samples', 'p'))).toEqual([`${Math.floor(T / 86_400_000)}.jsonl.corrupt-20251124T160000000Z`]);
    await s.addSample('p', sample(1));
    expect((await s.samples('p', 0)).map((x) => x.queued)).toEqual([1]);
    expect(warned).toHaveLength(1);
  });

  it('sets aside a pool record that is not JSON or not valid, with a warning: read as absent, listed by nobody, rewritten by the next put', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    const file = join(d, 'history', 'pools', 'p.json');
    writeFileSync(file, '{"pool":"p","nodes":[{"na');
    expect(await s.getPool('p')).toBeUndefined();
    expect(warned).toEqual([`the history record of pool p ${file} is not JSON: set aside as ${file}.corrupt-20251124T160000000Z, the next cycle rebuilds it from Terraform state`]);
    expect(readFileSync(`${file}.corrupt-20251124T160000000Z`, 'utf8')).toBe('{"pool":"p","nodes":[{"na');
    writeFileSync(join(d, 'history', 'pools', 'q.json'), JSON.stringify({ pool: 'q', nodes: 'many' }));
    const lease = (await s.acquireLease('r', 'o', 60_000))!;
    await s.putPool(record('r'), lease);
    expect(await s.listPools()).toEqual(['r']);
    expect(warned[1]).toMatch(/^the history record of pool q .*q\.json is invalid \(nodes: .*\): set aside as .*q\.json\.corrupt-/);
    const lp = (await s.acquireLease('p', 'o', 60_000))!;
    await s.putPool(record('p'), lp);
    expect(await s.getPool('p')).toEqual(record('p'));
    expect(warned).toHaveLength(2);
  });

  it('skips a torn event line and sets aside unreadable job labels, with warnings', async () => {
    const { d, s } = open();
    const warned: string[] = [];
    s.onWarning = (m) => warned.push(m);
    await s.addEvent({ at: T, pool: 'p', kind: 'scale-up', detail: '+1' });
    appendFileSync(join(d, 'history', 'events.jsonl'), '{"at":17640');
    await s.addEvent({ at: T + 1, pool: 'p', kind: 'error', detail: 'boom' });
    expect((await s.events(0)).map((e) => e.kind)).toEqual(['scale-up', 'error']);
    expect(warned).toEqual([`${join(d, 'history', 'events.jsonl')}: skipped 1 unreadable event (line 2)`]);
    writeFileSync(join(d, 'history', 'labels-gl.json'), '{"at":');
    expect(await s.getJobLabels('gl')).toBeUndefined();
    expect(warned[1]).toMatch(/^the recent job labels of emitter gl .*labels-gl\.json is not JSON: set aside as .*labels-gl\.json\.corrupt-.*, the next probe writes them again$/);
  });

  it('takes over a lease whose process is gone on this host, with a larger token', async () => {
    const { d, s } = open();
    const l = (await s.acquireLease('p', 'a', 3_600_000))!;
    writeFileSync(join(d, 'history', 'leases', 'p.lock'), JSON.stringify({ owner: 'a', pid: 2 ** 22 + 1, host: hostname(), token: l.token, expiresAt: T + 3_600_000 }));
    const lb = (await s.acquireLease('p', 'b', 1000))!;
    expect(lb.token).toBeGreaterThan(l.token);
  });

  it('keeps tokens growing when the counter, or the whole state directory, was lost; the old lease then writes nothing', async () => {
    let now = T;
    const { d, s } = open(() => now);
    const l1 = (await s.acquireLease('p', 'a', 10))!;
    now += 100;
    rmSync(join(d, 'history', 'leases', 'p.token'));
    await expect(s.putPool(record('p'), l1)).rejects.toThrowError(/no lease is on record/);
    const l2 = (await s.acquireLease('p', 'b', 10))!;
    expect(l2.token).toBeGreaterThan(l1.token);
    writeFileSync(join(d, 'history', 'leases', 'p.token'), 'garbage');
    await expect(s.putPool(record('p'), l2)).rejects.toThrowError(LeaseLostError);
    rmSync(join(d, 'history'), { recursive: true, force: true });
    const s2 = new FileHistoryStore(d, () => now);
    const l3 = (await s2.acquireLease('p', 'c', 10))!;
    expect(l3.token).toBeGreaterThan(l2.token);
    await expect(s2.putPool(record('p'), l2)).rejects.toThrowError(LeaseLostError);
  });

  it('honours a lock file written before tokens existed until it expires', async () => {
    let now = T;
    const { d, s } = open(() => now);
    writeFileSync(join(d, 'history', 'leases', 'p.lock'), JSON.stringify({ owner: 'old', pid: process.pid, host: 'elsewhere', expiresAt: T + 1000 }));
    expect(await s.acquireLease('p', 'b', 1000)).toBeUndefined();
    now += 2000;
    expect(await s.acquireLease('p', 'b', 1000)).toMatchObject({ owner: 'b' });
  });

  it('breaks the pool mutex of a dead holder and leaves a live one alone', async () => {
    const { d, s } = open();
    const mutex = join(d, 'history', 'leases', 'p.mutex');
    mkdirSync(mutex);
    writeFileSync(join(mutex, 'dead'), JSON.stringify({ pid: 2 ** 22 + 1, host: hostname(), at: Date.now() }));
    expect(await s.acquireLease('p', 'a', 1000)).toMatchObject({ owner: 'a' });
    expect(readdirSync(join(d, 'history', 'leases')).filter((f) => f.startsWith('p.mutex'))).toEqual([]);
    // A live holder (this process, fresh): the caller waits until it is done; other pools do not.
    mkdirSync(mutex);
    writeFileSync(join(mutex, 'live'), JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() }));
    let settled = false;
    const blocked = s.acquireLease('p', 'a', 1000).then((l) => ((settled = true), l));
    expect(await s.acquireLease('q', 'b', 1000)).toMatchObject({ owner: 'b' });
    await sleep(150);
    expect(settled).toBe(false);
    rmSync(mutex, { recursive: true });
    expect(await blocked).toMatchObject({ owner: 'a' });
  });
});

describe('redis store specifics', () => {
  it('keeps tokens growing when the counter was lost (FLUSHALL, a restart without persistence); the old lease then writes nothing', async () => {
    const prefix = `parmanu:t${ns()}:`;
    const s = new RedisHistoryStore(redis.url, () => T, prefix);
    const raw = new Redis(redis.url);
    try {
      const l1 = (await s.acquireLease('p', 'a', 60_000))!;
      await raw.del(`${prefix}fence:p`, `${prefix}lease:p`);
      await expect(s.putPool(record('p'), l1)).rejects.toThrowError(/no lease is on record/);
      const l2 = (await s.acquireLease('p', 'b', 60_000))!;
      expect(l2.token).toBeGreaterThan(l1.token);
      await expect(s.putPool(record('p'), l1)).rejects.toThrowError(LeaseLostError);
      expect(await raw.ttl(`${prefix}fence:p`)).toBe(-1); // the counter never expires
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  it('sets aside a spend record that does not validate (read back with zod) with a warning: read as absent, not listed', async () => {
    const prefix = `parmanu:t${ns()}:`;
    const warned: string[] = [];
    const s = new RedisHistoryStore(redis.url, () => T, prefix, (m) => warned.push(m));
    const raw = new Redis(redis.url);
    try {
      await raw.hset(`${prefix}spend`, 'p', JSON.stringify({ pool: 'p', at: T, running: -1 }), 'q', JSON.stringify({ pool: 'other', at: T, running: 1, stopped: 0, hourlyCost: 1, stoppedHourlyCost: 0, months: {} }));
      expect(await s.listSpend()).toEqual([]);
      expect(await s.getSpend('p')).toBeUndefined();
      expect(warned.sort()).toEqual([
        `the spend record of pool p (redis ${prefix}spend) is invalid (running: Too small: expected number to be >=0): set aside as ${prefix}corrupt:spend:p:2025-11-24T16:00:00.000Z; its spend is counted afresh from the next cycle`,
        `the spend record of pool q (redis ${prefix}spend) is another pool's: set aside as ${prefix}corrupt:spend:q:2025-11-24T16:00:00.000Z; its spend is counted afresh from the next cycle`,
      ]);
      expect(await raw.hlen(`${prefix}spend`)).toBe(0);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  it('sets aside an invalid pool record or job labels, and skips bad samples and events, each with one warning', async () => {
    const prefix = `parmanu:t${ns()}:`;
    const warned: string[] = [];
    const s = new RedisHistoryStore(redis.url, () => T, prefix, (m) => warned.push(m));
    const raw = new Redis(redis.url);
    try {
      await raw.set(`${prefix}pool:p`, JSON.stringify({ pool: 'p', nodes: 'many' }));
      expect(await s.getPool('p')).toBeUndefined();
      expect(warned).toEqual([`the history record of pool p (redis ${prefix}pool:p) is invalid (nodes: Invalid input: expected array, received string): set aside as ${prefix}corrupt:pool:p:2025-11-24T16:00:00.000Z, the next cycle rebuilds it from Terraform state`]);
      expect(await raw.get(`${prefix}corrupt:pool:p:2025-11-24T16:00:00.000Z`)).toBe(JSON.stringify({ pool: 'p', nodes: 'many' }));
      await raw.set(`${prefix}pool:q`, '{');
      expect(await s.listPools()).toEqual(['q']); // listed by key; reading it sets it aside
      expect(await s.getPool('q')).toBeUndefined();
      expect(warned[1]).toMatch(/pool q .* is not JSON: set aside/);
      expect(await s.listPools()).toEqual([]);
      const lease = (await s.acquireLease('p', 'o', 60_000))!;
      await s.putPool(record('p'), lease);
      expect(await s.getPool('p')).toEqual(record('p'));

      await s.addSample('p', { at: T, queued: 1, running: 0, arrivals: 0, nodes: 1, desired: 1 });
      await raw.zadd(`${prefix}samples:p`, T + 1000, '{"at":');
      await s.addSample('p', { at: T + 2000, queued: 3, running: 0, arrivals: 0, nodes: 1, desired: 1 });
      expect((await s.samples('p', 0)).map((x) => x.queued)).toEqual([1, 3]);
      expect(warned[2]).toBe(`redis ${prefix}samples:p: skipped an unreadable sample at ${T + 1000} (not JSON)`);
      await s.samples('p', 0);
      expect(warned).toHaveLength(3);

      await s.addEvent({ at: T, pool: 'p', kind: 'scale-up', detail: '+1' });
      const id = await raw.xadd(`${prefix}events`, '*', 'e', '{"at":"x"}');
      expect((await s.events(0)).map((e) => e.kind)).toEqual(['scale-up']);
      expect(warned[3]).toMatch(new RegExp(`^redis ${prefix}events: skipped an unreadable event ${id} \\(invalid \\(at: `));

      await raw.set(`${prefix}labels:gl`, 'nope');
      expect(await s.getJobLabels('gl')).toBeUndefined();
      expect(warned[4]).toMatch(/^the recent job labels of emitter gl .* is not JSON: set aside as /);
      expect(await raw.exists(`${prefix}labels:gl`)).toBe(0);
    } finally {
      raw.disconnect();
      await s.close();
    }
  });

  it('an unreachable Redis is a HistoryError with a clear reason', async () => {
    const s = new RedisHistoryStore('redis://127.0.0.1:1');
    await expect(s.getPool('p')).rejects.toThrowError(HistoryError);
    await expect(s.getPool('p')).rejects.toThrowError(/^redis GET: cannot connect to 127\.0\.0\.1:1 \(is Redis running at REDIS_URL\?\)$/);
    await expect(s.acquireLease('p', 'a', 1000)).rejects.toThrowError(HistoryError);
    await s.close();
  });
});
