/**
 * Webhooks: event → terraform apply latency on the local platform (against the polling path in the
 * same run), and how many deliveries per second the receiver takes with nothing lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { FileHistoryStore } from '../../src/history/file.js';
import type { HistoryStore } from '../../src/history/types.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import type { ReconcileDeps } from '../../src/reconcile/cycle.js';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import { Listener, MIN_WEBHOOK_GAP_MS, WakeQueue, WebhookReceiver, watchLoop, type WebhookTarget } from '../../src/reconcile/webhooks.js';
import { Terraform } from '../../src/terraform/runner.js';
import { GitlabEmulator } from '../../test/emulators/gitlab.js';
import { round, type BenchCase } from '../harness.js';

const SECRET = 'bench-webhook-secret';

function policyOf(url: string, probeInterval: string): Policy {
  return normalize({
    emitters: new Map([['gl', EmitterSchema.parse({ type: 'gitlab', url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' }, probeInterval, webhook: { secret: '${env:S}' } })]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'gl', platform: 'lab', labels: ['linux'], scaling: { predict: false, spare: 0, max: 100, maxStep: 10, minLifetime: '0s', bootTimeout: '1h' } })]]),
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * `n` jobs queued one after another into a watch loop (GitLab emulator, file store, terraform on
 * the local platform); each one's latency runs from the moment it is queued (the emulator sends
 * its Job Hook then) to the end of the terraform apply that created its node. `webhook: false`:
 * the same loop without a listener, polling every `intervalMs`, each job queued at a random
 * moment between two polls.
 */
