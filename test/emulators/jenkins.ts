/**
 * A Jenkins remote-API emulator, from Jenkins's docs and its JSON API: `/queue/api/json` (items
 * with `why`, `task`, `inQueueSince`), `/computer/api/json` (nodes, executors, labels),
 * `POST /computer/doCreateItem` (form: name, type, json), `/computer/NAME/jenkins-agent.jnlp`
 * (the agent secret as the first <argument>), `POST /computer/NAME/toggleOffline`,
 * `POST /computer/NAME/doDelete`, `/computer/NAME/api/json`, `/crumbIssuer/api/json`. HTTP Basic
 * auth with an API token (no crumb needed), or a crumb when `requireCrumb` is set.
 *
 * Computers carry `description` (the node description given at creation), `idle`, `executors` and
 * `oneOffExecutors` as Jenkins exports them. An executor that has been given work but whose build
 * does not exist yet is `idle: false` with `currentExecutable: null` (`assign(name)`, then
 * `startBuild(name)`). Jenkins exports no connect time, so a node that never connected looks like
 * one that went offline.
 */
import { createHash } from 'node:crypto';
import { Emulator, type EmuRequest, type EmuResponse } from './base.js';

export interface JQueueItem { id: number; why: string; inQueueSince: number; task: { name: string; url: string; _class: string; labelExpression?: string } }
export interface JNode {
  name: string;
  labels: string[];
  numExecutors: number;
  online: boolean;
  temporarilyOffline: boolean;
  /** Executors running a build (a current executable). */
  busyExecutors: number;
  secret: string;
  /** The node description (`nodeDescription` at creation). */
  description?: string;
  /** Executors given work whose build does not exist yet: idle false, no current executable. */
  assigned?: number;
  /** Flyweight tasks (a pipeline's top level) running on the node's one-off executors. */
  oneOff?: number;
}

export class JenkinsEmulator extends Emulator {
  user = 'parmanu';
  token = '11EMULATORAPITOKEN00000000000000';
  requireCrumb = false;
  crumb = 'crumb-EMULATED';
  queue: JQueueItem[] = [];
  nodes: JNode[] = [];
  private nextId = 100;
  private readonly building: Array<{ node: string; id: string }> = [];

  constructor() {
    super();
    this.route('GET', /^\/queue\/api\/json$/, () => ({ status: 200, body: { _class: 'hudson.model.Queue', discoverableItems: [], items: this.queue.map((q) => ({ _class: 'hudson.model.Queue$BuildableItem', id: q.id, blocked: false, buildable: true, stuck: false, inQueueSince: q.inQueueSince, why: q.why, task: q.task, url: `queue/item/${q.id}/` })) } }));
    this.route('GET', /^\/computer\/api\/json$/, () => ({ status: 200, body: { _class: 'hudson.model.ComputerSet', busyExecutors: 0, computer: [{ _class: 'hudson.model.Hudson$MasterComputer', displayName: 'Built-In Node', offline: false, temporarilyOffline: false, idle: true, numExecutors: 0, assignedLabels: [{ name: 'built-in' }], executors: [] }, ...this.nodes.map((n) => this.computerBody(n))] } }));
    this.route('GET', /^\/computer\/([^/]+)\/api\/json$/, (r) => this.withNode(r, (n) => ({ status: 200, body: this.computerBody(n) })));
    this.route('POST', /^\/computer\/doCreateItem$/, (r) => this.create(r));
    this.route('GET', /^\/computer\/([^/]+)\/jenkins-agent\.jnlp$/, (r) =>
      this.withNode(r, (n) => ({ status: 200, headers: { 'content-type': 'application/x-java-jnlp-file' }, raw: `<?xml version="1.0" encoding="UTF-8"?><jnlp codebase="${this.url}/computer/${n.name}/" spec="1.0+"><information><title>Agent for ${n.name}</title></information><application-desc main-class="hudson.remoting.jnlp.Main"><argument>${n.secret}</argument><argument>${n.name}</argument><argument>-url</argument><argument>${this.url}/</argument></application-desc></jnlp>` })),
    );
    this.route('POST', /^\/computer\/([^/]+)\/toggleOffline$/, (r) => this.withNode(r, (n) => {
      this.touch(n.name, r);
      n.temporarilyOffline = !n.temporarilyOffline;
      return { status: 302, headers: { location: `${this.url}/computer/${n.name}/` }, raw: '' };
    }));
    this.route('POST', /^\/computer\/([^/]+)\/doDelete$/, (r) => this.withNode(r, (n) => {
      this.touch(n.name, r);
      // Jenkins deletes a busy node (its builds are aborted): the removal is recorded as busy.
      this.recordRemoval(n.name, this.runningOn(n.name));
      this.nodes = this.nodes.filter((x) => x !== n);
      return { status: 302, headers: { location: `${this.url}/computer/` }, raw: '' };
    }));
    this.route('GET', /^\/crumbIssuer\/api\/json$/, () => ({ status: 200, body: { _class: 'hudson.security.csrf.DefaultCrumbIssuer', crumb: this.crumb, crumbRequestField: 'Jenkins-Crumb' } }));
  }

