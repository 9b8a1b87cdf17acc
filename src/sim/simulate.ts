/**
 * Trace-driven simulation: the trace's jobs are matched to pools with the production matcher,
 * then each pool is run through the engine under Parmanu's `decide` and under each baseline.
 */
import { decide, type DecideOptions } from '../decide/decide.js';
import { assignJobs } from '../decide/match.js';
import type { Job, PoolMemory } from '../decide/types.js';
import { normalize } from '../policy/load.js';
import { PoolSchema, type PoolInput } from '../policy/schema.js';
import type { PoolConfig } from '../policy/types.js';
import { peakConcurrency, reactiveController } from './baselines.js';
import { runEngine, type Actions, type Controller, type EngineResult, type SimJob } from './engine.js';
import type { TraceJob } from '../policy/trace.js';

export const BASELINES = ['parmanu', 'oracle', 'perJob', 'reactive', 'staticPeak'] as const;
export type Baseline = (typeof BASELINES)[number];

export interface Metrics {
  jobs: number;
  unmatched: number;
  waitMeanS: number;
  waitP50S: number;
  waitP95S: number;
  waitMaxS: number;
  nodeMinutes: number;
  costVsOracle: number;
  peakNodes: number;
  /**
   * Nodes added during the trace. perJob: one per job; oracle: 0 (capacity without nodes);
   * staticPeak: 0 (its fleet exists from the start).
   */
  scaleUps: number;
  /** Nodes removed during the trace (perJob: one per job, when it ends; nodes left at the end not counted). */
  scaleDowns: number;
  /** Scale-up decisions: probes that added at least one node (perJob: one per job, its webhook). */
  scaleUpEvents: number;
  /** Scale-down decisions: probes that removed at least one node (perJob: one per job). */
  scaleDownEvents: number;
}

/** How many nodes and how many decisions added and removed them. */
interface Scaling {
  scaleUps: number;
  scaleDowns: number;
  scaleUpEvents: number;
  scaleDownEvents: number;
}
const NO_SCALING: Scaling = { scaleUps: 0, scaleDowns: 0, scaleUpEvents: 0, scaleDownEvents: 0 };

export interface SimParams {
  bootMs: number;
  probeMs: number;
}

export interface PoolResult {
  pool: string;
  labels: string[];
  jobsPerNode: number;
  jobs: number;
  results: Record<Baseline, Metrics>;
}

export interface Invariants {
  /** Destroys aimed at a busy node (refused by the engine). */
  busyDestroys: number;
  /** Probes after which a pool had more nodes than its max. */
  maxExceeded: number;
}

export interface SimResult {
  pools: PoolResult[];
  results: Record<Baseline, Metrics>;
  unmatched: Array<{ labels: string; jobs: number }>;
  invariants: Invariants;
}

const BUCKET_MS = 60_000;

/** One pool per distinct label set, with the project's default settings and one job per node. */
export function defaultPools(jobs: readonly TraceJob[]): PoolConfig[] {
  const seen = new Map<string, string[]>();
  for (const j of jobs) {
    const key = [...j.labels].sort().join(';');
    if (!seen.has(key)) seen.set(key, j.labels);
  }
  const used = new Set<string>();
  const inputs = new Map<string, PoolInput>();
  for (const labels of seen.values()) {
    const base = (labels.join('-').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'untagged').slice(0, 36);
    let name = base;
    for (let i = 2; used.has(name); i++) name = `${base}-${i}`;
    used.add(name);
    inputs.set(name, PoolSchema.parse({ emitter: 'trace', platform: 'sim', labels, runner: { jobsPerNode: 1 } }));
  }
  return normalize({ emitters: new Map(), platforms: new Map(), pools: inputs }).pools;
}

