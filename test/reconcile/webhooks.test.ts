/**
 * Webhooks end to end: the watch loop with its real listener on 127.0.0.1, the GitHub and GitLab
 * emulators delivering signed events over HTTP, real terraform on the local platform and real
 * Redis (or the file store). The probe interval is 10 minutes unless a test says otherwise, so a
 * node that appears within seconds was brought by the webhook.
 */
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import type { Emitter } from '../../src/emitters/types.js';
import { FileHistoryStore } from '../../src/history/file.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import type { HistoryStore } from '../../src/history/types.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleEvent, type CycleResult, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import { Listener, MIN_WEBHOOK_GAP_MS, WakeQueue, WebhookReceiver, watchLoop, type WebhookTarget } from '../../src/reconcile/webhooks.js';
import { Terraform } from '../../src/terraform/runner.js';
import { readStateNodes } from '../../src/terraform/state.js';
import type { Emulator } from '../emulators/base.js';
import { GithubEmulator } from '../emulators/github.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { capture, scanStateDir } from '../secret-scan.js';
import { useRedisSuite } from './suite.js';

const suite = useRedisSuite();
const SECRET = 'emulated-webhook-SECRET-4f1c2d9e';
const TEN_MIN = 10 * 60_000;
const fastHttp = () => new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 8, backoffMs: 5 });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function policyOf(emitter: Record<string, unknown>, scaling: Record<string, unknown> = {}): Policy {
  return normalize({
    emitters: new Map([['ci', EmitterSchema.parse({ ...emitter, webhook: { secret: '${env:WEBHOOK_SECRET}' }, probeInterval: '10m' })]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], scaling: { predict: false, spare: 0, minLifetime: '0s', scaleDownAfter: '1m', bootTimeout: '1h', ...scaling } })]]),
  });
}

interface Cycle {
  result: CycleResult;
  webhook: boolean;
  events: number;
  /** When the loop reported it (wall clock). */
  endedAt: number;
}

interface Service {
  url: string;
  cycles: Cycle[];
  /** Every cycle's log events, in order. */
  logs: CycleEvent[];
  metrics: ReconcileMetrics;
  deps: ReconcileDeps;
  history: HistoryStore;
  /** Moves the cycles' clock forward (scale-down windows), the wall clock untouched. */
  offset: { ms: number };
  nodes: () => string[];
  metricsText: () => Promise<string>;
  stop: () => Promise<void>;
}

/** The watch loop as `reconcile --watch --listen` runs it, in this process. */
async function service(policy: Policy, emitterOn: (clock: () => number) => Emitter, emu: Emulator, o: { intervalMs?: number; store?: 'redis' | 'file' } = {}): Promise<Service> {
  const root = suite.tempDir('parmanu-webhooks-');
  const stateDir = join(root, 'state');
  const offset = { ms: 0 };
  const clock = () => Date.now() + offset.ms;
  const history: HistoryStore = o.store === 'file' ? new FileHistoryStore(stateDir, clock, undefined, Date.now) : new RedisHistoryStore(suite.url, clock, `parmanu:wh${Math.random().toString(36).slice(2)}:`);
  let id = 0;
  const logs: CycleEvent[] = [];
  const deps: ReconcileDeps = {
    policy,
    emitters: new Map([['ci', emitterOn(clock)]]),
    history,
    terraform: new Terraform({ bin: process.env.PARMANU_TERRAFORM ?? 'terraform' }),
    stateDir,
    clock,
    owner: 'test',
    newId: () => `n${(id++).toString().padStart(3, '0')}`,
    log: (e) => {
      logs.push(e);
      capture('a reconcile log event', JSON.stringify(e));
    },
  };
  const metrics = new ReconcileMetrics();
  const wakes = new WakeQueue();
  const targets = new Map<string, WebhookTarget>([['ci', { emitter: policy.emitters.ci as WebhookTarget['emitter'], secret: SECRET }]]);
  const listener = new Listener(metrics, new WebhookReceiver({ policy, targets, history, wakes, metrics, log: deps.log }));
  const base = await listener.listen('127.0.0.1', 0);
  emu.webhook = { url: `${base}/webhooks/ci`, secret: SECRET };
  const cycles: Cycle[] = [];
  let stopping = false;
  const loop = watchLoop({ deps, intervalMs: o.intervalMs ?? TEN_MIN, stopping: () => stopping, wakes, metrics, onCycle: (result, info) => {
    capture('a reconcile result', JSON.stringify(result));
    cycles.push({ result, ...info, endedAt: Date.now() });
  } });
  await until(() => cycles.length >= 1, 'the first polling cycle');
  return {
    url: `${base}/webhooks/ci`,
    cycles,
    logs,
    metrics,
    deps,
    history,
    offset,
    nodes: () => {
      // Terraform may be writing the state right now: a torn read is no reading.
      try {
        return readStateNodes(join(poolDir(stateDir, 'p'), 'terraform.tfstate')).map((n) => n.name).sort();
      } catch {
        return ['(being written)'];
      }
    },
    metricsText: async () => (await fetch(`${base}/metrics`)).text(),
    stop: async () => {
      stopping = true;
      await loop;
      await listener.close();
      await scanStateDir(stateDir);
      await history.close();
      await emu.stop();
    },
  };
}

