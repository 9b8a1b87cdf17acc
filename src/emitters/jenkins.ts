/**
 * Jenkins through its remote API with fetch. API-token (Basic) authentication needs no CSRF crumb;
 * with `crumb: true` a crumb is fetched from /crumbIssuer/api/json before changes.
 *
 * Endpoints: GET /queue/api/json?tree=… (labels from the task's label expression, or from the
 * `why` text of pipeline `node()` steps), GET /computer/api/json?tree=…, POST /computer/doCreateItem
 * (an inbound agent: executors = jobsPerNode, labels = pool labels, WebSocket), GET
 * /computer/NAME/jenkins-agent.jnlp (the agent secret), POST /computer/NAME/toggleOffline,
 * POST /computer/NAME/doDelete, GET /computer/NAME/api/json.
 * Permissions: Overall/Read; Agent/Create, Configure, Delete, Connect, Disconnect.
 * Ownership: a node is Parmanu's when its description (`nodeDescription`, exported by the computer
 * API as `description`) carries the marker; pause, resume, deregister and isIdle read the computer
 * first and never act on an unmarked node. Busy truth: the computer's `idle` and every executor's
 * and one-off executor's `idle` and `currentExecutable` (an executor given work is `idle: false`
 * before its build exists). Jenkins exports no connect time: `contacted` stays unset.
 */
import { z } from 'zod';
import type { Job } from '../decide/types.js';
import { redact } from '../policy/secrets.js';
import type { EmitterConfig, RunnerCredential } from '../policy/types.js';
import { beginProbe, describeFailure, HttpClient, readJson } from './http.js';
import { EmitterError, markerNote, poolFromNote, type Emitter, type ProbeResult, type RegisterRequest, type RunnerInfo } from './types.js';

type JenkinsConfig = Extract<EmitterConfig, { type: 'jenkins' }>;

const QueueSchema = z.object({
  items: z.array(z.object({
    id: z.number(),
    inQueueSince: z.number().optional(),
    why: z.string().nullable().optional(),
    task: z.object({ name: z.string().optional(), labelExpression: z.string().optional(), assignedLabel: z.object({ name: z.string() }).loose().nullable().optional() }).loose().optional(),
  }).loose()),
}).loose();
const ExecutorSchema = z.object({ idle: z.boolean().optional(), currentExecutable: z.object({ url: z.string().optional(), timestamp: z.number().optional() }).loose().nullable().optional() }).loose();
const ComputerSchema = z.object({
  displayName: z.string(),
  description: z.string().nullable().optional(),
  offline: z.boolean(),
  temporarilyOffline: z.boolean().optional(),
  idle: z.boolean().optional(),
  numExecutors: z.number().optional(),
  assignedLabels: z.array(z.object({ name: z.string() }).loose()).optional(),
  executors: z.array(ExecutorSchema).optional(),
  oneOffExecutors: z.array(ExecutorSchema).optional(),
}).loose();
type Computer = z.output<typeof ComputerSchema>;

/** Jenkins's strongest signal: the computer idle, and every executor and one-off executor idle with no current executable. */
export function computerIdle(c: Computer): boolean {
  return c.idle === true && [...(c.executors ?? []), ...(c.oneOffExecutors ?? [])].every((e) => e.idle === true && !e.currentExecutable);
}
const ComputersSchema = z.object({ computer: z.array(ComputerSchema) }).loose();
const CrumbSchema = z.object({ crumb: z.string(), crumbRequestField: z.string() }).loose();

/** The label expression a queue item waits for, from the task or from Jenkins's `why` text. */
export function queueLabel(item: { why?: string | null | undefined; task?: { labelExpression?: string | undefined; assignedLabel?: { name: string } | null | undefined } | undefined }): string {
  if (item.task?.labelExpression) return item.task.labelExpression;
  if (item.task?.assignedLabel?.name) return item.task.assignedLabel.name;
  const why = item.why ?? '';
  const m = /(?:label|executor on) ‘(.+?)’/.exec(why) ?? /(?:label|executor on) '(.+?)'/.exec(why);
  return m?.[1] ?? '';
}

