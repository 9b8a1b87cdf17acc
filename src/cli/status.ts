import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { decide } from '../decide/decide.js';
import type { ProbeResult } from '../emitters/types.js';
import type { StoredObservation } from '../history/types.js';
import type { PlatformConfig, PoolConfig } from '../policy/types.js';
import { stacksOf } from '../policy/stacks.js';
import { poolDir, recordedStacks, removedPools, stackDirs } from '../reconcile/known-pools.js';
import { observe, probeStatus, staleAfterMs, type ProbeStatus } from '../reconcile/observe.js';
import { readStateNodes, type StateNode } from '../terraform/state.js';
import { forTerminal } from '../policy/text.js';
import { parse } from './args.js';
import { loadFleet, openEmitters, openHistoryFor } from './context.js';
import type { Io } from './errors.js';

const HELP = `Usage: parmanu status [--policy PATH] [--pool NAME] [--json]

Each pool's nodes — from its Terraform state, joined with the runners that carry the pool's
ownership marker and with the history — and each node's lifecycle state: booting, ready, busy,
outdated (its spec differs from the policy), broken (its runner never came online, or has been
offline longer than bootTimeout), spent (an ephemeral node that ran its job), draining, standby
(stopped, kept ready to start: scaling.standby). Pools removed from the policy that still have nodes
are listed too (the next reconcile drains and destroys them). In services mode (REDIS_URL) it also
shows which replica holds each pool now and the age of the observation the scalers read. A pool
with failover platforms shows where its new nodes go, each stack with nodes and the platforms
failing. Reads only: runs no terraform for
local backends, and \`terraform state pull\` for remote ones that reconcile has initialized.

Options:
  --policy PATH   policy file or directory (default policies/)
  --pool NAME     only these pools (comma-separated)
  --json          print {"pools": [{"pool", "removed", "probe", "probeStatus", "heldBy", "observation",
                  "platform", "stacks", "health",
                  "nodes": [{"name", "stack", "state", "createdAt", "draining", "runner"}]}]}
                  (probe: "ok", "partial: REASON", "failed: REASON" or "not probed"; probeStatus: as in
                  reconcile --json, {ok, partial, reason, ageS, stale}, or null when not probed;
                  heldBy: the reconciler (replica) whose lease holds the pool now — HOST:PID:ID —
                  or null; observation: the prober's latest observation of the pool's emitter in
                  services mode, {version, ageS, stale, prober}, or null when there is none;
                  platform: where the pool's new nodes go (failover: as the last cycle chose);
                  stacks: a pool with failover platforms' stacks, [{stack, platform, role:
                  active|leaving, nodes}] (empty for a pool on one platform); health: its
                  platforms with failed Terraform runs in a row, {failures, lastError?}; a
                  node's stack: <pool>, or <pool>@<platform> on a failover platform)
  -h, --help      this help

Exit: 0; 2 bad input.`;

