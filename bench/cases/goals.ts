import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadGoals } from '../goals.js';
import { GOALS, type SweepRow, type Totals } from '../../src/sim/sweep.js';
import { round, type BenchCase, type Figure } from '../harness.js';

const label = (r: SweepRow) => `reactive, spare ${r.spare}, scale-down ${r.scaleDownAfterMs / 60_000}m, standby ${r.standby}`;

/** The reactive tuning that waits least among those that cost no more than Parmanu, and the cheapest among those that wait no longer. */
function figures(prefix: string, p: Totals, sweep: SweepRow[], note: string): Figure[] {
  const cheaper = sweep.filter((r) => r.costVsOracle <= p.costVsOracle).sort((a, b) => a.waitMeanS - b.waitMeanS)[0];
  const quicker = sweep.filter((r) => r.waitMeanS <= p.waitMeanS).sort((a, b) => a.costVsOracle - b.costVsOracle)[0];
  return [
    { name: `${prefix}-wait-mean`, value: p.waitMeanS, unit: 's', ...(cheaper ? { baseline: { name: `${label(cheaper)}: the least wait at no more cost`, value: cheaper.waitMeanS }, ratio: round(p.waitMeanS / cheaper.waitMeanS) } : {}), note },
    { name: `${prefix}-cost`, value: p.costVsOracle, unit: '× oracle', ...(quicker ? { baseline: { name: `${label(quicker)}: the least cost at no more wait`, value: quicker.costVsOracle }, ratio: round(p.costVsOracle / quicker.costVsOracle) } : {}), note: `${p.nodeMinutes} node-min + ${Math.round(GOALS.webhook.stoppedCost * 100)}% of ${p.standbyMinutes} standby-min` },
  ];
}

/**
 * Issue #15's goals on the bitcoin trace (the grid of the goals test: every second minute of
 * scale-down; `node dist/bench/goals.js` sweeps every minute and prints the whole table).
 */
export const simulateGoals: BenchCase = {
  name: 'simulate-goals',
  async run({ tracesDir, log }) {
    const path = join(tracesDir, 'bitcoin-core-gha.csv');
    if (!existsSync(path)) {
      log(`bench: simulate-goals skipped: no trace ${path} (set PARMANU_TRACES_DIR to the folder that holds bitcoin-core-gha.csv)`);
      return [];
    }
    const t0 = process.hrtime.bigint();
    const g = loadGoals(path, 2);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const w = g.webhook;
    return [
      { name: 'simulate-goals', value: round(s, 1), unit: 's', note: `Parmanu twice and ${w.sweep.length + g.poll.sweep.length} reactive tunings on 16376 jobs` },
      ...figures('simulate-webhook-standby', w.parmanu, w.sweep, `goal ≤ ${GOALS.waitMeanS} s at ≤ ${GOALS.costVsOracle}×: ${g.met.wait && g.met.cost ? 'met' : g.met.wait ? 'the wait met, the cost missed' : g.met.cost ? 'the cost met, the wait missed' : 'missed'}; reactive tunings that beat it on both axes: ${w.beaten.length}`),
      ...figures('simulate-poll', g.poll.parmanu, g.poll.sweep, `reactive tunings that beat it on both axes: ${g.poll.beaten.length}`),
    ];
  },
};
