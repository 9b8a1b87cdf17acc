/**
 * Replay: a trace CSV (`queued_at,duration_s,labels`) as a live CI platform, for demos and tests.
 *
 * Time. The replay keeps an anchor — a wall-clock instant and the trace time it maps to, and the
 * speed (trace seconds per wall second) — so that trace time = anchor.trace + (wall − anchor.wall)
 * × speed. The anchor is `start` when the policy gives one, else the first use (the trace's first
 * job then), and it is kept in the state directory: one process per cycle (a schedule) and
 * `--watch` both move on through the trace instead of starting it over. Times the replay reports
 * (probe `at`, `queuedAt`, `startedAt`) are in its caller's clock: the wall clock by default, or
 * the virtual clock `reconcile` runs on when every emitter is a replay (`replayClock`).
 *
 * Runners. A small registry, kept in the same state file: `register()` adds a runner for the node
 * (labels, slots = the pool's `jobsPerNode`, a random token as its credential). A runner is online
 * once its machine exists: on the local platform the node's terraform provisioner writes the
 * credential to `<stateDir>/pools/<pool>/credentials/<node>` (and removes it when the node is
 * destroyed), so the runner is online while that file holds its token; on other platforms (no
 * file to see) from its registration. Queued jobs go, oldest first, to online, unpaused runners
 * whose labels cover theirs and that have a free slot; a job started at S (trace time) ends at
 * S + its duration. Jobs of a runner whose machine is gone are lost (as on a real platform).
 *
 * The state file is read and written whole (atomic rename) on every call; one reconciler at a
 * time uses it (reconcile's pool leases do not cover it). A file that does not parse is set aside
 * (`.corrupt-<time>`) and reported once by the probe; the replay then starts over.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { Job } from '../decide/types.js';
import type { EmitterConfig, RunnerCredential } from '../policy/types.js';
import { parseTrace, type TraceJob } from '../policy/trace.js';
import { EmitterError, RunnerBusyError, type Emitter, type ProbeResult, type RegisterRequest, type RunnerInfo } from './types.js';

type ReplayConfig = Extract<EmitterConfig, { type: 'replay' }>;

const AnchorSchema = z.object({ wall: z.number().finite(), trace: z.number().finite(), speed: z.number().positive() });
export type ReplayAnchor = z.infer<typeof AnchorSchema>;

const RunnerSchema = z.object({
  name: z.string().min(1),
  pool: z.string().min(1),
  labels: z.array(z.string()),
  slots: z.number().int().positive(),
  token: z.string(),
  /** Trace time of the registration. */
  registeredAt: z.number(),
  /** Trace time from which the runner was seen online (its machine up). */
  onlineAt: z.number().optional(),
  paused: z.boolean(),
  /** Whether a machine file shows it online (local platform), else online from registration. */
  machineFile: z.boolean(),
});
type ReplayRunner = z.infer<typeof RunnerSchema>;

const StateSchema = z.object({
  version: z.literal(1),
  /** sha256 of the trace text: a different trace starts the jobs over (the runners stay). */
  trace: z.string(),
  anchor: AnchorSchema,
  /** Trace time the jobs were last advanced to. */
  at: z.number(),
  /** Trace jobs (by index in queue order) running now. */
  running: z.array(z.object({ job: z.number().int().nonnegative(), runner: z.string(), startedAt: z.number() })),
  /** Every job with a lower index is finished. */
  doneBelow: z.number().int().nonnegative(),
  /** Finished jobs at or above doneBelow. */
  done: z.array(z.number().int().nonnegative()),
  runners: z.array(RunnerSchema),
});
type ReplayState = z.infer<typeof StateSchema>;

export interface ReplayOptions {
  /** The wall clock (or `--now`'s instant, mapped back): drives the replay. */
  wall?: () => number;
  /** Wall time → the caller's clock, for the times the replay reports (identity: the wall clock). */
  domain?: (wall: number) => number;
  /** Where the anchor and the runner registry are kept; none: in memory, for this instance only. */
  stateDir?: string;
  /** Pools on the local platform: their runners are online while the node's credential file holds their token. */
  localPools?: ReadonlySet<string>;
  read?: (path: string) => string;
}

/**
 * Where the local platform's provisioner writes a node's credential (stacks/types.ts
 * `localCredentialFile`; emitters/ may not import stacks/, a test holds the two equal).
 */
export const nodeCredentialFile = (stateDir: string, pool: string, node: string) => `${stateDir.replace(/\/+$/, '')}/pools/${pool}/credentials/${node}`;

export const replayStateFile = (stateDir: string, emitter: string) => join(stateDir, 'replay', `${emitter.replace(/[^A-Za-z0-9_.-]/g, '_')}.json`);

