/**
 * The discrete-event simulator of one pool: jobs arrive from a trace, wait FIFO for a free slot on
 * a node that is booted, running and not draining, and run for their duration. Every `probeMs` a
 * controller sees what a probe would (queued, running, the nodes and their runners) and answers
 * with actions; with the `webhook` signal it is also asked right when a job is queued (after
 * `webhookLatencyMs`; a burst of events makes one such cycle, like the receiver's debounce), with
 * `growOnly` set. Created nodes boot for `bootMs`; a stopped (standby) node that is started comes
 * online after `resumeMs`. The same engine runs Parmanu's `decide` and the baselines, so they are
 * compared on identical mechanics.
 *
 * Cost: a node counts node-minutes while it is powered on (booting, starting, idle or busy), and
 * standby minutes while it is stopped; the caller weighs the latter at the stopped fraction.
 */
import type { DrainReason, NodeView } from '../decide/types.js';

export interface SimJob {
  queuedAt: number;
  durationMs: number;
}

export interface ProbeState {
  now: number;
  queued: number;
  running: number;
  /** Jobs that arrived since the previous cycle (what a probe sees as new job ids). */
  arrived: number;
  nodes: NodeView[];
  /** A cycle driven by a webhook event (the `webhook` signal): scale-up only. */
  growOnly?: boolean;
}

export interface Actions {
  create: string[];
  drain: string[];
  destroy: string[];
  resume: string[];
  /** Stopped (standby) nodes to start: online after `resumeMs`. */
  start?: string[];
  /** Idle nodes to stop into standby (a busy one is refused and counted). */
  stop?: string[];
  /** Why each newly drained node drains (fed back as NodeView.drainReason). */
  drainReasons?: Record<string, DrainReason>;
}

export interface Controller {
  probe(state: ProbeState): Actions;
}

export type Signal = 'poll' | 'webhook';

export interface EngineOptions {
  jobsPerNode: number;
  ephemeral: boolean;
  bootMs: number;
  probeMs: number;
  /** Nodes that exist, booted, from the start (staticPeak). */
  initialNodes?: number;
  /** `poll` (default): the controller runs every probeMs; `webhook`: also when a job is queued. */
  signal?: Signal;
  /** Delay from a job being queued to the webhook cycle (default 2 s). */
  webhookLatencyMs?: number;
  /** Time a started standby node takes to come online (default bootMs). */
  resumeMs?: number;
}

export interface EngineResult {
  /** Wait of each job in seconds, in trace order. */
  waitsS: Float64Array;
  /** Minutes of powered-on nodes (booting, starting, idle, busy). */
  nodeMinutes: number;
  /** Minutes of stopped (standby) nodes. */
  standbyMinutes: number;
  /** Most powered-on nodes at once (stopped ones not counted). */
  peakNodes: number;
  /** Nodes the controller created during the trace (nodes that exist from the start not counted). */
  scaleUps: number;
  /** Nodes destroyed during the trace (destroys the engine refused not counted). */
  scaleDowns: number;
  /** Cycles whose actions created or started at least one node. */
  scaleUpEvents: number;
  /** Cycles whose actions destroyed or stopped at least one node. */
  scaleDownEvents: number;
  /** Standby nodes started. */
  starts: number;
  /** Nodes stopped into standby. */
  stops: number;
  /** Destroys of a busy node that the engine refused: must stay 0. */
  busyDestroys: number;
  /** Stops of a busy node that the engine refused: must stay 0. */
  busyStops: number;
  startAt: number;
  endAt: number;
}

interface SimNode {
  name: string;
  createdAt: number;
  readyAt: number;
  ready: boolean;
  /** Powered off (standby): never capacity. */
  stopped: boolean;
  /** Since when it is powered on (created or started) or stopped: the cost clock. */
  powerSince: number;
  /** When it was last started from standby. */
  startedAt: number | undefined;
  /** Bumped on every start and stop: a READY event of an earlier power-on is stale. */
  epoch: number;
  drainingSince: number | undefined;
  drainReason: DrainReason | undefined;
  busy: number;
  jobsStarted: number;
  lastBusyAt: number | undefined;
  seenRunner: boolean;
  alive: boolean;
}