async function until(f: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A raw POST over HTTP/1.1 (node:http: a 413 is read even while the body is still being sent). */
function post(url: string, headers: Record<string, string>, body: Buffer | string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Announces a body of 64 KiB and sends 16 bytes of it: the answer's status, or 'no answer' if none
 * came within `waitMs` (a server waiting for the rest of the body).
 */
function unsent(url: string, headers: Record<string, string>, waitMs = 5000): Promise<number | 'no answer'> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(64 * 1024), ...headers } }, (res) => {
      res.resume();
      clearTimeout(timer);
      req.destroy();
      resolve(res.statusCode ?? 0);
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve('no answer');
    }, waitMs);
    req.on('error', () => undefined);
    req.write('{"object_kind": ');
  });
}

const webhookCycles = (s: Service) => s.cycles.filter((c) => c.webhook);

async function gitlabService(scaling: Record<string, unknown> = {}, o: { intervalMs?: number; store?: 'redis' | 'file' } = {}) {
  const emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  const project = emu.addProject('api', group);
  const policy = policyOf({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } }, scaling);
  const s = await service(policy, (clock) => new GitlabEmitter(policy.emitters.ci as never, emu.token, fastHttp(), clock), emu, o);
  return { emu, project, s };
}

/** A Job Hook body for a pending job, as the emulator sends it. */
function jobHookBody(emu: GitlabEmulator, project: GlProject): string {
  const saved = emu.webhook;
  emu.webhook = undefined;
  const j = emu.addJob(project, 'pending', ['linux']);
  emu.webhook = saved;
  return JSON.stringify({ object_kind: 'build', build_id: j.id, build_status: 'pending', build_created_at: j.created_at, build_started_at: null, project_id: project.id, project: { path_with_namespace: project.path_with_namespace }, tags: ['linux'], runner: null });
}

