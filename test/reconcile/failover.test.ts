/**
 * BCDR failover end to end (issue #17.3): one pool on two `local` platforms, real terraform (one
 * stack each, `p` and `p@lab-b`), real Redis, the GitLab emulator over HTTP. The primary's
 * `faultFile` makes every plan with a node fail, as a cloud outage would.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type PoolOutcome, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { capture, scanStateDir } from '../secret-scan.js';
import { gitlabGroup, reconcileDeps, useRedisSuite } from './suite.js';
import { wrapper } from './capacity-wrapper.js';
import { Terraform } from '../../src/terraform/runner.js';

const suite = useRedisSuite();
const MIN = 60_000;
const T0 = Date.parse('2026-11-02T10:00:00Z');

async function world(pool: Record<string, unknown>, platforms: { a?: Record<string, unknown>; b?: Record<string, unknown> } = {}) {
  const { emu, project, emitter: gitlab } = await gitlabGroup();
  const root = suite.tempDir('parmanu-failover-');
  const stateDir = join(root, 'state');
  const fault = join(root, 'lab-a.down');
  const policyWith = (a: Record<string, unknown>, b: Record<string, unknown>, p: Record<string, unknown>): Policy =>
    normalize({
      emitters: new Map([['ci', gitlab]]),
      platforms: new Map([
        ['lab-a', PlatformSchema.parse({ type: 'local', faultFile: fault, ...a })],
        ['lab-b', PlatformSchema.parse({ type: 'local', ...b })],
      ]),
      pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab-a', failover: ['lab-b'], labels: ['linux'], scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s' }, ...p })]]),
    });
  const now = { t: T0 };
  const history = new RedisHistoryStore(suite.url, () => now.t, `parmanu:fo${Math.random().toString(36).slice(2)}:`);
  let policy = policyWith(platforms.a ?? {}, platforms.b ?? {}, pool);
  const emitter = new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 1000, retries: 1, concurrency: 8, backoffMs: 5 }), () => now.t);
  const base = reconcileDeps(policy, emitter, history, stateDir, now);
  const stack = (s: string) => readStateNodes(join(poolDir(stateDir, s), 'terraform.tfstate'));
  return {
    emu,
    project,
    history,
    now,
    fault,
    stateDir,
    setPolicy: (a: Record<string, unknown>, b: Record<string, unknown> = {}, p: Record<string, unknown> = pool) => {
      policy = policyWith(a, b, p);
    },
    onA: () => stack('p').map((n) => n.name).sort(),
    onB: () => stack('p@lab-b').map((n) => n.name).sort(),
    stateOf: stack,
    cycle: async (extra: Partial<ReconcileDeps> = {}): Promise<PoolOutcome> => {
      const r = await reconcileOnce({ ...base, policy, ...extra });
      await scanStateDir(stateDir);
      capture('a reconcile result', JSON.stringify(r));
      return r.pools[0] as PoolOutcome;
    },
    /** Every runner Parmanu registered comes online (its machine booted). */
    online: () => {
      for (const r of emu.runners) if (r.status !== 'online') emu.connect(r.description);
    },
    close: async () => {
      await history.close();
      await emu.stop();
    },
  };
}

