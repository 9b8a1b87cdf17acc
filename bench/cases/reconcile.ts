import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ReplayEmitter } from '../../src/emitters/replay.js';
import { FileHistoryStore } from '../../src/history/file.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema, type PoolInput } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { median, round, type BenchCase } from '../harness.js';

function setup(pools: number, min: number): { deps: ReconcileDeps; root: string; terraform: Terraform } {
  const root = mkdtempSync(join(tmpdir(), 'parmanu-bench-rec-'));
  const trace = join(root, 'trace.csv');
  writeFileSync(trace, 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,60,nothing\n');
  const poolMap = new Map<string, PoolInput>();
  for (let i = 0; i < pools; i++) poolMap.set(`pool-${i}`, PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], scaling: { min, max: Math.max(min, 1), maxStep: Math.max(min, 1), predict: false } }));
  const policy: Policy = normalize({ emitters: new Map([['ci', EmitterSchema.parse({ type: 'replay', trace })]]), platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]), pools: poolMap });
  const t = Date.parse('2026-11-02T10:00:00Z');
  const terraform = new Terraform();
  let id = 0;
  const deps: ReconcileDeps = {
    policy,
    emitters: new Map([['ci', new ReplayEmitter(policy.emitters.ci as never, () => t)]]),
    history: new FileHistoryStore(join(root, 'state'), () => t),
    terraform,
    stateDir: join(root, 'state'),
    clock: () => t,
    owner: 'bench',
    parallel: 4,
    newId: () => (id++).toString(36).padStart(6, '0'),
  };
  return { deps, root, terraform };
}

/**
 * A steady 50-pool fleet: nothing to change, so no terraform at all. Runs in a fresh process
 * (bench/noop-child.ts) so that its peak memory is the cycle's own, compared with bare node's.
 */
export const noopCycle50: BenchCase = {
  name: 'noop-cycle-50-pools',
  async run({ log }) {
    log('noop-cycle-50-pools: a fresh process; its first cycle creates 50 nodes through terraform…');
    const child = fileURLToPath(new URL('../noop-child.js', import.meta.url));
    const r = spawnSync(process.execPath, [child], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`noop child exited ${r.status}: ${r.stderr.slice(0, 500)}`);
    const res = NoopResult.parse(JSON.parse(r.stdout));
    const bare = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.resourceUsage().maxRSS))'], { encoding: 'utf8' })) / 1024;
    return [
      { name: 'noop-cycle-50-pools', value: round(res.ms, 0), unit: 'ms', note: `terraform runs: ${res.terraformRuns} (lifecycle v2 reads the truth every cycle: one \`terraform state pull\` per pool, no plan; nothing else runs)` },
      { name: 'cycle-50-pools-peak-rss', value: round(res.peakRssMiB, 0), unit: 'MiB', baseline: { name: 'node -e 0', value: round(bare, 0) }, ratio: round(res.peakRssMiB / bare), note: 'peak resident memory of a process that ran a 50-pool cycle creating 50 nodes, then a no-op cycle' },
    ];
  },
};

const NoopResult = z.object({ ms: z.number(), terraformRuns: z.number(), peakRssMiB: z.number() });