describe('webhooks on GitHub', () => {
  it('a signed workflow_job event scales up within seconds while the probe interval is 10 minutes', async () => {
    const emu = await new GithubEmulator().start();
    emu.repos = ['api'];
    const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url });
    const s = await service(policy, (clock) => new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp(), clock), emu);
    try {
      expect(s.nodes()).toEqual([]);
      const t0 = Date.now();
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      await until(() => s.nodes().length === 1, 'a node');
      const tookMs = Date.now() - t0;
      await until(() => s.cycles.length === 2, 'the webhook cycle to end');
      await emu.webhooksSettled();
      expect(emu.deliveries.map((d) => [d.event, d.status])).toEqual([['workflow_job', 202]]);
      expect(webhookCycles(s)).toHaveLength(1);
      expect(webhookCycles(s)[0]?.result.pools[0]).toMatchObject({ pool: 'p', create: ['p-n000'], terraform: { ran: true } });
      // Far below the 10-minute probe interval (the cycle runs terraform; the bound is generous for a loaded machine).
      expect(tookMs).toBeLessThan(60_000);
      const m = await s.metricsText();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="accepted"\} 1$/m);
      expect(m).toMatch(/^parmanu_webhook_apply_latency_seconds_count\{pool="p"\} 1$/m);
      // The job starts and completes: those events wake nothing.
      emu.connect('p-n000');
      const job = emu.jobs[0];
      if (!job) throw new Error('no job');
      Object.assign(job, { status: 'in_progress', runner_name: 'p-n000', started_at: new Date().toISOString() });
      emu.finishJob(job.id);
      await emu.webhooksSettled();
      await sleep(800);
      expect(emu.deliveries.map((d) => d.status)).toEqual([202, 202]);
      expect(webhookCycles(s)).toHaveLength(1);
      expect(await s.metricsText()).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="ignored"\} 1$/m);
    } finally {
      await s.stop();
    }
  });

  it('answers a ping with 200, refuses a bad signature with 401 and an unknown emitter with 404, and runs no cycle', async () => {
    const emu = await new GithubEmulator().start();
    emu.repos = ['api'];
    const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url });
    const s = await service(policy, (clock) => new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp(), clock), emu);
    try {
      const { githubSignature } = await import('../../src/emitters/webhooks.js');
      const ping = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 4242 });
      expect((await post(s.url, { 'x-github-event': 'ping', 'x-github-delivery': 'p-1', 'x-hub-signature-256': githubSignature(SECRET, ping) }, ping)).status).toBe(200);
      expect((await post(s.url, { 'x-github-event': 'ping', 'x-github-delivery': 'p-2', 'x-hub-signature-256': githubSignature('wrong', ping) }, ping)).status).toBe(401);
      // A queued job whose delivery is forged: 401, the response says nothing more.
      emu.webhook = undefined;
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      const body = JSON.stringify({ action: 'queued', workflow_job: { id: 1, run_id: 2, labels: ['self-hosted', 'linux'] }, repository: { name: 'api', owner: { login: 'acme' } } });
      const forged = await post(s.url, { 'x-github-event': 'workflow_job', 'x-github-delivery': 'f-1', 'x-hub-signature-256': githubSignature(`${SECRET}x`, body) }, body);
      expect(forged).toEqual({ status: 401, text: 'unauthorized\n' });
      expect((await post(s.url, { 'x-github-event': 'workflow_job', 'x-github-delivery': 'f-2' }, body)).status).toBe(401);
      expect((await post(s.url.replace(/ci$/, 'nope'), { 'x-github-event': 'workflow_job' }, body)).status).toBe(404);
      expect((await fetch(s.url)).status).toBe(405);
      await sleep(1000);
      expect(s.cycles).toHaveLength(1);
      expect(s.nodes()).toEqual([]);
      const m = await s.metricsText();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="bad_signature"\} 3$/m);
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="",result="unknown_emitter"\} 1$/m);
    } finally {
      await s.stop();
    }
  });

  it('a captured signed body resent under a fresh delivery id is a duplicate: it wakes no second cycle', async () => {
    const emu = await new GithubEmulator().start();
    emu.repos = ['api'];
    const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url });
    const s = await service(policy, (clock) => new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp(), clock), emu);
    try {
      const { githubSignature } = await import('../../src/emitters/webhooks.js');
      emu.webhook = undefined;
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      const job = emu.jobs[0];
      if (!job) throw new Error('no job');
      const body = JSON.stringify({ action: 'queued', workflow_job: { id: job.id, run_id: job.run_id, labels: job.labels, created_at: job.created_at }, repository: { name: 'api', owner: { login: emu.org } } });
      const signed = { 'x-github-event': 'workflow_job', 'x-hub-signature-256': githubSignature(SECRET, body) };
      expect(await post(s.url, { ...signed, 'x-github-delivery': '6a4c5e10-0000-4000-8000-000000000001' }, body)).toEqual({ status: 202, text: 'accepted\n' });
      await until(() => s.cycles.length === 2, 'the webhook cycle to end');
      // The signature covers the body, not X-GitHub-Delivery: the same body under new ids is a replay.
      for (let i = 2; i <= 4; i++) expect(await post(s.url, { ...signed, 'x-github-delivery': `6a4c5e10-0000-4000-8000-00000000000${i}` }, body)).toEqual({ status: 202, text: 'duplicate\n' });
      await sleep(MIN_WEBHOOK_GAP_MS + 1000);
      expect(webhookCycles(s)).toHaveLength(1);
      const m = await s.metricsText();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="accepted"\} 1$/m);
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="duplicate"\} 3$/m);
    } finally {
      await s.stop();
    }
  });

  it('refuses a delivery without a well-formed signature header before reading its body', async () => {
    const emu = await new GithubEmulator().start();
    emu.repos = ['api'];
    const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url });
    const s = await service(policy, (clock) => new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp(), clock), emu);
    try {
      // The body is announced but never sent: only a server that does not wait for it can answer.
      for (const sig of [undefined, 'sha256=abc', `sha1=${'0'.repeat(40)}`]) expect(await unsent(s.url, { 'x-github-event': 'workflow_job', ...(sig ? { 'x-hub-signature-256': sig } : {}) })).toBe(401);
      // A well-formed signature is checked against the body, so that one is read (and then refused).
      expect(await unsent(s.url, { 'x-github-event': 'workflow_job', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` }, 1500)).toBe('no answer');
      expect(await s.metricsText()).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="bad_signature"\} 3$/m);
    } finally {
      await s.stop();
    }
  });

  it('a vanished node is forgotten with its own step (terraform-refresh): only the plan\'s apply ends the event latency', async () => {
    const emu = await new GithubEmulator().start();
    emu.repos = ['api'];
    const policy = policyOf({ type: 'github', owner: emu.org, repos: ['api'], token: '${env:T}', runnerOwner: 'org', apiUrl: emu.url });
    const s = await service(policy, (clock) => new GithubEmitter(policy.emitters.ci as never, { token: emu.token }, fastHttp(), clock), emu);
    try {
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      await until(() => s.cycles.length === 2, 'the first webhook cycle to end');
      expect(s.nodes()).toEqual(['p-n000']);
      // The VM vanishes after the cycle read the state and before it plans: the plan would re-create it.
      let armed = true;
      s.deps.hook = (point) => {
        if (point !== 'observed' || !armed) return;
        armed = false;
        execFileSync(process.env.PARMANU_TERRAFORM ?? 'terraform', ['state', 'rm', 'terraform_data.node_p-n000'], { cwd: poolDir(s.deps.stateDir, 'p'), stdio: 'ignore' });
      };
      const from = s.logs.length;
      emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]);
      await until(() => s.cycles.length === 3, 'the second webhook cycle to end');
      expect(s.cycles[2]).toMatchObject({ webhook: true, result: { pools: [{ pool: 'p', vanished: ['p-n000'] }] } });
      const done = s.logs.slice(from).filter((e) => e.durationMs !== undefined).map((e) => e.step);
      expect(done.filter((st) => st === 'terraform-refresh')).toHaveLength(1);
      // One apply: the plan's, after the refresh that forgot the vanished node.
      expect(done.filter((st) => st === 'terraform-apply')).toHaveLength(1);
      expect(done.indexOf('terraform-refresh')).toBeLessThan(done.indexOf('terraform-apply'));
      expect(await s.metricsText()).toMatch(/^parmanu_webhook_apply_latency_seconds_count\{pool="p"\} 2$/m);
    } finally {
      await s.stop();
    }
  });
});

describe('the wake queue', () => {
  it('debounces a burst, then holds each pool to its gap after its last webhook cycle, without delaying the other pools', () => {
    const q = new WakeQueue(300, 2000, 2000);
    q.add({ at: 1000, emitter: 'ci', pools: ['a'] });
    q.add({ at: 1100, emitter: 'ci', pools: ['a', 'b'] });
    expect(q.dueAt()).toBe(1400);
    expect(q.take(1400)).toEqual([{ at: 1000, emitter: 'ci', pools: ['a'] }, { at: 1100, emitter: 'ci', pools: ['a', 'b'] }]);
    q.ran(['a', 'b'], 3000);
    // New events for a and c: c never ran, so it is due after the debounce; a only 2 s after its cycle ended.
    q.add({ at: 3100, emitter: 'ci', pools: ['a', 'c'] });
    expect(q.dueAt()).toBe(3400);
    expect(q.take(3400)).toEqual([{ at: 3100, emitter: 'ci', pools: ['c'] }]);
    q.ran(['c'], 3600);
    expect(q.size).toBe(1);
    expect(q.dueAt()).toBe(5000);
    expect(q.take(4999)).toEqual([]);
    expect(q.take(5000)).toEqual([{ at: 3100, emitter: 'ci', pools: ['a'] }]);
    expect(q.dueAt()).toBeUndefined();
    // A polling cycle takes everything, gap or not.
    q.add({ at: 5100, emitter: 'ci', pools: ['c'] });
    expect(q.take()).toHaveLength(1);
  });

  it('tells when its events are due with more of them waiting than a function call takes arguments', () => {
    const q = new WakeQueue(300, 2000, 2000);
    for (let i = 0; i < 300_000; i++) q.add({ at: 1000, emitter: 'ci', pools: ['a'] });
    expect(q.dueAt()).toBe(1300);
  });
});

describe('the listener', () => {
  it('closes a connection whose request has not arrived within the request timeout', async () => {
    const listener = new Listener(new ReconcileMetrics(), undefined, { requestTimeoutMs: 1000 });
    const base = new URL(await listener.listen('127.0.0.1', 0));
    try {
      const c = connect(Number(base.port), base.hostname);
      c.on('error', () => undefined);
      // Headers begun, never finished.
      c.write('POST /webhooks/ci HTTP/1.1\r\nhost: x\r\n');
      const t0 = Date.now();
      const outcome = await new Promise<string>((resolve) => {
        let text = '';
        c.on('data', (d: Buffer) => (text += d.toString()));
        c.on('close', () => resolve(`closed ${text.split('\r\n')[0] ?? ''}`));
        setTimeout(() => resolve('still open'), 5000);
      });
      c.destroy();
      expect(outcome).toBe('closed HTTP/1.1 408 Request Timeout');
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      await listener.close();
    }
  });

  it('holds at most maxConnections connections: one more is closed unanswered', async () => {
    const metrics = new ReconcileMetrics();
    const listener = new Listener(metrics, undefined, { maxConnections: 2 });
    const base = new URL(await listener.listen('127.0.0.1', 0));
    const open = () => new Promise<Socket>((resolve, reject) => {
      const c = connect(Number(base.port), base.hostname, () => resolve(c));
      c.on('error', reject);
    });
    const held = [await open(), await open()];
    try {
      await sleep(100);
      const third = await open().catch(() => undefined);
      const answer = await new Promise<string>((resolve) => {
        if (!third) return resolve('closed');
        let text = '';
        third.on('data', (d: Buffer) => (text += d.toString()));
        third.on('error', () => undefined);
        third.on('close', () => resolve(text === '' ? 'closed' : text));
        third.write('GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        setTimeout(() => resolve(text === '' ? 'no answer' : text), 3000);
      });
      expect(answer).toBe('closed');
      // Once one closes, a new connection is served.
      held.shift()?.destroy();
      await sleep(100);
      expect((await fetch(`${base.origin}/metrics`)).status).toBe(200);
    } finally {
      for (const c of held) c.destroy();
      await listener.close();
    }
  });
});

describe('webhooks on GitLab', () => {
  it('a bad token, an oversized body, malformed JSON and a repeated delivery change nothing; the one good delivery scales up once', async () => {
    const { emu, project, s } = await gitlabService();
    try {
      const body = jobHookBody(emu, project);
      const headers = { 'x-gitlab-event': 'Job Hook', 'x-gitlab-event-uuid': 'd6a1c0de-0000-4000-8000-000000000001' };
      expect((await post(s.url, { ...headers, 'x-gitlab-token': 'not-the-secret' }, body)).status).toBe(401);
      expect((await post(s.url, headers, body)).status).toBe(401);
      // 2 MiB declared and sent: refused before it is read.
      expect((await post(s.url, { ...headers, 'x-gitlab-token': SECRET }, Buffer.alloc(2 * 1024 * 1024, 0x20))).status).toBe(413);
      // Sent chunked, without a length: refused once past 1 MiB.
      const chunked = await new Promise<number>((resolve, reject) => {
        const req = request(s.url, { method: 'POST', headers: { ...headers, 'x-gitlab-token': SECRET, 'transfer-encoding': 'chunked' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        for (let i = 0; i < 40; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
        req.end();
      });
      expect(chunked).toBe(413);
      expect(await post(s.url, { ...headers, 'x-gitlab-token': SECRET }, body.slice(0, -3))).toMatchObject({ status: 400 });
      expect((await post(s.url, { ...headers, 'x-gitlab-token': SECRET }, JSON.stringify({ object_kind: 'build', build_status: 'pending' }))).status).toBe(400);
      await sleep(1000);
      expect(s.cycles).toHaveLength(1);
      expect(s.nodes()).toEqual([]);
      // The one good delivery.
      expect(await post(s.url, { ...headers, 'x-gitlab-token': SECRET }, body)).toEqual({ status: 202, text: 'accepted\n' });
      await until(() => s.nodes().length === 1, 'a node');
      await until(() => s.cycles.length === 2, 'the webhook cycle to end');
      // The same delivery again: nothing twice.
      expect(await post(s.url, { ...headers, 'x-gitlab-token': SECRET }, body)).toEqual({ status: 202, text: 'duplicate\n' });
      // The same body under a fresh event UUID: a replay, not a new event.
      expect(await post(s.url, { ...headers, 'x-gitlab-event-uuid': 'd6a1c0de-0000-4000-8000-000000000002', 'x-gitlab-token': SECRET }, body)).toEqual({ status: 202, text: 'duplicate\n' });
      await sleep(MIN_WEBHOOK_GAP_MS + 500);
      expect(s.cycles).toHaveLength(2);
      expect(s.nodes()).toHaveLength(1);
      const m = await s.metricsText();
      for (const [result, n] of [['bad_signature', 2], ['too_large', 2], ['malformed', 2], ['accepted', 1], ['duplicate', 2]] as const) expect(m).toMatch(new RegExp(`^parmanu_webhook_events_total\\{emitter="ci",result="${result}"\\} ${n}$`, 'm'));
    } finally {
      await s.stop();
    }
  });

  it('a wrong token is refused before the body is read', async () => {
    const { s } = await gitlabService();
    try {
      expect(await unsent(s.url, { 'x-gitlab-event': 'Job Hook', 'x-gitlab-token': 'not-the-secret' })).toBe(401);
      expect(await unsent(s.url, { 'x-gitlab-event': 'Job Hook' })).toBe(401);
      // The right token: the body is awaited.
      expect(await unsent(s.url, { 'x-gitlab-event': 'Job Hook', 'x-gitlab-token': SECRET }, 1500)).toBe('no answer');
      expect(await s.metricsText()).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="bad_signature"\} 2$/m);
    } finally {
      await s.stop();
    }
  });

  it('a flood of distinct valid events runs a pool\'s webhook cycles at least the minimum gap apart, and answers every event', async () => {
    const { emu, project, s } = await gitlabService({ max: 1, maxStep: 1 });
    try {
      // An event every 400 ms: past the 300 ms debounce each time, so without the gap every one would run a cycle.
      for (let i = 0; i < 12; i++) {
        emu.addJob(project, 'pending', ['linux']);
        await sleep(400);
      }
      await emu.webhooksSettled();
      expect(emu.deliveries.map((d) => d.status)).toEqual(Array<number>(12).fill(202));
      await until(() => webhookCycles(s).reduce((n, c) => n + c.events, 0) === 12, 'every event answered');
      const ends = webhookCycles(s).map((c) => c.endedAt);
      expect(ends.length).toBeGreaterThan(1);
      // Each webhook cycle starts at least the gap after the previous one ended, so it also ends at least that later.
      for (let i = 1; i < ends.length; i++) expect((ends[i] as number) - (ends[i - 1] as number)).toBeGreaterThanOrEqual(MIN_WEBHOOK_GAP_MS - 50);
      expect(s.nodes()).toEqual(['p-n000']);
    } finally {
      await s.stop();
    }
  });

  it('a lost delivery is recovered by the next probe', async () => {
    const { emu, project, s } = await gitlabService({}, { intervalMs: 4000, store: 'file' });
    try {
      emu.loseWebhooks = 1;
      emu.addJob(project, 'pending', ['linux']);
      expect(emu.deliveries.map((d) => d.lost)).toEqual([true]);
      await until(() => s.nodes().length === 1, 'a node from the next probe');
      await until(() => s.cycles.length === 2, 'the polling cycle to end');
      expect(webhookCycles(s)).toHaveLength(0);
      expect(s.cycles.at(-1)?.result.pools[0]).toMatchObject({ create: ['p-n000'] });
    } finally {
      await s.stop();
    }
  });

  it('a burst of 50 events makes one cycle, for the matching pool', async () => {
    const { emu, project, s } = await gitlabService({ max: 2, maxStep: 2 });
    try {
      for (let i = 0; i < 50; i++) emu.addJob(project, 'pending', ['linux']);
      // A job no pool matches wakes nothing.
      emu.addJob(project, 'pending', ['gpu']);
      await emu.webhooksSettled();
      expect(emu.deliveries.map((d) => d.status)).toEqual([...Array<number>(51).fill(202)]);
      await until(() => s.nodes().length === 2, 'two nodes');
      await until(() => webhookCycles(s).length === 1 && s.cycles.length === 2, 'the webhook cycle to end');
      await sleep(1500);
      expect(webhookCycles(s)).toHaveLength(1);
      expect(webhookCycles(s)[0]).toMatchObject({ events: 50, result: { pools: [{ pool: 'p', desired: 2, create: ['p-n000', 'p-n001'] }] } });
      const m = await s.metricsText();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="accepted"\} 50$/m);
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="ci",result="ignored"\} 1$/m);
      expect(m).toMatch(/^parmanu_webhook_apply_latency_seconds_count\{pool="p"\} 50$/m);
    } finally {
      await s.stop();
    }
  });

  it('a webhook never scales down: its cycle only grows, where a polling cycle would drain', async () => {
    const { emu, project, s } = await gitlabService();
    try {
      const first = jobHookBody(emu, project);
      jobHookBody(emu, project);
      expect((await post(s.url, { 'x-gitlab-event': 'Job Hook', 'x-gitlab-event-uuid': 'up-1', 'x-gitlab-token': SECRET }, first)).status).toBe(202);
      await until(() => s.nodes().length === 2, 'two nodes');
      await until(() => s.cycles.length === 2, 'the webhook cycle to end');
      for (const r of emu.runners) emu.connect(r.description);
      // The jobs end; well past the scale-down window a new one is queued: demand 1 against 2 idle nodes.
      for (const j of emu.jobs) j.status = 'success';
      s.offset.ms += 20 * 60_000;
      emu.addJob(project, 'pending', ['linux']);
      await until(() => s.cycles.length === 3, 'the second webhook cycle');
      expect(s.cycles[2]).toMatchObject({ webhook: true, result: { pools: [{ pool: 'p', drain: [], destroy: [] }] } });
      expect(emu.runners.filter((r) => r.paused)).toEqual([]);
      expect(s.nodes()).toHaveLength(2);
      // The same situation in a polling cycle drains one: what the webhook cycle left alone was a scale-down.
      const poll = await reconcileOnce({ ...s.deps, owner: 'test-poll' });
      expect(poll.pools[0]?.drain, JSON.stringify(poll.pools[0])).toHaveLength(1);
    } finally {
      await s.stop();
    }
  });
});