describe('failover between two local platforms', () => {
  it('an evacuated platform empties onto its failover (make before break), and the pool moves back when the mark goes', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 2 } });
    try {
      let r = await w.cycle();
      expect(r.create).toHaveLength(2);
      expect(w.onA()).toEqual(['p-n000', 'p-n001']);
      // The local platform records where each node runs.
      expect(w.stateOf('p').map((n) => n.input?.platform)).toEqual(['lab-a', 'lab-a']);
      w.online();
      w.now.t += MIN;
      r = await w.cycle();
      expect(r.create).toEqual([]);

      // A drill: lab-a is evacuated. New nodes go to lab-b; lab-a's keep serving until they do.
      w.setPolicy({ evacuate: true });
      w.now.t += MIN;
      const samplesBefore = (await w.history.samples('p', 0)).length;
      r = await w.cycle();
      // One sample for the pool per cycle (from the stack that gets new nodes), counting the nodes of both stacks.
      const samples = await w.history.samples('p', 0);
      expect(samples).toHaveLength(samplesBefore + 1);
      expect(samples.at(-1)?.nodes).toBe(4);
      expect(r.platform).toBe('lab-b');
      expect(r.create).toEqual(['p-n002', 'p-n003']);
      expect(r.drain).toEqual([]);
      expect(w.onB()).toEqual(['p-n002', 'p-n003']);
      expect(w.onA()).toEqual(['p-n000', 'p-n001']);
      expect(w.stateOf('p@lab-b').map((n) => n.input?.platform)).toEqual(['lab-b', 'lab-b']);
      expect(r.reasons.join('\n')).toMatch(/platform lab-a is evacuated \(evacuate: true\): new nodes go to lab-b/);
      expect(r.reasons.join('\n')).toMatch(/\[p\] platform lab-a is evacuated: nodes on lab-a go: keeping 2 of 2 serving/);
      expect(r.stacks?.map((s) => [s.stack, s.platform, s.role, s.nodes])).toEqual([
        ['p@lab-b', 'lab-b', 'active', 0],
        ['p', 'lab-a', 'leaving', 2],
      ]);
      // Runners: one pool, four nodes, none of lab-b's an orphan of lab-a or the other way round.
      expect(w.emu.runners.map((x) => x.description).sort()).toEqual(['p-n000', 'p-n001', 'p-n002', 'p-n003']);

      // lab-b's nodes come online: lab-a's drain (paused), then go once idle.
      w.online();
      w.now.t += MIN;
      r = await w.cycle();
      expect(r.drain.sort()).toEqual(['p-n000', 'p-n001']);
      expect(w.emu.runnerNamed('p-n000')?.paused).toBe(true);
      w.now.t += MIN;
      r = await w.cycle();
      expect(r.destroy.sort()).toEqual(['p-n000', 'p-n001']);
      expect(w.onA()).toEqual([]);
      expect(w.emu.runnerNamed('p-n000')).toBeUndefined();
      expect(w.onB()).toEqual(['p-n002', 'p-n003']);
      const rec = await w.history.getPool('p');
      expect(rec?.failover).toMatchObject({ active: 'lab-b', stacks: ['p@lab-b'] });

      // The mark goes: the pool moves back the same way.
      w.setPolicy({});
      w.now.t += MIN;
      r = await w.cycle();
      expect(r.platform).toBe('lab-a');
      expect(r.create).toEqual(['p-n004', 'p-n005']);
      expect(w.onA()).toEqual(['p-n004', 'p-n005']);
      w.online();
      w.now.t += MIN;
      await w.cycle();
      w.now.t += MIN;
      r = await w.cycle();
      expect(w.onB()).toEqual([]);
      expect(r.stacks?.find((s) => s.stack === 'p@lab-b')).toMatchObject({ role: 'leaving', terraform: { ran: true, destroy: 4 } });
      // The empty failover stack is forgotten (its record), the pool's own record stays.
      expect(await w.history.getPool('p@lab-b')).toBeUndefined();
      expect((await w.history.getPool('p'))?.nodes.map((n) => n.name).sort()).toEqual(['p-n004', 'p-n005']);
      const events = (await w.history.events(T0 - 1)).filter((e) => e.pool === 'p');
      expect(events.filter((e) => e.kind === 'failover').map((e) => e.detail)).toEqual(['new nodes go to lab-b (were going to lab-a)', 'new nodes go to lab-a (were going to lab-b)']);
    } finally {
      await w.close();
    }
  });

  it('a failing platform fails over after failoverAfter errors, keeps the failover serving while it still fails, and moves back once healthy', async () => {
    const w = await world({ failoverAfter: 2, failbackAfter: '5m' });
    try {
      w.emu.addJob(w.project, 'pending', ['linux']);
      w.emu.addJob(w.project, 'pending', ['linux']);
      // lab-a goes down between the plan and the apply: the apply fails (Terraform checks the
      // precondition again when it applies the saved plan); then its plans fail. The pool fails
      // (its active stack did), and stays on lab-a until failoverAfter is reached.
      let r = await w.cycle({ hook: (point) => (point === 'before-apply' ? writeFileSync(w.fault, 'down') : undefined) });
      expect(r.error).toMatch(/apply.*lab-a is down: its faultFile exists/s);
      expect(w.onA()).toEqual([]);
      expect(r.platform).toBe('lab-a');
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.error).toMatch(/lab-a is down/);
      expect(w.onA()).toEqual([]);
      // The third cycle: lab-a is failing, new nodes go to lab-b.
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.error).toBeUndefined();
      expect(r.platform).toBe('lab-b');
      expect(r.reasons.join('\n')).toMatch(/platform lab-a is failing \(2 failed Terraform runs in a row, last: .*lab-a is down.*\): new nodes go to lab-b/);
      expect(w.onB()).toHaveLength(2);
      const onB = w.onB();
      // The runners of lab-a's failed attempts are gone (registered, their node never made).
      expect(w.emu.runners.map((x) => x.description).sort()).toEqual(onB);
      w.online();
      const [j1, j2] = w.emu.jobs;
      if (!j1 || !j2) throw new Error('jobs missing');
      for (const [j, n] of [[j1, onB[0]], [j2, onB[1]]] as const) Object.assign(j, { status: 'running', runner: { id: w.emu.runnerNamed(n as string)?.id, description: n } });

      // After failbackAfter lab-a is tried again while still down (probation): lab-b keeps every
      // node; lab-a has nothing to create, so nothing fails yet.
      w.now.t += 6 * MIN;
      r = await w.cycle();
      expect(r.platform).toBe('lab-a');
      expect(r.error).toBeUndefined();
      expect(r.reasons.join('\n')).toMatch(/platform lab-a failed 2 times in a row .* and is tried again: the pool's other platforms keep their nodes/);
      expect(r.drain).toEqual([]);
      // A job queues: lab-a's attempt fails, lab-b keeps every node; the next cycle puts it on lab-b.
      const j3 = w.emu.addJob(w.project, 'pending', ['linux']);
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.platform).toBe('lab-a');
      expect(r.error).toMatch(/lab-a is down/);
      expect(r.drain).toEqual([]);
      expect(w.onB()).toEqual(onB);
      w.now.t += 30_000;
      r = await w.cycle();
      expect(r.platform).toBe('lab-b');
      expect(r.error).toBeUndefined();
      expect(r.create).toHaveLength(1);
      const third = r.create[0] as string;
      expect(w.onB()).toEqual([...onB, third].sort());
      w.online();
      Object.assign(j3, { status: 'running', runner: { id: w.emu.runnerNamed(third)?.id, description: third } });

      // lab-a is back: after failbackAfter, a new job gets a node there; once a Terraform run on
      // lab-a worked, lab-b's nodes drain as lab-a's serve (a busy one finishes its job first).
      rmSync(w.fault);
      w.now.t += 6 * MIN;
      w.emu.addJob(w.project, 'pending', ['linux']);
      r = await w.cycle();
      expect(r.platform).toBe('lab-a');
      expect(r.error).toBeUndefined();
      expect(r.create).toHaveLength(1);
      expect(w.onA()).toEqual(r.create);
      expect((await w.history.getPool('p'))?.failover?.health['lab-a']).toEqual({ failures: 0 });
      w.online();
      w.now.t += 30_000;
      r = await w.cycle();
      // lab-a's one node is ready and covers the pool's desired 1: every lab-b node drains, busy ones keep their job.
      expect(r.drain.sort()).toEqual([...onB, third].sort());
      expect(w.onB()).toEqual([...onB, third].sort());
      for (const n of [...onB, third]) expect(w.emu.runnerNamed(n)?.paused).toBe(true);
      // The running jobs end: lab-b's nodes go, none while busy.
      for (const j of w.emu.jobs) if (j.status === 'running') j.status = 'success';
      w.now.t += MIN;
      r = await w.cycle();
      expect(r.destroy.sort()).toEqual([...onB, third].sort());
      expect(w.onB()).toEqual([]);
      expect(readFileSync(join(poolDir(w.stateDir, 'p@lab-b'), 'cdk.tf.json'), 'utf8')).not.toMatch(/node_p-/);
      expect(existsSync(join(poolDir(w.stateDir, 'p'), 'terraform.tfstate'))).toBe(true);
    } finally {
      await w.close();
    }
  });

  it('a pool torn down (or removed) with nodes on both platforms: every stack drained and destroyed, then every record forgotten', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      await w.cycle();
      w.online();
      w.setPolicy({ evacuate: true });
      w.now.t += MIN;
      await w.cycle();
      expect(w.onA()).toHaveLength(1);
      expect(w.onB()).toHaveLength(1);
      let r: PoolOutcome | undefined;
      for (let i = 0; i < 4; i++) {
        w.now.t += MIN;
        r = await w.cycle({ teardown: ['p'] });
        expect(r.error).toBeUndefined();
      }
      expect(w.onA()).toEqual([]);
      expect(w.onB()).toEqual([]);
      expect(w.emu.runners).toEqual([]);
      expect(await w.history.getPool('p@lab-b')).toBeUndefined();
      expect(await w.history.getPool('p')).toBeUndefined();
    } finally {
      await w.close();
    }
  });

  it('a failover platform dropped from the pool failover list while it holds nodes, with the history lost too: its stack is found in the state directory, drained and destroyed', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      w.setPolicy({ evacuate: true });
      await w.cycle();
      w.online();
      expect(w.onA()).toEqual([]);
      const onB = w.onB();
      expect(onB).toHaveLength(1);
      // The policy no longer names lab-b for the pool, and Redis was flushed.
      w.setPolicy({}, {}, { failover: [], scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
      await w.history.clear();
      for (let i = 0; i < 4 && w.onB().length; i++) {
        w.now.t += MIN;
        const r = await w.cycle();
        expect(r.error).toBeUndefined();
        w.online();
      }
      expect(w.onB()).toEqual([]);
      expect(w.onA()).toHaveLength(1);
      expect(w.emu.runners.map((x) => x.description)).toEqual(w.onA());
    } finally {
      await w.close();
    }
  });

  it('a stack whose state cannot be read: its runners are no orphan of the others, a removed pool forgets nothing and fails until it is read', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      w.setPolicy({ evacuate: true });
      await w.cycle();
      w.online();
      const onB = w.onB();
      expect(onB).toHaveLength(1);
      // lab-b's state becomes unreadable (its backend down); the pool is torn down, with no grace for orphans.
      const file = join(poolDir(w.stateDir, 'p@lab-b'), 'terraform.tfstate');
      const good = readFileSync(file, 'utf8');
      writeFileSync(file, '{ not a state');
      for (let i = 0; i < 3; i++) {
        w.now.t += MIN;
        const r = await w.cycle({ teardown: ['p'], orphanGraceMs: 0 });
        expect(r.error).toMatch(/stack p@lab-b/);
        expect(r.reasons.join('\n')).toMatch(/no runner is taken for an orphan this cycle/);
      }
      expect(w.emu.runnerNamed(onB[0] as string)).toBeDefined();
      expect(await w.history.getPool('p')).toBeDefined();
      // The history lost too: the unread stack's record no longer names its node; still no runner
      // is taken for an orphan (the stack is found in the state directory, unread).
      await w.history.clear();
      for (let i = 0; i < 2; i++) {
        w.now.t += MIN;
        const r = await w.cycle({ teardown: ['p'], orphanGraceMs: 0 });
        expect(r.error).toMatch(/stack p@lab-b/);
      }
      expect(w.emu.runnerNamed(onB[0] as string)).toBeDefined();
      // Readable again: the teardown finishes.
      writeFileSync(file, good);
      for (let i = 0; i < 5 && (w.onB().length || (await w.history.getPool('p@lab-b')) || (await w.history.getPool('p'))); i++) {
        w.now.t += MIN;
        await w.cycle({ teardown: ['p'], orphanGraceMs: 0 });
      }
      expect(w.onB()).toEqual([]);
      expect(w.emu.runners).toEqual([]);
      expect(await w.history.getPool('p')).toBeUndefined();
    } finally {
      await w.close();
    }
  });

  it('a platform that still refreshes and destroys but cannot create stays failed over until failbackAfter (only the active stack clears its count)', async () => {
    const w = await world({ failoverAfter: 1, failbackAfter: '10m', scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      await w.cycle();
      w.online();
      const onA = w.onA();
      expect(onA).toHaveLength(1);
      // lab-a fails a plan that creates a node (the fault appears once a new node is registered, and is gone when a stack is read).
      const hook = (point: string, info: { nodes: readonly string[] }) => {
        if (point === 'observed') rmSync(w.fault, { force: true });
        if (point === 'registered' && info.nodes.some((n) => !w.onB().includes(n))) writeFileSync(w.fault, 'down');
      };
      w.emu.addJob(w.project, 'pending', ['linux']);
      w.emu.addJob(w.project, 'pending', ['linux']);
      w.now.t += MIN;
      let r = await w.cycle({ hook });
      expect(r.error).toMatch(/lab-a is down/);
      // Failed over: lab-b makes the nodes; lab-a's stack still plans over its node fine (a drift check).
      for (let i = 0; i < 3; i++) {
        w.now.t += MIN;
        r = await w.cycle({ hook, driftCheckMs: 0 });
        expect(r.platform).toBe('lab-b');
        expect(r.error).toBeUndefined();
        w.online();
      }
      expect(w.onB().length).toBeGreaterThan(0);
      expect((await w.history.getPool('p'))?.failover?.health['lab-a']?.failures).toBe(1);
    } finally {
      rmSync(w.fault, { force: true });
      await w.close();
    }
  });

  it('a pool whose platform is swapped with its failover one under its nodes is refused, saying how to move it; nothing is touched', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      await w.cycle();
      w.online();
      const onA = w.onA();
      w.setPolicy({}, {}, { platform: 'lab-b', failover: ['lab-a'], scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
      w.now.t += MIN;
      const r = await w.cycle({ orphanGraceMs: 0 });
      expect(r.error).toMatch(/stack p holds 1 node made on platform lab-a, but the policy puts it on lab-b: .*list lab-b under failover and mark lab-a evacuate: true/);
      expect(w.onA()).toEqual(onA);
      expect(w.emu.runners.map((x) => x.description)).toEqual(onA);
      // The history lost: the configuration saved beside the stack's state still says lab-a.
      await w.history.clear();
      w.now.t += MIN;
      const again = await w.cycle({ orphanGraceMs: 0 });
      expect(again.error).toMatch(/stack p holds 1 node made on platform lab-a/);
      expect(w.onA()).toEqual(onA);
      expect(w.emu.runners.map((x) => x.description)).toEqual(onA);
    } finally {
      await w.close();
    }
  });

  it('a platform with no capacity for new nodes (spot exhausted, each new node dropped) fails over like a failing one', async () => {
    const w = await world({ failoverAfter: 1, machine: { spot: true }, runner: { install: 'preinstalled' } });
    const tf = wrapper(suite.tempDir('parmanu-failover-tf-'), [{ on: 'apply', kind: 'spot-capacity', market: 'spot' }]);
    const terraform = new Terraform({ bin: tf.bin });
    try {
      w.emu.addJob(w.project, 'pending', ['linux']);
      let r = await w.cycle({ terraform });
      // No error (the cycle did all it could), but the node was dropped: that counts against lab-a.
      expect(r.error).toBeUndefined();
      expect(r.fallbacks?.map((f) => f.to)).toEqual(['dropped']);
      expect(w.onA()).toEqual([]);
      expect(tf.left()).toEqual([]);
      expect((await w.history.getPool('p'))?.failover?.health['lab-a']).toMatchObject({ failures: 1, lastError: expect.stringMatching(/^no capacity for new node p-/) as unknown as string });
      w.now.t += 30_000;
      r = await w.cycle({ terraform });
      expect(r.platform).toBe('lab-b');
      expect(r.create).toHaveLength(1);
      expect(w.onB()).toEqual(r.create);
    } finally {
      await w.close();
    }
  });

  it('a move done as the refusal says — evacuated onto the failover, then the failover made the pool\'s own platform: the old failover stack drains into the pool\'s own', async () => {
    const w = await world({ scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
    try {
      await w.cycle();
      w.online();
      w.setPolicy({ evacuate: true });
      for (let i = 0; i < 3; i++) {
        w.now.t += MIN;
        await w.cycle();
        w.online();
      }
      expect(w.onA()).toEqual([]);
      const onB = w.onB();
      expect(onB).toHaveLength(1);
      // lab-b becomes the pool's own platform (its stack is `p` now, still empty); `p@lab-b` holds the node.
      w.setPolicy({}, {}, { platform: 'lab-b', failover: [], scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', min: 1 } });
      w.now.t += MIN;
      let r = await w.cycle({ orphanGraceMs: 0 });
      expect(r.error).toBeUndefined();
      expect(r.stacks?.map((x) => [x.stack, x.role])).toEqual([['p', 'active'], ['p@lab-b', 'leaving']]);
      // Made before broken: the old node serves until the new one does; never an orphan.
      expect(w.emu.runnerNamed(onB[0] as string)?.paused).toBe(false);
      for (let i = 0; i < 4 && w.onB().length; i++) {
        w.online();
        w.now.t += MIN;
        r = await w.cycle({ orphanGraceMs: 0 });
        expect(r.error).toBeUndefined();
      }
      expect(w.onB()).toEqual([]);
      expect(w.onA()).toHaveLength(1);
      expect(w.emu.runners.map((x) => x.description)).toEqual(w.onA());
      expect(await w.history.getPool('p@lab-b')).toBeUndefined();
    } finally {
      await w.close();
    }
  });
});