const QUEUE_TREE = 'items[id,inQueueSince,why,task[name,url,labelExpression,assignedLabel[name]]]';
const EXECUTORS = 'executors[idle,currentExecutable[url,timestamp]],oneOffExecutors[idle,currentExecutable[url,timestamp]]';
const COMPUTER_FIELDS = `displayName,description,offline,temporarilyOffline,idle,numExecutors,assignedLabels[name],${EXECUTORS}`;
const COMPUTER_TREE = `computer[${COMPUTER_FIELDS}]`;

export class JenkinsEmitter implements Emitter {
  readonly kind = 'jenkins' as const;
  readonly name: string;
  readonly http: HttpClient;
  private readonly base: string;
  private readonly auth: string;

  constructor(
    private readonly cfg: JenkinsConfig,
    user: string,
    private readonly token: string,
    http?: HttpClient,
    private readonly clock: () => number = Date.now,
  ) {
    this.name = cfg.name;
    this.base = cfg.url.replace(/\/$/, '');
    this.auth = `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
    this.http = http ?? HttpClient.forEmitter(cfg);
  }

  private async call(method: string, path: string, opts: { form?: Record<string, string>; accept404?: boolean } = {}): Promise<Response> {
    const headers: Record<string, string> = { authorization: this.auth, accept: 'application/json' };
    if (method !== 'GET' && this.cfg.crumb) {
      const c = CrumbSchema.parse(await readJson(await this.ok('GET', '/crumbIssuer/api/json', await this.http.fetch(`${this.base}/crumbIssuer/api/json`, { headers: { authorization: this.auth } })), 'GET /crumbIssuer/api/json'));
      headers[c.crumbRequestField] = c.crumb;
    }
    let body: string | undefined;
    if (opts.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(opts.form).toString();
    }
    const res = await this.http.fetch(`${this.base}${path}`, { method, headers, redirect: 'manual', ...(body !== undefined ? { body } : {}) });
    if (opts.accept404 && res.status === 404) return res;
    return this.ok(method, path, res);
  }

  private async ok(method: string, path: string, res: Response): Promise<Response> {
    if (res.ok || res.status === 302 || res.status === 303) return res;
    throw await describeFailure(res, `${method} ${path.split('?')[0]}`);
  }

  private async getJson<T extends z.ZodType>(path: string, schema: T): Promise<z.output<T>> {
    const what = `GET ${path.split('?')[0]}`;
    const data = await readJson(await this.call('GET', path), what);
    const parsed = schema.safeParse(data);
    if (!parsed.success) throw new EmitterError(`${what}: unexpected response shape: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim());
    return parsed.data;
  }

  async probe(): Promise<ProbeResult> {
    const { t0, done } = beginProbe(this.name, this.clock, this.http, String);
    try {
      const [queue, computers] = await Promise.all([this.getJson(`/queue/api/json?tree=${encodeURIComponent(QUEUE_TREE)}`, QueueSchema), this.getJson(`/computer/api/json?tree=${encodeURIComponent(COMPUTER_TREE)}`, ComputersSchema)]);
      const jobs: Job[] = queue.items.map((q) => {
        const expr = queueLabel(q);
        return { id: String(q.id), labels: expr.split(/[^\w.:/-]+/).filter(Boolean), labelExpression: expr, status: 'queued', queuedAt: q.inQueueSince ?? t0 };
      });
      const runners: RunnerInfo[] = [];
      for (const c of computers.computer) {
        const pool = poolFromNote(c.description);
        if (!pool) continue;
        const building = [...(c.executors ?? []), ...(c.oneOffExecutors ?? [])].filter((e) => e.currentExecutable);
        building.forEach((e, i) => jobs.push({ id: `${c.displayName}#${i}`, labels: [], status: 'running', queuedAt: e.currentExecutable?.timestamp ?? t0, runner: c.displayName }));
        runners.push({ id: c.displayName, name: c.displayName, labels: (c.assignedLabels ?? []).map((l) => l.name).filter((l) => l !== c.displayName), pool, online: !c.offline, busy: !computerIdle(c), paused: c.temporarilyOffline ?? false });
      }
      return done({ ok: true, partial: false, jobs, runners });
    } catch (err) {
      return done({ ok: false, partial: false, reason: err instanceof EmitterError ? err.message : redact(String((err as Error).message), [this.token]), jobs: [], runners: [] });
    }
  }

  async register(req: RegisterRequest): Promise<RunnerCredential> {
    const json = {
      name: req.node,
      nodeDescription: markerNote(req.pool),
      numExecutors: String(req.jobsPerNode),
      remoteFS: '/var/lib/jenkins-agent',
      labelString: req.labels.join(' '),
      mode: req.acceptUntagged ? 'NORMAL' : 'EXCLUSIVE',
      type: 'hudson.slaves.DumbSlave',
      launcher: { 'stapler-class': 'hudson.slaves.JNLPLauncher', $class: 'hudson.slaves.JNLPLauncher', webSocket: true },
      retentionStrategy: { 'stapler-class': 'hudson.slaves.RetentionStrategy$Always', $class: 'hudson.slaves.RetentionStrategy$Always' },
      nodeProperties: { 'stapler-class-bag': 'true' },
    };
    await this.call('POST', `/computer/doCreateItem?name=${encodeURIComponent(req.node)}&type=hudson.slaves.DumbSlave`, { form: { name: req.node, type: 'hudson.slaves.DumbSlave', json: JSON.stringify(json) } });
    const jnlp = await (await this.call('GET', `/computer/${encodeURIComponent(req.node)}/jenkins-agent.jnlp`)).text();
    const secret = /<argument>([0-9a-f]{16,})<\/argument>/i.exec(jnlp)?.[1];
    if (!secret) throw new EmitterError(`GET /computer/${req.node}/jenkins-agent.jnlp: no agent secret in the response`);
    return { kind: 'jenkins', url: this.cfg.url, secret };
  }

  /** The node's computer when it exists and carries Parmanu's marker (an unmarked node of that name is never returned). */
  private async ownComputer(node: string): Promise<Computer | undefined> {
    const res = await this.call('GET', `/computer/${encodeURIComponent(node)}/api/json?tree=${encodeURIComponent(COMPUTER_FIELDS)}`, { accept404: true });
    if (res.status === 404) return undefined;
    const parsed = ComputerSchema.safeParse(await readJson(res, `GET /computer/${node}/api/json`));
    if (!parsed.success) throw new EmitterError(`GET /computer/${node}/api/json: unexpected response shape`);
    return poolFromNote(parsed.data.description) ? parsed.data : undefined;
  }

  async pause(node: string): Promise<void> {
    const c = await this.ownComputer(node);
    if (!c || c.temporarilyOffline) return;
    await this.call('POST', `/computer/${encodeURIComponent(node)}/toggleOffline?offlineMessage=${encodeURIComponent('Parmanu: draining before scale-down')}`, { accept404: true });
  }

  async resume(node: string): Promise<void> {
    const c = await this.ownComputer(node);
    if (!c || !c.temporarilyOffline) return;
    await this.call('POST', `/computer/${encodeURIComponent(node)}/toggleOffline`, { accept404: true });
  }

  async deregister(node: string): Promise<void> {
    if (!(await this.ownComputer(node))) return;
    await this.call('POST', `/computer/${encodeURIComponent(node)}/doDelete`, { accept404: true });
  }

  async isIdle(node: string): Promise<boolean> {
    const c = await this.ownComputer(node);
    return !c || computerIdle(c);
  }
}
