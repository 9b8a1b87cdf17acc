/**
 * The module platform end to end (issue #17 item 5): a pool whose nodes are calls of a local
 * Terraform module built from `terraform_data` (test/fixtures/modules/local-node), against the
 * GitLab emulator, real Redis and real terraform (init/get/plan/apply; no provider downloads).
 * Each node is `module.node_<name>` beside Parmanu's record `terraform_data.node_<name>`; the
 * module writes the runner credential to a 0600 file from a provisioner's environment.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { capture, scanStateDir } from '../secret-scan.js';
import { gitlabGroup, reconcileDeps, useRedisSuite } from './suite.js';

const suite = useRedisSuite();
const MIN = 60_000;
const T0 = Date.parse('2026-11-02T10:00:00Z');
const FIXTURE = resolve('test/fixtures/modules/local-node');

interface TfResource {
  module?: string;
  type: string;
  name: string;
  instances: Array<{ attributes: Record<string, unknown> }>;
}

describe('module platform with GitLab, Redis and terraform', () => {
  it('scales up (one module instance per node, credential files 0600, no credential in stack, plan or state), rolls changed inputs out, forgets a vanished node and scales down', { timeout: 240_000 }, async () => {
    const { emu, project, emitter: gitlab } = await gitlabGroup();
    const root = suite.tempDir('parmanu-module-');
    const stateDir = join(root, 'state');
    const dir = poolDir(stateDir, 'p');
    const credentials = join(dir, 'credentials');
    const policyWith = (inputs: Record<string, unknown>): Policy =>
      normalize({
        emitters: new Map([['ci', gitlab]]),
        platforms: new Map([['mod', PlatformSchema.parse({ type: 'module', source: FIXTURE, inputs: { credential_dir: credentials, ...inputs }, backend: { type: 'local' } })]]),
        pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'mod', labels: ['linux'], runner: { install: 'preinstalled' }, scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', max: 4 } })]]),
      });
    const now = { t: T0 };
    const history = new RedisHistoryStore(suite.url, () => now.t, `parmanu:module${Math.random().toString(36).slice(2)}:`);
    const emitter = new GitlabEmitter(gitlab as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 }), () => now.t);
    let deps: ReconcileDeps = reconcileDeps(policyWith({ size: 'small' }), emitter, history, stateDir, now);
    const cycle = async (extra: Partial<ReconcileDeps> = {}) => {
      const r = await reconcileOnce({ ...deps, ...extra });
      // No credential in anything the cycle left: stack, state, saved plan, history (credential files are checked 0600).
      await scanStateDir(stateDir);
      capture('a reconcile result', JSON.stringify(r));
      return r;
    };
    const resources = (): TfResource[] => (JSON.parse(readFileSync(join(dir, 'terraform.tfstate'), 'utf8')) as { resources: TfResource[] }).resources;
    const instances = () => [...new Set(resources().flatMap((r) => (r.module ? [r.module] : [])))].sort();
    const machine = (node: string) => resources().find((r) => r.module === `module.node_${node}` && r.name === 'machine')?.instances[0]?.attributes.input as { value: Record<string, string> } | undefined;
    const names = () => readStateNodes(join(dir, 'terraform.tfstate')).map((n) => n.name).sort();
    const online = () => {
      for (const x of emu.runners) x.status = 'online';
    };
    try {
      // Scale up: each node is its module instance (two resources) and its record.
      emu.addJob(project, 'pending', ['linux']);
      emu.addJob(project, 'pending', ['linux']);
      let r = await cycle();
      expect(r.ok, r.pools[0]?.error).toBe(true);
      expect(r.pools[0]).toMatchObject({ create: ['p-n000', 'p-n001'], terraform: { ran: true, add: 6 } });
      expect(instances()).toEqual(['module.node_p-n000', 'module.node_p-n001']);
      expect(names()).toEqual(['p-n000', 'p-n001']);
      // The state reader gets each node's spec and creation time from Parmanu's record.
      expect(readStateNodes(join(dir, 'terraform.tfstate'))[0]).toMatchObject({ module: true, createdAt: T0, spec: expect.stringMatching(/^[0-9a-f]{12}$/) });
      expect(machine('p-n000')?.value).toMatchObject({ name: 'p-n000', pool: 'p', size: 'small' });
      // The credential reached the module's provisioner only: each node's runner token in its 0600 file.
      for (const n of ['p-n000', 'p-n001']) {
        const file = join(credentials, n);
        expect(statSync(file).mode & 0o777).toBe(0o600);
        const token = readFileSync(file, 'utf8');
        expect(token).toMatch(/^glrt-/);
        for (const f of ['cdk.tf.json', 'terraform.tfstate']) expect(readFileSync(join(dir, f), 'utf8')).not.toContain(token);
      }
      // The rendered module call names the credential only as the ephemeral variable.
      const stack = JSON.parse(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')) as { module: Record<string, Record<string, unknown>>; variable: Record<string, Record<string, unknown>> };
      expect(stack.module['node_p-n000']?.credential).toBe('${lookup(var.parmanu_credentials, "p-n000", "")}');
      expect(stack.variable.parmanu_credentials).toMatchObject({ ephemeral: true, sensitive: true });

      // Steady: nothing to do, nothing planned.
      online();
      now.t += 30_000;
      r = await cycle({ driftCheckMs: 0 });
      expect(r.pools[0]).toMatchObject({ create: [], destroy: [], terraform: { ran: true, add: 0, change: 0, destroy: 0 } });

      // Changed inputs: the nodes are outdated and rolled out one at a time (maxUnavailable 1);
      // a kept node's module is never changed in place (its call is rendered from its record).
      deps = { ...deps, policy: policyWith({ size: 'large' }) };
      now.t += 30_000;
      r = await cycle();
      expect(r.pools[0]?.drain).toHaveLength(1);
      const first = r.pools[0]?.drain[0] as string;
      expect(r.pools[0]?.create).toHaveLength(1);
      const replacement = r.pools[0]?.create[0] as string;
      expect(machine(replacement)?.value.size).toBe('large');
      const other = ['p-n000', 'p-n001'].find((n) => n !== first) as string;
      expect(machine(other)?.value.size).toBe('small');
      expect(machine(first)?.value.size).toBe('small');
      online();
      for (let i = 0; i < 8 && instances().some((m) => m === 'module.node_p-n000' || m === 'module.node_p-n001'); i++) {
        now.t += 30_000;
        r = await cycle();
        expect(r.ok).toBe(true);
        online();
      }
      expect(instances()).not.toContain('module.node_p-n000');
      expect(instances()).not.toContain('module.node_p-n001');
      for (const m of instances()) expect(machine(m.replace('module.node_', ''))?.value.size).toBe('large');
      // Their runners are gone with them (the token in a destroyed node's file is dead).
      expect(emu.runnerNamed('p-n000')).toBeUndefined();
      expect(emu.runnerNamed('p-n001')).toBeUndefined();

      // A node's machine vanishes behind Parmanu's back (gone from the cloud, so from the refreshed
      // state): the plan would create it again in the kept node's module, so the node is forgotten,
      // never re-created under its name; what is left of it (its credential delivery, its record) goes.
      const [gone, stays] = instances().map((m) => m.replace('module.node_', ''));
      execFileSync('terraform', ['state', 'rm', `module.node_${gone}.terraform_data.machine`], { cwd: dir, stdio: 'ignore' });
      now.t += 30_000;
      r = await cycle({ driftCheckMs: 0 });
      expect(r.ok, r.pools[0]?.error).toBe(true);
      expect(r.pools[0]?.vanished).toEqual([gone]);
      expect(instances()).not.toContain(`module.node_${gone}`);
      expect(names()).not.toContain(gone);
      expect(names()).toContain(stays);
      expect(emu.runnerNamed(gone as string)).toBeUndefined();

      // Scale down: the jobs are gone; idle nodes drain, then go with their module instances.
      emu.jobs.length = 0;
      for (let i = 0; i < 8 && instances().length > 0; i++) {
        now.t += 2 * MIN;
        r = await cycle();
        expect(r.ok).toBe(true);
      }
      expect(instances()).toEqual([]);
      expect(names()).toEqual([]);
      expect(resources().filter((x) => x.type === 'terraform_data')).toEqual([]);
      expect(emu.runners).toEqual([]);
    } finally {
      await history.close();
      await emu.stop();
    }
  });
});
