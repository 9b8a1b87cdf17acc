/**
 * Prometheus metrics of a `reconcile --watch` service (prom-client): per pool queued, running,
 * nodes and desired; histograms of cycle, probe and terraform durations; webhook deliveries by
 * emitter and result, and the time from a delivery to the end of the terraform apply it woke.
 * Served at /metrics by the service's one listener (webhooks.ts).
 */
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ProbeResult } from '../emitters/types.js';
import type { CycleResult } from './cycle.js';

/** What became of a webhook delivery. */
export type WebhookResult = 'accepted' | 'duplicate' | 'bad_signature' | 'too_large' | 'malformed' | 'ignored' | 'unknown_emitter';

export class ReconcileMetrics {
  readonly registry = new Registry();
  private readonly queued = new Gauge({ name: 'parmanu_pool_queued_jobs', help: 'Jobs queued for the pool at the last probe', labelNames: ['pool'], registers: [this.registry] });
  private readonly running = new Gauge({ name: 'parmanu_pool_running_jobs', help: 'Jobs running on the pool at the last probe', labelNames: ['pool'], registers: [this.registry] });
  private readonly nodes = new Gauge({ name: 'parmanu_pool_nodes', help: 'Nodes of the pool before the last cycle', labelNames: ['pool'], registers: [this.registry] });
  private readonly desired = new Gauge({ name: 'parmanu_pool_desired_nodes', help: 'Nodes the last cycle decided the pool should have', labelNames: ['pool'], registers: [this.registry] });
  private readonly failures = new Counter({ name: 'parmanu_pool_failures_total', help: 'Cycles in which the pool failed', labelNames: ['pool'], registers: [this.registry] });
  private readonly cycle = new Histogram({ name: 'parmanu_cycle_duration_seconds', help: 'Duration of a whole reconcile cycle', buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers: [this.registry] });
  private readonly probe = new Histogram({ name: 'parmanu_probe_duration_seconds', help: 'Duration of an emitter probe', labelNames: ['emitter', 'ok'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
  private readonly terraform = new Histogram({ name: 'parmanu_terraform_duration_seconds', help: 'Time a pool spent in terraform (init, plan, show, apply) in a cycle that ran it', labelNames: ['pool'], buckets: [0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers: [this.registry] });
  private readonly webhooks = new Counter({ name: 'parmanu_webhook_events_total', help: 'Webhook deliveries by emitter and result (accepted, duplicate, bad_signature, too_large, malformed, ignored, unknown_emitter)', labelNames: ['emitter', 'result'], registers: [this.registry] });
  private readonly spotFallbacks = new Counter({ name: 'parmanu_spot_fallbacks_total', help: 'New nodes whose apply failed for capacity, per pool, kind (spot-capacity, spot-price, spot-count, zone-capacity) and what became of them (to: on-demand, next-zone, dropped)', labelNames: ['pool', 'kind', 'to'], registers: [this.registry] });
  private readonly stackNodes = new Gauge({ name: 'parmanu_pool_stack_nodes', help: "Nodes of each of a failover pool's stacks before the last cycle, with the stack's platform and role (active: gets new nodes; leaving: drains)", labelNames: ['pool', 'stack', 'platform', 'role'], registers: [this.registry] });
  /** The stack series of each pool set last (so that those without a line now are removed). */
  private readonly stackSeries = new Map<string, Map<string, { stack: string; platform: string; role: 'active' | 'leaving' }>>();
  private readonly activePlatform = new Gauge({ name: 'parmanu_pool_active_platform', help: "The platform a failover pool's new nodes go to (1), and its other platforms (0)", labelNames: ['pool', 'platform'], registers: [this.registry] });
  private readonly stackFailures = new Counter({ name: 'parmanu_pool_stack_failures_total', help: "Cycles in which a failover pool's stack failed, per stack (the platform's health counts these)", labelNames: ['pool', 'stack', 'platform'], registers: [this.registry] });
  private readonly webhookLatency = new Histogram({ name: 'parmanu_webhook_apply_latency_seconds', help: 'Time from a webhook delivery to the end of the terraform apply of the cycle it woke, per pool', labelNames: ['pool'], buckets: [0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120], registers: [this.registry] });

  // Services mode (per replica): the prober's emitters and probes, the scaler's pools and cycles.
  private readonly emittersHeld = new Gauge({ name: 'parmanu_prober_emitters_held', help: 'Emitters whose probe lease this prober holds (1) or not (0)', labelNames: ['emitter'], registers: [this.registry] });
  private readonly observationVersion = new Counter({ name: 'parmanu_observation_changes_total', help: 'Observations written by this prober that changed what was seen, per emitter', labelNames: ['emitter'], registers: [this.registry] });
  private readonly poolsHeld = new Gauge({ name: 'parmanu_scaler_pools_held', help: 'Pools whose lease this replica holds now (cycles running)', registers: [this.registry] });
  private readonly poolCycle = new Histogram({ name: 'parmanu_pool_cycle_duration_seconds', help: "Duration of one pool's cycle on this replica, per pool", labelNames: ['pool'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300], registers: [this.registry] });
  private readonly takeovers = new Counter({ name: 'parmanu_lease_takeovers_total', help: 'Leases this replica took from an owner whose lease expired unreleased (a dead replica), per pool (or @probe-<emitter>)', labelNames: ['pool'], registers: [this.registry] });
  private readonly cycles = new Counter({ name: 'parmanu_pool_cycles_total', help: 'Pool cycles this replica ran, per pool and trigger (interval, change, webhook, takeover)', labelNames: ['pool', 'trigger'], registers: [this.registry] });
  private readonly rateRemaining = new Gauge({ name: 'parmanu_probe_rate_limit_remaining', help: "The CI platform's remaining rate limit after the last probe, per emitter and credential (a label, never the credential)", labelNames: ['emitter', 'credential'], registers: [this.registry] });
  private readonly rateUsed = new Gauge({ name: 'parmanu_probe_rate_limit_used', help: 'Rate-limited requests the last probe of the emitter spent (its budget per probe; 304s are free)', labelNames: ['emitter'], registers: [this.registry] });
  private readonly apiCalls = new Gauge({ name: 'parmanu_probe_api_calls', help: 'API requests of the last probe of the emitter', labelNames: ['emitter'], registers: [this.registry] });

  emitterHeld(emitter: string, held: boolean): void {
    this.emittersHeld.set({ emitter }, held ? 1 : 0);
  }

  /** One probe (the prober's, or a cycle's own). */
  probed(p: ProbeResult): void {
    this.probe.observe({ emitter: p.emitter, ok: String(p.ok) }, p.meta.durationMs / 1000);
    this.apiCalls.set({ emitter: p.emitter }, p.meta.apiCalls);
    const rl = p.meta.rateLimit;
    if (rl) {
      this.rateUsed.set({ emitter: p.emitter }, rl.used);
      for (const c of rl.credentials) if (c.remaining !== undefined) this.rateRemaining.set({ emitter: p.emitter, credential: c.id }, c.remaining);
    } else {
      this.rateUsed.set({ emitter: p.emitter }, Math.max(0, p.meta.apiCalls - p.meta.notModified));
      if (p.meta.rateLimitRemaining !== undefined) this.rateRemaining.set({ emitter: p.emitter, credential: '' }, p.meta.rateLimitRemaining);
    }
  }

  observationChanged(emitter: string): void {
    this.observationVersion.inc({ emitter });
  }

  /** A pool's lease taken (from a dead owner when `takenOverFrom`) or let go by this replica. */
  lease(pool: string, held: boolean, takenOverFrom?: string): void {
    if (held) this.poolsHeld.inc();
    else this.poolsHeld.dec();
    if (takenOverFrom !== undefined) this.takeovers.inc({ pool });
  }

  takeover(pool: string): void {
    this.takeovers.inc({ pool });
  }

  /** One pool cycle on this replica (services mode). */
  poolCycled(pool: string, trigger: string, seconds: number): void {
    this.poolCycle.observe({ pool }, seconds);
    this.cycles.inc({ pool, trigger });
  }

  record(result: CycleResult, cycleMs: number): void {
    this.cycle.observe(cycleMs / 1000);
    for (const p of result.probes) this.probe.observe({ emitter: p.emitter, ok: String(p.ok) }, p.durationMs / 1000);
    for (const p of result.pools) {
      if (p.skipped) continue;
      this.queued.set({ pool: p.pool }, p.observed.queued);
      this.running.set({ pool: p.pool }, p.observed.running);
      this.nodes.set({ pool: p.pool }, p.observed.nodes);
      this.desired.set({ pool: p.pool }, p.desired);
      if (p.error) this.failures.inc({ pool: p.pool });
      if (p.terraform.ran) this.terraform.observe({ pool: p.pool }, p.terraformMs / 1000);
      for (const f of p.fallbacks ?? []) this.spotFallbacks.inc({ pool: p.pool, kind: f.kind, to: f.to });
      // A stack's series are this cycle's lines: one that has no line now (emptied, forgotten) goes.
      const now = new Map<string, { stack: string; platform: string; role: 'active' | 'leaving' }>();
      for (const st of p.stacks ?? []) {
        this.stackNodes.set({ pool: p.pool, stack: st.stack, platform: st.platform, role: st.role }, st.nodes);
        this.activePlatform.set({ pool: p.pool, platform: st.platform }, st.role === 'active' ? 1 : 0);
        if (st.error) this.stackFailures.inc({ pool: p.pool, stack: st.stack, platform: st.platform });
        now.set(`${st.stack}\u0000${st.role}`, { stack: st.stack, platform: st.platform, role: st.role });
      }
      for (const [key, l] of this.stackSeries.get(p.pool) ?? []) if (!now.has(key)) this.stackNodes.remove({ pool: p.pool, ...l });
      this.stackSeries.set(p.pool, now);
    }
  }

  /** One webhook delivery and what became of it (an unknown emitter's name is not kept: it is the caller's). */
  webhook(emitter: string | undefined, result: WebhookResult): void {
    this.webhooks.inc({ emitter: emitter ?? '', result });
  }

  /** A terraform apply that a webhook delivery woke ended `seconds` after the delivery arrived. */
  webhookApplied(pool: string, seconds: number): void {
    this.webhookLatency.observe({ pool }, seconds);
  }

  /** Answers a GET /metrics. */
  serve(res: ServerResponse): void {
    this.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  }
}
