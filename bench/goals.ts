/**
 * Issue #15's goals on the shared bitcoin trace, reproducibly: Parmanu with webhooks and
 * `standby: auto` (resume 40 s, stopped cost 5%) against every tuning of the reactive autoscaler
 * with the same signal and a fixed standby (spare 0–2 × scale-down 2–20 min × standby 0/4/8), and
 * with polling alone against every reactive tuning without standby. Prints the table that
 * BENCHMARKS.md records.
 *
 *   npm run build:dev && node dist/bench/goals.js [--json] [--step N]
 *
 * `--step 2` sweeps every second minute of scale-down (the goals test's grid); the default is every
 * minute. The trace is read from PARMANU_TRACES_DIR (default ../shared/traces beside the checkout).
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from '../src/cli/args.js';
import { processIo, reportFailure, UsageError, type Io } from '../src/cli/errors.js';
import { parseTrace } from '../src/policy/trace.js';
import { defaultPools } from '../src/sim/simulate.js';
import { checkGoals, dominating, GOALS, type GoalCheck, type SweepRow, type Totals } from '../src/sim/sweep.js';

const HELP = `Usage: node dist/bench/goals.js [--json] [--step N]

Checks issue #15's goals on the shared bitcoin trace (bitcoin-core-gha.csv in PARMANU_TRACES_DIR,
default ../shared/traces beside the checkout) and prints Parmanu's figures, every reactive tuning
and which of them beat Parmanu on both axes (lower mean wait and lower cost).
  --step N   scale-down minutes 2, 2+N, … up to 20 (default 1: every minute)
  --json     one JSON object: the GoalCheck
Exit: 0 every goal met; 1 a goal missed; 2 bad input or no trace.`;

export function tracePath(env: NodeJS.ProcessEnv, cwd: string): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  return join(env.PARMANU_TRACES_DIR ? resolve(cwd, env.PARMANU_TRACES_DIR) : resolve(root, '..', 'shared', 'traces'), 'bitcoin-core-gha.csv');
}

export function loadGoals(path: string, step = 1, progress?: (line: string) => void): GoalCheck {
  const trace = parseTrace(readFileSync(path, 'utf8')).jobs;
  const minutes = GOALS.scaleDownMinutes.filter((m) => (m - 2) % step === 0);
  return checkGoals(trace, defaultPools(trace), minutes, progress);
}

const fmtRow = (r: SweepRow, p: Totals) => `| ${r.standby} | ${r.spare} | ${r.scaleDownAfterMs / 60_000} min | ${r.waitMeanS} s | ${r.costVsOracle.toFixed(2)}× | ${dominating([r], p).length ? '**yes**' : ''} |`;

/** The Markdown tables BENCHMARKS.md records. */
export function goalTables(g: GoalCheck): string[] {
  const out: string[] = [];
  const mark = (ok: boolean) => (ok ? 'met' : '**missed**');
  const wp = g.webhook.parmanu;
  const pp = g.poll.parmanu;
  out.push('| goal | measured | verdict |', '| --- | --- | --- |');
  out.push(`| webhook + standby auto: mean wait ≤ ${GOALS.waitMeanS} s | ${wp.waitMeanS} s | ${mark(g.met.wait)} |`);
  out.push(`| webhook + standby auto: cost ≤ ${GOALS.costVsOracle.toFixed(1)}× oracle | ${wp.costVsOracle.toFixed(2)}× (${wp.nodeMinutes} node-min + ${Math.round(GOALS.webhook.stoppedCost * 100)}% of ${wp.standbyMinutes} standby-min) | ${mark(g.met.cost)} |`);
  out.push(`| no reactive tuning with webhooks and standby 0/4/8 beats it on both axes | ${g.webhook.beaten.length} of ${g.webhook.sweep.length} do | ${mark(g.met.webhookUnbeaten)} |`);
  out.push(`| polling alone: no reactive tuning beats Parmanu (${pp.waitMeanS} s, ${pp.costVsOracle.toFixed(2)}×) on both axes | ${g.poll.beaten.length} of ${g.poll.sweep.length} do | ${mark(g.met.pollUnbeaten)} |`);
  out.push(`| invariants (busy destroys, busy stops, max exceeded) | ${g.invariants.busyDestroys}, ${g.invariants.busyStops}, ${g.invariants.maxExceeded} | ${mark(g.invariants.busyDestroys + g.invariants.busyStops + g.invariants.maxExceeded === 0)} |`);
  for (const [title, side] of [['webhooks', g.webhook], ['polling alone', g.poll]] as const) {
    out.push('', `Reactive tunings, ${title} (Parmanu: ${side.parmanu.waitMeanS} s, ${side.parmanu.costVsOracle.toFixed(2)}×):`, '');
    out.push('| standby | spare | scale-down | wait mean | cost × oracle | beats Parmanu |', '| --- | --- | --- | --- | --- | --- |');
    for (const r of side.sweep) out.push(fmtRow(r, side.parmanu));
  }
  return out;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('goals', argv, { json: { type: 'boolean' }, step: { type: 'string' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const step = values.step === undefined ? 1 : Number(values.step);
  if (!Number.isInteger(step) || step < 1 || step > 18) throw new UsageError(`goals: --step must be a whole number from 1 to 18, not "${values.step}"`);
  const path = tracePath(io.env, io.cwd);
  if (!existsSync(path)) throw new UsageError(`goals: no trace ${path} (set PARMANU_TRACES_DIR to the folder that holds bitcoin-core-gha.csv)`);
  const t0 = Date.now();
  const g = loadGoals(path, step, io.err);
  io.err(`goals: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (values.json) io.out(JSON.stringify(g));
  else for (const line of goalTables(g)) io.out(line);
  return Object.values(g.met).every(Boolean) ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const io = processIo();
  try {
    process.exitCode = await run(process.argv.slice(2), io);
  } catch (err) {
    process.exitCode = reportFailure(err, io);
  }
}
