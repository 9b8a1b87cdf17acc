/**
 * Services mode as it is deployed (issue #16's proof): one prober (`probe --watch`) and three
 * scalers (`reconcile --watch --from-redis`) as real processes of the compiled CLI, over one real
 * Redis, against the GitLab emulator over HTTP, with real terraform on the local platform.
 *
 * - 30 pools converge (each queued job gets a node whose runner comes online);
 * - no pool is applied by two replicas at once (the fencing record: every apply's lease owner,
 *   token and wall-clock span, from the history's apply events);
 * - SIGKILL of a scaler holding pools → those pools are taken by another replica within the TTL;
 * - the prober down → the pools hold (their observation goes stale); back → they converge;
 * - no busy runner is ever removed; SIGTERM → exit 0 with the leases released.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { bin, cliAsync } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { useRedisSuite } from '../reconcile/suite.js';
import { expectNoSecrets } from '../secret-scan.js';

const POOLS = Number(process.env.SERVICES_TEST_POOLS ?? 30);
const TTL_MS = 4000;
const names = Array.from({ length: POOLS }, (_, i) => `p${String(i).padStart(2, '0')}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// A redis-server for the file, and a directory removed after it.
const redis = useRedisSuite();
const dir = redis.tempDir('parmanu-services-');

interface Proc {
  name: string;
  child: ChildProcess;
  out: string;
  err: string;
  /** The listener's base URL, once logged. */
  url(): string | undefined;
  json(): Array<Record<string, unknown>>;
}

function start(name: string, args: string[], env: Record<string, string>): Proc {
  const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    name,
    child,
    out: '',
    err: '',
    url() {
      for (const l of p.err.split('\n')) {
        const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)/.exec(l);
        if (m) return m[1];
      }
      return undefined;
    },
    json() {
      return p.out.split('\n').filter(Boolean).flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
    },
  };
  child.stdout?.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (p.err += d.toString()));
  return p;
}

const exited = (p: Proc) => new Promise<number | null>((resolve) => (p.child.exitCode !== null ? resolve(p.child.exitCode) : p.child.once('exit', (c) => resolve(c))));

