/**
 * Prometheus metrics of a `reconcile --watch` service (prom-client): per pool queued, running,
 * nodes and desired; histograms of cycle, probe and terraform durations; webhook deliveries by
 * emitter and result, and the time from a delivery to the end of the terraform apply it woke.
 * Served at /metrics by the service's one listener (webhooks.ts).
 */
import type { ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
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
  private readonly webhookLatency = new Histogram({ name: 'parmanu_webhook_apply_latency_seconds', help: 'Time from a webhook delivery to the end of the terraform apply of the cycle it woke, per pool', labelNames: ['pool'], buckets: [0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120], registers: [this.registry] });

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