async function latencies(n: number, o: { webhook: boolean; intervalMs: number }): Promise<number[]> {
  const root = mkdtempSync(join(tmpdir(), 'parmanu-bench-wh-'));
  const emu = await new GitlabEmulator().start();
  const project = emu.addProject('api', emu.addGroup('platform'));
  const policy = policyOf(emu.url, `${Math.round(o.intervalMs / 1000)}s`);
  const stateDir = join(root, 'state');
  const history = new FileHistoryStore(stateDir);
  let applied: ((at: number) => void) | undefined;
  let id = 0;
  const deps: ReconcileDeps = {
    policy,
    emitters: new Map([['gl', new GitlabEmitter(policy.emitters.gl as never, emu.token)]]),
    history,
    terraform: new Terraform(),
    stateDir,
    clock: Date.now,
    owner: 'bench',
    newId: () => (id++).toString(36).padStart(6, '0'),
    log: (e) => {
      if (e.step === 'terraform-apply' && e.durationMs !== undefined) applied?.(Date.now());
    },
  };
  const wakes = o.webhook ? new WakeQueue() : undefined;
  const metrics = new ReconcileMetrics();
  const listener = wakes ? new Listener(metrics, new WebhookReceiver({ policy, targets: new Map<string, WebhookTarget>([['gl', { emitter: policy.emitters.gl as WebhookTarget['emitter'], secret: SECRET }]]), history, wakes, metrics })) : undefined;
  if (listener) emu.webhook = { url: `${await listener.listen('127.0.0.1', 0)}/webhooks/gl`, secret: SECRET };
  let stopping = false;
  let cycles = 0;
  const loop = watchLoop({ deps, intervalMs: o.intervalMs, stopping: () => stopping, ...(wakes ? { wakes } : {}), onCycle: () => cycles++ });
  const out: number[] = [];
  try {
    while (cycles === 0) await sleep(10);
    for (let i = 0; i < n; i++) {
      // Polling: the job lands anywhere between two probes.
      if (!o.webhook) await sleep(Math.random() * o.intervalMs);
      const done = new Promise<number>((resolve) => (applied = resolve));
      const t0 = Date.now();
      emu.addJob(project, 'pending', ['linux']);
      out.push((await done) - t0);
      applied = undefined;
      // Let the cycle finish before the next job.
      const c = cycles;
      while (cycles === c) await sleep(5);
      // A pool's next webhook cycle waits MIN_WEBHOOK_GAP_MS after its last one: this measures a job
      // that arrives after that (one sooner is answered with the events of the gap, at most 2 s later).
      if (o.webhook) await sleep(MIN_WEBHOOK_GAP_MS);
    }
  } finally {
    stopping = true;
    await loop;
    await listener?.close();
    await history.close();
    await emu.stop();
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}

export const webhookLatency: BenchCase = {
  name: 'webhook-latency',
  async run({ log }) {
    const n = 12;
    log(`webhook-latency: ${n} jobs through a Job Hook, then ${n} through polling every 5 s (terraform on the local platform)…`);
    const hook = await latencies(n, { webhook: true, intervalMs: 10 * 60_000 });
    const poll = await latencies(n, { webhook: false, intervalMs: 5000 });
    const s = (ms: number) => round(ms / 1000, 2);
    return [
      { name: 'webhook-event-to-apply-p50', value: s(pct(hook, 50)), unit: 's', baseline: { name: 'polling every 5 s, p50', value: s(pct(poll, 50)) }, ratio: round(pct(hook, 50) / pct(poll, 50)), note: `${n} jobs queued one at a time (each past the 2 s gap after the previous webhook cycle); from the Job Hook to the end of terraform apply (debounce 300 ms included); probe interval 10 min. Polling adds on average half the probe interval: 15 s more at the default 30 s` },
      { name: 'webhook-event-to-apply-p95', value: s(pct(hook, 95)), unit: 's', baseline: { name: 'polling every 5 s, p95', value: s(pct(poll, 95)) }, ratio: round(pct(hook, 95) / pct(poll, 95)), note: 'the same runs, 95th percentile' },
    ];
  },
};

/** The load client, in a worker thread so that it does not share the receiver's event loop. */
const CLIENT = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { url, requests, concurrency } = workerData;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const statuses = new Array(requests.length);
let next = 0;
const t0 = process.hrtime.bigint();
function one() {
  const i = next++;
  if (i >= requests.length) return Promise.resolve();
  const r = requests[i];
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', ...r.headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => { statuses[i] = res.statusCode + ' ' + text.trim(); resolve(); });
    });
    req.on('error', (e) => { statuses[i] = 'error ' + e.message; resolve(); });
    req.end(r.body);
  }).then(one);
}
Promise.all(Array.from({ length: concurrency }, one)).then(() => {
  parentPort.postMessage({ statuses, ms: Number(process.hrtime.bigint() - t0) / 1e6 });
  agent.destroy();
});
`;

async function load(url: string, requests: Array<{ headers: Record<string, string>; body: string }>, concurrency: number): Promise<{ statuses: string[]; ms: number }> {
  const w = new Worker(CLIENT, { eval: true, workerData: { url, requests, concurrency } });
  try {
    return await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  } finally {
    await w.terminate();
  }
}

/**
 * `n` distinct signed Job Hook deliveries for queued jobs, `concurrency` at a time over keep-alive
 * connections, against the receiver alone (the wake queue collects; no cycle runs). Nothing lost:
 * every delivery answered 202 accepted, its id and its body's digest claimed once each (its repeat
 * answered duplicate), the wake queue holding all n.
 */
async function throughput(store: HistoryStore, n: number, concurrency: number): Promise<{ perS: number; ms: number }> {
  const policy = policyOf('http://127.0.0.1:9', '30s');
  const wakes = new WakeQueue();
  const metrics = new ReconcileMetrics();
  let claims = 0;
  const counted: HistoryStore = Object.assign(Object.create(store) as HistoryStore, {
    claimDelivery: async (e: string, id: string, ttl: number) => {
      claims++;
      return store.claimDelivery(e, id, ttl);
    },
  });
  const listener = new Listener(metrics, new WebhookReceiver({ policy, targets: new Map<string, WebhookTarget>([['gl', { emitter: policy.emitters.gl as WebhookTarget['emitter'], secret: SECRET }]]), history: counted, wakes, metrics }));
  const url = `${await listener.listen('127.0.0.1', 0)}/webhooks/gl`;
  try {
    const requests = Array.from({ length: n }, (_, i) => ({
      headers: { 'x-gitlab-event': 'Job Hook', 'x-gitlab-token': SECRET, 'x-gitlab-event-uuid': `bench-${i}-${Math.random().toString(36).slice(2)}` },
      body: JSON.stringify({ object_kind: 'build', build_id: 100_000 + i, build_status: 'pending', build_created_at: new Date().toISOString(), build_started_at: null, project_id: 1, project: { path_with_namespace: 'platform/api' }, tags: ['linux'], runner: null }),
    }));
    const first = await load(url, requests, concurrency);
    const accepted = first.statuses.filter((s) => s === '202 accepted').length;
    if (accepted !== n || wakes.size !== n || claims !== 2 * n) throw new Error(`lost deliveries: ${accepted} of ${n} accepted, ${wakes.size} queued, ${claims} claims (${first.statuses.find((s) => s !== '202 accepted')})`);
    const again = await load(url, requests, concurrency);
    const dup = again.statuses.filter((s) => s === '202 duplicate').length;
    if (dup !== n || wakes.size !== n) throw new Error(`a delivery was claimed twice: ${dup} of ${n} repeats were duplicates`);
    return { perS: (n / first.ms) * 1000, ms: first.ms };
  } finally {
    await listener.close();
  }
}

export const webhookThroughput: BenchCase = {
  name: 'webhook-throughput',
  async run({ log }) {
    const n = 5000;
    const concurrency = 32;
    log(`webhook-throughput: ${n} signed deliveries, ${concurrency} at a time, file store then Redis…`);
    const root = mkdtempSync(join(tmpdir(), 'parmanu-bench-whl-'));
    const { startRedis } = await import('../../test/redis-server.js');
    const { RedisHistoryStore } = await import('../../src/history/redis.js');
    const redis = await startRedis();
    try {
      const file = new FileHistoryStore(join(root, 'state'));
      const f = await throughput(file, n, concurrency);
      const store = new RedisHistoryStore(redis.url);
      const r = await throughput(store, n, concurrency);
      await store.close();
      const note = (ms: number) => `${n} distinct deliveries in ${round(ms / 1000, 2)} s, ${concurrency} connections from a worker thread; every one 202 accepted, its id and body digest claimed once each (each repeat answered duplicate), none lost`;
      return [
        { name: 'webhook-deliveries-per-s-redis', value: round(r.perS, 0), unit: '/s', baseline: { name: 'the file store', value: round(f.perS, 0) }, ratio: round(r.perS / f.perS), note: note(r.ms) },
        { name: 'webhook-deliveries-per-s-file', value: round(f.perS, 0), unit: '/s', note: `${note(f.ms)}; each claim rewrites the emitter's claims file under its mutex` },
      ];
    } finally {
      await redis.stop();
      rmSync(root, { recursive: true, force: true });
    }
  },
};
