/**
 * Trace-driven simulation: the trace's jobs are matched to pools with the production matcher,
 * then each pool is run through the engine under Parmanu's `decide` and under each baseline.
 */
import { decide, type DecideOptions } from '../decide/decide.js';
import { assignJobs } from '../decide/match.js';
import type { DecideInput, Job, PoolMemory } from '../decide/types.js';
import { normalize } from '../policy/load.js';
import { PoolSchema, type PoolInput } from '../policy/schema.js';
import type { PoolConfig } from '../policy/types.js';
import { peakConcurrency, reactiveController, REACTIVE_STANDBY, type ReactiveTuning } from './baselines.js';
import { DEFAULT_WEBHOOK_LATENCY_MS, runEngine, type Actions, type Controller, type EngineOptions, type EngineResult, type Signal, type SimJob } from './engine.js';
import type { TraceJob } from '../policy/trace.js';

export const BASELINES = ['parmanu', 'oracle', 'perJob', 'reactive', 'reactiveStandby', 'staticPeak'] as const;
export type Baseline = (typeof BASELINES)[number];

export interface Metrics {
  jobs: number;
  unmatched: number;
  waitMeanS: number;
  waitP50S: number;
  waitP95S: number;
  waitMaxS: number;
  /** Minutes of powered-on nodes (booting, starting, idle or busy). */
  nodeMinutes: number;
  /** Minutes of stopped (standby) nodes. */
  standbyMinutes: number;
  /** (nodeMinutes + stoppedCost × standbyMinutes) ÷ the oracle's node-minutes. */
  costVsOracle: number;
  /** Most powered-on nodes at once. */
  peakNodes: number;
  /**
   * Nodes added during the trace. perJob: one per job; oracle: 0 (capacity without nodes);
   * staticPeak: 0 (its fleet exists from the start).
   */
  scaleUps: number;
  /** Nodes removed during the trace (perJob: one per job, when it ends; nodes left at the end not counted). */
  scaleDowns: number;
  /** Scale-up decisions: cycles that created or started at least one node (perJob: one per job, its webhook). */
  scaleUpEvents: number;
  /** Scale-down decisions: cycles that destroyed or stopped at least one node (perJob: one per job). */
  scaleDownEvents: number;
  /** Standby (stopped) nodes started. */
  starts: number;
  /** Idle nodes stopped into standby. */
  stops: number;
}

/** How many nodes and how many decisions added and removed them. */
interface Scaling {
  scaleUps: number;
  scaleDowns: number;
  scaleUpEvents: number;
  scaleDownEvents: number;
  starts: number;
  stops: number;
}
const NO_SCALING: Scaling = { scaleUps: 0, scaleDowns: 0, scaleUpEvents: 0, scaleDownEvents: 0, starts: 0, stops: 0 };

export interface SimParams {
  bootMs: number;
  probeMs: number;
  /** `poll` (default): decisions every probe; `webhook`: also when a job is queued (growOnly). */
  signal?: Signal;
  /** Delay from a job being queued to its webhook cycle (default 2 s). */
  webhookLatencyMs?: number;
  /** Time a stopped node takes to start and come online (default 40 s). */
  resumeMs?: number;
  /** What a stopped node costs, as a fraction of a running one (default 0.05). */
  stoppedCost?: number;
  /** Overrides every pool's scaling.standby when given. */
  standby?: number | 'auto';
  /** reactiveStandby's fixed standby (default 4). */
  reactiveStandby?: number;
}

export const DEFAULT_RESUME_MS = 40_000;
export const DEFAULT_STOPPED_COST = 0.05;
export { DEFAULT_WEBHOOK_LATENCY_MS } from './engine.js';

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
  /** Stops aimed at a busy node (refused by the engine). */
  busyStops: number;
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

/** The pool as simulated: --standby overrides its scaling.standby when given. */
export function withStandby(pool: PoolConfig, standby: number | 'auto' | undefined): PoolConfig {
  return standby === undefined ? pool : { ...pool, scaling: { ...pool.scaling, standby } };
}

