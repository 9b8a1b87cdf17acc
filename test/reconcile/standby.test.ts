/**
 * Standby VMs end to end (issue #15, DESIGN "Events, standby and services"): against the
 * emulators, real terraform (local platform: a node's power state is `input.power` on its
 * terraform_data, read back with `terraform state pull`) and real Redis.
 *
 * The machines are the test's: after every cycle, `machines()` plays what the VMs do — a running
 * node's runner connects, a stopped node's runner goes offline (GitHub: a stopped JIT runner never
 * comes back; a start registers a new one).
 *
 * Invariants checked everywhere: a stopped node is never destroyed unless decided (it stays in
 * the state), and a node leaves the state only when the emulator says its runner runs nothing.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { JenkinsEmitter } from '../../src/emitters/jenkins.js';
import { ReplayEmitter } from '../../src/emitters/replay.js';
import type { Emitter } from '../../src/emitters/types.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleResult, type HookPoint, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { readStateNodes, type StateNode } from '../../src/terraform/state.js';
import { localCredentialFile } from '../../stacks/types.js';
import type { Emulator } from '../emulators/base.js';
import { GithubEmulator } from '../emulators/github.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { JenkinsEmulator } from '../emulators/jenkins.js';
import { capture, scanStateDir } from '../secret-scan.js';
import { reconcileDeps, useRedisSuite } from './suite.js';

const suite = useRedisSuite();

const T0 = Date.parse('2026-11-02T10:00:00Z');
const fastHttp = () => new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 });
const SCALING = { predict: false, scaleDownAfter: '1m', minLifetime: '0s', bootTimeout: '10m', standby: 1, max: 3 };

function policyOf(emitter: Record<string, unknown>, scaling: Record<string, unknown> = {}, pool: Record<string, unknown> = {}): Policy {
  return normalize({
    emitters: new Map([['ci', EmitterSchema.parse(emitter)]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], ...pool, scaling: { ...SCALING, ...scaling } })]]),
  });
}

interface World {
  deps: ReconcileDeps;
  now: { t: number };
  history: RedisHistoryStore;
  stateDir: string;
  state: () => StateNode[];
  node: (name: string) => StateNode | undefined;
  names: () => string[];
  credential: (name: string) => string;
  cycle: (extra?: Partial<ReconcileDeps>) => Promise<CycleResult>;
  /** Nodes that left the state while the emulator says their runner ran a job: must stay empty. */
  busyDestroyed: string[];
}

function world(policy: Policy, emitter: Emitter, emu: Emulator, machines: (w: World) => void): World {
  const root = suite.tempDir('parmanu-standby-');
  const stateDir = join(root, 'state');
  const now = { t: T0 };
  const history = new RedisHistoryStore(suite.url, () => now.t, `parmanu:standby${Math.random().toString(36).slice(2)}:`);
  const state = () => readStateNodes(join(poolDir(stateDir, 'p'), 'terraform.tfstate'));
  const running = () => new Set(emu.jobRecords.filter((j) => j.end === undefined).map((j) => j.runner));
  const deps = reconcileDeps(policy, emitter, history, stateDir, now);
  const w: World = {
    deps,
    now,
    history,
    stateDir,
    state,
    node: (name) => state().find((n) => n.name === name),
    names: () => state().map((n) => n.name).sort(),
    credential: (name) => readFileSync(localCredentialFile(stateDir, 'p', name), 'utf8'),
    busyDestroyed: [],
    cycle: async (more = {}) => {
      const before = w.names();
      const r = await reconcileOnce({ ...deps, ...more });
      await scanStateDir(stateDir);
      const busy = running();
      for (const n of before) if (!w.names().includes(n) && busy.has(n)) w.busyDestroyed.push(n);
      capture('a reconcile result', JSON.stringify(r));
      machines(w);
      now.t += 30_000;
      return r;
    },
  };
  return w;
}

/** Cycles until `done` holds (at most `n`), returning the results. */
async function until(w: World, done: (r: CycleResult) => boolean, n = 8): Promise<CycleResult[]> {
  const out: CycleResult[] = [];
  for (let i = 0; i < n; i++) {
    const r = await w.cycle();
    out.push(r);
    expect(r.pools[0]?.error).toBeUndefined();
    if (done(r)) return out;
  }
  throw new Error(`not done after ${n} cycles: ${JSON.stringify(out.at(-1)?.pools[0]?.reasons)}`);
}

