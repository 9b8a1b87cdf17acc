/** `npm run bench -- [--json] [--only NAME]`: runs every case; a table, or one JSON object. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '../src/cli/args.js';
import { UsageError, type Io } from '../src/cli/errors.js';
import { coldStart, validate200 } from './cases/foundation.js';
import { simulateBitcoin } from './cases/simulate.js';
import { simulateGoals } from './cases/goals.js';
import { synth1000 } from './cases/synth.js';
import { probeGitlab500, probeGithubEtag } from './cases/probe.js';
import { noopCycle50, reconcileVsTerraform200, redisRoundTrips } from './cases/reconcile.js';
import { webhookLatency, webhookThroughput } from './cases/webhooks.js';
import { services60 } from './cases/services.js';
import type { BenchCase, Figure } from './harness.js';

const CASES: BenchCase[] = [coldStart, validate200, simulateBitcoin, simulateGoals, probeGitlab500, probeGithubEtag, synth1000, noopCycle50, redisRoundTrips, reconcileVsTerraform200, webhookLatency, webhookThroughput, services60];

const HELP = `Usage: npm run bench -- [--json | --markdown] [--only NAME[,NAME…]]

Runs the benchmark suite. Each figure is compared with a baseline measured in the same run
where one exists. --markdown prints the table as Markdown (the form BENCHMARKS.md records).
Cases: ${CASES.filter((c) => !c.optIn).map((c) => c.name).join(', ')}.
Opt-in cases, run only when named in --only: ${CASES.filter((c) => c.optIn).map((c) => c.name).join(', ')}
(services-60-pools: 1 prober + 3 scalers vs one process, about 14 min; its measured window is
PARMANU_BENCH_SERVICES_WINDOW_S seconds, default 150).
The trace figures read bitcoin-core-gha.csv from PARMANU_TRACES_DIR (default ../shared/traces
beside the checkout); without it they are skipped with one line on stderr.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('bench', argv, { json: { type: 'boolean' }, markdown: { type: 'boolean' }, only: { type: 'string' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const only = values.only?.split(',');
  for (const o of only ?? []) if (!CASES.some((c) => c.name === o)) throw new UsageError(`bench: no case named "${o}" (cases: ${CASES.map((c) => c.name).join(', ')})`);
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const figures: Figure[] = [];
  for (const c of CASES) {
    if (only ? !only.includes(c.name) : c.optIn) continue;
    io.err(`bench: ${c.name}…`);
    figures.push(...(await c.run({ root, tracesDir: io.env.PARMANU_TRACES_DIR ? resolve(io.cwd, io.env.PARMANU_TRACES_DIR) : resolve(root, '..', 'shared', 'traces'), log: io.err })));
  }
  if (values.json) {
    io.out(JSON.stringify({ figures }));
    return 0;
  }
  const rows = figures.map((f) => [f.name, `${f.value} ${f.unit}`, f.baseline ? `${f.baseline.value} ${f.unit} (${f.baseline.name})` : '', f.ratio !== undefined ? `${f.ratio}×` : '', f.note ?? '']);
  const head = ['figure', 'value', 'baseline', 'ratio', 'note'];
  if (values.markdown) {
    const cell = (c: string) => c.replace(/\|/g, '\\|');
    io.out(`| ${head.join(' | ')} |`);
    io.out(`|${head.map(() => '---').join('|')}|`);
    for (const r of rows) io.out(`| ${r.map(cell).join(' | ')} |`);
    return 0;
  }
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const fmt = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  io.out(fmt(head));
  io.out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) io.out(fmt(r));
  return 0;
}
