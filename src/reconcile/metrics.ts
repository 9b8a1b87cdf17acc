/**
 * Prometheus metrics of a `reconcile --watch` service (prom-client): per pool queued, running,
 * nodes and desired; histograms of cycle, probe and terraform durations.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CycleResult } from './cycle.js';

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
  private server: Server | undefined;

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

  /** Serves /metrics on host:port (port 0: any free port); resolves the address it listens on. */
  async listen(host: string, port: number): Promise<string> {
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found: try /metrics\n');
        return;
      }
      void this.registry.metrics().then((body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body));
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, resolve);
    });
    const a = this.server.address() as AddressInfo;
    return `http://${a.address}:${a.port}/metrics`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}
