/**
 * Failover through the CLI a user runs (issue 17.3): a replayed queue, two `local` platforms, real
 * terraform. `evacuate: true` moves the pool (reconcile --json says where it runs and lists its
 * stacks), `status` shows each stack and node, `synth` renders both stacks, and the metrics of a
 * cycle say where new nodes go.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import type { CycleResult } from '../../src/reconcile/cycle.js';
import { cli as runCli } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-failover-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const state = join(dir, 'state');
const cli = (args: string[]) => runCli(args, { cwd: dir, env: { PARMANU_STATE_DIR: state } });

const policy = (evacuate: boolean, file = 'policy.yaml') =>
  writeFileSync(
    join(dir, file),
    [
      'emitters:',
      `  r: { type: replay, trace: trace.csv, start: "2025-01-06T08:00:00Z" }`,
      'platforms:',
      `  lab-a: { type: local${evacuate ? ', evacuate: true' : ''} }`,
      '  lab-b: { type: local }',
      'pools:',
      '  p: { emitter: r, platform: lab-a, failover: [lab-b], labels: [linux], scaling: { predict: false, min: 2, minLifetime: 0s, scaleDownAfter: 1m } }',
      '',
    ].join('\n'),
  );

interface Out { pool: string; platform?: string; stacks?: Array<{ stack: string; platform: string; role: string; nodes: number; terraform: { ran: boolean; add: number; destroy: number } }>; create: string[]; drain: string[]; destroy: string[]; reasons: string[]; terraform: { add: number } }
const MIN = 60_000;
const T = Date.parse('2025-01-06T08:00:00Z');
const reconcile = (at: number): { ok: boolean; pools: Out[] } => {
  const r = cli(['reconcile', '--policy', 'policy.yaml', '--json', '--now', new Date(at).toISOString()]);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as { ok: boolean; pools: Out[] };
};
const nodesOf = (stack: string) => {
  const f = join(state, 'pools', stack, 'terraform.tfstate');
  if (!existsSync(f)) return [];
  const s = JSON.parse(readFileSync(f, 'utf8')) as { resources: Array<{ type: string; name: string }> };
  return s.resources.filter((r) => r.type === 'terraform_data' && r.name.startsWith('node_')).map((r) => r.name.slice(5)).sort();
};

describe('failover through the CLI', () => {
  it('evacuates a platform: reconcile --json, status, synth and metrics say where the pool runs', { timeout: 180_000 }, () => {
    writeFileSync(join(dir, 'trace.csv'), 'queued_at,duration_s,labels\n2025-01-06T09:00:00Z,60,linux\n');
    policy(false);
    let r = reconcile(T);
    const onA = r.pools[0]?.create ?? [];
    expect(onA).toHaveLength(2);
    // A pool with a failover list lists its stacks that ran or hold nodes: here its own.
    expect(r.pools[0]?.platform).toBe('lab-a');
    expect(r.pools[0]?.stacks?.map((x) => [x.stack, x.role, x.nodes])).toEqual([['p', 'active', 0]]);
    expect(nodesOf('p')).toEqual([...onA].sort());

    // The merge request that marks lab-a: the plan comment says where the pool would go.
    policy(false, 'base.yaml');
    policy(true);
    const plan = cli(['plan', '--policy', 'policy.yaml', '--base', 'base.yaml']);
    expect(plan.code, plan.err).toBe(0);
    expect(plan.out).toContain('**Where pools run**: `p` moves from `lab-a` to `lab-b` (platform lab\\-a is evacuated');
    r = reconcile(T + MIN);
    const p = r.pools[0] as Out;
    expect(r.ok).toBe(true);
    expect(p.platform).toBe('lab-b');
    expect(p.create).toHaveLength(2);
    expect(p.stacks).toEqual([
      { stack: 'p@lab-b', platform: 'lab-b', role: 'active', nodes: 0, terraform: { ran: true, add: 4, change: 0, destroy: 0 } },
      { stack: 'p', platform: 'lab-a', role: 'leaving', nodes: 2, terraform: { ran: false, add: 0, change: 0, destroy: 0 } },
    ]);
    expect(p.terraform.add).toBe(4);
    expect(nodesOf('p@lab-b')).toEqual([...p.create].sort());

    // status: where new nodes go, each stack, and each node's stack.
    const st = cli(['status', '--policy', 'policy.yaml', '--json']);
    expect(st.code, st.err).toBe(0);
    const s = (JSON.parse(st.out) as { pools: Array<{ platform: string; stacks: unknown[]; nodes: Array<{ name: string; stack: string }> }> }).pools[0];
    expect(s?.platform).toBe('lab-b');
    expect(s?.stacks).toEqual([
      { stack: 'p', platform: 'lab-a', role: 'leaving', nodes: 2 },
      { stack: 'p@lab-b', platform: 'lab-b', role: 'active', nodes: 2 },
    ]);
    expect(s?.nodes.map((n) => [n.name, n.stack]).sort()).toEqual([...onA.map((n) => [n, 'p']), ...p.create.map((n) => [n, 'p@lab-b'])].sort());
    const text = cli(['status', '--policy', 'policy.yaml']);
    expect(text.out).toMatch(/^p: 4 nodes \(probe ok; new nodes on lab-b \(p: 2 leaving, p@lab-b: 2 active\)\)$/m);
    expect(text.out).toMatch(new RegExp(`^  ${p.create[0] as string} \\[p@lab-b\\]  `, 'm'));

    // synth renders both stacks, each with its nodes and its own state path.
    const out = join(dir, 'synth');
    const sy = cli(['synth', '--policy', 'policy.yaml', '--out', out, '--json']);
    expect(sy.code, sy.err).toBe(0);
    expect((JSON.parse(sy.out) as { pools: Array<{ pool: string; stack?: string; nodes: number }> }).pools.map((w) => [w.stack ?? w.pool, w.nodes])).toEqual([['p', 2], ['p@lab-b', 2]]);
    const b = readFileSync(join(out, 'p@lab-b', 'cdk.tf.json'), 'utf8');
    expect(b).toContain(join(state, 'pools', 'p@lab-b', 'terraform.tfstate'));
    expect(b).toContain('"platform": "lab-b"');

    // The replay's nodes are up at once: lab-a's drain, then go.
    r = reconcile(T + 2 * MIN);
    expect(r.pools[0]?.drain.sort()).toEqual([...onA].sort());
    r = reconcile(T + 3 * MIN);
    expect(r.pools[0]?.destroy.sort()).toEqual([...onA].sort());
    expect(nodesOf('p')).toEqual([]);

    // The report: where the pool runs, and its move.
    // (The replay's clock runs from its start in 2025: a period back to it.)
    const rep = cli(['report', '--policy', 'policy.yaml', '--format', 'json', '--since', `${Math.ceil((Date.now() - T) / 86_400_000) + 1}d`]);
    expect(rep.code, rep.err).toBe(0);
    expect((JSON.parse(rep.out) as { pools: Array<{ runsOn?: unknown }> }).pools[0]?.runsOn).toEqual({ platform: 'lab-b', failover: ['lab-b'], moves: 1 });

    // Metrics of such a cycle: where new nodes go, and each stack's nodes by role.
    const m = new ReconcileMetrics();
    m.record({ ok: true, probes: [], pools: [{ ...(r.pools[0] as object), terraformMs: 0 } as unknown as CycleResult['pools'][number]] }, 1000);
    return m.registry.metrics().then((text) => {
      expect(text).toMatch(/^parmanu_pool_active_platform\{pool="p",platform="lab-b"\} 1$/m);
      expect(text).toMatch(/^parmanu_pool_active_platform\{pool="p",platform="lab-a"\} 0$/m);
      expect(text).toMatch(/^parmanu_pool_stack_nodes\{pool="p",stack="p",platform="lab-a",role="leaving"\} 2$/m);
      expect(text).toMatch(/^parmanu_pool_stack_nodes\{pool="p",stack="p@lab-b",platform="lab-b",role="active"\} 2$/m);
    });
  });
});
