/**
 * Reconcile on a history with torn writes, and the job waits it records, end to end: real
 * terraform (local platform), the GitLab emulator, the file store and real Redis.
 */
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import type { HistoryStore } from '../../src/history/types.js';
import { normalize } from '../../src/policy/load.js';
import { PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import { reconcileOnce, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { gitlabGroup, useRedisSuite } from './suite.js';

const suite = useRedisSuite();
const DAY = 86_400_000;

async function setup(history: (stateDir: string) => HistoryStore) {
  const { emu, project, emitter: gitlab } = await gitlabGroup();
  const policy = normalize({
    emitters: new Map([['ci', gitlab]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    // predict on: every cycle reads the pool's samples.
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], scaling: { predict: true, scaleDownAfter: '1h' } })]]),
  });
  const stateDir = join(suite.tempDir('parmanu-torn-'), 'state');
  const store = history(stateDir);
  const warnings: string[] = [];
  store.onWarning = (m) => warnings.push(m);
  let id = 0;
  const deps: ReconcileDeps = {
    policy,
    emitters: new Map([['ci', new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 1000, retries: 1, concurrency: 8, backoffMs: 5 }))]]),
    history: store,
    terraform: new Terraform({ bin: process.env.PARMANU_TERRAFORM ?? 'terraform' }),
    stateDir,
    clock: Date.now,
    owner: 'test',
    newId: () => `n${(id++).toString().padStart(3, '0')}`,
  };
  return { emu, project, store, stateDir, warnings, cycle: () => reconcileOnce(deps) };
}

describe('reconcile on a torn history', () => {
  it('records the waits of the jobs it sees start, and survives a torn pool record and a torn sample line with one warning each (file store)', async () => {
    const { emu, project, store, stateDir, warnings, cycle } = await setup((dir) => new FileHistoryStore(dir));
    try {
      const now = Date.now();
      const a = emu.addJob(project, 'pending', ['linux'], { created_at: new Date(now - 90_000).toISOString() });
      const b = emu.addJob(project, 'pending', ['linux'], { created_at: new Date(now - 30_000).toISOString() });
      let r = await cycle();
      expect(r.pools[0]).toMatchObject({ create: ['p-n000', 'p-n001'] });
      // Both start: one after 50 s in the queue, one after 20 s.
      Object.assign(a, { status: 'running', started_at: new Date(now - 40_000).toISOString(), runner: { id: 1, description: 'p-n000' } });
      Object.assign(b, { status: 'running', started_at: new Date(now - 10_000).toISOString(), runner: { id: 2, description: 'p-n001' } });
      r = await cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      let samples = await store.samples('p', 0);
      expect(samples.map((s) => s.waits)).toEqual([undefined, [50, 20]]);
      // Seen running again: not counted twice.
      r = await cycle();
      samples = await store.samples('p', 0);
      expect(samples.at(-1)?.waits).toBeUndefined();
      expect(warnings).toEqual([]);

      // A crash mid-write: the pool record cut short, a sample line torn.
      const record = join(stateDir, 'history', 'pools', 'p.json');
      writeFileSync(record, readFileSync(record, 'utf8').slice(0, 40));
      const day = join(stateDir, 'history', 'samples', 'p', `${Math.floor(Date.now() / DAY)}.jsonl`);
      appendFileSync(day, '{"at":17');
      r = await cycle();
      expect(r.ok).toBe(true);
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/history was empty: rebuilt 2 nodes from Terraform state/);
      expect(r.pools[0]?.create).toEqual([]);
      expect(warnings).toHaveLength(2);
      expect(warnings.find((w) => w.includes('p.json'))).toMatch(/^the history record of pool p .*p\.json is not JSON: set aside as .*p\.json\.corrupt-\d{8}T\d{9}Z, the next cycle rebuilds it from Terraform state$/);
      expect(warnings.find((w) => w.includes('.jsonl'))).toBe(`${day}: skipped 1 unreadable sample of pool p (line 4)`);
      expect(readdirSync(join(stateDir, 'history', 'pools')).filter((f) => f.includes('.corrupt-'))).toHaveLength(1);
      // The next cycle: the record is whole again; the torn line, no longer the last one once this
      // cycle's sample followed it, is moved out of the file (one more warning that says where),
      // and from then on nothing warns again, in this process or the next.
      r = await cycle();
      expect(warnings).toHaveLength(3);
      expect(warnings[2]).toMatch(new RegExp(`^${day.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: skipped 1 unreadable sample of pool p \\(line 4\\); moved to .*\\.jsonl\\.corrupt-\\d{8}T\\d{9}Z$`));
      r = await cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect((await store.getPool('p'))?.nodes.map((n) => n.name).sort()).toEqual(['p-n000', 'p-n001']);
      expect(existsSync(record)).toBe(true);
      expect((await store.samples('p', 0)).length).toBe(6);
      expect(warnings).toHaveLength(3);
      const next = new FileHistoryStore(stateDir);
      next.onWarning = (m) => warnings.push(m);
      expect((await next.samples('p', 0)).length).toBe(6);
      await next.close();
      expect(warnings).toHaveLength(3);
    } finally {
      await store.close();
      await emu.stop();
    }
  }, 120_000);

  it('a sample that is not JSON in Redis no longer fails the pool on every cycle: skipped, warned once', async () => {
    const prefix = `parmanu:torn${Math.random().toString(36).slice(2)}:`;
    const { emu, project, store, warnings, cycle } = await setup(() => new RedisHistoryStore(suite.url, Date.now, prefix));
    const raw = new Redis(suite.url);
    try {
      emu.addJob(project, 'pending', ['linux']);
      await raw.zadd(`${prefix}samples:p`, Date.now() - 60_000, '{"at":');
      let r = await cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.create).toEqual(['p-n000']);
      r = await cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect(warnings).toEqual([expect.stringMatching(new RegExp(`^redis ${prefix}samples:p: skipped an unreadable sample at \\d+ \\(not JSON\\)$`))]);
    } finally {
      raw.disconnect();
      await store.close();
      await emu.stop();
    }
  }, 120_000);
});
