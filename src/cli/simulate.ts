import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadPolicy } from '../policy/load.js';
import { parseDuration } from '../policy/duration.js';
import { formatProblem } from '../policy/types.js';
import { generateTrace, SHAPES, traceToCsv, type Shape } from '../sim/generate.js';
import { parseTrace, type TraceJob } from '../policy/trace.js';
import { REACTIVE_STANDBY } from '../sim/baselines.js';
import { BASELINES, DEFAULT_RESUME_MS, DEFAULT_STOPPED_COST, DEFAULT_WEBHOOK_LATENCY_MS, defaultPools, simulate, type Metrics, type SimParams, type SimResult } from '../sim/simulate.js';
import { durationArg, parse } from './args.js';
import { UsageError, writeOrExplain, type Io } from './errors.js';

const HELP = `Usage: parmanu simulate --trace CSV [--policy PATH] [--boot 90s] [--probe 30s] [--signal poll|webhook] [--resume 40s] [--stopped-cost 0.05] [--standby N|auto] [--json]
       parmanu simulate --shape office-hours|nightly|quiet-gaps [--days N] [--seed S] […]

Replays a job trace (queued_at,duration_s,labels) through Parmanu's decide and the baselines:
  oracle           every job starts at once on capacity that exists only while it runs (lower bound)
  perJob           one fresh node per job, created when it is queued (webhook-driven ephemeral
                   runners, whatever --signal says): every job waits one --boot
  reactive         ⌈(queued + running) ÷ jobsPerNode⌉ + 1 spare each probe, idle nodes go after 10m;
                   with --signal webhook it also grows when a job is queued
  reactiveStandby  reactive with a fixed standby of --reactive-standby stopped nodes (default 4):
                   scale-up starts them first (online after --resume), scale-down stops idle nodes
                   while fewer are stopped, and a short standby is refilled by nodes that boot once
  staticPeak       a fixed fleet sized to the trace's peak concurrency
Without --policy, each distinct label set is its own pool with the default settings and one job
per node; --standby then applies to every pool. With --policy, --standby overrides the pools'
scaling.standby only when given.

Options:
  --trace CSV            the trace
  --shape NAME           instead of a trace, a generated one: office-hours, nightly or quiet-gaps
  --days N               length of a generated trace (default 28)
  --seed S               seed of a generated trace (default 1)
  --write-trace F        also write the generated trace to F (CSV)
  --policy PATH          policy file or directory whose pools take the trace's jobs
  --boot D               time from create to a registered runner (default 90s)
  --probe D              probe interval (default 30s)
  --signal poll|webhook  poll (default): decisions every probe; webhook: also a scale-up-only
                         decision when a job is queued (after --webhook-latency), polls as backstop
  --webhook-latency D    from a job being queued to its webhook decision (default 2s)
  --resume D             time a stopped (standby) node takes to start and come online (default 40s)
  --stopped-cost F       what a stopped node costs as a fraction of a running one (default 0.05)
  --standby N|auto       Parmanu's scaling.standby for every pool (see above)
  --reactive-standby N   reactiveStandby's fixed standby (default 4)
  --json                 print {"params", "results", "pools", "unmatched", "invariants"}
  -h, --help             this help

Columns (--json keys): jobs; wait mean, p50, p95, max (waitMeanS, waitP50S, waitP95S, waitMaxS:
seconds from queued to started); node-min (nodeMinutes: minutes of powered-on nodes, booting
included); standby-min (standbyMinutes: minutes of stopped nodes); ×oracle (costVsOracle:
(nodeMinutes + stopped-cost × standbyMinutes) ÷ the oracle's node-minutes); peak (peakNodes: most
powered-on nodes at once); nodes added, nodes removed (scaleUps, scaleDowns: nodes created and
destroyed during the trace; perJob one each per job, oracle none, staticPeak none: its fleet
exists from the start); started, stopped (starts, stops: standby nodes started, idle nodes stopped
into standby). --json also has scaleUpEvents and scaleDownEvents: the decisions (probes and
webhook cycles; perJob: jobs) that created or started, destroyed or stopped at least one node.

Exit: 0; 2 bad input (a malformed trace included).`;