  protected authorize(req: EmuRequest): EmuResponse | undefined {
    const expected = `Basic ${Buffer.from(`${this.user}:${this.token}`).toString('base64')}`;
    if (req.headers.authorization !== expected) return { status: 401, headers: { 'content-type': 'text/html;charset=utf-8', 'www-authenticate': 'Basic realm="Jenkins"' }, raw: '<html><head><title>Error 401 Unauthorized</title></head><body><h2>HTTP ERROR 401 Unauthorized</h2></body></html>' };
    if (this.requireCrumb && req.method === 'POST' && req.headers['jenkins-crumb'] !== this.crumb) return { status: 403, headers: { 'content-type': 'text/html;charset=utf-8' }, raw: '<html><body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2></body></html>' };
    return undefined;
  }

  // ------------------------------------------------------------------ state helpers for tests
  enqueue(label: string | undefined, pipeline = false): JQueueItem {
    const id = this.nextId++;
    const item: JQueueItem = pipeline
      ? { id, inQueueSince: Date.now() - 20_000, why: label ? `Waiting for next available executor on ‘${label}’` : 'Waiting for next available executor', task: { _class: 'org.jenkinsci.plugins.workflow.support.steps.ExecutorStepExecution$PlaceholderTask', name: `part of pipeline #${id}`, url: `job/pipe/${id}/` } }
      : { id, inQueueSince: Date.now() - 20_000, why: label ? `There are no nodes with the label ‘${label}’` : 'Waiting for next available executor', task: { _class: 'hudson.model.FreeStyleProject', name: `build-${id}`, url: `job/build-${id}/`, ...(label ? { labelExpression: label } : {}) } };
    this.queue.push(item);
    return item;
  }
  node(name: string): JNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }
  /** The agent of the node connected (its machine booted). */
  connect(name: string): JNode {
    const n = this.must(name);
    n.online = true;
    return n;
  }
  /** The agent's machine stopped (standby): the agent is gone, the node stays (its secret too); `connect` again when it starts. */
  disconnect(name: string): JNode {
    const n = this.must(name);
    n.online = false;
    return n;
  }
  /** A node someone made by hand (description as given, none by default), online. */
  addNode(name: string, extra: Partial<JNode> = {}): JNode {
    const n: JNode = { name, labels: [], numExecutors: 1, online: true, temporarilyOffline: false, busyExecutors: 0, secret: this.issue(createHash('sha256').update(`secret:${name}`).digest('hex')), description: '', ...extra };
    this.nodes.push(n);
    return n;
  }
  /** Work given to an executor of the node before its build exists (idle false, no current executable). */
  assign(name: string): void {
    const n = this.must(name);
    n.assigned = (n.assigned ?? 0) + 1;
  }
  /** A build starts on the node (taking an assigned executor if there is one); returns the build id. */
  startBuild(name: string): string {
    const n = this.must(name);
    if ((n.assigned ?? 0) > 0) n.assigned = (n.assigned ?? 0) - 1;
    n.busyExecutors++;
    const id = `${name}#${this.nextId++}`;
    this.building.push({ node: name, id });
    this.recordStart(id, name);
    return id;
  }
  /** A build on the node ends (the oldest, or the one given). */
  finishBuild(name: string, id?: string): void {
    const n = this.must(name);
    const i = this.building.findIndex((b) => b.node === name && (id === undefined || b.id === id));
    if (i >= 0) {
      this.recordEnd((this.building[i] as { id: string }).id);
      this.building.splice(i, 1);
    }
    if (n.busyExecutors > 0) n.busyExecutors--;
  }
  /** What runs on the node now, from its state: builds, assigned work and one-off tasks. */
  runningOn(name: string): string[] {
    const n = this.node(name);
    if (!n) return [];
    const builds = this.building.filter((b) => b.node === name).map((b) => b.id);
    const untracked = Math.max(0, n.busyExecutors - builds.length);
    return [...builds, ...Array.from({ length: untracked }, (_, i) => `${name}#build${i}`), ...Array.from({ length: n.assigned ?? 0 }, (_, i) => `${name}#assigned${i}`), ...Array.from({ length: n.oneOff ?? 0 }, (_, i) => `${name}#oneoff${i}`)];
  }
  private must(name: string): JNode {
    const n = this.node(name);
    if (!n) throw new Error(`jenkins emulator: no node ${name}`);
    return n;
  }

  private withNode(r: EmuRequest, f: (n: JNode) => EmuResponse): EmuResponse {
    const n = this.node(r.params[0] ?? '');
    return n ? f(n) : { status: 404, headers: { 'content-type': 'text/html;charset=utf-8' }, raw: '<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>' };
  }
  private computerBody(n: JNode) {
    const assigned = n.assigned ?? 0;
    const build = (i: number) => ({ _class: 'hudson.model.FreeStyleBuild', url: `${this.url}/job/x/${i}/`, timestamp: Date.now() - 5000 });
    const executors = Array.from({ length: Math.max(n.numExecutors, n.busyExecutors + assigned) }, (_, i) => (i < n.busyExecutors ? { idle: false, currentExecutable: build(i) } : i < n.busyExecutors + assigned ? { idle: false, currentExecutable: null } : { idle: true, currentExecutable: null }));
    const oneOffExecutors = Array.from({ length: n.oneOff ?? 0 }, (_, i) => ({ idle: false, currentExecutable: { _class: 'org.jenkinsci.plugins.workflow.job.WorkflowRun', url: `${this.url}/job/pipe/${i}/`, timestamp: Date.now() - 5000 } }));
    const idle = n.busyExecutors === 0 && assigned === 0 && oneOffExecutors.length === 0;
    return { _class: 'hudson.slaves.SlaveComputer', displayName: n.name, description: n.description ?? '', offline: !n.online, temporarilyOffline: n.temporarilyOffline, idle, numExecutors: n.numExecutors, assignedLabels: [...n.labels, n.name].map((name) => ({ name })), executors, oneOffExecutors, launchSupported: false, manualLaunchAllowed: true, offlineCauseReason: '' };
  }
  private create(r: EmuRequest): EmuResponse {
    const b = (r.body ?? {}) as Record<string, string>;
    const name = b.name ?? r.query.get('name') ?? '';
    if (!name) return { status: 400, raw: 'name is required', headers: { 'content-type': 'text/plain' } };
    if (this.node(name)) return { status: 400, raw: `Agent called ‘${name}’ already exists`, headers: { 'content-type': 'text/plain' } };
    let json: { numExecutors?: string | number; labelString?: string; nodeDescription?: string; launcher?: { 'stapler-class'?: string; webSocket?: boolean } } = {};
    try {
      json = JSON.parse(b.json ?? '{}') as typeof json;
    } catch {
      return { status: 400, raw: 'malformed json', headers: { 'content-type': 'text/plain' } };
    }
    if (json.launcher?.['stapler-class'] !== 'hudson.slaves.JNLPLauncher') return { status: 400, raw: 'only inbound agents are supported here', headers: { 'content-type': 'text/plain' } };
    this.nodes.push({ name, labels: (json.labelString ?? '').split(/\s+/).filter(Boolean), numExecutors: Number(json.numExecutors ?? 1), online: false, temporarilyOffline: false, busyExecutors: 0, secret: this.issue(createHash('sha256').update(`secret:${name}`).digest('hex'), name), description: json.nodeDescription ?? '' });
    return { status: 302, headers: { location: `${this.url}/computer/` }, raw: '' };
  }
}
