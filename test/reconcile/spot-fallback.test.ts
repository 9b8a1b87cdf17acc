/**
 * Spot with fallback through a whole cycle: real terraform (local platform), real Redis, the
 * GitLab emulator. The local platform cannot run out of capacity, so terraform is run through a
 * wrapper (PARMANU_TERRAFORM-style, a script in the test's directory): on the applies its control
 * file names, it runs the real apply, takes the chosen new node back out of the state (what a
 * failed RunInstances leaves: the rest of the apply done, that VM not) and prints an AWS-shaped
 * capacity error naming the node's resource, as terraform does; otherwise it is terraform. The
 * cycle must place the node again and apply within the same cycle, and record the fallback.
 *
 * And a spot VM interrupted behind Parmanu's back, found gone by the plan's refresh (the wrapper
 * takes it out of the state right before a plan): forgotten, never re-created, replaced.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleResult } from '../../src/reconcile/cycle.js';
import { MAX_FALLBACK_ROUNDS } from '../../src/reconcile/fallback.js';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import { Terraform } from '../../src/terraform/runner.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { pickStable } from '../../stacks/spread.js';
import { localCredentialFile } from '../../stacks/types.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { capture, scanStateDir } from '../secret-scan.js';
import { wrapper, type Fault } from './capacity-wrapper.js';
import { reconcileDeps, useRedisSuite } from './suite.js';

const suite = useRedisSuite();
const T0 = Date.parse('2026-11-02T10:00:00Z');
function policyOf(url: string, machine: Record<string, unknown>): Policy {
  return normalize({
    emitters: new Map([['ci', EmitterSchema.parse({ type: 'gitlab', url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } })]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], machine, runner: { install: 'preinstalled' }, scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', bootTimeout: '10m' } })]]),
  });
}

async function setup(machine: Record<string, unknown>, faults: Fault[]) {
  const emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  const project = emu.addProject('api', group);
  const root = suite.tempDir('parmanu-spot-');
  const stateDir = join(root, 'state');
  const now = { t: T0 };
  const history = new RedisHistoryStore(suite.url, () => now.t, `parmanu:spot${Math.random().toString(36).slice(2)}:`);
  const policy = policyOf(emu.url, machine);
  const emitter = new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 }), () => now.t);
  const tf = wrapper(root, faults);
  const deps = reconcileDeps(policy, emitter, history, stateDir, now, { terraform: new Terraform({ bin: tf.bin }) });
  const state = () => readStateNodes(join(poolDir(stateDir, 'p'), 'terraform.tfstate'));
  const cycle = async (extra = {}): Promise<CycleResult> => {
    const r = await reconcileOnce({ ...deps, ...extra });
    await scanStateDir(stateDir);
    capture('a reconcile result', JSON.stringify(r));
    now.t += 30_000;
    return r;
  };
  const demand = (n: number, p: GlProject = project) => {
    emu.jobs.splice(0, emu.jobs.length);
    for (let i = 0; i < n; i++) emu.addJob(p, 'pending', ['linux']);
  };
  return { emu, history, state, cycle, demand, left: tf.left, stateDir, now };
}

const SUBNETS = ['subnet-a', 'subnet-b', 'subnet-c'];

describe('spot with fallback, end to end', () => {
  it('re-renders a node that got no spot capacity on-demand and applies it in the same cycle; the fallback is recorded, counted, and not outdated', async () => {
    const w = await setup({ spot: {}, subnets: SUBNETS }, [{ on: 'apply', kind: 'spot-capacity', market: 'spot' }]);
    try {
      w.demand(2);
      const r = await w.cycle();
      const p = r.pools[0];
      expect(p?.error).toBeUndefined();
      expect(w.left()).toEqual([]);
      expect(p?.create).toEqual(['p-n000', 'p-n001']);
      // The wrapper failed the first new spot node of the plan: p-n000.
      const where = pickStable('p-n000', SUBNETS);
      expect(p?.fallbacks).toEqual([{ node: 'p-n000', kind: 'spot-capacity', to: 'on-demand', where }]);
      expect(p?.reasons).toContain(`spot capacity unavailable for p-n000 in ${where}: re-rendered on-demand`);
      // Terraform state, the truth, shows the market of each node.
      const input = Object.fromEntries(w.state().map((n) => [n.name, n.input]));
      expect(input['p-n000']).toMatchObject({ market: 'on-demand', placement: where });
      expect(input['p-n001']).toMatchObject({ market: 'spot', placement: pickStable('p-n001', SUBNETS) });
      // Recorded on the node and as an event; counted in the metrics.
      const rec = await w.history.getPool('p');
      expect(rec?.nodes.find((n) => n.name === 'p-n000')?.fallback).toEqual({ kind: 'spot-capacity', market: 'on-demand', where, at: T0 });
      expect(rec?.nodes.find((n) => n.name === 'p-n001')?.fallback).toBeUndefined();
      expect((await w.history.events(0)).filter((e) => e.kind === 'fallback').map((e) => [e.detail, e.reasons])).toEqual([['p-n000', [`spot capacity unavailable for p-n000 in ${where}: re-rendered on-demand`]]]);
      const metrics = new ReconcileMetrics();
      metrics.record(r, 1000);
      expect(await metrics.registry.metrics()).toContain('parmanu_spot_fallbacks_total{pool="p",kind="spot-capacity",to="on-demand"} 1');
      // Both runners registered once; none removed.
      expect(w.emu.runners.map((x) => x.description).sort()).toEqual(['p-n000', 'p-n001']);

      // The node that fell back stays: not outdated, not drained, not replaced, with or without the history.
      w.emu.connect('p-n000');
      w.emu.connect('p-n001');
      let next = await w.cycle({ driftCheckMs: 0 });
      expect(next.pools[0]).toMatchObject({ create: [], drain: [], destroy: [] });
      expect(next.pools[0]?.states['p-n000']).not.toBe('outdated');
      await w.history.clear();
      next = await w.cycle({ driftCheckMs: 0 });
      expect(next.pools[0]).toMatchObject({ create: [], drain: [], destroy: [] });
      expect(Object.values(next.pools[0]?.states ?? {})).not.toContain('outdated');
      expect(w.state().map((n) => n.name).sort()).toEqual(['p-n000', 'p-n001']);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it('moves a node out of a zone without capacity to the next subnet, and the next, within one cycle', async () => {
    const w = await setup({ subnets: SUBNETS }, [
      { on: 'apply', kind: 'zone-capacity' },
      { on: 'apply', kind: 'zone-capacity' },
    ]);
    try {
      w.demand(1);
      const r = await w.cycle();
      const own = SUBNETS.indexOf(pickStable('p-n000', SUBNETS) as string);
      const at = (k: number) => SUBNETS[(own + k) % 3] as string;
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.create).toEqual(['p-n000']);
      expect(r.pools[0]?.fallbacks).toEqual([
        { node: 'p-n000', kind: 'zone-capacity', to: 'next-zone', where: at(1) },
        { node: 'p-n000', kind: 'zone-capacity', to: 'next-zone', where: at(2) },
      ]);
      expect(r.pools[0]?.reasons).toEqual(expect.arrayContaining([`no capacity in ${at(0)} for p-n000: moved to ${at(1)}`, `no capacity in ${at(1)} for p-n000: moved to ${at(2)}`]));
      // Its placement is the third subnet (a node placed again records its market too).
      expect(w.state().map((n) => [n.name, n.input?.placement, n.input?.market])).toEqual([['p-n000', at(2), 'on-demand']]);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it(`gives up on a node after ${MAX_FALLBACK_ROUNDS} fallbacks in a cycle: dropped, no error`, async () => {
    const many = ['subnet-1', 'subnet-2', 'subnet-3', 'subnet-4', 'subnet-5', 'subnet-6', 'subnet-7'];
    const w = await setup({ subnets: many }, Array.from({ length: MAX_FALLBACK_ROUNDS + 1 }, () => ({ on: 'apply' as const, kind: 'zone-capacity' as const })));
    try {
      w.demand(1);
      const r = await w.cycle();
      expect(w.left()).toEqual([]);
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.fallbacks?.map((f) => f.to)).toEqual([...Array.from({ length: MAX_FALLBACK_ROUNDS }, () => 'next-zone'), 'dropped']);
      expect(r.pools[0]?.reasons.at(-1)).toMatch(new RegExp(`: not created this cycle \\(${MAX_FALLBACK_ROUNDS} capacity fallbacks this cycle\\)$`));
      expect(r.pools[0]?.create).toEqual([]);
      expect(w.state()).toEqual([]);
      expect(w.emu.runnerNamed('p-n000')).toBeUndefined();
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it('drops a spot-only node with nowhere to go this cycle (its runner removed), and creates another next cycle', async () => {
    const w = await setup({ spot: true }, [{ on: 'apply', kind: 'spot-capacity', market: 'spot' }]);
    try {
      w.demand(1);
      const r = await w.cycle();
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.create).toEqual([]);
      expect(r.pools[0]?.fallbacks).toEqual([{ node: 'p-n000', kind: 'spot-capacity', to: 'dropped' }]);
      expect(r.pools[0]?.reasons).toContain('spot capacity unavailable for p-n000: not created this cycle (machine.spot has no on-demand fallback)');
      expect(w.state()).toEqual([]);
      expect(w.emu.runnerNamed('p-n000')).toBeUndefined();
      // The credential its failed apply delivered (local: a file) went with it.
      expect(existsSync(localCredentialFile(w.stateDir, 'p', 'p-n000'))).toBe(false);
      expect((await w.history.getPool('p'))?.intents ?? []).toEqual([]);
      // Next cycle: a new node (spot capacity is back).
      const next = await w.cycle();
      expect(next.pools[0]?.create).toEqual(['p-n001']);
      expect(w.state().map((n) => [n.name, n.input?.market])).toEqual([['p-n001', 'spot']]);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it('finishes what the failed apply did besides the dropped node (a drained node destroyed, its runner removed), even when nothing is left to apply', async () => {
    const w = await setup({ spot: true }, []);
    try {
      w.demand(1);
      await w.cycle();
      expect(w.state().map((n) => n.name)).toEqual(['p-n000']);
      // p-n000 never comes online: broken after bootTimeout, drained, then destroyed in the apply that
      // creates its replacement. Each replacement gets no spot capacity (nothing of it is created: AWS).
      const fault = { on: 'apply', kind: 'spot-capacity', market: 'spot', credential: true };
      writeFileSync(join(w.stateDir, '..', 'faults.json'), JSON.stringify([fault, fault]));
      w.now.t += 11 * 60_000;
      let r = await w.cycle();
      expect(r.pools[0]).toMatchObject({ drain: ['p-n000'], create: [], fallbacks: [{ node: 'p-n001', kind: 'spot-capacity', to: 'dropped' }] });
      r = await w.cycle();
      expect(w.left()).toEqual([]);
      // The apply destroyed p-n000 and failed for p-n002; the plan after it had nothing left to do.
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]).toMatchObject({ create: [], destroy: ['p-n000'], fallbacks: [{ node: 'p-n002', kind: 'spot-capacity', to: 'dropped' }] });
      expect(w.state()).toEqual([]);
      expect(w.emu.runners.map((x) => x.description)).toEqual([]);
      const rec = await w.history.getPool('p');
      expect(rec?.nodes ?? []).toEqual([]);
      expect(rec?.intents ?? []).toEqual([]);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it('does not fall back on an apply that failed for anything else: the pool fails as before', async () => {
    const w = await setup({ spot: {}, subnets: SUBNETS }, [{ on: 'apply', kind: 'quota' }]);
    try {
      w.demand(1);
      const r = await w.cycle();
      expect(r.pools[0]?.error).toMatch(/VcpuLimitExceeded/);
      expect(r.pools[0]?.fallbacks).toBeUndefined();
      expect((await w.history.events(0)).filter((e) => e.kind === 'fallback')).toEqual([]);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });

  it('forgets a spot VM interrupted in the cloud (gone at the plan\'s refresh), never re-creates it, and replaces it', async () => {
    const w = await setup({ spot: {} }, [{ on: 'plan', node: 'p-n000' }]);
    try {
      w.demand(1);
      // The first plan of the first cycle is not the one: the fault waits for a kept node.
      writeFileSync(join(w.stateDir, '..', 'faults.json'), '[]');
      await w.cycle();
      w.emu.connect('p-n000');
      expect(w.state().map((n) => n.name)).toEqual(['p-n000']);
      writeFileSync(join(w.stateDir, '..', 'faults.json'), JSON.stringify([{ on: 'plan', node: 'p-n000' }]));
      const r = await w.cycle({ driftCheckMs: 0 });
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.vanished).toEqual(['p-n000']);
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/vanished from the cloud \(p-n000\): forgotten, not re-created/);
      expect(w.state().map((n) => n.name)).toEqual([]);
      expect(w.emu.runnerNamed('p-n000')).toBeUndefined();
      // Replaced by a new node with a new name (and its own credential).
      const next = await w.cycle();
      expect(next.pools[0]?.create).toEqual(['p-n001']);
      expect(w.state().map((n) => n.name)).toEqual(['p-n001']);
    } finally {
      await w.history.close();
      await w.emu.stop();
    }
  });
});