const MAX_TRACE_BYTES = 512 * 1024 * 1024;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('simulate', argv, {
    trace: { type: 'string' },
    policy: { type: 'string' },
    boot: { type: 'string' },
    probe: { type: 'string' },
    json: { type: 'boolean' },
    shape: { type: 'string' },
    days: { type: 'string' },
    seed: { type: 'string' },
    'write-trace': { type: 'string' },
    signal: { type: 'string' },
    'webhook-latency': { type: 'string' },
    resume: { type: 'string' },
    'stopped-cost': { type: 'string' },
    standby: { type: 'string' },
    'reactive-standby': { type: 'string' },
  });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  if (!values.trace && !values.shape) throw new UsageError('simulate: --trace CSV (or --shape NAME) is required (see --help)');
  if (values.trace && values.shape) throw new UsageError('simulate: give --trace or --shape, not both');
  for (const flag of ['days', 'seed', 'write-trace'] as const) if (values[flag] !== undefined && !values.shape) throw new UsageError(`simulate: --${flag} applies to a generated trace (--shape), not to --trace`);
  const bootMs = durationArg('simulate', 'boot', values.boot, parseDuration) ?? 90_000;
  const probeMs = durationArg('simulate', 'probe', values.probe, parseDuration) ?? 30_000;
  if (probeMs < 1000) throw new UsageError('simulate: --probe must be at least 1s');
  const signal = values.signal ?? 'poll';
  if (signal !== 'poll' && signal !== 'webhook') throw new UsageError(`simulate: --signal must be poll or webhook, not "${values.signal}"`);
  const webhookLatencyMs = durationArg('simulate', 'webhook-latency', values['webhook-latency'], parseDuration) ?? DEFAULT_WEBHOOK_LATENCY_MS;
  const resumeMs = durationArg('simulate', 'resume', values.resume, parseDuration) ?? DEFAULT_RESUME_MS;
  const stoppedCost = fractionArg('stopped-cost', values['stopped-cost'], DEFAULT_STOPPED_COST);
  const standby = values.standby === undefined ? undefined : values.standby === 'auto' ? 'auto' : intArg('standby', values.standby, 0, 0, 1000);
  const reactiveStandby = intArg('reactive-standby', values['reactive-standby'], REACTIVE_STANDBY, 0, 1000);

  let jobs: TraceJob[];
  let source: string;
  if (values.shape) {
    if (!(SHAPES as readonly string[]).includes(values.shape)) throw new UsageError(`simulate: --shape must be one of ${SHAPES.join(', ')}, not "${values.shape}"`);
    const days = intArg('days', values.days, 28, 1, 366);
    const seed = intArg('seed', values.seed, 1, 0, 2 ** 31);
    jobs = generateTrace(values.shape as Shape, days, seed);
    source = `${values.shape} (${days} days, seed ${seed})`;
    if (values['write-trace']) {
      const file = resolve(io.cwd, values['write-trace']);
      writeOrExplain('simulate', '--write-trace', file, () => writeFileSync(file, traceToCsv(jobs)));
    }
  } else {
    const trace = readTrace(values.trace as string, io);
    if (!trace) return 2;
    jobs = trace;
    source = values.trace as string;
  }

  let pools;
  if (values.policy) {
    const loaded = loadPolicy([resolve(io.cwd, values.policy)], { cwd: io.cwd });
    if (!loaded.policy) {
      for (const p of loaded.problems) io.err(formatProblem(p));
      return 2;
    }
    pools = loaded.policy.pools;
  } else pools = defaultPools(jobs);

  const started = Date.now();
  const simParams: SimParams = { bootMs, probeMs, signal, webhookLatencyMs, resumeMs, stoppedCost, reactiveStandby };
  if (standby !== undefined) simParams.standby = standby;
  const result = simulate(jobs, pools, simParams, io.isTTY || !values.json ? (l) => io.err(l) : undefined);
  const params = {
    trace: source,
    policy: values.policy ?? null,
    bootS: bootMs / 1000,
    probeS: probeMs / 1000,
    signal,
    webhookLatencyS: webhookLatencyMs / 1000,
    resumeS: resumeMs / 1000,
    stoppedCost,
    standby: standby ?? null,
    reactiveStandby,
    jobs: jobs.length,
    pools: pools.length,
    wallMs: Date.now() - started,
  };
  if (values.json) {
    io.out(JSON.stringify({ params, results: result.results, pools: result.pools, unmatched: result.unmatched, invariants: result.invariants }));
    return 0;
  }
  printTables(io, result);
  return 0;
}