async function until(f: () => boolean | Promise<boolean>, what: string, ms: number, procs: Proc[] = []): Promise<number> {
  const t0 = Date.now();
  if (process.env.SERVICES_TEST_TRACE) console.error(`${new Date().toISOString()} waiting for ${what}`);
  for (;;) {
    if (await f()) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${procs.map((p) => `--- ${p.name} stderr (tail)\n${p.err.slice(-3000)}`).join('\n')}`);
    await sleep(100);
  }
}

describe('services mode: 1 prober + 3 scalers over Redis', () => {
  it('converge 30 pools, never apply a pool twice at once, survive a killed scaler and a prober outage, never remove a busy runner', { timeout: 600_000 }, async () => {
    const emu = await new GitlabEmulator().start();
    const group = emu.addGroup('platform');
    const project = emu.addProject('api', group);
    const policy = join(dir, 'fleet.yaml');
    writeFileSync(
      policy,
      `emitters:\n  gl: { type: gitlab, url: "${emu.url}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, probeInterval: 5s }\nplatforms:\n  lab: { type: local }\npools:\n${names.map((n) => `  ${n}: { emitter: gl, platform: lab, labels: [${n}], scaling: { predict: false, spare: 0, max: 3, scaleDownAfter: 1s, minLifetime: 0s, bootTimeout: 10m } }\n`).join('')}`,
    );
    const env = { GL_TOKEN: emu.token, REDIS_URL: redis.url, PARMANU_STATE_DIR: join(dir, 'state'), PARMANU_LEASE_TTL: `${TTL_MS / 1000}s` };
    const store = new RedisHistoryStore(redis.url);
    const raw = new Redis(redis.url);
    // The runners' machines: a registered runner comes online (its VM booted), as gitlab-runner would.
    let booting = true;
    const machines = (async () => {
      while (booting) {
        for (const r of emu.runners) if (r.status === 'never_contacted') emu.connect(r.description);
        await sleep(100);
      }
    })();
    const procs: Proc[] = [];
    const scaler = (i: number) => start(`scaler-${i}`, ['reconcile', '--policy', policy, '--watch', '--from-redis', '--concurrency', '2', '--listen', '127.0.0.1:0', '--json'], env);
    const prober = (name = 'prober') => start(name, ['probe', '--policy', policy, '--watch', '--listen', '127.0.0.1:0', '--json'], env);
    /** The runners of a pool (by the ownership marker) that are online. */
    const online = (pool: string) => emu.runners.filter((r) => r.maintenance_note?.includes(`parmanu-pool=${pool}`) && r.status === 'online');
    const marked = (pool: string) => emu.runners.filter((r) => r.maintenance_note?.includes(`parmanu-pool=${pool}`));
    try {
      // Two probers: one holds the emitter's lease, the other stands by.
      procs.push(prober('prober-a'), scaler(1), scaler(2), scaler(3), prober('prober-b'));
      const probers = () => procs.filter((p) => p.name.startsWith('prober'));
      const scalers = () => procs.filter((p) => p.name.startsWith('scaler'));
      await until(() => procs.every((p) => p.url() !== undefined), 'every listener', 60_000, procs);
      // /healthz and /readyz on every replica.
      for (const p of procs) {
        expect((await fetch(`${p.url()}/healthz`)).status).toBe(200);
        expect((await fetch(`${p.url()}/readyz`)).status).toBe(200);
      }

      // 1. One queued job per pool: every pool gets one node whose runner comes online.
      for (const n of names) emu.addJob(project, 'pending', [n]);
      await until(() => names.every((n) => online(n).length >= 1), 'a node online in each of the 30 pools', 240_000, procs);
      // The jobs start on their pools' runners (busy from now on).
      const busy = new Map<string, string>();
      for (const n of names) {
        const r = online(n)[0]!;
        const job = emu.jobs.find((j) => j.status === 'pending' && j.tag_list.includes(n))!;
        job.status = 'running';
        job.started_at = new Date().toISOString();
        job.runner = { id: r.id, description: r.description };
        busy.set(n, r.description);
      }
      // status: the observation the scalers read (its prober and age) and who holds each pool.
      const st = JSON.parse((await cliAsync(['status', '--policy', policy, '--json'], { env, cwd: dir })).out) as { pools: Array<{ pool: string; heldBy: string | null; observation: { version: number; ageS: number; stale: boolean; prober: string } | null }> };
      expect(st.pools).toHaveLength(POOLS);
      for (const p of st.pools) {
        expect(p.observation?.stale).toBe(false);
        expect(probers().some((x) => p.observation!.prober.includes(`:${x.child.pid}:`)), 'written by a prober').toBe(true);
        expect(p.observation!.ageS).toBeLessThan(10);
        if (p.heldBy !== null) expect(scalers().some((s) => p.heldBy!.includes(`:${s.child.pid}:`)), `${p.pool} held by a scaler`).toBe(true);
      }
      // Cycles were spread over the replicas (each ran some).
      const cyclesOf = (p: Proc) => p.json().filter((l) => Array.isArray(l.pools) && (l.pools as Array<{ terraform?: { ran?: boolean } }>).some((x) => x.terraform?.ran)).length;
      for (const s of scalers()) expect(cyclesOf(s), `${s.name} ran cycles`).toBeGreaterThan(0);

      // 2. SIGKILL a scaler while it holds pools: they are taken over within the TTL.
      for (const n of names.slice(0, 15)) emu.addJob(project, 'pending', [n]);
      const victim = procs[1]!;
      const victimOwner = async () => {
        const held: string[] = [];
        for (const n of names) {
          const h = await store.leaseHolder(n);
          if (h && h.owner.includes(`:${victim.child.pid}:`)) held.push(n);
        }
        return held;
      };
      // Frozen (SIGSTOP) the moment it holds a pool, so that what it holds is what it dies holding.
      let held: string[] = [];
      let killedAt = 0;
      await until(async () => {
        if ((await victimOwner()).length === 0) return false;
        victim.child.kill('SIGSTOP');
        killedAt = Date.now();
        held = await victimOwner();
        if (held.length) return true;
        victim.child.kill('SIGCONT');
        return false;
      }, 'the victim holding a pool', 120_000, procs);
      victim.child.kill('SIGKILL');
      await exited(victim);
      // Each pool it held is leased again by another replica (a takeover of the expired lease).
      // A fencing token is Redis' clock in microseconds when the lease was taken: the takeover's time.
      const taken = new Map<string, number>();
      await until(async () => {
        for (const n of held) {
          if (taken.has(n)) continue;
          const h = await store.leaseHolder(n);
          if (h && !h.owner.includes(`:${victim.child.pid}:`)) taken.set(n, Math.floor(h.token / 1000));
          else {
            // Taken and already released again: its apply (or its cycle's lease) is on record.
            const e = (await store.events(killedAt - 1000)).find((x) => x.pool === n && x.kind === 'apply' && x.lease && !x.lease.owner.includes(`:${victim.child.pid}:`) && x.lease.from > killedAt);
            if (e?.lease) taken.set(n, Math.floor(e.lease.token / 1000));
          }
        }
        return taken.size === held.length;
      }, `the killed scaler's pools (${held.join(', ')}) taken over`, 60_000, procs);
      if (process.env.SERVICES_TEST_TRACE) console.error(`takeover after the kill: ${[...taken].map(([n, at]) => `${n} ${at - killedAt} ms`).join(', ')} (TTL ${TTL_MS} ms)`);
      for (const [n, at] of taken) expect(at - killedAt, `${n} taken over ${at - killedAt} ms after the kill (TTL ${TTL_MS} ms)`).toBeLessThanOrEqual(TTL_MS + 1000);
      // The takeover shows in the survivors' metrics.
      const metrics = (await Promise.all(scalers().filter((p) => p !== victim).map(async (p) => (await fetch(`${p.url()}/metrics`)).text()))).join('\n');
      const takeovers = [...metrics.matchAll(/^parmanu_lease_takeovers_total\{pool="(p\d\d)"\} (\d+)$/gm)].map((m) => m[1]);
      for (const n of held) expect(takeovers, `a takeover of ${n} counted`).toContain(n);
      // The second wave converges with two scalers.
      await until(() => names.slice(0, 15).every((n) => online(n).length >= 2), 'the second wave online', 240_000, procs);

      // 3. The prober holding the emitter's lease dies: the one standing by takes over within the TTL.
      const lease = (await store.leaseHolder('@probe-gl'))!;
      const first = probers().find((p) => lease.owner.includes(`:${p.child.pid}:`))!;
      const second = probers().find((p) => p !== first)!;
      first.child.kill('SIGKILL');
      const proberKilledAt = Date.now();
      await exited(first);
      let next: Awaited<ReturnType<typeof store.leaseHolder>>;
      await until(async () => (next = await store.leaseHolder('@probe-gl')) !== undefined && next.owner.includes(`:${second.child.pid}:`), 'the standby prober taking the emitter over', 30_000, procs);
      const proberTakeover = Math.floor(next!.token / 1000) - proberKilledAt;
      if (process.env.SERVICES_TEST_TRACE) console.error(`prober takeover after the kill: ${proberTakeover} ms (TTL ${TTL_MS} ms)`);
      expect(proberTakeover).toBeLessThanOrEqual(TTL_MS + 1000);
      // Both probers down: observations go stale (2 × 5 s) and the pools hold; one back: they converge.
      second.child.kill('SIGKILL');
      await exited(second);
      await sleep(11_000);
      for (const n of names.slice(15, 20)) emu.addJob(project, 'pending', [n]);
      const before = names.slice(15, 20).map((n) => marked(n).length);
      await sleep(6_000);
      expect(names.slice(15, 20).map((n) => marked(n).length), 'no runner registered while the observation is stale').toEqual(before);
      const staleSeen = scalers().some((p) => p.json().some((l) => (l.pools as Array<{ probe?: { stale?: boolean } }> | undefined)?.some((x) => x.probe?.stale === true)));
      expect(staleSeen, 'a scaler printed a stale probe (holding)').toBe(true);
      procs.push(prober('prober-c'));
      await until(() => names.slice(15, 20).every((n) => online(n).length >= 2), 'the pools converging with the prober back', 240_000, procs);

      // 4. Scale down: the jobs of half the pools end; those pools shrink to nothing, the busy ones keep their nodes.
      for (const n of names.slice(0, 15)) emu.finishJob(busy.get(n)!);
      for (const j of emu.jobs) if (j.status === 'pending') j.status = 'canceled';
      await until(() => names.slice(0, 15).every((n) => marked(n).length === 0), 'idle pools emptied', 240_000, procs);
      for (const n of names.slice(15)) expect(emu.runnerNamed(busy.get(n)!), `${n}'s busy runner is kept`).toBeDefined();
      expect(emu.removedWhileBusy()).toEqual([]);

      // The fencing record: per pool, applies under different leases never overlap, and tokens grow with time.
      const applies = (await store.events(0)).filter((e) => e.kind === 'apply' && e.lease);
      expect(applies.length).toBeGreaterThan(POOLS);
      for (const n of names) {
        const own = applies.filter((e) => e.pool === n).map((e) => e.lease!).sort((a, b) => a.from - b.from);
        for (let i = 1; i < own.length; i++) {
          const [a, b] = [own[i - 1]!, own[i]!];
          expect(b.from, `${n}: apply under lease ${b.token} started before the one under ${a.token} ended`).toBeGreaterThanOrEqual(a.to);
          expect(b.token).toBeGreaterThanOrEqual(a.token);
        }
      }
      expect(new Set(applies.map((e) => e.lease!.owner.split(':')[1])).size, 'applies by at least 3 processes').toBeGreaterThanOrEqual(3);

      // SIGTERM: every live process exits 0 and releases its leases.
      const live = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
      for (const p of live) p.child.kill('SIGTERM');
      expect(await Promise.all(live.map(exited))).toEqual(live.map(() => 0));
      const leases = await raw.keys('parmanu:lease:*');
      const left = [];
      for (const k of leases) {
        const v = (await raw.get(k)) ?? '';
        if (![victim, first, second].some((p) => v.includes(`:${p.child.pid}:`))) left.push(`${k}=${v}`);
      }
      expect(left, 'no lease of a process stopped by SIGTERM is left').toEqual([]);
      for (const p of procs) expectNoSecrets(p.name, p.out + p.err);
    } finally {
      const trace = process.env.SERVICES_TEST_TRACE;
      if (trace && trace !== '1') {
        for (const p of procs) writeFileSync(join(trace, `${p.name}-${p.child.pid}.log`), `${p.out}\n----- stderr\n${p.err}`);
        writeFileSync(join(trace, 'emulator.json'), JSON.stringify({ removals: emu.removals, runners: emu.runners, log: emu.log.slice(-3000) }, null, 1));
      }
      booting = false;
      await machines;
      for (const p of procs) p.child.kill('SIGKILL');
      raw.disconnect();
      await store.close();
      await emu.stop();
    }
  });
});
