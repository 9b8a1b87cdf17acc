import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { budgetStates } from '../decide/budget.js';
import { buildReport, reportHtml } from '../gitops/report.js';
import { budgetContext } from '../reconcile/budget.js';
import { parseDuration } from '../policy/duration.js';
import { durationArg, parse } from './args.js';
import { fleetClock, loadFleet, openHistoryFor } from './context.js';
import { UsageError, writeOrExplain, type Io } from './errors.js';

const HELP = `Usage: parmanu report [--policy PATH] [--since 7d] [--out report.html] [--format html|json]

From the history store, per pool: queued and running jobs against nodes over time, job waits per
hour (p50/p95 of the queued → started times reconcile observed), node-hours and cost (with
machine.hourlyCost), scale events with their reasons, and failed cycles; with cost budgets,
each budget's spend now (per hour), this UTC month and in the period, against its limits. HTML is one
self-contained file (inline SVG, no script, no external resources: it opens offline); JSON
carries the same numbers. Times are UTC. Unreadable history lines are skipped with a warning.

Options:
  --policy PATH   policy file or directory (default policies/)
  --since D       how far back (default 7d)
  --out FILE      write to FILE (default: report.html for html, standard output for json)
  --format F      html (default) or json
  -h, --help      this help

Exit: 0; 1 the history could not be read; 2 bad input.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('report', argv, { policy: { type: 'string' }, since: { type: 'string' }, out: { type: 'string' }, format: { type: 'string' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const format = values.format ?? 'html';
  if (format !== 'html' && format !== 'json') throw new UsageError(`report: --format must be html or json, not "${format}"`);
  const sinceMs = durationArg('report', 'since', values.since, parseDuration) ?? 7 * 86_400_000;
  const fleet = loadFleet('report', io, values);
  if (!fleet) return 2;
  // A policy of replay emitters reports on their virtual clock (trace time), as reconcile recorded it.
  const until = fleetClock('report', io, fleet)();
  const since = until - sinceMs;
  const history = openHistoryFor('report', io, fleet.stateDir);
  let report;
  try {
    // A pool with failover platforms: where its last cycle sent new nodes (its record).
    const runsOn = async (p: (typeof fleet.pools)[number]) => (p.failover?.length ? { runsOn: { platform: (await history.getPool(p.name).catch(() => undefined))?.failover?.active ?? p.platform, failover: p.failover.map((f) => f.platform) } } : {});
    const pools = await Promise.all(fleet.pools.map(async (p) => ({ pool: p.name, samples: await history.samples(p.name, since), hourlyCost: p.machine.hourlyCost, ...(await runsOn(p)) })));
    const times = pools.flatMap((p) => p.samples.map((s) => s.at));
    // From the first sample (a pool reconciled for a day shows that day), to now or the last sample
    // (a replay's virtual clock may run ahead of the wall clock).
    const first = times.reduce((a, b) => Math.min(a, b), until);
    const last = times.reduce((a, b) => Math.max(a, b), until);
    // Cost budgets: each against its spend now (per hour), this UTC month and this period.
    const budgets = fleet.policy.budgets?.length ? budgetStates(await budgetContext(history, fleet.policy, until)) : [];
    report = buildReport(pools, await history.events(since), Math.max(since, first), last, { budgets, currency: fleet.policy.currency });
  } catch (err) {
    throw new UsageError(`report: ${(err as Error).message}`, 1);
  } finally {
    await history.close();
  }
  if (format === 'json') {
    const text = JSON.stringify(report);
    if (values.out) {
      const file = resolve(io.cwd, values.out);
      writeOrExplain('report', '--out', file, () => writeFileSync(file, text + '\n'));
    }
    else io.out(text);
    return 0;
  }
  const out = resolve(io.cwd, values.out ?? 'report.html');
  writeOrExplain('report', '--out', out, () => writeFileSync(out, reportHtml(report)));
  io.out(`report: ${report.pools.length} pools → ${out}`);
  return 0;
}