export function parmanuController(pool: PoolConfig, params: SimParams, invariants: Invariants, options: DecideOptions): Controller {
  const arrivals = new Map<number, number>();
  let since: number | undefined;
  let memory: PoolMemory | undefined;
  let id = 0;
  return {
    probe(s): Actions {
      const b = Math.floor(s.now / BUCKET_MS);
      since ??= b;
      if (s.arrived > 0) arrivals.set(b, (arrivals.get(b) ?? 0) + s.arrived);
      const input: DecideInput = {
        pool,
        now: s.now,
        observation: { at: s.now, ok: true, partial: false, queued: s.queued, running: s.running, upcoming: 0 },
        staleAfterMs: 2 * params.probeMs,
        nodes: s.nodes,
        memory,
        history: { bucketMs: BUCKET_MS, arrivals, since },
        newId: () => (id++).toString(36),
        bootMs: params.bootMs,
      };
      if (s.growOnly) input.growOnly = true;
      const plan = decide(input, options);
      memory = plan.memory;
      // max bounds the powered-on nodes in service (standby, and nodes filling it, are on top of max).
      const filling = new Set(plan.memory.filling ?? []);
      const leaving = new Set([...plan.destroy, ...plan.stop]);
      let on = 0;
      for (const n of s.nodes) if (n.power !== 'stopped' && !leaving.has(n.name) && !filling.has(n.name)) on++;
      on += plan.start.length + plan.create.filter((name) => !filling.has(name)).length;
      if (on > pool.scaling.max) invariants.maxExceeded++;
      return plan;
    },
  };
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

function metricsOf(waits: Float64Array, nodeMinutes: number, standbyMinutes: number, peakNodes: number, scaling: Scaling, oracleMinutes: number, stoppedCost: number, unmatched = 0): Metrics {
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
    standbyMinutes: r(standbyMinutes, 0),
    costVsOracle: oracleMinutes > 0 ? r(costMinutes(nodeMinutes, standbyMinutes, stoppedCost) / oracleMinutes, 2) : 0,
    peakNodes,
    scaleUps: scaling.scaleUps,
    scaleDowns: scaling.scaleDowns,
    scaleUpEvents: scaling.scaleUpEvents,
    scaleDownEvents: scaling.scaleDownEvents,
    starts: scaling.starts,
    stops: scaling.stops,
  };
}

/** What a strategy costs in running-node minutes: a stopped minute costs `stoppedCost` of one. */
export function costMinutes(nodeMinutes: number, standbyMinutes: number, stoppedCost: number): number {
  return nodeMinutes + stoppedCost * standbyMinutes;
}

const fromEngine = (e: EngineResult, oracleMinutes: number, stoppedCost: number) => metricsOf(e.waitsS, e.nodeMinutes, e.standbyMinutes, e.peakNodes, e, oracleMinutes, stoppedCost);

export interface PoolRun {
  metrics: Record<Baseline, Metrics>;
  /** Each job's wait in seconds under each baseline, for quantiles over several pools. */
  waits: Record<Baseline, Float64Array>;
}

/** The engine's settings for a pool under the given parameters. */
export function engineOptions(pool: PoolConfig, params: SimParams): EngineOptions {
  return {
    jobsPerNode: pool.runner.jobsPerNode,
    ephemeral: pool.runner.ephemeral,
    bootMs: params.bootMs,
    probeMs: params.probeMs,
    signal: params.signal ?? 'poll',
    webhookLatencyMs: params.webhookLatencyMs ?? DEFAULT_WEBHOOK_LATENCY_MS,
    resumeMs: params.resumeMs ?? DEFAULT_RESUME_MS,
  };
}

/** The oracle's node-minutes of a pool's jobs: Σ duration ÷ jobsPerNode. */
export function oracleMinutesOf(pool: PoolConfig, jobs: readonly SimJob[]): number {
  const J = pool.runner.ephemeral ? 1 : pool.runner.jobsPerNode;
  let busyMs = 0;
  for (const j of jobs) busyMs += j.durationMs;
  return busyMs / J / 60_000;
}

/** Parmanu's decide on one pool (its scaling.standby overridden by params.standby when given). */
export function runParmanu(pool: PoolConfig, jobs: readonly SimJob[], params: SimParams, invariants: Invariants, options: DecideOptions = {}): EngineResult {
  const e = runEngine(jobs, parmanuController(withStandby(pool, params.standby), params, invariants, options), engineOptions(pool, params));
  invariants.busyDestroys += e.busyDestroys;
  invariants.busyStops += e.busyStops;
  return e;
}

/** A reactive autoscaler of the given tuning on one pool, with the same signal and engine. */
export function runReactive(pool: PoolConfig, jobs: readonly SimJob[], params: SimParams, tuning: ReactiveTuning = {}): EngineResult {
  const J = pool.runner.ephemeral ? 1 : pool.runner.jobsPerNode;
  return runEngine(jobs, reactiveController(J, pool.name, tuning), engineOptions(pool, params));
}