/** Min-heap of timed events; at equal times completions come before boots. */
class EventHeap {
  private t: number[] = [];
  private kind: number[] = [];
  private node: SimNode[] = [];
  private epoch: number[] = [];
  get size(): number {
    return this.t.length;
  }
  peekTime(): number {
    return this.t.length ? (this.t[0] as number) : Infinity;
  }
  private less(i: number, j: number): boolean {
    const a = this.t[i] as number;
    const b = this.t[j] as number;
    return a < b || (a === b && (this.kind[i] as number) < (this.kind[j] as number));
  }
  private swap(i: number, j: number): void {
    [this.t[i], this.t[j]] = [this.t[j] as number, this.t[i] as number];
    [this.kind[i], this.kind[j]] = [this.kind[j] as number, this.kind[i] as number];
    [this.node[i], this.node[j]] = [this.node[j] as SimNode, this.node[i] as SimNode];
    [this.epoch[i], this.epoch[j]] = [this.epoch[j] as number, this.epoch[i] as number];
  }
  push(t: number, kind: number, node: SimNode): void {
    this.t.push(t);
    this.kind.push(kind);
    this.node.push(node);
    this.epoch.push(node.epoch);
    let i = this.t.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { t: number; kind: number; node: SimNode; epoch: number } {
    const top = { t: this.t[0] as number, kind: this.kind[0] as number, node: this.node[0] as SimNode, epoch: this.epoch[0] as number };
    const last = this.t.length - 1;
    this.swap(0, last);
    this.t.pop();
    this.kind.pop();
    this.node.pop();
    this.epoch.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.t.length && this.less(l, m)) m = l;
      if (r < this.t.length && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

const COMPLETE = 0;
const READY = 1;

/** Delay from a job being queued to its webhook cycle, when none is given. */
export const DEFAULT_WEBHOOK_LATENCY_MS = 2000;

export function runEngine(jobs: readonly SimJob[], controller: Controller | undefined, opts: EngineOptions): EngineResult {
  const n = jobs.length;
  const waitsS = new Float64Array(n);
  if (n === 0) return { waitsS, nodeMinutes: 0, standbyMinutes: 0, peakNodes: 0, scaleUps: 0, scaleDowns: 0, scaleUpEvents: 0, scaleDownEvents: 0, starts: 0, stops: 0, busyDestroys: 0, busyStops: 0, startAt: 0, endAt: 0 };
  const J = opts.ephemeral ? 1 : opts.jobsPerNode;
  const resumeMs = opts.resumeMs ?? opts.bootMs;
  const webhook = controller !== undefined && opts.signal === 'webhook';
  const latencyMs = opts.webhookLatencyMs ?? DEFAULT_WEBHOOK_LATENCY_MS;
  const startAt = (jobs[0] as SimJob).queuedAt;
  const heap = new EventHeap();
  const nodes: SimNode[] = [];
  const byName = new Map<string, SimNode>();
  const waiting: number[] = [];
  let waitHead = 0;
  let running = 0;
  /** Powered-on nodes. */
  let powered = 0;
  let live = 0;
  let peakNodes = 0;
  let nodeMs = 0;
  let standbyMs = 0;
  let scaleUps = 0;
  let scaleDowns = 0;
  let scaleUpEvents = 0;
  let scaleDownEvents = 0;
  let starts = 0;
  let stops = 0;
  let busyDestroys = 0;
  let busyStops = 0;

  const powerOn = (node: SimNode, t: number, readyAt: number) => {
    node.ready = readyAt <= t;
    node.readyAt = readyAt;
    node.powerSince = t;
    powered++;
    if (powered > peakNodes) peakNodes = powered;
    if (!node.ready) heap.push(readyAt, READY, node);
  };
  const addNode = (name: string, t: number, readyAt: number) => {
    const node: SimNode = { name, createdAt: t, readyAt, ready: false, stopped: false, powerSince: t, startedAt: undefined, epoch: 0, drainingSince: undefined, drainReason: undefined, busy: 0, jobsStarted: 0, lastBusyAt: undefined, seenRunner: false, alive: true };
    nodes.push(node);
    byName.set(name, node);
    live++;
    powerOn(node, t, readyAt);
  };
  /** Adds the node's cost since its last power change. */
  const settle = (node: SimNode, t: number) => {
    if (node.stopped) standbyMs += t - node.powerSince;
    else nodeMs += t - node.powerSince;
    node.powerSince = t;
  };
  for (let i = 0; i < (opts.initialNodes ?? 0); i++) addNode(`static-${i}`, startAt, startAt);

  const pick = (): SimNode | undefined => {
    let best: SimNode | undefined;
    for (const node of nodes) {
      if (!node.alive || !node.ready || node.stopped || node.drainingSince !== undefined || node.busy >= J) continue;
      if (opts.ephemeral && node.jobsStarted > 0) continue;
      if (!best || node.busy > best.busy) best = node;
    }
    return best;
  };
  const dispatch = (t: number) => {
    while (waitHead < waiting.length) {
      const node = pick();
      if (!node) return;
      const j = waiting[waitHead++] as number;
      const job = jobs[j] as SimJob;
      waitsS[j] = (t - job.queuedAt) / 1000;
      node.busy++;
      node.jobsStarted++;
      node.lastBusyAt = t;
      running++;
      heap.push(t + job.durationMs, COMPLETE, node);
    }
  };

  /** What a probe sees of the pool's nodes. */
  const views = (): NodeView[] => {
    const out: NodeView[] = [];
    for (const node of nodes) {
      if (!node.alive) continue;
      const v: NodeView = { name: node.name, createdAt: node.createdAt };
      if (node.drainingSince !== undefined) v.drainingSince = node.drainingSince;
      if (node.drainReason !== undefined) v.drainReason = node.drainReason;
      if (node.startedAt !== undefined) v.startedAt = node.startedAt;
      if (node.stopped) {
        v.power = 'stopped';
        // A stopped node's runner stays registered, paused and offline (GitLab's paused runner; a
        // JIT runner gets a new registration on start).
        v.runner = { online: false, busy: false, paused: true, jobsStarted: node.jobsStarted };
      } else {
        v.power = 'running';
        if (node.ready) {
          v.runner = { online: true, busy: node.busy > 0, paused: node.drainingSince !== undefined, jobsStarted: node.jobsStarted };
          v.onlineAt = node.readyAt;
        }
      }
      if (node.seenRunner) v.seenRunner = true;
      if (node.lastBusyAt !== undefined) v.lastBusyAt = node.lastBusyAt;
      out.push(v);
    }
    return out;
  };

  const cycle = (now: number, growOnly: boolean) => {
    const state: ProbeState = { now, queued: waiting.length - waitHead, running, arrived: arrivedSinceProbe, nodes: views() };
    if (growOnly) state.growOnly = true;
    const a = (controller as Controller).probe(state);
    arrivedSinceProbe = 0;
    let destroyed = 0;
    for (const name of a.destroy) {
      const node = byName.get(name);
      if (!node?.alive) continue;
      if (node.busy > 0) {
        busyDestroys++;
        continue;
      }
      settle(node, now);
      if (!node.stopped) powered--;
      node.alive = false;
      byName.delete(name);
      live--;
      destroyed++;
    }
    let stopped = 0;
    for (const name of a.stop ?? []) {
      const node = byName.get(name);
      if (!node?.alive || node.stopped) continue;
      if (node.busy > 0) {
        busyStops++;
        continue;
      }
      settle(node, now);
      node.stopped = true;
      node.ready = false;
      node.epoch++;
      powered--;
      stopped++;
    }
    for (const name of a.drain) {
      const node = byName.get(name);
      if (node && node.drainingSince === undefined) {
        node.drainingSince = now;
        node.drainReason = a.drainReasons?.[name];
      }
    }
    for (const name of a.resume) {
      const node = byName.get(name);
      if (node && !node.stopped) {
        node.drainingSince = undefined;
        node.drainReason = undefined;
      }
    }
    let started = 0;
    for (const name of a.start ?? []) {
      const node = byName.get(name);
      if (!node?.alive || !node.stopped) continue;
      settle(node, now);
      node.stopped = false;
      node.epoch++;
      node.startedAt = now;
      node.drainingSince = undefined;
      node.drainReason = undefined;
      // A started runner is a fresh registration (GitHub: a new JIT config): its job count restarts.
      node.jobsStarted = 0;
      node.seenRunner = false;
      powerOn(node, now, now + resumeMs);
      started++;
    }
    for (const name of a.create) addNode(name, now, now + opts.bootMs);
    scaleUps += a.create.length;
    scaleDowns += destroyed;
    starts += started;
    stops += stopped;
    if (a.create.length || started) scaleUpEvents++;
    if (destroyed || stopped) scaleDownEvents++;
    if (destroyed) compact();
    dispatch(now);
  };

  let ai = 0;
  let arrivedSinceProbe = 0;
  let nextProbe = controller ? Math.floor(startAt / opts.probeMs) * opts.probeMs : Infinity;
  /** The pending webhook cycle (one at a time: the events of a burst make one cycle). */
  let nextHook = Infinity;
  let now = startAt;
  for (;;) {
    if (ai >= n && waitHead >= waiting.length && running === 0) break;
    const tA = ai < n ? (jobs[ai] as SimJob).queuedAt : Infinity;
    const tH = heap.peekTime();
    if (tH <= tA && tH <= nextProbe && tH <= nextHook) {
      const e = heap.pop();
      now = e.t;
      if (!e.node.alive) continue;
      if (e.kind === COMPLETE) {
        e.node.busy--;
        e.node.lastBusyAt = now;
        running--;
      } else if (e.epoch === e.node.epoch && !e.node.stopped) {
        e.node.ready = true;
        e.node.seenRunner = true;
      } else continue;
      dispatch(now);
    } else if (tA <= nextProbe && tA <= nextHook) {
      now = tA;
      waiting.push(ai++);
      arrivedSinceProbe++;
      dispatch(now);
      // Every queued job sends its event, also one an idle node took at once (decide may refill).
      if (webhook && nextHook === Infinity) nextHook = now + latencyMs;
    } else if (nextHook <= nextProbe) {
      now = nextHook;
      nextHook = Infinity;
      cycle(now, true);
    } else {
      now = nextProbe;
      nextProbe += opts.probeMs;
      cycle(now, false);
    }
  }
  function compact() {
    if (nodes.length > 4 * live + 16) {
      const keep = nodes.filter((x) => x.alive);
      nodes.length = 0;
      nodes.push(...keep);
    }
  }
  for (const node of nodes) if (node.alive) settle(node, now);
  return { waitsS, nodeMinutes: nodeMs / 60_000, standbyMinutes: standbyMs / 60_000, peakNodes, scaleUps, scaleDowns, scaleUpEvents, scaleDownEvents, starts, stops, busyDestroys, busyStops, startAt, endAt: now };
}
