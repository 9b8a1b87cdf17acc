/**
 * Node lifecycle v2, end to end: one test per scenario of the lifecycle issue, against the
 * emulators made faithful (runners `never_contacted` until their machine connects, GitHub's busy
 * flag lagging the job and its 422 on removing a busy runner, a Jenkins executor `idle: false`
 * before its build exists), real terraform (local platform, read with `terraform state pull`) and
 * real Redis. Faults land inside the cycle, through the cycle's hooks.
 *
 * The independent invariant everywhere: a node leaves the state only when the emulator's own
 * record says its runner runs nothing (`busyDestroyed`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { JenkinsEmitter } from '../../src/emitters/jenkins.js';
import type { Emitter } from '../../src/emitters/types.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleResult, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { readStateNodes, type StateNode } from '../../src/terraform/state.js';
import type { Emulator } from '../emulators/base.js';
import { GithubEmulator } from '../emulators/github.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { JenkinsEmulator } from '../emulators/jenkins.js';
import { reconcileDeps, useRedisSuite } from './suite.js';
import { capture, scanStateDir } from '../secret-scan.js';

const suite = useRedisSuite();

const MIN = 60_000;
const T0 = Date.parse('2026-11-02T10:00:00Z');
const fastHttp = () => new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 });
const SCALING = { predict: false, scaleDownAfter: '1m', minLifetime: '0s', bootTimeout: '10m' };

function policyOf(emitter: Record<string, unknown>, pools: Record<string, Record<string, unknown>>): Policy {
  return normalize({
    emitters: new Map([['ci', EmitterSchema.parse(emitter)]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map(Object.entries(pools).map(([name, p]) => [name, PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], ...p, scaling: { ...SCALING, ...((p.scaling as Record<string, unknown> | undefined) ?? {}) } })])),
  });
}

interface World {
  deps: ReconcileDeps;
  now: { t: number };
  history: RedisHistoryStore;
  prefix: string;
  state: (pool?: string) => StateNode[];
  names: (pool?: string) => string[];
  cycle: (extra?: Partial<ReconcileDeps>) => Promise<CycleResult>;
  /** Nodes that left the state while the emulator says their runner ran a job: must stay empty. */
  busyDestroyed: string[];
}

function world(policy: Policy, emitter: Emitter, emu: Emulator, extra: Partial<ReconcileDeps> = {}): World {
  const root = suite.tempDir('parmanu-life-');
  const stateDir = join(root, 'state');
  const now = { t: T0 };
  const prefix = `parmanu:life${Math.random().toString(36).slice(2)}:`;
  const history = new RedisHistoryStore(suite.url, () => now.t, prefix);
  const state = (pool = 'p') => readStateNodes(join(poolDir(stateDir, pool), 'terraform.tfstate'));
  const names = (pool = 'p') => state(pool).map((n) => n.name).sort();
  const busyDestroyed: string[] = [];
  const running = () => new Set(emu.jobRecords.filter((j) => j.end === undefined).map((j) => j.runner));
  const deps = reconcileDeps(policy, emitter, history, stateDir, now, extra);
  return {
    deps,
    now,
    history,
    prefix,
    state,
    names,
    busyDestroyed,
    cycle: async (more = {}) => {
      const pools = [...new Set([...(more.policy ?? deps.policy).pools.map((p) => p.name), 'p', 'q'])];
      const before = new Map(pools.map((p) => [p, names(p)]));
      const r = await reconcileOnce({ ...deps, ...more });
      // No credential in anything the cycle left behind: stacks, state, saved plans, history files.
      await scanStateDir(stateDir);
      const busy = running();
      for (const p of pools) for (const n of before.get(p) ?? []) if (!names(p).includes(n) && busy.has(n)) busyDestroyed.push(n);
      capture('a reconcile result', JSON.stringify(r));
      now.t += 30_000;
      return r;
    },
  };
}

async function gitlab(pools: Record<string, Record<string, unknown>> = { p: {} }, extra: Partial<ReconcileDeps> = {}) {
  const emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  const project = emu.addProject('api', group);
  const policyWith = (p: Record<string, Record<string, unknown>>) => policyOf({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } }, p);
  const policy = policyWith(pools);
  const box: { w?: World } = {};
  const emitter = new GitlabEmitter(policy.emitters.ci as never, emu.token, fastHttp(), () => box.w?.now.t ?? T0);
  const w = world(policy, emitter, emu, extra);
  box.w = w;
  return { emu, project, w, policy, emitter, policyWith };
}

