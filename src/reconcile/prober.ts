/**
 * The prober of services mode (`parmanu probe --watch`): probes each emitter at its interval and
 * writes the observation to the history store (Redis) with its time and a version; the version
 * grows only when what was seen changed, and then the pools whose part of it changed (their jobs and
 * runners) are enqueued at once (services.ts). Several probers may run: each emitter is probed by the holder of its lease
 * (`@probe-<emitter>`, a name no pool can have), kept like a pool's lease (lease.ts: renewed every
 * third of the TTL, let go once a renewal fails or none succeeded for most of the TTL); the others
 * look again just after the holder's lease would lapse, so a dead prober's emitters are taken over
 * within the TTL.
 *
 * Webhook events (the prober serves them in this mode) fold in at once: the events' emitters are
 * probed now, by whichever prober received them, and a changed observation enqueues the events'
 * pools as grow-only cycles.
 */
import { createHash } from 'node:crypto';
import { assignJobs } from '../decide/match.js';
import { scheduledDemand } from '../decide/prewarm.js';
import type { EmitterKind, Job, ScheduledDemand, ScheduledRun } from '../decide/types.js';
import type { Emitter, ProbeResult, RunnerInfo } from '../emitters/types.js';
import type { HistoryStore } from '../history/types.js';
import type { Policy, PoolConfig } from '../policy/types.js';
import type { CycleEvent } from './cycle.js';
import { recordJobLabels } from './cycle.js';
import { LeaseKeeper } from './lease.js';
import type { ReconcileMetrics } from './metrics.js';
import type { CycleQueue } from './services.js';
import type { WakeQueue } from './webhooks.js';

/** The lease an emitter's prober holds. */
export const probeLease = (emitter: string) => `@probe-${emitter}`;

/** A job and a runner as far as a change goes (sorted by id: the order of a listing is no change). */
const jobKey = (j: Job) => [j.id, j.status, [...j.labels].sort(), j.labelExpression ?? null, j.runner ?? null, j.queuedAt, j.startedAt ?? null];
const runnerKey = (r: RunnerInfo) => [r.id, r.name, r.pool, [...r.labels].sort(), r.online, r.busy, r.paused, r.contacted ?? null];
const byId = <T extends { id: string }>(xs: readonly T[]) => [...xs].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
/** A scheduled run (or a pool's share of one) as far as a change goes: when, and how many jobs of which labels. */
const runKey = (r: ScheduledRun) => [r.id, r.project, r.description, r.nextRunAt, r.runs, r.jobs.map((j) => [[...j.labels].sort(), j.count]).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1))];
const demandKey = (d: ScheduledDemand) => [d.at, d.jobs, d.schedule, d.project, d.runs];
const digestOf = (p: ProbeResult, jobs: readonly Job[], runners: readonly RunnerInfo[], scheduled: unknown[] = []) =>
  createHash('sha256').update(JSON.stringify([p.ok, p.partial, p.reason ?? null, byId(jobs).map(jobKey), byId(runners).map(runnerKey), ...(scheduled.length ? [scheduled] : [])])).digest('hex');

/** What an observation says, without its time and cost: equal digests, nothing changed. */
export function observationDigest(p: ProbeResult): string {
  return digestOf(p, p.jobs, p.runners, byId(p.scheduled ?? []).map(runKey));
}

/**
 * Each pool's part of an observation: the jobs the probe's own matching assigns it (`pools`: the
 * emitter's pools of the policy), the runners its marker names, and whether the probe worked. A
 * pool of `names` not in `pools` (removed from the policy) has only its runners.
 */
export function poolDigests(p: ProbeResult, kind: EmitterKind, pools: readonly PoolConfig[], names: readonly string[]): Map<string, string> {
  const owner = new Map(p.runners.map((r) => [r.name, r.pool]));
  const { byPool } = assignJobs(kind, p.jobs, pools, (runner) => owner.get(runner));
  const scheduled = scheduledDemand(kind, p.scheduled, pools);
  return new Map(names.map((name) => [name, digestOf(p, byPool.get(name) ?? [], p.runners.filter((r) => r.pool === name), (scheduled.get(name) ?? []).map(demandKey).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)))]));
}

