/**
 * Replay: a trace CSV (`queued_at,duration_s,labels`) as a live queue, for demos and tests. The
 * clock is `--now` or the wall clock, mapped onto the trace: `start` (or the first probe) is the
 * trace's first job, advancing `speed` trace seconds per second. Jobs active at that time (queued
 * and not yet finished) are reported as queued. There is no runner registry: nodes count as
 * registered and idle.
 */
import { readFileSync } from 'node:fs';
import type { Job } from '../decide/types.js';
import type { EmitterConfig, RunnerCredential } from '../policy/types.js';
import { parseTrace, type TraceJob } from '../policy/trace.js';
import { EmitterError, type Emitter, type ProbeResult } from './types.js';

type ReplayConfig = Extract<EmitterConfig, { type: 'replay' }>;

export class ReplayEmitter implements Emitter {
  readonly kind = 'replay' as const;
  readonly name: string;
  private jobs: TraceJob[] | undefined;
  private loadError: string | undefined;
  private start: number | undefined;

  constructor(
    private readonly cfg: ReplayConfig,
    private readonly clock: () => number = Date.now,
    private readonly read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
  ) {
    this.name = cfg.name;
    if (cfg.start) this.start = Date.parse(cfg.start);
  }

  private load(): TraceJob[] {
    if (this.jobs) return this.jobs;
    let text: string;
    try {
      text = this.read(this.cfg.trace);
    } catch (err) {
      this.loadError = `${this.cfg.trace}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : 'cannot be read'}`;
      throw new EmitterError(this.loadError);
    }
    const parsed = parseTrace(text);
    if (parsed.problems.length) throw new EmitterError(`${this.cfg.trace}:${parsed.problems[0]?.line}: ${parsed.problems[0]?.message}`);
    this.jobs = parsed.jobs;
    return this.jobs;
  }

  preflight(): string[] {
    try {
      this.load();
      return [];
    } catch (err) {
      return [(err as Error).message];
    }
  }

  /** The trace time that the wall-clock time `now` maps to. */
  traceTime(now: number): number {
    const jobs = this.load();
    const first = jobs[0]?.queuedAt ?? now;
    this.start ??= now;
    return first + (now - this.start) * this.cfg.speed;
  }

  async probe(): Promise<ProbeResult> {
    const at = this.clock();
    const meta = { durationMs: 0, apiCalls: 0, notModified: 0 };
    try {
      const t = this.traceTime(at);
      const jobs: Job[] = [];
      for (const [i, j] of (this.jobs ?? []).entries()) {
        if (j.queuedAt > t) break;
        if (j.queuedAt + j.durationMs > t) jobs.push({ id: `replay-${i}`, labels: j.labels, status: 'queued', queuedAt: at - (t - j.queuedAt) / this.cfg.speed });
      }
      return { emitter: this.name, at, ok: true, partial: false, jobs, runners: [], meta };
    } catch (err) {
      return { emitter: this.name, at, ok: false, partial: false, reason: (err as Error).message, jobs: [], runners: [], meta };
    }
  }

  async register(): Promise<RunnerCredential> {
    return { kind: 'none' };
  }
  async pause(): Promise<void> {}
  async resume(): Promise<void> {}
  async deregister(): Promise<void> {}
  async isIdle(): Promise<boolean> {
    return true;
  }
}
