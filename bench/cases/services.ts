/**
 * Services at scale (issue #16 item 7): one prober (`probe --watch`) and three scalers
 * (`reconcile --watch --from-redis --concurrency 2`) as real processes of the compiled CLI, over
 * one real Redis, against the GitLab emulator over HTTP, terraform on the local platform, 60 pools
 * under a steady load (jobs arriving in every pool, starting on the pool's idle online runners,
 * finishing). The baseline, in the same run, under the same load on a fresh Redis and emulator:
 * one process (`reconcile --watch`, no --from-redis) that probes and reconciles all 60 pools.
 *
 * Opt-in (about 14 minutes): `npm run bench -- --only services-60-pools`. The measured window
 * (default 150 s, after a warm-up that lasts until every pool has finished a cycle, plus 30 s)
 * is PARMANU_BENCH_SERVICES_WINDOW_S seconds. Then both again with every pool due every second
 * (probe interval 1 s, a window of at most 60 s): the cycles per minute they can run, not the 360
 * that 60 pools at 10 s ask for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { GitlabEmulator, type GlJob } from '../../test/emulators/gitlab.js';
import { startRedis } from '../../test/redis-server.js';
import { localCredentialFile } from '../../stacks/types.js';
import { round, type BenchCase, type Figure } from '../harness.js';

const POOLS = 60;
const PROBE_INTERVAL_S = 10;
/** Mean time between two jobs of one pool (exponential), and a job's run time (uniform). */
const ARRIVAL_MEAN_MS = 60_000;
const RUN_MS: [number, number] = [15_000, 45_000];
const names = Array.from({ length: POOLS }, (_, i) => `p${String(i).padStart(2, '0')}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The emulator, with the start of a job recorded (so that removedWhileBusy sees the load's jobs). */
class LoadedGitlab extends GitlabEmulator {
  begin(job: GlJob, runner: { id: number; description: string }): void {
    job.status = 'running';
    job.started_at = new Date().toISOString();
    job.runner = runner;
    this.recordStart(job.id, runner.description);
  }
}

/** What the bench reads of a scaler's or single process's `--json` line (a pool cycle or a whole cycle). */
const CycleLine = z.object({
  trigger: z.string().optional(),
  pools: z.array(z.object({ pool: z.string(), durationMs: z.number(), terraform: z.object({ ran: z.boolean() }).passthrough(), skipped: z.string().optional(), error: z.string().optional() }).passthrough()),
});
const ProbeLine = z.object({ emitter: z.string(), ok: z.boolean(), changed: z.boolean(), written: z.boolean(), apiCalls: z.number(), durationMs: z.number() });

interface Line {
  at: number;
  value: unknown;
}

interface Proc {
  name: string;
  child: ChildProcess;
  err: string;
  lines: Line[];
  url(): string | undefined;
}

function start(name: string, cwd: string, args: string[], env: Record<string, string>, bin: string): Proc {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let partial = '';
  const p: Proc = {
    name,
    child,
    err: '',
    lines: [],
    url() {
      const m = /"url":"(http:\/\/127\.0\.0\.1:\d+)/.exec(p.err);
      return m?.[1];
    },
  };
  child.stdout?.on('data', (d: Buffer) => {
    const at = Date.now();
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) {
      if (!l.trim()) continue;
      try {
        p.lines.push({ at, value: JSON.parse(l) as unknown });
      } catch {
        // not a JSON line
      }
    }
  });
  // Only the start of stderr is kept (the listener's URL is logged there); the rest is dropped.
  child.stderr?.on('data', (d: Buffer) => {
    if (p.err.length < 200_000) p.err += d.toString();
  });
  return p;
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(t);
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** INFO stats' total_commands_processed and commandstats' calls per command. */
async function redisCounts(r: Redis): Promise<{ total: number; calls: Map<string, number> }> {
  const stats = await r.info('stats');
  const total = Number(/total_commands_processed:(\d+)/.exec(stats)?.[1] ?? NaN);
  const calls = new Map<string, number>();
  for (const m of (await r.info('commandstats')).matchAll(/cmdstat_([^:]+):calls=(\d+)/g)) calls.set(m[1] as string, Number(m[2]));
  return { total, calls };
}

export interface Measured {
  mode: 'services' | 'single';
  windowMin: number;
  /** Pools without a cycle in the window (starved). */
  notCycled: string[];
  /** Pool cycles (not skipped for a held lease) per minute, per replica (one entry for the single process). */
  perReplica: number[];
  cyclesPerMin: number;
  applyCyclesPerMin: number;
  skippedPerMin: number;
  errorsInWindow: number;
  triggers: Record<string, number>;
  cycleMs: number[];
  waitsMs: number[];
  unstarted: number;
  jobsQueued: number;
  apiPerMin: number;
  probesPerMin: number;
  apiPerProbe: number;
  redisOpsPerS: number;
  /** Commands per minute by name (the top ones), from INFO commandstats. */
  redisTop: Array<[string, number]>;
  removedWhileBusy: number;
  /** The 60 pools' first cycles all done after this many seconds. */
  warmS: number;
  /** Per replica: the time its pool cycles ran ÷ (window × the pool cycles it may run at once). */
  busy: number[];
  /** CPU seconds each process (and the terraform processes it ran and reaped) used in the window. */
  cpuS: Array<{ name: string; s: number }>;
  /** Requests per minute by route (ids replaced by :id, query left out), the most frequent first. */
  apiByRoute: Array<[string, number]>;
  diagnostics: { errors: string[]; removedWhileBusy: unknown[] };
}

/** utime + stime + cutime + cstime of a process, in seconds (Linux /proc; NaN elsewhere). */
function cpuSeconds(p: Proc): number {
  try {
    const f = readFileSync(`/proc/${p.child.pid ?? 0}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    // Fields 14–17 of proc(5), counted from the state (field 3) at index 0.
    return fields.slice(11, 15).reduce((t, x) => t + Number(x), 0) / 100;
  } catch {
    return NaN;
  }
}