/** By default a pool that does not write runner.ephemeral: on github that is an ephemeral (JIT) pool. */
async function github(pools: Record<string, Record<string, unknown>> = { p: {} }) {
  const emu = await new GithubEmulator().start();
  emu.repos = ['api'];
  const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url }, pools);
  const emitter = new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp());
  const w = world(policy, emitter, emu);
  return { emu, w, policy };
}

async function jenkins(pools: Record<string, Record<string, unknown>> = { p: {} }) {
  const emu = await new JenkinsEmulator().start();
  const policy = policyOf({ type: 'jenkins', url: emu.url, user: emu.user, token: '${env:T}' }, pools);
  const emitter = new JenkinsEmitter(policy.emitters.ci as never, emu.user, emu.token, fastHttp());
  const w = world(policy, emitter, emu);
  return { emu, w, policy };
}

/** Queued GitLab jobs for the pool, so that it wants `n` nodes. */
function demand(emu: GitlabEmulator, project: GlProject, n: number): void {
  emu.jobs.splice(0, emu.jobs.length, ...emu.jobs.filter((j) => j.status === 'running'));
  for (let i = 0; i < n; i++) emu.addJob(project, 'pending', ['linux']);
}

describe('lifecycle v2 on GitHub: busy truth', () => {
  it('never destroys the VM of a runner running a job while GitHub\'s busy flag lags, and never takes the 422 for success', async () => {
    const { emu, w, policy } = await github();
    try {
      expect(policy.pools[0]?.runner.ephemeral).toBe(true);
      emu.busyLagMs = 60 * MIN; // the flag says idle for the whole test
      emu.addRun('api', [{ labels: ['linux'] }, { labels: ['linux'] }]);
      let r = await w.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n000', 'p-n001']);
      // Just-in-time runners: one single-use JIT config per node, no registration token.
      expect(emu.count('POST', /\/actions\/runners\/generate-jitconfig$/)).toBe(2);
      expect(emu.count('POST', /\/actions\/runners\/registration-token$/)).toBe(0);
      emu.connect('p-n000');
      emu.connect('p-n001');
      // A job lands on p-n000, the other is cancelled: demand 1; the listing says both are idle,
      // so the scale-down picks p-n000 by age.
      emu.jobs.length = 0;
      emu.runs.length = 0;
      emu.startJob('p-n000', 'api', ['linux']);
      const seen: string[] = [];
      const reasons: string[] = [];
      for (let i = 0; i < 6; i++) {
        r = await w.cycle();
        expect(r.pools[0]?.error).toBeUndefined();
        seen.push(r.pools[0]?.states['p-n000'] ?? 'gone');
        reasons.push(...(r.pools[0]?.reasons ?? []));
      }
      // Drained (its registration removal was refused with 422: it runs a job), never destroyed.
      expect(seen).toContain('draining');
      expect(w.names()).toContain('p-n000');
      expect(emu.removedWhileBusy()).toEqual([]);
      expect(reasons.join('\n')).toMatch(/p-n000 is running a job/);
      // The job ends; the ephemeral runner leaves; the node goes.
      emu.finishJob('p-n000');
      await w.cycle();
      await w.cycle();
      expect(w.names()).not.toContain('p-n000');
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });
});

describe('lifecycle v2 on GitLab', () => {
  it('replaces a node whose runner registered but never came online within bootTimeout (broken), with a fresh registration', async () => {
    const { emu, project, w } = await gitlab();
    try {
      demand(emu, project, 1);
      await w.cycle();
      expect(w.names()).toEqual(['p-n000']);
      expect(emu.runnerNamed('p-n000')?.status).toBe('never_contacted');
      // 11 minutes of cycles: the runner never connects.
      for (let i = 0; i < 24; i++) await w.cycle();
      expect(w.names()).not.toContain('p-n000');
      expect(emu.runnerNamed('p-n000')).toBeUndefined();
      expect(w.names().length).toBe(1);
      const replacement = w.names()[0] as string;
      expect(emu.runnerNamed(replacement)?.status).toBe('never_contacted');
      // Once online, the replacement is ready and counts.
      emu.connect(replacement);
      const r = await w.cycle();
      expect(r.pools[0]?.states[replacement]).toBe('ready');
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('checks idleness last, after the pause and right before the apply: a job landing in between keeps the node', async () => {
    let inject: (() => void) | undefined;
    const { emu, project, w } = await gitlab({ p: {} }, { hook: (point) => (point === 'before-idle-check' ? inject?.() : undefined) });
    try {
      demand(emu, project, 2);
      await w.cycle();
      for (const n of w.names()) emu.connect(n);
      demand(emu, project, 0);
      for (let i = 0; i < 4 && !w.names().length; i++) await w.cycle();
      await w.cycle();
      await w.cycle();
      // Both drained; at the last moment a job lands on the first.
      const victim = w.names()[0] as string;
      inject = () => {
        if (!emu.runningOn(victim).length) emu.startJob(victim, project, ['linux']);
      };
      let r = await w.cycle();
      inject = undefined;
      expect(w.names()).toContain(victim);
      expect(r.pools[0]?.reasons.join('\n')).toMatch(new RegExp(`${victim} picked up a job`));
      emu.finishJob(victim);
      r = await w.cycle();
      await w.cycle();
      expect(w.names()).toEqual([]);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('forgets a VM that vanished outside Parmanu, removes its runner, and never re-creates it under its old name', async () => {
    const { emu, project, w } = await gitlab();
    try {
      demand(emu, project, 1);
      await w.cycle();
      emu.connect('p-n000');
      const issuedBefore = emu.runners.length;
      execFileSync(process.env.PARMANU_TERRAFORM ?? 'terraform', ['state', 'rm', 'terraform_data.node_p-n000'], { cwd: poolDir(w.deps.stateDir, 'p'), stdio: 'ignore' });
      const r = await w.cycle();
      expect(r.pools[0]?.vanished).toEqual(['p-n000']);
      expect(w.names()).toEqual(['p-n001']);
      // The vanished node's credential file went with it; the new node has its own.
      expect(existsSync(join(poolDir(w.deps.stateDir, 'p'), 'credentials', 'p-n000'))).toBe(false);
      expect(existsSync(join(poolDir(w.deps.stateDir, 'p'), 'credentials', 'p-n001'))).toBe(true);
      expect(emu.runnerNamed('p-n000')).toBeUndefined();
      // The replacement got its own, new registration.
      expect(emu.runnerNamed('p-n001')).toBeDefined();
      expect(emu.runners.length).toBe(issuedBefore);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('never gives a kept node whose credential resource is missing (an apply that failed halfway) an empty credential: it is replaced once broken', async () => {
    const { emu, project, w } = await gitlab();
    try {
      demand(emu, project, 1);
      await w.cycle();
      execFileSync(process.env.PARMANU_TERRAFORM ?? 'terraform', ['state', 'rm', 'terraform_data.credential_p-n000'], { cwd: poolDir(w.deps.stateDir, 'p'), stdio: 'ignore' });
      const r = await w.cycle({ driftCheckMs: 0 });
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.terraform).toMatchObject({ add: 0, destroy: 0 });
      expect(w.names()).toEqual(['p-n000']);
      // Its runner never comes online: broken after bootTimeout, drained, destroyed, replaced.
      for (let i = 0; i < 26 && w.names().includes('p-n000'); i++) expect((await w.cycle()).pools[0]?.error).toBeUndefined();
      expect(w.names()).not.toContain('p-n000');
      expect(emu.runnerNamed('p-n000')).toBeUndefined();
      await w.cycle();
      expect(w.names()).toHaveLength(1);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('drains and destroys a pool removed from the policy, its busy node last, and removes its runners', async () => {
    const { emu, project, w, policy } = await gitlab({ p: {}, q: { labels: ['linux', 'big'] } });
    try {
      demand(emu, project, 2);
      await w.cycle();
      for (const n of w.names()) emu.connect(n);
      emu.startJob('p-n000', project, ['linux']);
      const without = { ...policy, pools: policy.pools.filter((p) => p.name !== 'p') };
      let r = await w.cycle({ policy: without });
      const out = r.pools.find((p) => p.pool === 'p');
      expect(out).toMatchObject({ removed: true });
      expect(out?.reasons[0]).toMatch(/pool removed from the policy/);
      for (let i = 0; i < 3; i++) r = await w.cycle({ policy: without });
      expect(w.names()).toEqual(['p-n000']);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(true);
      emu.finishJob('p-n000');
      for (let i = 0; i < 3; i++) r = await w.cycle({ policy: without });
      expect(w.names()).toEqual([]);
      expect(emu.runners.filter((x) => x.description.startsWith('p-'))).toEqual([]);
      expect(await w.history.getPool('p')).toBeUndefined();
      expect(readdirSync(join(poolDir(w.deps.stateDir, 'p'), 'credentials'))).toEqual([]);
      expect(r.pools.some((p) => p.pool === 'p')).toBe(false);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('rolls out an image bump: outdated nodes are replaced one at a time, idle first, and new nodes carry the new spec', async () => {
    const { emu, project, w, policyWith } = await gitlab({ p: { machine: { image: 'img-1' } } });
    try {
      demand(emu, project, 3);
      await w.cycle();
      for (const n of w.names()) emu.connect(n);
      const specs1 = new Set(w.state().map((n) => n.spec));
      expect(specs1.size).toBe(1);
      const bumped = policyWith({ p: { machine: { image: 'img-2' } } });
      let maxDraining = 0;
      for (let i = 0; i < 20; i++) {
        const r = await w.cycle({ policy: bumped });
        for (const n of w.names()) if (emu.runnerNamed(n)?.status === 'never_contacted') emu.connect(n);
        maxDraining = Math.max(maxDraining, Object.values(r.pools[0]?.states ?? {}).filter((s) => s === 'draining').length);
        if (w.state().every((n) => !specs1.has(n.spec)) && w.names().length === 3) break;
      }
      expect(w.names().length).toBe(3);
      expect(w.state().every((n) => !specs1.has(n.spec))).toBe(true);
      expect(maxDraining).toBeLessThanOrEqual(1);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('never goes over max when a node to destroy picks up a job at the last moment (its replacement waits)', async () => {
    let inject: (() => void) | undefined;
    const { emu, project, w, policyWith } = await gitlab({ p: { machine: { image: 'img-1' }, scaling: { max: 2 } } }, { hook: (point) => (point === 'before-idle-check' ? inject?.() : undefined) });
    try {
      demand(emu, project, 2);
      await w.cycle();
      for (const n of w.names()) emu.connect(n);
      const bumped = policyWith({ p: { machine: { image: 'img-2' }, scaling: { max: 2 } } });
      const reasons: string[] = [];
      let most = 0;
      inject = () => {
        for (const n of w.names()) if (emu.runnerNamed(n)?.paused && !emu.runningOn(n).length) emu.startJob(n, project, ['linux']);
      };
      for (let i = 0; i < 4; i++) {
        const r = await w.cycle({ policy: bumped });
        reasons.push(...(r.pools[0]?.reasons ?? []));
        most = Math.max(most, w.names().length);
      }
      expect(reasons.join('\n')).toMatch(/not creating .* max 2/);
      expect(most).toBeLessThanOrEqual(2);
      expect(emu.runners.filter((x) => x.maintenance_note && !w.names().includes(x.description)).map((x) => x.description)).toEqual([]);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('never touches a runner without its ownership marker, whatever its name', async () => {
    const { emu, project, w } = await gitlab();
    try {
      emu.addRunner('p-01', { tag_list: ['linux'] });
      demand(emu, project, 1);
      await w.cycle();
      demand(emu, project, 0);
      for (let i = 0; i < 40; i++) await w.cycle();
      expect(emu.touched('p-01')).toEqual([]);
      expect(emu.runnerNamed('p-01')).toMatchObject({ paused: false });
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('removes an orphan runner (marked, no VM) after its grace period', async () => {
    const { emu, project, w } = await gitlab({ p: {} }, { orphanGraceMs: 2 * MIN });
    try {
      emu.addRunner('p-orphan', { maintenance_note: 'parmanu-pool=p' });
      demand(emu, project, 0);
      for (let i = 0; i < 6; i++) await w.cycle();
      expect(emu.runnerNamed('p-orphan')).toBeUndefined();
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('converges after a crash between the apply and the history write, and after a crash between a pause and its record', async () => {
    let crashAt: string | undefined;
    const { emu, project, w } = await gitlab({ p: {} }, {
      hook: (point) => {
        if (point === crashAt) {
          crashAt = undefined;
          throw new Error(`injected crash at ${point}`);
        }
      },
    });
    try {
      demand(emu, project, 3);
      crashAt = 'applied';
      let r = await w.cycle();
      expect(r.pools[0]?.error).toMatch(/injected crash/);
      expect(w.names()).toHaveLength(3);
      // The next cycle adopts the nodes from the state: nothing is re-created or stuck.
      r = await w.cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect(w.names()).toHaveLength(3);
      for (const n of w.names()) emu.connect(n);
      // Scale down with a crash right after the pause: the drain was recorded first.
      demand(emu, project, 0);
      crashAt = 'paused';
      for (let i = 0; i < 3; i++) await w.cycle();
      // Crash after the destroy was applied, before its runner was removed and recorded.
      crashAt = 'applied';
      for (let i = 0; i < 8; i++) await w.cycle();
      expect(w.names()).toEqual([]);
      expect(emu.runners.filter((x) => x.maintenance_note)).toEqual([]);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('after a crash between the drain record and the pause, pauses the runner before it ever destroys the node', async () => {
    let crash = false;
    let inject: (() => void) | undefined;
    const { emu, project, w } = await gitlab({ p: {} }, {
      hook: (point) => {
        if (point === 'drain-recorded' && crash) {
          crash = false;
          throw new Error('injected crash before the pause');
        }
        if (point === 'before-apply') inject?.();
      },
    });
    try {
      demand(emu, project, 1);
      await w.cycle();
      emu.connect('p-n000');
      demand(emu, project, 0);
      crash = true;
      for (let i = 0; i < 4 && crash; i++) await w.cycle();
      expect(crash).toBe(false);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(false);
      // Had the unpaused runner been destroyed now, a job could have landed after the idle check.
      inject = () => {
        if (!emu.runnerNamed('p-n000')?.paused && !emu.runningOn('p-n000').length) emu.startJob('p-n000', project, ['linux']);
      };
      const r = await w.cycle();
      expect(r.pools[0]?.destroy).toEqual([]);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(true);
      for (let i = 0; i < 3; i++) await w.cycle();
      expect(w.names()).toEqual([]);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('removes at once the runner of a registration whose VM was never created (crash between register and apply)', async () => {
    let crash = true;
    const { emu, project, w } = await gitlab({ p: {} }, {
      hook: (point) => {
        if (point === 'registered' && crash) {
          crash = false;
          throw new Error('injected crash after register');
        }
      },
    });
    try {
      demand(emu, project, 1);
      let r = await w.cycle();
      expect(r.pools[0]?.error).toMatch(/injected crash/);
      expect(w.names()).toEqual([]);
      expect(emu.runnerNamed('p-n000')).toBeDefined();
      // The registration was recorded before it was made: the next cycle removes its runner (no 15-minute grace) and makes a fresh node.
      r = await w.cycle();
      expect(emu.runnerNamed('p-n000')).toBeUndefined();
      expect(w.names()).toEqual(['p-n001']);
      expect(r.pools[0]?.error).toBeUndefined();
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('converges when Redis loses everything mid-life', async () => {
    const { emu, project, w } = await gitlab();
    try {
      demand(emu, project, 2);
      await w.cycle();
      for (const n of w.names()) emu.connect(n);
      await w.history.clear();
      const r = await w.cycle();
      expect(r.pools[0]?.create).toEqual([]);
      expect(w.names()).toHaveLength(2);
      expect(r.pools[0]?.states).toEqual(Object.fromEntries(w.names().map((n) => [n, 'ready'])));
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });

  it('sets aside a history record it cannot read instead of failing the pool on every cycle', async () => {
    const raw = new Redis(suite.url);
    const { emu, project, w } = await gitlab();
    try {
      demand(emu, project, 1);
      await w.cycle();
      await raw.set(`${w.prefix}pool:p`, '{"torn');
      let r = await w.cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      // The store sets the record aside (kept under a corrupt: key for a look) and reads it as
      // absent: the cycle rebuilds it from Terraform state, the node is kept, not re-created.
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/history was empty: rebuilt 1 node from Terraform state/);
      expect(w.names()).toEqual(['p-n000']);
      const aside = await raw.keys(`${w.prefix}corrupt:*`);
      expect(aside).toHaveLength(1);
      expect(await raw.get(aside[0] ?? '')).toBe('{"torn');
      r = await w.cycle();
      expect(r.pools[0]?.reasons.join('\n')).not.toMatch(/history was empty/);
    } finally {
      raw.disconnect();
      await w.history.close();
      await emu.stop();
    }
  });

  it('stops before applying when its lease was taken over mid-cycle (fencing)', async () => {
    const raw = new Redis(suite.url);
    let steal: (() => Promise<void>) | undefined;
    const { emu, project, w } = await gitlab({ p: {} }, {
      leaseTtlMs: 60_000,
      hook: async (point) => {
        if (point === 'planned' && steal) await steal();
      },
    });
    try {
      demand(emu, project, 1);
      const other = new RedisHistoryStore(suite.url, () => w.now.t, w.prefix);
      steal = async () => {
        steal = undefined;
        // The lease expires (a stalled process) and a second reconciler takes the pool. The
        // holder's background renewal may put an expired lease back (its fencing token is still
        // the latest) between the delete and the take-over: delete again until the take-over wins.
        let taken = false;
        for (let i = 0; i < 50 && !taken; i++) {
          const keys = await raw.keys(`${w.prefix}lease:*`);
          if (keys.length) await raw.del(...keys);
          taken = (await other.acquireLease('p', 'second', 60_000)) !== undefined;
        }
        expect(taken).toBe(true);
        await new Promise((res) => setTimeout(res, 200));
      };
      const r = await w.cycle({ leaseTtlMs: 150 });
      expect(r.pools[0]?.error).toMatch(/lease|superseded/);
      expect(w.names()).toEqual([]);
      await other.close();
    } finally {
      raw.disconnect();
      await w.history.close();
      await emu.stop();
    }
  });
});

describe('lifecycle v2: shutting down (SIGTERM)', () => {
  it('stops each pool before its next step once the process is stopping: the step running finishes, nothing after it is done, the lease is released', async () => {
    let stopping = false;
    let seen = '';
    const { emu, project, w } = await gitlab({ p: {} }, {
      stopping: () => stopping,
      hook: (point) => {
        // SIGTERM arrives while a runner is being registered (the step before the plan and apply).
        if (point === 'registered') stopping = true;
        seen += `${point} `;
      },
    });
    try {
      demand(emu, project, 1);
      const r = await w.cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.skipped).toMatch(/^shutting down: pool p stopped before its next step/);
      // The registration finished; nothing after it ran (no plan, no apply, no VM); the lease is free for the next replica.
      expect(emu.runners.map((r) => r.description)).toEqual(['p-n000']);
      expect(w.names()).toEqual([]);
      expect(seen).not.toMatch(/planned|before-apply/);
      expect(await w.history.leaseHolder('p')).toBeUndefined();
      // The next cycle (a new process) goes on from there: the registration without a VM is
      // removed (its intent is on record), and the pool converges to one node with one runner.
      stopping = false;
      await w.cycle({ hook: undefined });
      await w.cycle({ hook: undefined });
      expect(w.names()).toHaveLength(1);
      expect(emu.runners.map((r) => r.description)).toEqual(w.names());
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });
});

describe('lifecycle v2: a lease that cannot be renewed', () => {
  it('stops before applying when its lease could not be renewed for most of its TTL (the store unreachable)', async () => {
    const raw = new Redis(suite.url);
    let stall = false;
    const { emu, project, w } = await gitlab({ p: {} }, {
      hook: async (point) => {
        if (point !== 'planned' || !stall) return;
        stall = false;
        // Redis stops answering writes: renewals hang while the TTL runs out.
        await raw.call('CLIENT', 'PAUSE', '700', 'WRITE');
        await new Promise((res) => setTimeout(res, 400));
      },
    });
    try {
      demand(emu, project, 1);
      stall = true;
      const r = await w.cycle({ leaseTtlMs: 300 });
      expect(r.pools[0]?.error).toMatch(/could not be renewed/);
      expect(w.names()).toEqual([]);
      await new Promise((res) => setTimeout(res, 400));
    } finally {
      raw.disconnect();
      await w.history.close();
      await emu.stop();
    }
  });
});

describe('lifecycle v2 on Jenkins: busy truth', () => {
  it('keeps a node whose executor is assigned work before its build exists', async () => {
    const { emu, w } = await jenkins();
    try {
      emu.enqueue('linux');
      await w.cycle();
      const node = w.names()[0] as string;
      emu.connect(node);
      emu.queue.length = 0;
      emu.assign(node);
      for (let i = 0; i < 4; i++) await w.cycle();
      expect(w.names()).toEqual([node]);
      const id = emu.startBuild(node);
      await w.cycle();
      expect(w.names()).toEqual([node]);
      emu.finishBuild(node, id);
      for (let i = 0; i < 3; i++) await w.cycle();
      expect(w.names()).toEqual([]);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await w.history.close();
      await emu.stop();
    }
  });
});