/** Trace time at wall time `wall`. */
export const traceAt = (a: ReplayAnchor, wall: number) => a.trace + (wall - a.wall) * a.speed;
/** Wall time at which the trace reaches `trace`. */
export const wallAt = (a: ReplayAnchor, trace: number) => a.wall + (trace - a.trace) / a.speed;

interface LoadedTrace {
  jobs: TraceJob[];
  digest: string;
}

function loadTrace(cfg: ReplayConfig, read: (path: string) => string): LoadedTrace {
  let text: string;
  try {
    text = read(cfg.trace);
  } catch (err) {
    throw new EmitterError(`${cfg.trace}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`);
  }
  const parsed = parseTrace(text);
  if (parsed.problems.length) throw new EmitterError(`${cfg.trace}:${parsed.problems[0]?.line}: ${parsed.problems[0]?.message}`);
  // Queue order: by time, ties in file order.
  const jobs = parsed.jobs.map((j, i) => ({ j, i })).sort((a, b) => a.j.queuedAt - b.j.queuedAt || a.i - b.i).map(({ j }) => j);
  return { jobs, digest: createHash('sha256').update(text).digest('hex').slice(0, 16) };
}

/**
 * The anchor a replay emitter runs on at wall time `wall`: the kept one (moved on at the new
 * speed when `speed` changed, so the replay continues where it was), `start` when the policy
 * gives one, else a new one at the trace's first job. Kept in the state file. `problem` says
 * that a state file could not be read and was set aside.
 */
export function replayAnchor(cfg: ReplayConfig, stateDir: string | undefined, wall: number, read: (path: string) => string = (p) => readFileSync(p, 'utf8')): { anchor: ReplayAnchor; problem?: string } {
  const trace = loadTrace(cfg, read);
  const file = stateDir ? replayStateFile(stateDir, cfg.name) : undefined;
  const loaded = file ? readState(file) : { state: undefined };
  const state = settle(cfg, trace, loaded.state, wall);
  if (file) writeState(file, state);
  return { anchor: state.anchor, ...(loaded.problem ? { problem: loaded.problem } : {}) };
}