export function simulatePool(pool: PoolConfig, jobs: readonly SimJob[], params: SimParams, invariants: Invariants, options: DecideOptions = {}): PoolRun {
  const J = pool.runner.ephemeral ? 1 : pool.runner.jobsPerNode;
  const stoppedCost = params.stoppedCost ?? DEFAULT_STOPPED_COST;
  let busyMs = 0;
  for (const j of jobs) busyMs += j.durationMs;
  const oracleMinutes = oracleMinutesOf(pool, jobs);
  const peak = peakConcurrency(jobs);
  const engineOpts = engineOptions(pool, params);

  const parmanu = runParmanu(pool, jobs, params, invariants, options);
  const reactive = runReactive(pool, jobs, params);
  const reactiveStandby = runReactive(pool, jobs, params, { standby: params.reactiveStandby ?? REACTIVE_STANDBY });
  const staticNodes = Math.ceil(peak / J);
  const staticPeak = runEngine(jobs, undefined, { ...engineOpts, initialNodes: staticNodes });
  for (const e of [reactive, reactiveStandby]) {
    invariants.busyDestroys += e.busyDestroys;
    invariants.busyStops += e.busyStops;
  }

  const zeros = new Float64Array(jobs.length);
  const boots = new Float64Array(jobs.length).fill(params.bootMs / 1000);
  const perJobPeak = peakConcurrency(jobs.map((j) => ({ queuedAt: j.queuedAt, durationMs: j.durationMs + params.bootMs })));
  const n = jobs.length;
  return {
    metrics: {
      parmanu: fromEngine(parmanu, oracleMinutes, stoppedCost),
      oracle: metricsOf(zeros, oracleMinutes, 0, staticNodes, NO_SCALING, oracleMinutes, stoppedCost),
      perJob: metricsOf(boots, (busyMs + n * params.bootMs) / 60_000, 0, perJobPeak, { ...NO_SCALING, scaleUps: n, scaleDowns: n, scaleUpEvents: n, scaleDownEvents: n }, oracleMinutes, stoppedCost),
      reactive: fromEngine(reactive, oracleMinutes, stoppedCost),
      reactiveStandby: fromEngine(reactiveStandby, oracleMinutes, stoppedCost),
      staticPeak: fromEngine(staticPeak, oracleMinutes, stoppedCost),
    },
    waits: { parmanu: parmanu.waitsS, oracle: zeros, perJob: boots, reactive: reactive.waitsS, reactiveStandby: reactiveStandby.waitsS, staticPeak: staticPeak.waitsS },
  };
}

/** Totals over pools: waits weighted by jobs, node-minutes and events summed. */
function total(pools: PoolResult[], b: Baseline, waitsByPool: Map<string, Float64Array>, oracleMinutes: number, unmatched: number, stoppedCost: number): Metrics {
  const all: number[] = [];
  for (const p of pools) for (const w of waitsByPool.get(`${p.pool}/${b}`) ?? []) all.push(w);
  const sum = (f: (m: Metrics) => number) => pools.reduce((acc, p) => acc + f(p.results[b]), 0);
  const scaling: Scaling = { scaleUps: sum((m) => m.scaleUps), scaleDowns: sum((m) => m.scaleDowns), scaleUpEvents: sum((m) => m.scaleUpEvents), scaleDownEvents: sum((m) => m.scaleDownEvents), starts: sum((m) => m.starts), stops: sum((m) => m.stops) };
  return metricsOf(Float64Array.from(all), sum((m) => m.nodeMinutes), sum((m) => m.standbyMinutes), sum((m) => m.peakNodes), scaling, oracleMinutes, stoppedCost, unmatched);
}

/** The trace's jobs matched to pools with the production matcher: each pool's jobs, and the jobs no pool takes. */
export function matchTrace(trace: readonly TraceJob[], pools: readonly PoolConfig[]): { byPool: Map<string, TraceJob[]>; unmatched: TraceJob[] } {
  const jobs: Job[] = trace.map((t, i) => ({ id: String(i), labels: t.labels, status: 'queued', queuedAt: t.queuedAt }));
  const assigned = assignJobs('replay', jobs, pools);
  const byPool = new Map<string, TraceJob[]>();
  for (const pool of pools) byPool.set(pool.name, (assigned.byPool.get(pool.name) ?? []).map((j) => trace[Number(j.id)] as TraceJob));
  return { byPool, unmatched: assigned.unmatched.map((j) => trace[Number(j.id)] as TraceJob) };
}

export function simulate(trace: readonly TraceJob[], pools: readonly PoolConfig[], params: SimParams, progress?: (line: string) => void, options: DecideOptions = {}): SimResult {
  const { byPool, unmatched } = matchTrace(trace, pools);
  const invariants: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
  const results: PoolResult[] = [];
  const waits = new Map<string, Float64Array>();
  let oracleTotal = 0;
  for (const pool of pools) {
    const own = byPool.get(pool.name) ?? [];
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
  const stoppedCost = params.stoppedCost ?? DEFAULT_STOPPED_COST;
  const totals = Object.fromEntries(BASELINES.map((b) => [b, total(results, b, waits, oracleTotal, unmatched.length, stoppedCost)])) as Record<Baseline, Metrics>;
  return { pools: results, results: totals, unmatched: [...unmatchedByLabels].map(([labels, n]) => ({ labels, jobs: n })), invariants };
}
