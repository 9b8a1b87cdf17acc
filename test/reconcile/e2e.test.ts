/**
 * End to end: the reconcile cycle with real terraform (local platform), real Redis or the file
 * store, and the GitLab emulator. Each test has its own state directory.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { ReplayEmitter } from '../../src/emitters/replay.js';
import type { Emitter } from '../../src/emitters/types.js';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import type { HistoryStore } from '../../src/history/types.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { reconcileDeps, useRedisSuite } from './suite.js';
import { capture, scanStateDir } from '../secret-scan.js';

const suite = useRedisSuite();

const MIN = 60_000;
const T0 = Date.parse('2026-11-02T10:00:00Z');

function policyOf(emitter: Record<string, unknown>, pool: Record<string, unknown>): Policy {
  return normalize({
    emitters: new Map([['ci', EmitterSchema.parse(emitter)]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], ...pool })]]),
  });
}

interface World {
  deps: ReconcileDeps;
  now: { t: number };
  stateDir: string;
  stateNodes: () => string[];
  cycle: (extra?: Partial<ReconcileDeps>) => ReturnType<typeof reconcileOnce>;
}

function world(policy: Policy, emitter: Emitter, history: HistoryStore, extra: Partial<ReconcileDeps> = {}): World {
  const root = suite.tempDir('parmanu-e2e-');
  const stateDir = join(root, 'state');
  const now = { t: T0 };
  const deps = reconcileDeps(policy, emitter, history, stateDir, now, extra);
  return {
    deps,
    now,
    stateDir,
    stateNodes: () => readStateNodes(join(poolDir(stateDir, 'p'), 'terraform.tfstate')).map((n) => n.name).sort(),
    cycle: async (more = {}) => {
      const r = await reconcileOnce({ ...deps, ...more });
      // No credential in anything the cycle left behind: stacks, state, saved plans, history files.
      await scanStateDir(stateDir);
      capture('a reconcile result', JSON.stringify(r));
      return r;
    },
  };
}

const fastHttp = () => new HttpClient({ timeoutMs: 1000, retries: 1, concurrency: 8, backoffMs: 5 });

describe('reconcile with the replay emitter and the file store', () => {
  it('scales up through terraform, then holds steady without running terraform', async () => {
    const root = suite.tempDir('parmanu-e2e-trace-');
    const trace = join(root, 'trace.csv');
    writeFileSync(trace, 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,3600,linux\n2025-01-06T08:00:00Z,3600,linux\n2025-01-06T08:00:10Z,3600,linux\n');
    const policy = policyOf({ type: 'replay', trace }, { scaling: { predict: false } });
    const now = { t: T0 };
    const w = world(policy, new ReplayEmitter(policy.emitters.ci as never, () => now.t), new FileHistoryStore(join(root, 'hist'), () => now.t));
    w.now.t = T0;
    const first = await w.cycle({ clock: () => now.t });
    expect(first.ok).toBe(true);
    expect(first.pools[0]).toMatchObject({ desired: 2, create: ['p-n000', 'p-n001'], terraform: { ran: true, add: 2, change: 0, destroy: 0 } });
    expect(w.stateNodes()).toEqual(['p-n000', 'p-n001']);
    now.t += 30_000;
    const second = await w.cycle({ clock: () => now.t });
    expect(second.pools[0]).toMatchObject({ desired: 3, create: ['p-n002'], terraform: { ran: true, add: 1 } });
    now.t += 30_000;
    const third = await w.cycle({ clock: () => now.t });
    expect(third.pools[0]).toMatchObject({ desired: 3, create: [], destroy: [], terraform: { ran: false } });
  });
});

describe('reconcile with GitLab, Redis and terraform', () => {
  async function gitlabWorld(extra: Partial<ReconcileDeps> = {}, poolExtra: Record<string, unknown> = {}) {
    const emu = await new GitlabEmulator().start();
    const group = emu.addGroup('platform');
    const project = emu.addProject('api', group);
    const policy = policyOf({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } }, { scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', ...poolExtra } });
    const history = new RedisHistoryStore(suite.url, () => w.now.t, `parmanu:e2e${Math.random().toString(36).slice(2)}:`);
    const w = world(policy, new GitlabEmitter(policy.emitters.ci as never, emu.token, fastHttp(), () => w.now.t), history, extra);
    return { emu, project, w, history };
  }

  it('scales up with registered runners, keeps a busy runner, scales down in two phases, and repairs drift', async () => {
    const { emu, project, w, history } = await gitlabWorld();
    try {
      emu.addJob(project, 'pending', ['linux']);
      emu.addJob(project, 'pending', ['linux']);
      let r = await w.cycle();
      // Each node is its VM and its credential delivery: two resources.
      expect(r.pools[0]).toMatchObject({ create: ['p-n000', 'p-n001'], terraform: { ran: true, add: 4 } });
      expect(emu.runners.map((x) => x.description).sort()).toEqual(['p-n000', 'p-n001']);
      expect(await history.getJobLabels('ci')).toMatchObject({ kind: 'gitlab', sets: [{ labels: ['linux'], jobs: 2 }] });
      // The runners come online and take the jobs; one finishes.
      for (const x of emu.runners) x.status = 'online';
      const [busyJob, doneJob] = emu.jobs;
      if (!busyJob || !doneJob) throw new Error('jobs missing');
      Object.assign(busyJob, { status: 'running', runner: { id: (emu.runners[0] as { id: number }).id, description: 'p-n000' } });
      Object.assign(doneJob, { status: 'success' });
      w.now.t += 2 * MIN;
      r = await w.cycle();
      // Demand 1: the idle node is drained, the busy one kept.
      expect(r.pools[0]).toMatchObject({ drain: ['p-n001'], destroy: [], terraform: { ran: false } });
      expect(emu.runnerNamed('p-n001')?.paused).toBe(true);
      expect(emu.runnerNamed('p-n000')?.paused).toBe(false);
      w.now.t += 30_000;
      r = await w.cycle();
      // Confirmed idle on the next cycle: destroyed, its runner removed.
      expect(r.pools[0]).toMatchObject({ destroy: ['p-n001'], terraform: { ran: true, destroy: 2 } });
      expect(w.stateNodes()).toEqual(['p-n000']);
      expect(emu.runnerNamed('p-n001')).toBeUndefined();
      // The busy node survives any number of cycles while busy.
      w.now.t += 5 * MIN;
      r = await w.cycle();
      expect(r.pools[0]?.destroy).toEqual([]);
      expect(w.stateNodes()).toEqual(['p-n000']);

      // The VM vanishes behind Parmanu's back: forgotten, never re-created under its old name; a
      // new node with a fresh credential replaces it.
      execFileSync('terraform', ['state', 'rm', 'terraform_data.node_p-n000'], { cwd: poolDir(w.stateDir, 'p'), stdio: 'ignore' });
      emu.jobs.length = 0;
      emu.addJob(project, 'pending', ['linux']);
      w.now.t += 30_000;
      r = await w.cycle({ driftCheckMs: 0 });
      // The new node's two resources come, and the credential the vanished VM left behind goes.
      expect(r.pools[0]).toMatchObject({ vanished: ['p-n000'], create: ['p-n002'], terraform: { ran: true, add: 2, destroy: 1 } });
      expect(w.stateNodes()).toEqual(['p-n002']);
      expect(emu.runnerNamed('p-n000')).toBeUndefined();

      // History flushed: rebuilt from state, no VM lost or duplicated.
      await history.clear();
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/history was empty: rebuilt 1 node from Terraform state/);
      expect(r.pools[0]?.create).toEqual([]);
      expect(w.stateNodes()).toEqual(['p-n002']);
    } finally {
      await history.close();
      await emu.stop();
    }
  });

  it('holds when the emitter is down: no drain, no destroy, nothing applied', async () => {
    const { emu, project, w, history } = await gitlabWorld();
    try {
      emu.addJob(project, 'pending', ['linux']);
      await w.cycle();
      expect(w.stateNodes()).toEqual(['p-n000']);
      emu.jobs.length = 0;
      emu.faults.push({ path: /.*/, status: 500 });
      w.now.t += 10 * MIN;
      const r = await w.cycle();
      expect(r.pools[0]).toMatchObject({ drain: [], destroy: [], terraform: { ran: false } });
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/probe failed .*: holding/);
      expect(r.ok).toBe(false);
      expect(w.stateNodes()).toEqual(['p-n000']);
    } finally {
      await history.close();
      await emu.stop();
    }
  });

  it('gives each pool to exactly one of two concurrent reconcilers', async () => {
    const { emu, project, w, history } = await gitlabWorld();
    try {
      emu.addJob(project, 'pending', ['linux']);
      const [a, b] = await Promise.all([w.cycle({ owner: 'a' }), w.cycle({ owner: 'b' })]);
      const applied = [a, b].filter((r) => r.pools[0]?.create.length);
      const skipped = [a, b].filter((r) => r.pools[0]?.skipped);
      expect(applied).toHaveLength(1);
      expect(skipped).toHaveLength(1);
      expect(w.stateNodes()).toEqual(['p-n000']);
    } finally {
      await history.close();
      await emu.stop();
    }
  });

  it('converges after terraform fails mid-apply', async () => {
    const root = suite.tempDir('parmanu-tfwrap-');
    const flag = join(root, 'failed-once');
    const wrapper = join(root, 'terraform');
    writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = apply ] && [ ! -e ${flag} ]; then touch ${flag}; echo "Error: injected failure mid-apply" >&2; exit 1; fi\nexec terraform "$@"\n`);
    chmodSync(wrapper, 0o755);
    const { emu, project, w, history } = await gitlabWorld({ terraform: new Terraform({ bin: wrapper }) });
    try {
      emu.addJob(project, 'pending', ['linux']);
      let r = await w.cycle();
      expect(r.ok).toBe(false);
      expect(r.pools[0]?.error).toMatch(/apply failed: injected failure mid-apply/);
      expect(w.stateNodes()).toEqual([]);
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.ok).toBe(true);
      expect(w.stateNodes()).toHaveLength(1);
      // The runner registered by the failed cycle has no VM: removed after the grace period.
      w.now.t += 20 * MIN;
      for (const x of emu.runners) x.status = 'online';
      r = await w.cycle();
      expect(emu.runners.map((x) => x.description)).toEqual(w.stateNodes());
    } finally {
      await history.close();
      await emu.stop();
    }
  });

  it('fails every pool with a clear error and applies nothing when Redis is down', async () => {
    const { emu, project, w } = await gitlabWorld();
    try {
      emu.addJob(project, 'pending', ['linux']);
      const down = new RedisHistoryStore('redis://127.0.0.1:1');
      const r = await w.cycle({ history: down });
      expect(r.ok).toBe(false);
      expect(r.pools[0]?.error).toMatch(/redis lease: cannot connect to 127\.0\.0\.1:1/);
      expect(w.stateNodes()).toEqual([]);
      expect(emu.runners).toEqual([]);
      await down.close();
    } finally {
      await emu.stop();
    }
  });
});