/** The body of bench/noop-child.ts: two cycles of a 50-pool fleet in this process. */
export async function noopCycleInThisProcess(): Promise<z.infer<typeof NoopResult>> {
  const { deps, root, terraform } = setup(50, 1);
  try {
    const first = await reconcileOnce(deps);
    if (!first.ok) throw new Error(first.pools.find((p) => p.error)?.error);
    const runsBefore = terraform.runs;
    const t0 = process.hrtime.bigint();
    const second = await reconcileOnce(deps);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (!second.ok) throw new Error(second.pools.find((p) => p.error)?.error);
    return { ms, terraformRuns: terraform.runs - runsBefore, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    await deps.history.close();
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * A full cycle that creates 200 nodes, against bare terraform init + apply of the same stack.
 * One-shot first (cdktf not loaded yet: a CLI run), then ROUNDS rounds of a warm cycle and bare
 * terraform in turn, each into a fresh state; medians, so that drift hits both alike.
 */
const ROUNDS = 3;
export const reconcileVsTerraform200: BenchCase = {
  name: 'reconcile-vs-terraform-200-nodes',
  async run({ log }) {
    const worlds: Array<ReturnType<typeof setup>> = [];
    const fresh = () => {
      const w = setup(1, 200);
      worlds.push(w);
      return w;
    };
    try {
      log('reconcile-vs-terraform-200-nodes: reconcile cycle (cdktf not loaded yet: a one-shot CLI run)…');
      const cold = fresh();
      const oneShot = await timedCycle(cold.deps);
      // The same configuration, for terraform alone.
      const json = JSON.parse(readFileSync(join(poolDir(cold.deps.stateDir, 'pool-0'), 'cdk.tf.json'), 'utf8')) as { terraform: { backend: { local: { path: string } } } };
      const env = { ...process.env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1' };
      const warm: number[] = [];
      const bare: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        log(`reconcile-vs-terraform-200-nodes: round ${i + 1}/${ROUNDS}: a warm cycle (--watch), then bare terraform…`);
        warm.push(await timedCycle(fresh().deps));
        const dir = join(cold.root, `bare-${i}`);
        mkdirSync(dir);
        json.terraform.backend.local.path = join(dir, 'terraform.tfstate');
        writeFileSync(join(dir, 'cdk.tf.json'), JSON.stringify(json));
        const t1 = process.hrtime.bigint();
        execFileSync('terraform', ['init', '-input=false', '-no-color'], { cwd: dir, env, stdio: 'ignore' });
        execFileSync('terraform', ['apply', '-input=false', '-no-color', '-auto-approve'], { cwd: dir, env, stdio: 'ignore' });
        bare.push(Number(process.hrtime.bigint() - t1) / 1e6);
      }
      const tf = median(bare);
      const w = median(warm);
      const base = { name: `terraform init + apply, same config (median of ${ROUNDS})`, value: round(tf, 0) };
      return [
        { name: 'reconcile-vs-terraform-200-nodes', value: round(oneShot, 0), unit: 'ms', baseline: base, ratio: round(oneShot / tf), note: 'one-shot: includes loading cdktf (~0.5 s); decide, render, init, plan, show, guard, apply (target ≤ 1.1)' },
        { name: 'reconcile-vs-terraform-200-nodes-warm', value: round(w, 0), unit: 'ms', baseline: base, ratio: round(w / tf), note: `cdktf already loaded (--watch); median of ${ROUNDS}, spread ${round(Math.min(...warm), 0)}–${round(Math.max(...warm), 0)} ms vs bare ${round(Math.min(...bare), 0)}–${round(Math.max(...bare), 0)} ms` },
      ];
    } finally {
      for (const w of worlds) {
        await w.deps.history.close();
        rmSync(w.root, { recursive: true, force: true });
      }
    }
  },
};

async function timedCycle(deps: ReconcileDeps): Promise<number> {
  const t0 = process.hrtime.bigint();
  const r = await reconcileOnce(deps);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!r.ok || r.pools[0]?.create.length !== 200) throw new Error(r.pools[0]?.error ?? 'did not create 200 nodes');
  return ms;
}

/** Redis round trips of a steady cycle, per pool (the history store's cost). */
export const redisRoundTrips: BenchCase = {
  name: 'redis-round-trips-per-cycle',
  async run() {
    const { startRedis } = await import('../../test/redis-server.js');
    const { RedisHistoryStore } = await import('../../src/history/redis.js');
    const redis = await startRedis();
    const { deps, root } = setup(10, 1);
    const store = new RedisHistoryStore(redis.url, deps.clock);
    try {
      deps.history = store;
      const first = await reconcileOnce(deps);
      if (!first.ok) throw new Error(first.pools.find((p) => p.error)?.error);
      const before = store.stats.roundTrips;
      const second = await reconcileOnce(deps);
      if (!second.ok) throw new Error(second.pools.find((p) => p.error)?.error);
      const perPool = (store.stats.roundTrips - before) / 10;
      return [{ name: 'redis-round-trips-per-cycle', value: perPool, unit: 'per pool', note: 'steady cycle of 10 pools: lease, node set, samples for predict, record, release' }];
    } finally {
      await store.close();
      await redis.stop();
      rmSync(root, { recursive: true, force: true });
    }
  },
};