function readState(file: string): { state?: ReplayState; problem?: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw Object.assign(new EmitterError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`), { code: (err as NodeJS.ErrnoException).code });
  }
  let why: string;
  try {
    const r = StateSchema.safeParse(JSON.parse(text));
    if (r.success) return { state: r.data };
    const issue = r.error.issues[0];
    why = `${issue?.path.join('.') || 'the file'}: ${issue?.message ?? 'invalid'}`;
  } catch {
    why = 'not JSON';
  }
  const aside = `${file}.corrupt-${Date.now()}`;
  renameSync(file, aside);
  return { problem: `replay state ${file} is corrupt (${why}): set aside as ${aside}, the replay starts over` };
}

function writeState(file: string, state: ReplayState): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  renameSync(tmp, file);
}

/** The state to run on: the kept one brought in line with the policy, or a new one. */
function settle(cfg: ReplayConfig, trace: LoadedTrace, kept: ReplayState | undefined, wall: number): ReplayState {
  const first = trace.jobs[0]?.queuedAt ?? wall;
  const fromStart = cfg.start !== undefined ? { wall: Date.parse(cfg.start), trace: first, speed: cfg.speed } : undefined;
  const fresh = (anchor: ReplayAnchor, runners: ReplayRunner[] = []): ReplayState => ({ version: 1, trace: trace.digest, anchor, at: anchor.trace, running: [], doneBelow: 0, done: [], runners });
  if (!kept) return fresh(fromStart ?? { wall, trace: first, speed: cfg.speed });
  // Another trace: its jobs start over; the runners (nodes that exist) stay.
  if (kept.trace !== trace.digest) return fresh(fromStart ?? { wall, trace: first, speed: cfg.speed }, kept.runners);
  if (fromStart && (fromStart.wall !== kept.anchor.wall || fromStart.trace !== kept.anchor.trace || fromStart.speed !== kept.anchor.speed)) return { ...fresh(fromStart, kept.runners), ...(traceAt(fromStart, wall) >= kept.at ? { at: kept.at, running: kept.running, doneBelow: kept.doneBelow, done: kept.done } : {}) };
  if (!fromStart && kept.anchor.speed !== cfg.speed) return { ...kept, anchor: { wall, trace: traceAt(kept.anchor, wall), speed: cfg.speed } };
  return kept;
}

/** Does the runner's labels cover the job's (case-insensitive, as replay pools match)? */
const fits = (runner: ReplayRunner, job: TraceJob) => {
  const have = new Set(runner.labels.map((l) => l.toLowerCase()));
  return job.labels.every((l) => have.has(l.toLowerCase()));
};

export class ReplayEmitter implements Emitter {
  readonly kind = 'replay' as const;
  readonly name: string;
  private trace: LoadedTrace | undefined;
  /** In-memory state when there is no state directory. */
  private memory: ReplayState | undefined;
  private readonly wall: () => number;
  private readonly domain: (wall: number) => number;
  private readonly read: (path: string) => string;
  private readonly file: string | undefined;
  private readonly stateDir: string | undefined;
  private readonly localPools: ReadonlySet<string>;

  constructor(
    private readonly cfg: ReplayConfig,
    opts: ReplayOptions | (() => number) = {},
    read?: (path: string) => string,
  ) {
    const o: ReplayOptions = typeof opts === 'function' ? { wall: opts } : opts;
    this.name = cfg.name;
    this.wall = o.wall ?? Date.now;
    this.domain = o.domain ?? ((w) => w);
    this.read = read ?? o.read ?? ((p) => readFileSync(p, 'utf8'));
    this.file = o.stateDir ? replayStateFile(o.stateDir, cfg.name) : undefined;
    this.stateDir = o.stateDir;
    this.localPools = o.localPools ?? new Set();
  }

  private load(): LoadedTrace {
    this.trace ??= loadTrace(this.cfg, this.read);
    return this.trace;
  }

  preflight(): string[] {
    try {
      this.load();
      return [];
    } catch (err) {
      return [(err as Error).message];
    }
  }

  /** The trace time that the wall-clock time `wall` maps to (anchoring the replay on first use). */
  traceTime(wall: number = this.wall()): number {
    const { state, now } = this.open(wall);
    this.save(state);
    return now;
  }

  /** The kept state, brought in line with the policy and advanced to wall time `wall`. */
  private open(wall: number): { state: ReplayState; now: number; problem?: string } {
    const trace = this.load();
    const loaded = this.file ? readState(this.file) : { state: this.memory };
    const state = settle(this.cfg, trace, loaded.state, wall);
    const now = traceAt(state.anchor, wall);
    this.advance(state, now);
    return { state, now, ...(loaded.problem ? { problem: loaded.problem } : {}) };
  }

  private save(state: ReplayState): void {
    if (this.file) writeState(this.file, state);
    else this.memory = state;
  }

  /**
   * Whether the runner's machine is up: the wall time its credential file was written (local
   * platform), true when there is no file to see, false while the file is absent or not its own.
   */
  private machineUp(r: ReplayRunner): number | boolean {
    if (!r.machineFile || !this.stateDir) return true;
    const file = nodeCredentialFile(this.stateDir, r.pool, r.name);
    try {
      return readFileSync(file, 'utf8') === r.token ? statSync(file).mtimeMs : false;
    } catch {
      return false;
    }
  }

  /**
   * Moves the jobs on to trace time `t`: running jobs that ended by `t` finish (freeing their
   * slot at their end), jobs of runners whose machine is gone are lost, and queued jobs start,
   * oldest first, on the earliest free slot of an online, unpaused runner that fits them.
   */
  private advance(s: ReplayState, t: number): void {
    const jobs = this.load().jobs;
    if (t < s.at) t = s.at; // a clock set back (--now) does not undo what happened
    const done = new Set(s.done);
    const finish = (i: number) => done.add(i);
    const byName = new Map(s.runners.map((r) => [r.name, r]));
    // Online runners: seen up now (from registration on, or from when first seen up).
    const up = new Set<string>();
    for (const r of s.runners) {
      const since = this.machineUp(r);
      if (since === false) {
        delete r.onlineAt;
        continue;
      }
      // Online from when its machine wrote the file, as far as this advance can still place it.
      r.onlineAt ??= since === true ? r.registeredAt : Math.min(t, Math.max(r.registeredAt, s.at, traceAt(s.anchor, since)));
      up.add(r.name);
    }
    // Slots: each runner's slots, free from the end of its jobs (or from when it came online).
    const slots: Array<{ runner: ReplayRunner; freeAt: number }> = [];
    const running: ReplayState['running'] = [];
    const busyCount = new Map<string, number>();
    for (const j of s.running) {
      const job = jobs[j.job];
      if (!job || !up.has(j.runner) || !byName.has(j.runner)) {
        finish(j.job); // lost with its machine
        continue;
      }
      const end = j.startedAt + job.durationMs;
      if (end <= t) {
        finish(j.job);
        slots.push({ runner: byName.get(j.runner) as ReplayRunner, freeAt: end });
      } else {
        running.push(j);
        busyCount.set(j.runner, (busyCount.get(j.runner) ?? 0) + 1);
      }
    }
    for (const r of s.runners) {
      if (!up.has(r.name)) continue;
      const free = r.slots - (busyCount.get(r.name) ?? 0) - slots.filter((x) => x.runner === r).length;
      for (let k = 0; k < free; k++) slots.push({ runner: r, freeAt: r.onlineAt ?? t });
    }
    const started = new Set(running.map((j) => j.job));
    for (let i = s.doneBelow; i < jobs.length; i++) {
      const job = jobs[i] as TraceJob;
      if (job.queuedAt > t) break;
      if (done.has(i) || started.has(i)) continue;
      let best: { runner: ReplayRunner; freeAt: number } | undefined;
      for (const slot of slots) if (!slot.runner.paused && fits(slot.runner, job) && (!best || slot.freeAt < best.freeAt)) best = slot;
      if (!best) continue;
      const at = Math.max(job.queuedAt, best.freeAt, s.at);
      if (at > t) continue;
      const end = at + job.durationMs;
      if (end <= t) {
        finish(i);
        best.freeAt = end;
      } else {
        running.push({ job: i, runner: best.runner.name, startedAt: at });
        started.add(i);
        slots.splice(slots.indexOf(best), 1);
      }
    }
    let below = s.doneBelow;
    while (done.has(below)) done.delete(below++);
    s.doneBelow = below;
    s.done = [...done].sort((a, b) => a - b);
    s.running = running;
    s.at = t;
  }

  async probe(): Promise<ProbeResult> {
    const wall = this.wall();
    const at = this.domain(wall);
    const meta = { durationMs: 0, apiCalls: 0, notModified: 0 };
    try {
      const { state: s, now, problem } = this.open(wall);
      this.save(s);
      if (problem) return { emitter: this.name, at, ok: false, partial: false, reason: problem, jobs: [], runners: [], meta };
      const out = (trace: number) => this.domain(wallAt(s.anchor, trace));
      const jobs: Job[] = [];
      const all = this.load().jobs;
      const busy = new Set<string>();
      for (const r of s.running) {
        const j = all[r.job] as TraceJob;
        busy.add(r.runner);
        jobs.push({ id: `replay-${r.job}`, labels: j.labels, status: 'running', queuedAt: out(j.queuedAt), startedAt: out(r.startedAt), runner: r.runner });
      }
      const done = new Set(s.done);
      const running = new Set(s.running.map((r) => r.job));
      for (let i = s.doneBelow; i < all.length; i++) {
        const j = all[i] as TraceJob;
        // Jobs up to now (a clock set back with --now sees no job queued after it).
        if (j.queuedAt > Math.min(now, s.at)) break;
        if (!done.has(i) && !running.has(i)) jobs.push({ id: `replay-${i}`, labels: j.labels, status: 'queued', queuedAt: out(j.queuedAt) });
      }
      const runners: RunnerInfo[] = s.runners.map((r) => ({ id: r.name, name: r.name, labels: r.labels, pool: r.pool, online: r.onlineAt !== undefined, busy: busy.has(r.name), paused: r.paused, contacted: r.onlineAt !== undefined }));
      return { emitter: this.name, at, ok: true, partial: false, jobs, runners, meta };
    } catch (err) {
      return { emitter: this.name, at, ok: false, partial: false, reason: (err as Error).message, jobs: [], runners: [], meta };
    }
  }

  /** Runs `f` on the state advanced to now, and keeps the result. */
  private change<T>(f: (s: ReplayState) => T): T {
    const { state } = this.open(this.wall());
    const r = f(state);
    this.save(state);
    return r;
  }

  /** The credential carries a token only when the node is to write it (a local pool's credential file). */
  async register(req: RegisterRequest): Promise<RunnerCredential> {
    const token = randomBytes(16).toString('hex');
    const machineFile = this.localPools.has(req.pool) && this.stateDir !== undefined;
    this.change((s) => {
      s.runners = s.runners.filter((r) => r.name !== req.node);
      s.runners.push({ name: req.node, pool: req.pool, labels: [...req.labels], slots: Math.max(1, req.jobsPerNode), token, registeredAt: s.at, paused: false, machineFile });
    });
    return machineFile ? { kind: 'none', token } : { kind: 'none' };
  }

  async pause(node: string): Promise<void> {
    this.change((s) => {
      const r = s.runners.find((x) => x.name === node);
      if (r) r.paused = true;
    });
  }

  async resume(node: string): Promise<void> {
    this.change((s) => {
      const r = s.runners.find((x) => x.name === node);
      if (r) r.paused = false;
    });
  }

  async deregister(node: string): Promise<void> {
    this.change((s) => {
      if (s.running.some((j) => j.runner === node)) throw new RunnerBusyError(`replay runner ${node} is running a job`);
      s.runners = s.runners.filter((r) => r.name !== node);
    });
  }

  async isIdle(node: string): Promise<boolean> {
    return this.change((s) => !s.running.some((j) => j.runner === node));
  }
}
