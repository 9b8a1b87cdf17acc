import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrace } from '../../src/policy/trace.js';
import { defaultPools, simulate } from '../../src/sim/simulate.js';
import { round, type BenchCase } from '../harness.js';

/** Wall time of the whole bitcoin simulation with every baseline, and the headline results. */
export const simulateBitcoin: BenchCase = {
  name: 'simulate-bitcoin',
  async run({ tracesDir, log }) {
    const path = join(tracesDir, 'bitcoin-core-gha.csv');
    if (!existsSync(path)) {
      log(`bench: simulate-bitcoin skipped: no trace ${path} (set PARMANU_TRACES_DIR to the folder that holds bitcoin-core-gha.csv)`);
      return [];
    }
    const t0 = process.hrtime.bigint();
    const trace = parseTrace(readFileSync(path, 'utf8')).jobs;
    const r = simulate(trace, defaultPools(trace), { bootMs: 90_000, probeMs: 30_000 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const p = r.results.parmanu;
    const re = r.results.reactive;
    return [
      { name: 'simulate-bitcoin', value: round(ms / 1000, 2), unit: 's', note: `${trace.length} jobs, 42 days, 6 strategies (target ≤ 10 s)` },
      { name: 'simulate-bitcoin-wait-mean', value: p.waitMeanS, unit: 's', baseline: { name: 'reactive', value: re.waitMeanS }, ratio: round(p.waitMeanS / re.waitMeanS) },
      { name: 'simulate-bitcoin-node-minutes', value: p.nodeMinutes, unit: 'node-min', baseline: { name: 'reactive', value: re.nodeMinutes }, ratio: round(p.nodeMinutes / re.nodeMinutes), note: `${p.costVsOracle}× oracle` },
    ];
  },
};
