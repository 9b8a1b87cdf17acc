import type { ProbeResult } from '../emitters/types.js';
import { poolDir } from '../reconcile/cycle.js';
import { readStateNodes } from '../terraform/state.js';
import { parse } from './args.js';
import { loadFleet, openEmitters, openHistoryFor } from './context.js';
import type { Io } from './errors.js';
import { join } from 'node:path';

const HELP = `Usage: parmanu status [--policy PATH] [--pool NAME] [--json]

Each pool's nodes — from Terraform state (local backends) and the history — with their runner's
state as the CI platform reports it now: online, busy, paused, draining, or no runner.

Options:
  --policy PATH   policy file or directory (default policies/)
  --pool NAME     only these pools (comma-separated)
  --json          print {"pools": [{"pool", "nodes": [{"name", "createdAt", "draining", "runner"}]}]}
  -h, --help      this help`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('status', argv, { policy: { type: 'string' }, pool: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const fleet = loadFleet('status', io, values, { secrets: true });
  if (!fleet) return 2;
  const { policy, pools, stateDir } = fleet;
  const emitters = openEmitters('status', io, fleet);
  const probes = new Map<string, ProbeResult>();
  await Promise.all([...new Set(pools.map((p) => p.emitter))].map(async (name) => {
    const e = emitters.get(name);
    if (e) probes.set(name, await e.probe());
  }));
  const history = openHistoryFor('status', io, stateDir);
  const out: Array<{ pool: string; probe: string; nodes: Array<{ name: string; createdAt: number | null; draining: boolean; runner: string }> }> = [];
  try {
    for (const pool of pools) {
      const rec = await history.getPool(pool.name).catch(() => undefined);
      const platform = policy.platforms[pool.platform];
      const local = (platform?.backend?.type ?? 'local') === 'local' ? readStateNodes(platform?.backend?.type === 'local' && platform.backend.path ? platform.backend.path : join(poolDir(stateDir, pool.name), 'terraform.tfstate')).map((n) => n.name) : [];
      const names = [...new Set([...local, ...(rec?.nodes.map((n) => n.name) ?? [])])].sort();
      const probe = probes.get(pool.emitter);
      const runners = new Map((probe?.runners ?? []).map((r) => [r.name, r]));
      const kind = emitters.get(pool.emitter)?.kind;
      out.push({
        pool: pool.name,
        probe: probe ? (probe.ok ? (probe.partial ? `partial: ${probe.reason}` : 'ok') : `failed: ${probe.reason}`) : 'not probed',
        nodes: names.map((name) => {
          const r = runners.get(name);
          const rn = rec?.nodes.find((n) => n.name === name);
          const runner = kind === 'replay' ? 'no registry (replay)' : !probe?.ok ? 'unknown' : r ? [r.online ? 'online' : 'offline', r.busy ? 'busy' : 'idle', ...(r.paused ? ['paused'] : [])].join(', ') : 'no runner';
          return { name, createdAt: rn?.createdAt ?? null, draining: rn?.drainingSince !== undefined, runner };
        }),
      });
    }
  } finally {
    await history.close();
  }
  if (values.json) io.out(JSON.stringify({ pools: out }));
  else
    for (const p of out) {
      io.out(`${p.pool}: ${p.nodes.length} node${p.nodes.length === 1 ? '' : 's'} (probe ${p.probe})`);
      for (const n of p.nodes) io.out(`  ${n.name}  ${n.runner}${n.draining ? ', draining' : ''}`);
    }
  return 0;
}