function routes(lines: string[], minutes: number): Array<[string, number]> {
  const n = new Map<string, number>();
  for (const l of lines) {
    const k = (l.split('?')[0] ?? l).replace(/\/\d+(?=\/|$)/g, '/:id');
    n.set(k, (n.get(k) ?? 0) + 1);
  }
  return [...n].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v / minutes, 1)]);
}

async function measure(mode: 'services' | 'single', root: string, windowMs: number, log: (l: string) => void, intervalS = PROBE_INTERVAL_S): Promise<Measured> {
  const dir = mkdtempSync(join(tmpdir(), `parmanu-bench-svc-${mode}-`));
  const redis = await startRedis();
  const raw = new Redis(redis.url);
  const emu = await new LoadedGitlab().start();
  const project = emu.addProject('api', emu.addGroup('platform'));
  const policy = join(dir, 'fleet.yaml');
  writeFileSync(
    policy,
    `emitters:\n  gl: { type: gitlab, url: "${emu.url}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, probeInterval: ${intervalS}s }\nplatforms:\n  lab: { type: local }\npools:\n${names.map((n) => `  ${n}: { emitter: gl, platform: lab, labels: [${n}], scaling: { predict: false, spare: 0, max: 4, scaleDownAfter: 30s, minLifetime: 0s, bootTimeout: 10m } }\n`).join('')}`,
  );
  const stateDir = join(dir, 'state');
  const env = { GL_TOKEN: emu.token, REDIS_URL: redis.url, PARMANU_STATE_DIR: stateDir };
  const bin = join(root, 'bin', 'parmanu.js');
  const procs: Proc[] = [];
  const scalers: Proc[] = [];
  let prober: Proc | undefined;
  if (mode === 'services') {
    prober = start('prober', dir, ['probe', '--policy', policy, '--watch', '--listen', '127.0.0.1:0', '--json'], env, bin);
    procs.push(prober);
    for (let i = 1; i <= 3; i++) scalers.push(start(`scaler-${i}`, dir, ['reconcile', '--policy', policy, '--watch', '--from-redis', '--concurrency', '2', '--listen', '127.0.0.1:0', '--json'], env, bin));
  } else {
    scalers.push(start('single', dir, ['reconcile', '--policy', policy, '--watch', '--listen', '127.0.0.1:0', '--json'], env, bin));
  }
  procs.push(...scalers);

  // The load: jobs arrive in each pool; the pool's machines boot (never_contacted → online) and
  // take its pending jobs when idle; a job ends after its run time.
  const queuedAt = new Map<number, number>();
  const endsAt = new Map<number, number>();
  const waits: Array<{ queued: number; waitMs: number }> = [];
  const nextArrival = new Map(names.map((n) => [n, Date.now() + Math.random() * ARRIVAL_MEAN_MS]));
  let loading = true;
  const machines = (async () => {
    while (loading) {
      const now = Date.now();
      for (const n of names) {
        if (now < (nextArrival.get(n) ?? 0)) continue;
        const j = emu.addJob(project, 'pending', [n], { created_at: new Date(now).toISOString() });
        queuedAt.set(j.id, now);
        nextArrival.set(n, now - ARRIVAL_MEAN_MS * Math.log(1 - Math.random()));
      }
      const runnersOf = new Map<string, Array<{ id: number; description: string }>>();
      const busy = new Set<string>();
      for (const j of emu.jobs) {
        if (j.status !== 'running' || !j.runner) continue;
        const end = endsAt.get(j.id);
        if (end !== undefined && now >= end) emu.finishJob(j.id);
        else busy.add(j.runner.description);
      }
      for (const r of emu.runners) {
        const pool = /parmanu-pool=(p\d\d)\b/.exec(r.maintenance_note ?? '')?.[1];
        // A machine boots once terraform made it: its runner checks in when the local platform's node (its credential file) exists.
        if (r.status === 'never_contacted' && pool && existsSync(localCredentialFile(stateDir, pool, r.description))) emu.connect(r.description);
        if (!pool || r.paused || r.status !== 'online' || busy.has(r.description)) continue;
        runnersOf.set(pool, [...(runnersOf.get(pool) ?? []), { id: r.id, description: r.description }]);
      }
      for (const j of emu.jobs) {
        if (j.status !== 'pending') continue;
        const r = runnersOf.get(j.tag_list[0] ?? '')?.shift();
        if (!r) continue;
        emu.begin(j, r);
        endsAt.set(j.id, now + RUN_MS[0] + Math.random() * (RUN_MS[1] - RUN_MS[0]));
        const q = queuedAt.get(j.id);
        if (q !== undefined) waits.push({ queued: q, waitMs: now - q });
      }
      await sleep(200);
    }
  })();

  const poolCycles = (p: Proc, from = 0, to = Infinity) =>
    p.lines.filter((l) => l.at >= from && l.at < to).flatMap((l) => {
      const c = CycleLine.safeParse(l.value);
      return c.success ? c.data.pools.map((x) => ({ ...x, trigger: c.data.trigger ?? 'interval', at: l.at })) : [];
    });
  try {
    const t0 = Date.now();
    // Warm-up: every pool has finished a cycle (terraform init of 60 working directories), or 2 minutes
    // have passed (a saturated queue need not reach every pool: the window counts the pools it starves), then 30 s.
    let seen = new Set<string>();
    for (;;) {
      seen = new Set(scalers.flatMap((s) => poolCycles(s).filter((c) => !c.skipped).map((c) => c.pool)));
      if (seen.size === POOLS || Date.now() - t0 > 120_000) break;
      for (const p of procs) if (p.child.exitCode !== null) throw new Error(`${p.name} exited ${p.child.exitCode}: ${p.err.slice(-1500)}`);
      await sleep(500);
    }
    if (seen.size === 0) throw new Error(`warm-up: no pool cycled in 2 minutes\n${procs.map((p) => `--- ${p.name}\n${p.err.slice(-1500)}`).join('\n')}`);
    const warmS = (Date.now() - t0) / 1000;
    log(`services-60-pools: ${mode}, probe every ${intervalS} s: ${seen.size === POOLS ? 'every pool' : `${seen.size} of ${POOLS} pools`} cycled after ${round(warmS, 1)} s; 30 s more, then ${windowMs / 1000} s measured…`);
    await sleep(30_000);

    const cpu0 = procs.map(cpuSeconds);
    const r0 = await redisCounts(raw);
    const log0 = emu.log.length;
    const from = Date.now();
    await sleep(windowMs);
    const to = Date.now();
    const log1 = emu.log.length;
    const r1 = await redisCounts(raw);
    const cpu1 = procs.map(cpuSeconds);
    const minutes = (to - from) / 60_000;

    const per = scalers.map((s) => poolCycles(s, from, to));
    const all = per.flat();
    const ran = all.filter((c) => !c.skipped);
    const triggers: Record<string, number> = {};
    for (const c of ran) triggers[c.trigger] = (triggers[c.trigger] ?? 0) + 1;
    // Probes: the prober's lines (services), or the single process's own probes (its API calls in the emulator's log).
    const probes = prober ? prober.lines.filter((l) => l.at >= from && l.at < to).flatMap((l) => (ProbeLine.safeParse(l.value).success ? [ProbeLine.parse(l.value)] : [])) : [];
    const probeCount = prober ? probes.length : (scalers[0]?.lines.filter((l) => l.at >= from && l.at < to && CycleLine.safeParse(l.value).success).length ?? 0);
    const apiCalls = log1 - log0;
    const inWindow = waits.filter((w) => w.queued >= from && w.queued < to);
    const started = new Set(inWindow.map((w) => w.queued));
    const queuedInWindow = [...queuedAt.values()].filter((q) => q >= from && q < to);
    const unstartedQs = queuedInWindow.filter((q) => !started.has(q));
    const calls = [...r1.calls].map(([k, v]) => [k, v - (r0.calls.get(k) ?? 0)] as [string, number]).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
    return {
      mode,
      windowMin: minutes,
      notCycled: names.filter((n) => !ran.some((c) => c.pool === n)),
      perReplica: per.map((cs) => cs.filter((c) => !c.skipped).length / minutes),
      cyclesPerMin: ran.length / minutes,
      applyCyclesPerMin: ran.filter((c) => c.terraform.ran).length / minutes,
      skippedPerMin: all.filter((c) => c.skipped).length / minutes,
      errorsInWindow: ran.filter((c) => c.error).length,
      triggers,
      cycleMs: ran.map((c) => c.durationMs),
      // A job queued in the window and not started by its end counts with the wait it had so far (a lower bound).
      waitsMs: [...inWindow.map((w) => w.waitMs), ...unstartedQs.map((q) => to - q)],
      unstarted: unstartedQs.length,
      jobsQueued: queuedInWindow.length,
      apiPerMin: apiCalls / minutes,
      probesPerMin: probeCount / minutes,
      apiPerProbe: probeCount ? (prober ? probes.reduce((s, p) => s + p.apiCalls, 0) / probeCount : apiCalls / probeCount) : NaN,
      // Less the two INFO commands of each reading.
      redisOpsPerS: (r1.total - r0.total - 2) / ((to - from) / 1000),
      redisTop: calls.slice(0, 8).map(([k, v]) => [k, round(v / minutes, 0)]),
      removedWhileBusy: emu.removedWhileBusy().length,
      warmS,
      busy: per.map((cs) => cs.reduce((t, c) => t + c.durationMs, 0) / ((to - from) * (mode === 'services' ? 2 : 4))),
      cpuS: procs.map((p, i) => ({ name: p.name, s: (cpu1[i] ?? NaN) - (cpu0[i] ?? NaN) })),
      apiByRoute: routes(emu.log.slice(log0, log1), minutes),
      diagnostics: {
        errors: ran.flatMap((c) => (c.error ? [`${c.pool}: ${c.error}`] : [])).slice(0, 10),
        removedWhileBusy: emu.removedWhileBusy().map((r) => ({ ...r, touched: emu.touches.filter((t) => t.runner === r.runner), jobs: emu.jobRecords.filter((j) => j.runner === r.runner) })),
      },
    };
  } finally {
    loading = false;
    await machines;
    await Promise.all(procs.map(stop));
    raw.disconnect();
    await emu.stop();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const s = (ms: number) => round(ms / 1000, 2);
const m = (x: number) => round(x, 1);

const cpuOfScalers = (x: Measured) => x.cpuS.filter((c) => c.name !== 'prober').reduce((t, c) => t + c.s, 0);

export function figuresOf(svc: Measured, one: Measured): Figure[] {
  const per = svc.perReplica;
  const note = (x: Measured) => `${x.triggers.interval ?? 0} interval, ${x.triggers.change ?? 0} change, ${x.triggers.takeover ?? 0} takeover cycles; ${x.errorsInWindow} failed; ${m(x.skippedPerMin)}/min skipped (lease held); ${POOLS - x.notCycled.length} of ${POOLS} pools cycled`;
  const fig = (name: string, a: number, b: number, unit: string, noteText: string, baselineName = 'one process, reconcile --watch'): Figure => ({ name, value: a, unit, baseline: { name: baselineName, value: b }, ratio: round(a / b), note: noteText });
  return [
    fig('services-60-pools-cycles-per-min-per-replica', m(per.reduce((x, y) => x + y, 0) / per.length), m(one.cyclesPerMin), '/min', `pool cycles per minute per scaler (3 scalers × concurrency 2; one prober; 60 local pools, probe every ${PROBE_INTERVAL_S} s: ${(POOLS * 60) / PROBE_INTERVAL_S}/min asked for); replicas ${per.map(m).join(', ')}; window ${m(svc.windowMin)} min`),
    fig('services-60-pools-cycles-per-min', m(svc.cyclesPerMin), m(one.cyclesPerMin), '/min', `all 3 scalers: ${note(svc)}. One process: ${note(one)} (whole cycles of 60 pools: ±60 pools in the window)`),
    fig('services-60-pools-apply-cycles-per-min', m(svc.applyCyclesPerMin), m(one.applyCyclesPerMin), '/min', 'pool cycles that ran terraform plan and apply (the others pulled the state and found nothing to change)'),
    fig('services-60-pools-cycle-p50', s(pct(svc.cycleMs, 50)), s(pct(one.cycleMs, 50)), 's', `one pool's cycle (its outcome's durationMs); the single process runs 4 pools at a time`, 'one process, a pool in its cycle'),
    fig('services-60-pools-cycle-p95', s(pct(svc.cycleMs, 95)), s(pct(one.cycleMs, 95)), 's', 'the same, 95th percentile', 'one process, a pool in its cycle'),
    fig('services-60-pools-job-wait-p50', s(pct(svc.waitsMs, 50)), s(pct(one.waitsMs, 50)), 's', `queued → started on an idle online runner of its pool (a runner comes online as soon as terraform made its node; one job per runner); ${svc.jobsQueued} jobs queued in the window (${svc.unstarted} not started by its end, counted with their wait so far) vs ${one.jobsQueued} (${one.unstarted}); busy runners removed: ${svc.removedWhileBusy} vs ${one.removedWhileBusy}`),
    fig('services-60-pools-job-wait-p95', s(pct(svc.waitsMs, 95)), s(pct(one.waitsMs, 95)), 's', 'the same, 95th percentile'),
    fig('services-60-pools-api-calls-per-min', m(svc.apiPerMin), m(one.apiPerMin), '/min', `requests in the GitLab emulator's log: the prober's probes ${m(svc.probesPerMin)}/min at ${m(svc.apiPerProbe)} calls each (one process: a probe per cycle, ${m(one.probesPerMin)}/min); the rest are runner registrations, details, pauses, idle checks and deletions. By route per minute: ${svc.apiByRoute.map(([k, v]) => `${k} ${v}`).join(', ')} vs ${one.apiByRoute.map(([k, v]) => `${k} ${v}`).join(', ')}`),
    fig('services-60-pools-cpu-per-pool-cycle', round(cpuOfScalers(svc) / (svc.cyclesPerMin * svc.windowMin), 3), round(cpuOfScalers(one) / (one.cyclesPerMin * one.windowMin), 3), 'CPU s', `CPU time of the scaler processes and the terraform processes they ran, per pool cycle; the prober used ${round(svc.cpuS.find((c) => c.name === 'prober')?.s ?? NaN, 1)} CPU s in ${m(svc.windowMin)} min; replicas busy ${svc.busy.map((b) => `${Math.round(b * 100)}%`).join(', ')} of their concurrency (one process: ${one.busy.map((b) => `${Math.round(b * 100)}%`).join(', ')} of 4)`, 'one process'),
    fig('services-60-pools-redis-ops-per-s', m(svc.redisOpsPerS), m(one.redisOpsPerS), '/s', `INFO total_commands_processed over the window; per pool cycle ${m((svc.redisOpsPerS * 60) / svc.cyclesPerMin)} vs ${m((one.redisOpsPerS * 60) / one.cyclesPerMin)}; top commands per minute ${svc.redisTop.map(([k, v]) => `${k} ${v}`).join(', ')} vs ${one.redisTop.map(([k, v]) => `${k} ${v}`).join(', ')}`),
  ];
}

export function saturatedFigures(svc: Measured, one: Measured): Figure[] {
  const cpu = (x: Measured) => round(cpuOfScalers(x) / (x.cyclesPerMin * x.windowMin), 3);
  const mean = (xs: number[]) => xs.reduce((t, c) => t + c, 0) / xs.length;
  return [
    {
      name: 'services-60-pools-saturated-cycles-per-min',
      value: m(svc.cyclesPerMin),
      unit: '/min',
      baseline: { name: 'one process, probe every 1 s', value: m(one.cyclesPerMin) },
      ratio: round(svc.cyclesPerMin / one.cyclesPerMin),
      note: `every pool due every second (cycles back to back): 3 scalers × 2 at once, replicas ${svc.perReplica.map(m).join(', ')}/min, busy ${svc.busy.map((b) => `${Math.round(b * 100)}%`).join(', ')}; one process 4 pools at a time, busy ${one.busy.map((b) => `${Math.round(b * 100)}%`).join(', ')}. Mean pool cycle ${s(mean(svc.cycleMs))} s vs ${s(mean(one.cycleMs))} s; ${cpu(svc)} vs ${cpu(one)} CPU s per pool cycle; apply cycles ${m(svc.applyCyclesPerMin)} vs ${m(one.applyCyclesPerMin)}/min; Redis ${m(svc.redisOpsPerS)} vs ${m(one.redisOpsPerS)} commands/s; window ${m(svc.windowMin)} min. Pools with no cycle in the window: ${svc.notCycled.length ? `${svc.notCycled.length} (${svc.notCycled.join(' ')})` : 'none'} vs ${one.notCycled.length ? `${one.notCycled.length} (${one.notCycled.join(' ')})` : 'none'}. Both share the 2 cores with the prober, Redis, the emulator and the load`,
    },
  ];
}

export const services60: BenchCase = {
  name: 'services-60-pools',
  optIn: true,
  async run({ root, log }) {
    const windowS = Number(process.env.PARMANU_BENCH_SERVICES_WINDOW_S ?? 150);
    if (!Number.isFinite(windowS) || windowS < 10) throw new Error(`PARMANU_BENCH_SERVICES_WINDOW_S must be a number of seconds ≥ 10, not "${process.env.PARMANU_BENCH_SERVICES_WINDOW_S ?? ''}"`);
    log(`services-60-pools: 1 prober + 3 scalers (concurrency 2) over Redis, 60 local pools, a job every ${ARRIVAL_MEAN_MS / 1000} s per pool on average…`);
    const raw: Record<string, unknown> = {};
    const keep = (name: string, x: Measured) => {
      raw[name] = { ...x, cycleMs: undefined, waitsMs: undefined, cycleMeanMs: x.cycleMs.reduce((t, c) => t + c, 0) / x.cycleMs.length };
      if (process.env.PARMANU_BENCH_SERVICES_RAW) writeFileSync(process.env.PARMANU_BENCH_SERVICES_RAW, JSON.stringify(raw, null, 1));
      return x;
    };
    const svc = keep('services', await measure('services', root, windowS * 1000, log));
    log('services-60-pools: the baseline: one reconcile --watch process, same pools, same load…');
    const one = keep('single', await measure('single', root, windowS * 1000, log));
    if (process.env.PARMANU_BENCH_SERVICES_RAW) writeFileSync(`${process.env.PARMANU_BENCH_SERVICES_RAW}.figures.json`, JSON.stringify(figuresOf(svc, one), null, 1));
    // Saturated: every pool due every second, so that cycles run back to back: what the replicas can do, not what 10 s asks of them.
    const satS = Math.min(windowS, 60);
    log('services-60-pools: saturated (probe interval 1 s): 1 prober + 3 scalers, then one process…');
    const svcSat = keep('servicesSaturated', await measure('services', root, satS * 1000, log, 1));
    const oneSat = keep('singleSaturated', await measure('single', root, satS * 1000, log, 1));
    return [...figuresOf(svc, one), ...saturatedFigures(svcSat, oneSat)];
  },
};
