/**
 * Tuning sweeps of the reactive baseline: every combination of spare, scale-down window and fixed
 * standby, each run on every pool of a trace with the same engine and signal as Parmanu, totalled
 * the way `simulate` totals (waits weighted by jobs; cost = (node-minutes + stoppedCost × standby
 * minutes) ÷ the oracle's node-minutes). The goals of issue #15 are checked against these rows.
 */
import type { PoolConfig } from '../policy/types.js';
import type { TraceJob } from '../policy/trace.js';
import { costMinutes, DEFAULT_STOPPED_COST, matchTrace, oracleMinutesOf, runParmanu, runReactive, type Invariants, type SimParams } from './simulate.js';
import type { EngineResult } from './engine.js';

export interface Tuning {
  spare: number;
  scaleDownAfterMs: number;
  standby: number;
}

export interface SweepRow extends Tuning {
  waitMeanS: number;
  costVsOracle: number;
  nodeMinutes: number;
  standbyMinutes: number;
}

/** Every combination of the given values. */
export function grid(spares: readonly number[], scaleDownMinutes: readonly number[], standbys: readonly number[]): Tuning[] {
  const out: Tuning[] = [];
  for (const standby of standbys) for (const spare of spares) for (const m of scaleDownMinutes) out.push({ spare, scaleDownAfterMs: m * 60_000, standby });
  return out;
}

/** One strategy run on every pool of a trace, totalled like `simulate` (waits weighted by jobs). */
function totalled(byPool: ReadonlyMap<string, TraceJob[]>, pools: readonly PoolConfig[], params: SimParams, run: (pool: PoolConfig, jobs: TraceJob[]) => EngineResult): Totals {
  const stoppedCost = params.stoppedCost ?? DEFAULT_STOPPED_COST;
  let oracle = 0;
  let waitSum = 0;
  let jobs = 0;
  let nodeMinutes = 0;
  let standbyMinutes = 0;
  for (const pool of pools) {
    const own = byPool.get(pool.name) ?? [];
    oracle += oracleMinutesOf(pool, own);
    const e = run(pool, own);
    for (const w of e.waitsS) waitSum += w;
    jobs += own.length;
    nodeMinutes += e.nodeMinutes;
    standbyMinutes += e.standbyMinutes;
  }
  return {
    waitMeanS: Math.round((jobs ? waitSum / jobs : 0) * 10) / 10,
    costVsOracle: oracle > 0 ? Math.round((costMinutes(nodeMinutes, standbyMinutes, stoppedCost) / oracle) * 100) / 100 : 0,
    nodeMinutes: Math.round(nodeMinutes),
    standbyMinutes: Math.round(standbyMinutes),
  };
}

export function sweepReactive(trace: readonly TraceJob[], pools: readonly PoolConfig[], params: SimParams, tunings: readonly Tuning[]): SweepRow[] {
  const { byPool } = matchTrace(trace, pools);
  return tunings.map((t) => ({ ...t, ...totalled(byPool, pools, params, (pool, own) => runReactive(pool, own, params, t)) }));
}

/** The rows that beat `ref` on both axes: strictly lower mean wait and strictly lower cost. */
export function dominating(rows: readonly SweepRow[], ref: { waitMeanS: number; costVsOracle: number }): SweepRow[] {
  return rows.filter((r) => r.waitMeanS < ref.waitMeanS && r.costVsOracle < ref.costVsOracle);
}

export interface Totals {
  waitMeanS: number;
  costVsOracle: number;
  nodeMinutes: number;
  standbyMinutes: number;
}

/** Parmanu's decide on every pool of a trace, totalled like the sweep's rows. */
export function parmanuTotals(trace: readonly TraceJob[], pools: readonly PoolConfig[], params: SimParams, invariants: Invariants): Totals {
  return totalled(matchTrace(trace, pools).byPool, pools, params, (pool, own) => runParmanu(pool, own, params, invariants));
}

/** Issue #15's goals on a trace (the shared bitcoin one): Parmanu with webhooks and standby, and with polling alone. */
export const GOALS = {
  /** Parmanu's mean wait with webhooks and `standby: auto`, at most (s). */
  waitMeanS: 20,
  /** …at this cost at most (× oracle, standby counted at the stopped fraction). Missed: see BENCHMARKS.md. */
  costVsOracle: 2.0,
  /**
   * What the test holds Parmanu to instead of `costVsOracle` (a regression bound, not the goal):
   * no setting of decide measured reaches 20 s at 2.0× on the bitcoin trace (BENCHMARKS.md).
   */
  costBound: 2.5,
  webhook: { bootMs: 90_000, probeMs: 30_000, signal: 'webhook', resumeMs: 40_000, stoppedCost: 0.05, standby: 'auto' } satisfies SimParams,
  poll: { bootMs: 90_000, probeMs: 30_000, signal: 'poll', resumeMs: 40_000, stoppedCost: 0.05 } satisfies SimParams,
  spares: [0, 1, 2],
  /** Every whole minute from 2 to 20. */
  scaleDownMinutes: Array.from({ length: 19 }, (_, i) => i + 2),
  /** Fixed standby of the reactive tunings with webhooks (with polling alone: none). */
  standbys: [0, 4, 8],
} as const;

export interface GoalCheck {
  webhook: { parmanu: Totals; sweep: SweepRow[]; beaten: SweepRow[] };
  poll: { parmanu: Totals; sweep: SweepRow[]; beaten: SweepRow[] };
  invariants: Invariants;
  /** Each goal, met or not. */
  met: { wait: boolean; cost: boolean; webhookUnbeaten: boolean; pollUnbeaten: boolean };
}

/** Runs Parmanu and every reactive tuning of the goals (or the scale-down minutes given) on the trace's default pools. */
export function checkGoals(trace: readonly TraceJob[], pools: readonly PoolConfig[], scaleDownMinutes: readonly number[] = GOALS.scaleDownMinutes, progress?: (line: string) => void): GoalCheck {
  const invariants: Invariants = { busyDestroys: 0, busyStops: 0, maxExceeded: 0 };
  const side = (params: SimParams, standbys: readonly number[]) => {
    progress?.(`goals: parmanu, signal ${params.signal}`);
    const parmanu = parmanuTotals(trace, pools, params, invariants);
    progress?.(`goals: ${GOALS.spares.length * scaleDownMinutes.length * standbys.length} reactive tunings, signal ${params.signal}`);
    const sweep = sweepReactive(trace, pools, params, grid(GOALS.spares, scaleDownMinutes, standbys));
    return { parmanu, sweep, beaten: dominating(sweep, parmanu) };
  };
  const webhook = side(GOALS.webhook, GOALS.standbys);
  const poll = side(GOALS.poll, [0]);
  return {
    webhook,
    poll,
    invariants,
    met: { wait: webhook.parmanu.waitMeanS <= GOALS.waitMeanS, cost: webhook.parmanu.costVsOracle <= GOALS.costVsOracle, webhookUnbeaten: webhook.beaten.length === 0, pollUnbeaten: poll.beaten.length === 0 },
  };
}