async function gitlab(scaling: Record<string, unknown> = {}) {
  const emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  const project = emu.addProject('api', group);
  const policyWith = (s: Record<string, unknown>, pool: Record<string, unknown> = {}) => policyOf({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } }, s, pool);
  const policy = policyWith(scaling);
  const box: { w?: World } = {};
  const emitter = new GitlabEmitter(policy.emitters.ci as never, emu.token, fastHttp(), () => box.w?.now.t ?? T0);
  // The VMs: a running node's gitlab-runner checks in, a stopped one's goes quiet.
  const w = world(policy, emitter, emu, (x) => {
    for (const n of x.state()) {
      if (!emu.runnerNamed(n.name)) continue;
      if (n.power === 'stopped') emu.disconnect(n.name);
      else emu.connect(n.name);
    }
  });
  box.w = w;
  return { emu, project, w, policyWith };
}

async function github(pool: Record<string, unknown> = {}) {
  const emu = await new GithubEmulator().start();
  emu.repos = ['api'];
  const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url }, {}, pool);
  const emitter = new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp());
  const registered = policy.pools[0]?.runner.ephemeral === false;
  /** Registration tokens a node's config.sh has used (registered runners). */
  const configuredWith = new Map<string, string>();
  const w = world(policy, emitter, emu, (x) => {
    for (const n of x.state()) {
      // A registered runner's node runs config.sh at boot with the token it reads, when it has not with that token yet.
      if (registered && n.power !== 'stopped' && configuredWith.get(n.name) !== x.credential(n.name) && !emu.runners.some((r) => r.name === n.name)) {
        emu.configureRunner(n.name, ['linux', 'parmanu-pool-p']);
        configuredWith.set(n.name, x.credential(n.name));
      }
      if (!emu.runners.some((r) => r.name === n.name)) continue;
      if (n.power === 'stopped') emu.disconnect(n.name);
      else emu.connect(n.name);
    }
  });
  return { emu, w, policy };
}

async function jenkins() {
  const emu = await new JenkinsEmulator().start();
  const policy = policyOf({ type: 'jenkins', url: emu.url, user: emu.user, token: '${env:T}' });
  const emitter = new JenkinsEmitter(policy.emitters.ci as never, emu.user, emu.token, fastHttp());
  const w = world(policy, emitter, emu, (x) => {
    for (const n of x.state()) {
      if (!emu.node(n.name)) continue;
      if (n.power === 'stopped') emu.disconnect(n.name);
      else emu.connect(n.name);
    }
  });
  return { emu, w, policy };
}

function queue(emu: GitlabEmulator, project: GlProject, n: number): void {
  for (let i = 0; i < n; i++) emu.addJob(project, 'pending', ['linux']);
}

const pool = (r: CycleResult) => r.pools[0];