interface StatusNode {
  name: string;
  /** The stack the node is in (`<pool>`, or `<pool>@<platform>` on a failover platform). */
  stack: string;
  state: string;
  createdAt: number | null;
  draining: boolean;
  runner: string;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('status', argv, { policy: { type: 'string' }, pool: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const fleet = loadFleet('status', io, values, { secrets: true });
  if (!fleet) return 2;
  const { policy, pools, stateDir, wanted } = fleet;
  const history = openHistoryFor('status', io, stateDir);
  const out: Array<{ pool: string; removed: boolean; probe: string; probeStatus: ProbeStatus | null; heldBy: string | null; observation: { version: number; ageS: number; stale: boolean; prober: string } | null; platform: string; stacks: Array<{ stack: string; platform: string; role: 'active' | 'leaving'; nodes: number }>; health: Record<string, { failures: number; lastError?: string }>; nodes: StatusNode[] }> = [];
  try {
    const targets: Array<{ pool: PoolConfig; platform: PlatformConfig | undefined; removed: boolean }> = pools.map((p) => ({ pool: p, platform: policy.platforms[p.platform], removed: false }));
    for (const k of await removedPools(policy, stateDir, history).catch(() => [])) {
      if ('problem' in k || (wanted && !wanted.includes(k.pool.name))) continue;
      if (policy.emitters[k.pool.emitter]) targets.push({ pool: k.pool, platform: k.platform, removed: true });
    }
    const emitters = openEmitters('status', io, { policy, pools: targets.map((t) => t.pool) });
    const probes = new Map<string, ProbeResult>();
    await Promise.all([...new Set(targets.map((t) => t.pool.emitter))].map(async (name) => {
      const e = emitters.get(name);
      if (e) probes.set(name, await e.probe());
    }));
    const { nodeSpec } = await import('../../stacks/spec.js');
    const observations = new Map<string, StoredObservation | undefined>();
    const now = Date.now();
    const dirs = stackDirs(stateDir);
    for (const { pool, platform, removed } of targets) {
      const rec = await history.getPool(pool.name).catch(() => undefined);
      const probe = probes.get(pool.emitter);
      const kind = emitters.get(pool.emitter)?.kind ?? 'replay';
      // Failover: each of the pool's stacks, and the platform its new nodes go to (as the last cycle chose).
      const stacks = platform ? stacksOf(policy, pool, platform, await recordedStacks(history, policy, pool, rec, () => undefined, stateDir, dirs)) : [{ stack: pool.name, pool, platform: platform as unknown as PlatformConfig }];
      const active = rec?.failover?.active ?? pool.platform;
      const read = await Promise.all(stacks.map(async (st) => {
        const r = st.stack === pool.name ? rec : await history.getPool(st.stack).catch(() => undefined);
        return { st, rec: r, state: await readState(st.stack, st.platform as PlatformConfig | undefined, stateDir, r?.nodes.map((n) => n.name) ?? [], io.env.PARMANU_TERRAFORM ?? 'terraform') };
      }));
      const nodes: StatusNode[] = [];
      const lines: Array<{ stack: string; platform: string; role: 'active' | 'leaving'; nodes: number }> = [];
      for (const { st, rec: srec, state } of read) {
        const elsewhere = new Set(read.filter((o) => o.st !== st).flatMap((o) => o.state.map((n) => n.name)));
        const leaving = stacks.length > 1 && st.platform?.name !== active;
        const truth = observe({ policy, pool: st.pool, kind, probe, rec: srec, state, spec: nodeSpec(st.pool, policy.emitters[pool.emitter], st.platform), now, poolsOfEmitter: policy.pools.filter((p) => p.emitter === pool.emitter), removed, ...(stacks.length > 1 ? { placement: { elsewhere, leaving } } : {}) });
        const plan = decide({ pool: st.pool, now, observation: undefined, staleAfterMs: Infinity, nodes: truth.views, memory: srec?.memory, newId: (i) => String(i), removed });
        if (stacks.length > 1 && (state.length || !leaving)) lines.push({ stack: st.stack, platform: st.platform?.name ?? st.pool.platform, role: leaving ? 'leaving' : 'active', nodes: state.length });
        for (const v of truth.views) {
          const r = truth.runners.get(v.name);
          const runner = !probe?.ok ? 'unknown' : r ? [r.online ? 'online' : r.contacted === false ? 'never contacted' : 'offline', r.busy ? 'busy' : 'idle', ...(r.paused ? ['paused'] : [])].join(', ') : 'no runner';
          nodes.push({ name: v.name, stack: st.stack, state: plan.states[v.name] ?? 'unknown', createdAt: v.createdAt, draining: v.drainingSince !== undefined, runner });
        }
      }
      // Services mode: the replica holding the pool, and the observation the scalers read.
      const holder = await history.leaseHolder(pool.name).catch(() => undefined);
      // (One read per emitter, not per pool.)
      if (!observations.has(pool.emitter)) observations.set(pool.emitter, await history.getObservation(pool.emitter).catch(() => undefined));
      const stored = observations.get(pool.emitter);
      out.push({
        pool: pool.name,
        removed,
        probe: probe ? (probe.ok ? (probe.partial ? `partial: ${probe.reason}` : 'ok') : `failed: ${probe.reason}`) : 'not probed',
        probeStatus: probe ? probeStatus(probe, now, staleAfterMs(policy, pool)) : null,
        heldBy: holder?.owner ?? null,
        platform: active,
        stacks: lines,
        health: Object.fromEntries(Object.entries(rec?.failover?.health ?? {}).filter(([, h]) => h.failures > 0).map(([k, h]) => [k, { failures: h.failures, ...(h.lastError !== undefined ? { lastError: h.lastError } : {}) }])),
        observation: stored ? { version: stored.version, ageS: Math.max(0, Math.round((now - stored.observation.at) / 100) / 10), stale: now - stored.observation.at > staleAfterMs(policy, pool), prober: stored.prober } : null,
        nodes,
      });
    }
  } finally {
    await history.close();
  }
  if (values.json) io.out(JSON.stringify({ pools: out }));
  else
    for (const p of out) {
      // Probe errors and runner names come from the CI platforms: no control characters reach the terminal.
      const services = `${p.heldBy ? `; held by ${p.heldBy}` : ''}${p.observation ? `; observation ${p.observation.ageS}s old${p.observation.stale ? ' (stale: the scalers hold the pool)' : ''}` : ''}`;
      // Failover: where new nodes go, the stacks with nodes, and the platforms failing.
      const where = p.stacks.length ? `; new nodes on ${p.platform}${p.stacks.length > 1 ? ` (${p.stacks.map((s) => `${s.stack}: ${s.nodes} ${s.role}`).join(', ')})` : ''}${Object.keys(p.health).length ? `; failing: ${Object.entries(p.health).map(([k, h]) => `${k} ×${h.failures}`).join(', ')}` : ''}` : '';
      io.out(forTerminal(`${p.pool}: ${p.nodes.length} node${p.nodes.length === 1 ? '' : 's'} (probe ${p.probe}${services}${where})${p.removed ? ' — removed from the policy: draining and destroying' : ''}`));
      for (const n of p.nodes) io.out(forTerminal(`  ${n.name}${n.stack !== p.pool ? ` [${n.stack}]` : ''}  ${n.state}  runner: ${n.runner}`));
    }
  return 0;
}

/** The pool's nodes from its state: a local state file, or the backend through terraform when reconcile has initialized it, else the history's names. */
async function readState(stack: string, platform: PlatformConfig | undefined, stateDir: string, remembered: string[], bin: string): Promise<StateNode[]> {
  const dir = poolDir(stateDir, stack);
  const local = (platform?.backend?.type ?? 'local') === 'local';
  if (local) return readStateNodes(platform?.backend?.type === 'local' && platform.backend.path ? platform.backend.path : join(dir, 'terraform.tfstate'));
  if (existsSync(join(dir, '.terraform'))) {
    const { Terraform } = await import('../terraform/runner.js');
    return new Terraform({ bin }).pullState(dir);
  }
  return remembered.map((name) => ({ name, type: 'terraform_data' as const }));
}