function intArg(flag: string, value: string | undefined, dflt: number, min: number, max: number): number {
  if (value === undefined) return dflt;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) throw new UsageError(`simulate: --${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return Number(value);
}

function fractionArg(flag: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  const x = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(x >= 0 && x <= 1)) throw new UsageError(`simulate: --${flag} must be a fraction from 0 to 1 (0.05 is 5%), not "${value}"`);
  return x;
}

function readTrace(path: string, io: Io): TraceJob[] | undefined {
  const tracePath = resolve(io.cwd, path);
  let text: string;
  try {
    if (statSync(tracePath).size > MAX_TRACE_BYTES) throw new UsageError(`simulate: ${path}: larger than 512 MiB`);
    text = readFileSync(tracePath, 'utf8');
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : `cannot be read (${code ?? 'error'})`}`);
  }
  const trace = parseTrace(text);
  if (trace.problems.length) {
    for (const p of trace.problems) io.err(`${path}:${p.line}: ${p.message}`);
    io.err(`✖ ${trace.problems.length}${trace.problems.length >= 50 ? '+' : ''} malformed row${trace.problems.length === 1 ? '' : 's'}; nothing was simulated`);
    return undefined;
  }
  return trace.jobs;
}

function printTables(io: Io, result: SimResult): void {
  const head = ['', 'jobs', 'wait mean', 'p50', 'p95', 'max', 'node-min', 'standby-min', '×oracle', 'peak', 'nodes added', 'nodes removed', 'started', 'stopped'];
  const row = (name: string, m: Metrics) => [name, String(m.jobs), `${m.waitMeanS}s`, `${m.waitP50S}s`, `${m.waitP95S}s`, `${m.waitMaxS}s`, String(m.nodeMinutes), String(m.standbyMinutes), m.costVsOracle.toFixed(2), String(m.peakNodes), String(m.scaleUps), String(m.scaleDowns), String(m.starts), String(m.stops)];
  const table = (title: string, results: Record<string, Metrics>) => {
    const rows = BASELINES.map((b) => row(b, results[b] as Metrics));
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
    io.out(title);
    io.out(head.map((h, i) => (i === 0 ? h.padEnd(w[i] as number) : h.padStart(w[i] as number))).join('  '));
    for (const r of rows) io.out(r.map((c, i) => (i === 0 ? c.padEnd(w[i] as number) : c.padStart(w[i] as number))).join('  '));
    io.out('');
  };
  for (const p of result.pools) table(`pool ${p.pool} (labels ${p.labels.join(', ') || '-'}; ${p.jobsPerNode} job${p.jobsPerNode === 1 ? '' : 's'}/node)`, p.results);
  table('all pools', result.results);
  if (result.unmatched.length) io.out(`unmatched jobs (no pool takes them): ${result.unmatched.map((u) => `${u.labels} ×${u.jobs}`).join(', ')}`);
  if (result.invariants.busyDestroys || result.invariants.busyStops || result.invariants.maxExceeded) io.out(`INVARIANT VIOLATIONS: ${JSON.stringify(result.invariants)}`);
}