describe('standby on GitLab', () => {
  it('fills standby with a node that boots once and stops (runner paused, VM kept, power stopped in state), then starts it for a queued job instead of booting a new one', async () => {
    const { emu, project, w } = await gitlab();
    try {
      // No demand: one node is created to become standby, boots (its runner comes online), is drained, and stops once idle.
      const first = await w.cycle();
      expect(pool(first)?.create).toEqual(['p-n000']);
      const runs = await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      expect(pool(runs.at(-1) as CycleResult)?.stop).toEqual(['p-n000']);
      expect(pool(runs.at(-1) as CycleResult)?.destroy).toEqual([]);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      expect(emu.runnerNamed('p-n000')).toMatchObject({ paused: true, status: 'offline' });
      const token = w.credential('p-n000');
      // Standby stays as it is: nothing to do, never destroyed, never broken while its runner is offline.
      for (let i = 0; i < 3; i++) {
        const r = await w.cycle();
        expect(pool(r)?.states).toEqual({ 'p-n000': 'standby' });
        expect(pool(r)?.terraform.change).toBe(0);
        expect(pool(r)?.create).toEqual([]);
      }
      w.now.t += 30 * 60_000; // far past bootTimeout: a stopped node's offline runner is expected
      expect(pool(await w.cycle())?.states).toEqual({ 'p-n000': 'standby' });

      // A job queued while the only node is stopped: the pool does not count it as capacity; it starts it.
      queue(emu, project, 1);
      const started = await w.cycle();
      expect(pool(started)?.start).toEqual(['p-n000']);
      expect(pool(started)?.create).not.toContain('p-n000');
      expect(pool(started)?.create.length).toBeLessThanOrEqual(1); // a new node to refill standby, not for the job
      expect(pool(started)?.terraform.destroy).toBe(0);
      expect(w.node('p-n000')).toMatchObject({ power: 'running' });
      // The same runner, unpaused; its root-only token stays (no new credential, the same file).
      expect(emu.runnerNamed('p-n000')).toMatchObject({ paused: false });
      expect(emu.credentials.filter((c) => c.runner === 'p-n000')).toHaveLength(1);
      expect(w.credential('p-n000')).toBe(token);
      const rec = await w.history.getPool('p');
      const n0 = rec?.nodes.find((n) => n.name === 'p-n000');
      expect(n0?.startedAt).toBe(w.now.t - 30_000);
      expect(n0?.drainingSince).toBeUndefined();
      // Online again (machines() connected it): ready, capacity again.
      expect(pool(await w.cycle())?.states['p-n000']).toMatch(/ready|busy/);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('replaces an outdated standby node first: it is destroyed (stopped, its paused runner removed) and standby refilled with the new spec', async () => {
    const { emu, w, policyWith } = await gitlab();
    try {
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      const spec = w.node('p-n000')?.spec;
      const next = policyWith(SCALING, { runner: { jobsPerNode: 2 } });
      const r = await w.cycle({ policy: next });
      expect(pool(r)?.states['p-n000']).toBe('standby');
      expect(pool(r)?.destroy).toEqual(['p-n000']);
      expect(w.names()).not.toContain('p-n000');
      expect(emu.runnerDeleted('p-n000')).toMatchObject({ busy: false });
      expect(pool(r)?.create).toHaveLength(1);
      expect(w.node(pool(r)?.create[0] as string)?.spec).not.toBe(spec);
    } finally {
      await emu.stop();
    }
  });

  it('undoes a start that crashed before its apply when the job is gone by the next cycle: the runner is paused again, the node stays standby', async () => {
    const { emu, project, w } = await gitlab();
    try {
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      queue(emu, project, 1);
      const crashed = await w.cycle({ hook: (p, info) => { if (p === 'started' && info.nodes.includes('p-n000')) throw new Error('crash after the unpause'); } });
      expect(pool(crashed)?.error).toMatch(/crash after the unpause/);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(false);
      expect(w.node('p-n000')?.power).toBe('stopped');
      emu.jobs.splice(0, emu.jobs.length); // the job was cancelled meanwhile
      const r = await w.cycle();
      expect(pool(r)?.error).toBeUndefined();
      expect(pool(r)?.start ?? []).toEqual([]);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(true);
      expect(w.node('p-n000')?.power).toBe('stopped');
      expect((await w.history.getPool('p'))?.intents.filter((i) => i.node === 'p-n000')).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('never starts or stops a node when the stop is not confirmed idle: a job that lands after the drain keeps it running', async () => {
    const { emu, w } = await gitlab();
    try {
      await w.cycle(); // creates p-n000
      await w.cycle(); // online: drained to become standby
      expect(emu.runnerNamed('p-n000')?.paused).toBe(true);
      // A job lands on the paused runner between the drain and the stop (the platform had assigned it already).
      const r = await w.cycle({ hook: (point) => { if (point === 'before-idle-check') emu.startJob('p-n000'); } });
      expect(emu.runningOn('p-n000')).toHaveLength(1);
      expect(pool(r)?.stop).toEqual([]);
      expect(pool(r)?.reasons.join('\n')).toMatch(/p-n000 picked up a job after it was drained: kept draining/);
      expect(w.node('p-n000')?.power).not.toBe('stopped');
      emu.finishJob('p-n000');
      await until(w, (x) => (pool(x)?.stop ?? []).length > 0);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('reports a stop in a dry run (the plan makes it) and changes nothing', async () => {
    const { emu, w } = await gitlab();
    try {
      await w.cycle(); // creates p-n000
      expect(pool(await w.cycle())?.drain).toEqual(['p-n000']); // online: drained to become standby
      const dry = await w.cycle({ dryRun: true });
      expect(pool(dry)?.error).toBeUndefined();
      expect(pool(dry)?.stop).toEqual(['p-n000']);
      expect(w.node('p-n000')?.power).toBe('running');
      expect(pool(await w.cycle())?.stop).toEqual(['p-n000']);
      expect(w.node('p-n000')?.power).toBe('stopped');
    } finally {
      await emu.stop();
    }
  });

  it('does not record a stop the plan does not make: a node whose recorded input cannot be rendered back keeps running, its stop is not reported', async () => {
    const { emu, w } = await gitlab();
    try {
      await w.cycle(); // creates p-n000
      expect(pool(await w.cycle())?.drain).toEqual(['p-n000']); // online: drained to become standby
      // The state's input of the node is no longer flat strings (stacks render it with one more
      // key): the stop cannot be rendered as a change of input.power alone, and the plan is empty.
      const file = join(poolDir(w.stateDir, 'p'), 'terraform.tfstate');
      const state = JSON.parse(readFileSync(file, 'utf8')) as { serial: number; resources: Array<{ name: string; instances: Array<{ attributes: { input: { value: Record<string, unknown>; type: [string, Record<string, string>] } } }> }> };
      const input = state.resources.find((r) => r.name === 'node_p-n000')?.instances[0]?.attributes.input;
      if (!input) throw new Error('no input in state');
      input.value.extra = 1;
      input.type[1].extra = 'number';
      state.serial += 1;
      writeFileSync(file, JSON.stringify(state));
      expect(w.node('p-n000')?.input).toBeUndefined();
      const r = await w.cycle();
      expect(pool(r)?.error).toBeUndefined();
      expect(pool(r)?.stop).toEqual([]);
      expect(pool(r)?.reasons.join('\n')).toMatch(/the plan did not change the power state of p-n000/);
      expect(w.node('p-n000')?.power).toBe('running');
      // Not decided the same way forever: the node that would not stop is destroyed instead (after
      // the same last idle check), and standby is refilled by a new node.
      const next = await w.cycle();
      expect(pool(next)?.states['p-n000']).not.toBe('standby');
      expect(pool(next)?.destroy).toEqual(['p-n000']);
      expect(w.node('p-n000')).toBeUndefined();
    } finally {
      await emu.stop();
    }
  });
});

describe('standby on GitHub (just-in-time runners)', () => {
  it('removes the registration of a stopped node and starts it with a new single-use JIT config through its credential delivery', async () => {
    const { emu, w } = await github();
    try {
      const first = await w.cycle();
      expect(pool(first)?.create).toEqual(['p-n000']);
      const jit1 = w.credential('p-n000');
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped', generation: 1 });
      // The registration is gone: the JIT runner's name is free for the next start.
      expect(emu.runners.some((r) => r.name === 'p-n000')).toBe(false);
      expect(emu.runnerDeleted('p-n000')).toMatchObject({ busy: false });
      for (let i = 0; i < 2; i++) expect(pool(await w.cycle())?.states).toEqual({ 'p-n000': 'standby' });

      emu.addRun('api', [{ labels: ['linux'] }]);
      const started = await w.cycle();
      expect(pool(started)?.start).toEqual(['p-n000']);
      expect(pool(started)?.create).not.toContain('p-n000');
      // A new JIT config (two in all for this node), delivered anew: the file changed, the VM was not replaced.
      expect(emu.credentials.filter((c) => c.runner === 'p-n000')).toHaveLength(2);
      expect(emu.count('POST', /generate-jitconfig$/)).toBeGreaterThanOrEqual(2);
      const jit2 = w.credential('p-n000');
      expect(jit2).not.toBe(jit1);
      expect(w.node('p-n000')).toMatchObject({ power: 'running', generation: 2 });
      expect(pool(started)?.terraform).toMatchObject({ destroy: 1, add: expect.any(Number) }); // the credential delivery replaced (its VM updated in place)
      const r = await w.cycle();
      expect(pool(r)?.states['p-n000']).toMatch(/ready|busy/);
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('starts a registered (non-JIT) runner\'s node with a new registration token; its machine configures a new runner with it', async () => {
    const { emu, w, policy } = await github({ runner: { ephemeral: false } });
    try {
      expect(policy.pools[0]?.runner.ephemeral).toBe(false);
      await w.cycle();
      const token1 = w.credential('p-n000');
      expect(emu.runners.filter((r) => r.name === 'p-n000')).toHaveLength(1);
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      expect(emu.runners.some((r) => r.name === 'p-n000')).toBe(false);
      emu.addRun('api', [{ labels: ['linux'] }]);
      const started = await w.cycle();
      expect(pool(started)?.start).toEqual(['p-n000']);
      expect(emu.count('POST', /registration-token$/)).toBe(2);
      expect(emu.count('POST', /generate-jitconfig$/)).toBe(0);
      expect(w.credential('p-n000')).not.toBe(token1);
      expect(emu.runners.filter((r) => r.name === 'p-n000')).toHaveLength(1);
      expect(pool(await w.cycle())?.states['p-n000']).toMatch(/ready|busy/);
    } finally {
      await emu.stop();
    }
  });

  it.each<HookPoint>(['started', 'before-apply', 'applied'])('converges after a crash at %s of a start: one runner, the node running, its record started', async (point) => {
    const { emu, w } = await github();
    try {
      await w.cycle();
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      emu.addRun('api', [{ labels: ['linux'] }]);
      const crashed = await w.cycle({ hook: (p, info) => { if (p === point && info.nodes.includes('p-n000')) throw new Error(`crash at ${p}`); } });
      expect(pool(crashed)?.error).toMatch(/crash at/);
      await until(w, (r) => pool(r)?.states['p-n000'] === 'ready' || pool(r)?.states['p-n000'] === 'busy', 6);
      expect(w.node('p-n000')).toMatchObject({ power: 'running' });
      expect(emu.runners.filter((r) => r.name === 'p-n000')).toHaveLength(1);
      const rec = await w.history.getPool('p');
      expect(rec?.intents.filter((i) => i.node === 'p-n000')).toEqual([]);
      expect(rec?.nodes.find((n) => n.name === 'p-n000')?.startedAt).toBeDefined();
      expect(w.busyDestroyed).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('removes the registration a crashed start left on a stopped node even when the history that recorded the start is lost (the node, indistinguishable from one stopped outside Parmanu, goes too)', async () => {
    const { emu, w } = await github();
    try {
      await w.cycle();
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      const run = emu.addRun('api', [{ labels: ['linux'] }]);
      const crashed = await w.cycle({ hook: (p, info) => { if (p === 'started' && info.nodes.includes('p-n000')) throw new Error('crash after the registration'); } });
      expect(pool(crashed)?.error).toMatch(/crash after the registration/);
      expect(emu.runners.filter((r) => r.name === 'p-n000')).toHaveLength(1);
      for (const j of emu.jobs) if (j.run_id === run.id) emu.finishJob(j.id); // the job was cancelled meanwhile
      const lease = await w.history.acquireLease('p', 'wipe', 60_000);
      if (!lease) throw new Error('no lease');
      await w.history.deletePool('p', lease);
      await w.history.releaseLease(lease);
      const r = await w.cycle();
      expect(pool(r)?.error).toBeUndefined();
      expect(pool(r)?.start ?? []).toEqual([]);
      // With no record, a stopped node with a live registration cannot be told from one stopped
      // outside Parmanu: it is not standby, and goes (after the idle check) with its registration.
      expect(pool(r)?.reasons.join('\n')).toMatch(/destroying 1 node stopped outside Parmanu/);
      expect(pool(r)?.destroy).toEqual(['p-n000']);
      expect(w.node('p-n000')).toBeUndefined();
      expect(emu.runners.some((x) => x.name === 'p-n000')).toBe(false);
    } finally {
      await emu.stop();
    }
  });

  it('records a start whose apply failed on its node, and next cycle creates a node instead of starting it again; its new registration is removed', async () => {
    const { emu, w } = await github();
    try {
      await w.cycle();
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      // The node's fresh credential cannot be delivered (where its file goes is a directory): the
      // apply of the start fails, as a start without capacity would (AWS
      // InsufficientInstanceCapacity, GCP ZONE_RESOURCE_POOL_EXHAUSTED).
      const file = localCredentialFile(w.stateDir, 'p', 'p-n000');
      rmSync(file, { force: true });
      mkdirSync(join(file, 'blocked'), { recursive: true });
      emu.addRun('api', [{ labels: ['linux'] }]);
      const failed = await w.cycle();
      expect(pool(failed)?.error).toMatch(/apply/i);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      const at = w.now.t - 30_000;
      const rec = await w.history.getPool('p');
      expect(rec?.nodes.find((n) => n.name === 'p-n000')).toMatchObject({ startFailures: 1, startFailedAt: at });
      expect(rec?.nodes.find((n) => n.name === 'p-n000')?.startedAt).toBeUndefined();
      // Next cycle: not started again (decide pauses after a failed start); a new node boots for the job.
      const next = await w.cycle();
      expect(pool(next)?.error).toBeUndefined();
      expect(pool(next)?.start).toEqual([]);
      expect(pool(next)?.create).toHaveLength(1);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      // The registration the failed start made is gone: the stopped node has none.
      expect(emu.runners.some((x) => x.name === 'p-n000')).toBe(false);
      expect((await w.history.getPool('p'))?.nodes.find((n) => n.name === 'p-n000')).toMatchObject({ startFailures: 1, startFailedAt: at });
      rmSync(file, { recursive: true, force: true });
    } finally {
      await emu.stop();
    }
  });

  it('converges after a crash between a stop\'s apply and its record: the stop finishes, the node stays standby', async () => {
    const { emu, w } = await github();
    try {
      await w.cycle(); // creates p-n000
      expect(pool(await w.cycle())?.drain).toEqual(['p-n000']); // online: drained to become standby
      const r = await w.cycle({ hook: (p, info) => { if (p === 'applied' && info.nodes.includes('p-n000')) throw new Error('crash after the stop'); } });
      expect(pool(r)?.error).toMatch(/crash after the stop/);
      expect((await w.history.getPool('p'))?.intents).toEqual([expect.objectContaining({ node: 'p-n000', action: 'stop' })]);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      const after = await w.cycle();
      expect(pool(after)?.states).toEqual({ 'p-n000': 'standby' });
      expect((await w.history.getPool('p'))?.intents).toEqual([]);
      expect(emu.runners.some((x) => x.name === 'p-n000')).toBe(false);
    } finally {
      await emu.stop();
    }
  });
});

describe('standby on Jenkins', () => {
  it('stops a node with its agent taken offline, and on start takes it back online: the agent reconnects with the same secret', async () => {
    const { emu, w } = await jenkins();
    try {
      await w.cycle();
      const secret = w.credential('p-n000');
      await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
      expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
      expect(emu.node('p-n000')).toMatchObject({ temporarilyOffline: true, online: false });
      emu.enqueue('linux');
      const started = await w.cycle();
      expect(pool(started)?.start).toEqual(['p-n000']);
      expect(emu.node('p-n000')?.temporarilyOffline).toBe(false);
      expect(w.credential('p-n000')).toBe(secret);
      expect(emu.credentials.filter((c) => c.runner === 'p-n000')).toHaveLength(1);
      expect(pool(await w.cycle())?.states['p-n000']).toMatch(/ready|busy/);
    } finally {
      await emu.stop();
    }
  });
});

describe('standby with the replay emitter on the local platform', () => {
  it('takes a stopped node\'s runner away and starts it with a new token delivered to its credential file, where the replayed job then runs', async () => {
    const root = suite.tempDir('parmanu-standby-replay-');
    const trace = join(root, 'trace.csv');
    // A job for another pool first (anchors the replay), then one for this pool half an hour later.
    writeFileSync(trace, ['queued_at,duration_s,labels', '2025-01-06T08:00:00Z,60,other', '2025-01-06T08:30:00Z,600,linux'].join('\n'));
    const policy = policyOf({ type: 'replay', trace });
    const box: { w?: World } = {};
    const w = world(policy, undefined as never, new GitlabEmulator(), () => undefined);
    // The replay keeps its state, and sees its nodes' credential files, in the reconciler's state directory.
    const emitter = new ReplayEmitter(policy.emitters.ci as never, { wall: () => box.w?.now.t ?? T0, stateDir: w.stateDir, localPools: new Set(['p']) });
    w.deps.emitters.set('ci', emitter);
    box.w = w;
    const runnerOf = async (name: string) => (await emitter.probe()).runners.find((r) => r.name === name);
    expect(pool(await w.cycle())?.create).toEqual(['p-n000']);
    const token1 = w.credential('p-n000');
    expect(await runnerOf('p-n000')).toMatchObject({ online: true });
    await until(w, (r) => (pool(r)?.stop ?? []).length > 0);
    expect(w.node('p-n000')).toMatchObject({ power: 'stopped' });
    expect(await runnerOf('p-n000')).toBeUndefined();
    w.now.t = T0 + 30 * 60_000 + 5_000;
    const started = await w.cycle();
    expect(pool(started)?.start).toEqual(['p-n000']);
    expect(w.node('p-n000')).toMatchObject({ power: 'running', generation: 2 });
    const token2 = w.credential('p-n000');
    expect(token2).not.toBe(token1);
    const back = await emitter.probe();
    expect(back.runners.find((r) => r.name === 'p-n000')).toMatchObject({ online: true, paused: false });
    expect(back.jobs.find((j) => j.status === 'running')).toMatchObject({ runner: 'p-n000' });
  });
});
