/**
 * Tuning sweeps of the reactive baseline: every combination of spare, scale-down window and fixed
 * standby, each run on every pool of a trace with the same engine and signal as Parmanu, totalled
 * the way `simulate` totals (waits weighted by jobs; cost = (node-minutes + stoppedCost × standby
 * minutes) ÷ the oracle's node-minutes). The goals of issue #15 are checked against these rows.
 */
import type { PoolConfig } from '../policy/types.js';
import type { TraceJob } from '../policy/trace.js';
import { costMinutes, DEFAULT_STOPPED_COST, matchTrace, oracleMinutesOf, runReactive, type SimParams } from './simulate.js';

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

export function sweepReactive(trace: readonly TraceJob[], pools: readonly PoolConfig[], params: SimParams, tunings: readonly Tuning[]): SweepRow[] {
  const { byPool } = matchTrace(trace, pools);
  const stoppedCost = params.stoppedCost ?? DEFAULT_STOPPED_COST;
  let oracle = 0;
  for (const pool of pools) oracle += oracleMinutesOf(pool, byPool.get(pool.name) ?? []);
  return tunings.map((t) => {
    let waitSum = 0;
    let jobs = 0;
    let nodeMinutes = 0;
    let standbyMinutes = 0;
    for (const pool of pools) {
      const own = byPool.get(pool.name) ?? [];
      const e = runReactive(pool, own, params, t);
      for (const w of e.waitsS) waitSum += w;
      jobs += own.length;
      nodeMinutes += e.nodeMinutes;
      standbyMinutes += e.standbyMinutes;
    }
    return {
      ...t,
      waitMeanS: Math.round((jobs ? waitSum / jobs : 0) * 10) / 10,
      costVsOracle: oracle > 0 ? Math.round((costMinutes(nodeMinutes, standbyMinutes, stoppedCost) / oracle) * 100) / 100 : 0,
      nodeMinutes: Math.round(nodeMinutes),
      standbyMinutes: Math.round(standbyMinutes),
    };
  });
}

/** The rows that beat `ref` on both axes: strictly lower mean wait and strictly lower cost. */
export function dominating(rows: readonly SweepRow[], ref: { waitMeanS: number; costVsOracle: number }): SweepRow[] {
  return rows.filter((r) => r.waitMeanS < ref.waitMeanS && r.costVsOracle < ref.costVsOracle);
}