export interface ProberOptions {
  policy: Policy;
  /** The emitters to probe, by name (those of the selected pools). */
  emitters: ReadonlyMap<string, Emitter>;
  history: HistoryStore;
  queue: Pick<CycleQueue, 'change' | 'raise' | 'versionsOf'>;
  owner: string;
  leaseTtlMs: number;
  /** Each emitter's probe interval on the wall clock. */
  intervalMs: (emitter: string) => number;
  /** The pools of an emitter that a change enqueues (the policy's and those removed from it that still have nodes). */
  poolsOf: (emitter: string) => string[];
  stopping: () => boolean;
  wakes?: WakeQueue;
  metrics?: ReconcileMetrics;
  log?: (e: CycleEvent) => void;
  /** After each observation written (or not: `written` false when a newer one was stored). */
  onProbe?: (p: ProbeResult, r: { version: number; changed: boolean; written: boolean; webhook: boolean }) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Prober {
  /** The emitters whose lease this prober holds, each kept (renewed) in the background. */
  private readonly keepers = new Map<string, LeaseKeeper>();
  private readonly nextProbe = new Map<string, number>();
  /** Each pool's part of the last observation written (poolDigests), and the version of the last change job added for it. */
  private readonly parts = new Map<string, string>();
  private readonly enqueued = new Map<string, number>();

  constructor(private readonly o: ProberOptions) {}

  /** Probes until `stopping()`; then releases the leases it holds. */
  async run(): Promise<void> {
    const names = [...this.o.emitters.keys()];
    const loops = names.map((name) => this.loop(name));
    const hooks = this.o.wakes ? [this.webhookLoop()] : [];
    try {
      await Promise.all([...loops, ...hooks]);
    } finally {
      await Promise.all([...this.keepers.values()].map((k) => k.release()));
      for (const name of this.keepers.keys()) this.o.metrics?.emitterHeld(name, false);
      this.keepers.clear();
    }
  }

  /** Holds (or waits for) the emitter's lease and probes at its interval while holding it. */
  private async loop(name: string): Promise<void> {
    const every = Math.max(50, Math.floor(this.o.leaseTtlMs / 3));
    while (!this.o.stopping()) {
      await this.keepLease(name);
      const now = Date.now();
      if (this.keepers.has(name) && now >= (this.nextProbe.get(name) ?? 0)) {
        this.nextProbe.set(name, now + this.o.intervalMs(name));
        await this.probe(name, false).catch((err: Error) => this.o.log?.({ level: 'error', msg: `probe of ${name}: ${err.message}`, emitter: name }));
        continue;
      }
      // Standing by: look again just after the holder's lease would lapse unrenewed (at most a third of the TTL from now).
      const holder = this.keepers.has(name) ? undefined : await this.o.history.leaseHolder(probeLease(name)).catch(() => undefined);
      const until = this.keepers.has(name) ? Math.min(this.nextProbe.get(name) ?? now, now + every) : now + Math.min(every, (holder?.expiresInMs ?? every) + 50);
      await this.sleepUnless(until - now);
    }
  }

  private async sleepUnless(ms: number): Promise<void> {
    const end = Date.now() + Math.max(1, ms);
    while (!this.o.stopping() && Date.now() < end) await sleep(Math.min(25, end - Date.now()));
  }

  /** Takes the emitter's lease when free; a lease held (renewed in the background) that was lost is let go. */
  private async keepLease(name: string): Promise<void> {
    const held = this.keepers.get(name);
    if (held) {
      try {
        held.check();
      } catch (err) {
        this.keepers.delete(name);
        await held.release();
        this.o.metrics?.emitterHeld(name, false);
        this.o.log?.({ level: 'warn', msg: `${(err as Error).message}: standing by`, emitter: name });
      }
      return;
    }
    try {
      const lease = await this.o.history.acquireLease(probeLease(name), this.o.owner, this.o.leaseTtlMs);
      if (!lease) return;
      this.keepers.set(name, new LeaseKeeper(this.o.history, lease, this.o.leaseTtlMs, undefined, `emitter ${name}'s probe`));
      this.nextProbe.set(name, Date.now());
      this.o.metrics?.emitterHeld(name, true);
      if (lease.takenOverFrom !== undefined) this.o.metrics?.takeover(probeLease(name));
      this.o.log?.({ level: 'info', msg: `probing emitter ${name}${lease.takenOverFrom !== undefined ? ` (taken over from ${lease.takenOverFrom})` : ''}`, emitter: name });
    } catch (err) {
      this.o.log?.({ level: 'warn', msg: `probe lease of ${name}: ${(err as Error).message}`, emitter: name });
    }
  }


  /** One probe of `name`: written with its version; a change enqueues the emitter's pools (or the webhook's). */
  async probe(name: string, webhook: boolean, pools?: readonly string[], at?: number): Promise<void> {
    const e = this.o.emitters.get(name);
    if (!e) return;
    const p = await e.probe();
    this.o.metrics?.probed(p);
    this.o.log?.({ level: p.ok ? (p.partial || p.reason ? 'warn' : 'debug') : 'warn', msg: p.ok ? (p.partial ? `probe partial: ${p.reason}` : p.reason ? `probed (${p.reason})` : 'probed') : `probe failed: ${p.reason}`, emitter: name, step: 'probe', durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls, jobs: p.jobs.length });
    const r = await this.o.history.putObservation({ observation: { emitter: p.emitter, at: p.at, ok: p.ok, partial: p.partial, ...(p.reason !== undefined ? { reason: p.reason } : {}), jobs: p.jobs, runners: p.runners, ...(p.scheduled?.length ? { scheduled: p.scheduled } : {}), meta: { durationMs: p.meta.durationMs, apiCalls: p.meta.apiCalls, notModified: p.meta.notModified, ...(p.meta.rateLimitRemaining !== undefined ? { rateLimitRemaining: p.meta.rateLimitRemaining } : {}) } }, digest: observationDigest(p), prober: this.o.owner });
    if (r.written) await recordJobLabels(this.o.history, new Map([[name, p]]), new Map([[name, e]]));
    if (r.written) {
      // Only the pools whose part of the observation changed get a change job (a job of another
      // pool of the emitter would change nothing); a webhook's pools get a grow-only one first.
      const all = this.o.poolsOf(name);
      const parts = poolDigests(p, e.kind, this.o.policy.pools.filter((x) => x.emitter === name), all);
      const changed = all.filter((pool) => parts.get(pool) !== this.parts.get(pool));
      for (const pool of all) this.parts.set(pool, parts.get(pool) ?? '');
      const jobs = [...(webhook && r.changed ? (pools ?? []).map((pool) => ({ pool, webhook: true })) : []), ...changed.map((pool) => ({ pool, webhook: false }))];
      for (const j of jobs) {
        try {
          const prev = this.enqueued.get(j.pool);
          if (!j.webhook) await this.o.queue.raise('wanted', j.pool, r.version);
          await this.o.queue.change(j.pool, r.version, { webhook: j.webhook, ...(at !== undefined ? { at } : {}), ...(!j.webhook && prev !== undefined && prev !== r.version ? { replaces: prev } : {}) });
          if (!j.webhook) this.enqueued.set(j.pool, r.version);
        } catch (err) {
          this.o.log?.({ level: 'warn', msg: `cannot enqueue pool ${j.pool}: ${(err as Error).message}`, pool: j.pool, emitter: name });
        }
      }
      // Self-healing: a pool whose full cycles have not seen its latest change (its job was never
      // added — a Redis error, a prober that died between the two) gets it again; a job already in
      // the queue is not added twice.
      const [wanted, done] = await Promise.all([this.o.queue.versionsOf('wanted', all), this.o.queue.versionsOf('done', all)]).catch(() => [[], []]);
      for (const [i, pool] of all.entries()) {
        const w = wanted[i] ?? 0;
        if (w > (done[i] ?? 0) && !changed.includes(pool)) await this.o.queue.change(pool, w).catch(() => undefined);
      }
    }
    this.o.onProbe?.(p, { ...r, webhook });
  }

  /** Webhook events: their emitters probed at once (debounced by the wake queue), their pools enqueued on a change. */
  private async webhookLoop(): Promise<void> {
    const wakes = this.o.wakes;
    if (!wakes) return;
    while (!this.o.stopping()) {
      const due = wakes.dueAt();
      if (due === undefined || Date.now() < due) {
        await sleep(25);
        continue;
      }
      const events = wakes.take(Date.now());
      const byEmitter = new Map<string, { pools: Set<string>; at: number }>();
      for (const ev of events) {
        const g = byEmitter.get(ev.emitter) ?? { pools: new Set<string>(), at: ev.at };
        for (const p of ev.pools) g.pools.add(p);
        g.at = Math.min(g.at, ev.at);
        byEmitter.set(ev.emitter, g);
      }
      await Promise.all(
        [...byEmitter].map(async ([name, g]) => {
          await this.probe(name, true, [...g.pools], g.at).catch((err: Error) => this.o.log?.({ level: 'error', msg: `probe of ${name} for a webhook: ${err.message}`, emitter: name }));
          wakes.ran([...g.pools], Date.now());
        }),
      );
    }
  }
}