function parmanuController(pool: PoolConfig, params: SimParams, invariants: Invariants, options: DecideOptions): Controller {
  const arrivals = new Map<number, number>();
  let since: number | undefined;
  let memory: PoolMemory | undefined;
  let id = 0;
  return {
    probe(s): Actions {
      const b = Math.floor(s.now / BUCKET_MS);
      since ??= b;
      if (s.arrived > 0) arrivals.set(b, (arrivals.get(b) ?? 0) + s.arrived);
      const plan = decide(
        {
          pool,
          now: s.now,
          observation: { at: s.now, ok: true, partial: false, queued: s.queued, running: s.running, upcoming: 0 },
          staleAfterMs: 2 * params.probeMs,
          nodes: s.nodes,
          memory,
          history: { bucketMs: BUCKET_MS, arrivals, since },
          newId: () => (id++).toString(36),
        },
        options,
      );
      memory = plan.memory;
      if (s.nodes.length - plan.destroy.length + plan.create.length > pool.scaling.max) invariants.maxExceeded++;
      return plan;
    },
  };
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

function metricsOf(waits: Float64Array, nodeMinutes: number, peakNodes: number, scaling: Scaling, oracleMinutes: number, unmatched = 0): Metrics {
  const sorted = Float64Array.from(waits).sort();
  let sum = 0;
  for (const w of sorted) sum += w;
  const r = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
  return {
    jobs: waits.length,
    unmatched,
    waitMeanS: r(waits.length ? sum / waits.length : 0),
    waitP50S: r(quantile(sorted, 0.5)),
    waitP95S: r(quantile(sorted, 0.95)),
    waitMaxS: r(sorted.length ? (sorted[sorted.length - 1] as number) : 0),
    nodeMinutes: r(nodeMinutes, 0),
    costVsOracle: oracleMinutes > 0 ? r(nodeMinutes / oracleMinutes, 2) : 0,
    peakNodes,
    scaleUps: scaling.scaleUps,
    scaleDowns: scaling.scaleDowns,
    scaleUpEvents: scaling.scaleUpEvents,
    scaleDownEvents: scaling.scaleDownEvents,
  };
}

const fromEngine = (e: EngineResult, oracleMinutes: number) => metricsOf(e.waitsS, e.nodeMinutes, e.peakNodes, e, oracleMinutes);

export interface PoolRun {
  metrics: Record<Baseline, Metrics>;
  /** Each job's wait in seconds under each baseline, for quantiles over several pools. */
  waits: Record<Baseline, Float64Array>;
}

export function simulatePool(pool: PoolConfig, jobs: readonly SimJob[], params: SimParams, invariants: Invariants, options: DecideOptions = {}): PoolRun {
  const J = pool.runner.ephemeral ? 1 : pool.runner.jobsPerNode;
  let busyMs = 0;
  for (const j of jobs) busyMs += j.durationMs;
  const oracleMinutes = busyMs / J / 60_000;
  const peak = peakConcurrency(jobs);
  const engineOpts = { jobsPerNode: pool.runner.jobsPerNode, ephemeral: pool.runner.ephemeral, bootMs: params.bootMs, probeMs: params.probeMs };

  const parmanu = runEngine(jobs, parmanuController(pool, params, invariants, options), engineOpts);
  const reactive = runEngine(jobs, reactiveController(J, pool.name), engineOpts);
  const staticNodes = Math.ceil(peak / J);
  const staticPeak = runEngine(jobs, undefined, { ...engineOpts, initialNodes: staticNodes });
  invariants.busyDestroys += parmanu.busyDestroys + reactive.busyDestroys;

  const zeros = new Float64Array(jobs.length);
  const boots = new Float64Array(jobs.length).fill(params.bootMs / 1000);
  const perJobPeak = peakConcurrency(jobs.map((j) => ({ queuedAt: j.queuedAt, durationMs: j.durationMs + params.bootMs })));
  return {
    metrics: {
      parmanu: fromEngine(parmanu, oracleMinutes),
      oracle: metricsOf(zeros, oracleMinutes, staticNodes, NO_SCALING, oracleMinutes),
      perJob: metricsOf(boots, (busyMs + jobs.length * params.bootMs) / 60_000, perJobPeak, { scaleUps: jobs.length, scaleDowns: jobs.length, scaleUpEvents: jobs.length, scaleDownEvents: jobs.length }, oracleMinutes),
      reactive: fromEngine(reactive, oracleMinutes),
      staticPeak: fromEngine(staticPeak, oracleMinutes),
    },
    waits: { parmanu: parmanu.waitsS, oracle: zeros, perJob: boots, reactive: reactive.waitsS, staticPeak: staticPeak.waitsS },
  };
}

/** Totals over pools: waits weighted by jobs, node-minutes and events summed. */
function total(pools: PoolResult[], b: Baseline, waitsByPool: Map<string, Float64Array>, oracleMinutes: number, unmatched: number): Metrics {
  const all: number[] = [];
  for (const p of pools) for (const w of waitsByPool.get(`${p.pool}/${b}`) ?? []) all.push(w);
  const sum = (f: (m: Metrics) => number) => pools.reduce((acc, p) => acc + f(p.results[b]), 0);
  return metricsOf(Float64Array.from(all), sum((m) => m.nodeMinutes), sum((m) => m.peakNodes), { scaleUps: sum((m) => m.scaleUps), scaleDowns: sum((m) => m.scaleDowns), scaleUpEvents: sum((m) => m.scaleUpEvents), scaleDownEvents: sum((m) => m.scaleDownEvents) }, oracleMinutes, unmatched);
}

export function simulate(trace: readonly TraceJob[], pools: readonly PoolConfig[], params: SimParams, progress?: (line: string) => void, options: DecideOptions = {}): SimResult {
  const jobs: Job[] = trace.map((t, i) => ({ id: String(i), labels: t.labels, status: 'queued', queuedAt: t.queuedAt }));
  const { byPool, unmatched } = assignJobs('replay', jobs, pools);
  const invariants: Invariants = { busyDestroys: 0, maxExceeded: 0 };
  const results: PoolResult[] = [];
  const waits = new Map<string, Float64Array>();
  let oracleTotal = 0;
  for (const pool of pools) {
    const own = (byPool.get(pool.name) ?? []).map((j) => trace[Number(j.id)] as TraceJob);
    progress?.(`simulating ${pool.name}: ${own.length} jobs`);
    const r = simulatePool(pool, own, params, invariants, options);
    for (const b of BASELINES) waits.set(`${pool.name}/${b}`, r.waits[b]);
    oracleTotal += r.metrics.oracle.nodeMinutes;
    results.push({ pool: pool.name, labels: pool.labels, jobsPerNode: pool.runner.jobsPerNode, jobs: own.length, results: r.metrics });
  }
  const unmatchedByLabels = new Map<string, number>();
  for (const j of unmatched) {
    const k = j.labels.join(';') || '(no labels)';
    unmatchedByLabels.set(k, (unmatchedByLabels.get(k) ?? 0) + 1);
  }
  const totals = Object.fromEntries(BASELINES.map((b) => [b, total(results, b, waits, oracleTotal, unmatched.length)])) as Record<Baseline, Metrics>;
  return { pools: results, results: totals, unmatched: [...unmatchedByLabels].map(([labels, n]) => ({ labels, jobs: n })), invariants };
}
