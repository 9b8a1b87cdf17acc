/**
 * The discrete-event simulator of one pool: jobs arrive from a trace, wait FIFO for a free slot on
 * a node that is booted and not draining, and run for their duration. Every `probeMs` a controller
 * sees what a probe would (queued, running, the nodes and their runners) and answers with actions;
 * created nodes boot for `bootMs`. The same engine runs Parmanu's `decide` and the baselines, so
 * they are compared on identical mechanics.
 */
import type { NodeView } from '../decide/types.js';

export interface SimJob {
  queuedAt: number;
  durationMs: number;
}

export interface ProbeState {
  now: number;
  queued: number;
  running: number;
  /** Jobs that arrived since the previous probe (what a probe sees as new job ids). */
  arrived: number;
  nodes: NodeView[];
}

export interface Actions {
  create: string[];
  drain: string[];
  destroy: string[];
  resume: string[];
}

export interface Controller {
  probe(state: ProbeState): Actions;
}

export interface EngineOptions {
  jobsPerNode: number;
  ephemeral: boolean;
  bootMs: number;
  probeMs: number;
  /** Nodes that exist, booted, from the start (staticPeak). */
  initialNodes?: number;
}

export interface EngineResult {
  /** Wait of each job in seconds, in trace order. */
  waitsS: Float64Array;
  nodeMinutes: number;
  peakNodes: number;
  /** Nodes the controller created during the trace (nodes that exist from the start not counted). */
  scaleUps: number;
  /** Nodes destroyed during the trace (destroys the engine refused not counted). */
  scaleDowns: number;
  /** Probes whose actions created at least one node. */
  scaleUpEvents: number;
  /** Probes whose actions destroyed at least one node. */
  scaleDownEvents: number;
  /** Destroys of a busy node that the engine refused: must stay 0. */
  busyDestroys: number;
  startAt: number;
  endAt: number;
}

interface SimNode {
  name: string;
  createdAt: number;
  readyAt: number;
  ready: boolean;
  drainingSince: number | undefined;
  busy: number;
  jobsStarted: number;
  lastBusyAt: number | undefined;
  alive: boolean;
}

/** Min-heap of timed events; at equal times completions come before boots. */
class EventHeap {
  private t: number[] = [];
  private kind: number[] = [];
  private node: SimNode[] = [];
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
  }
  push(t: number, kind: number, node: SimNode): void {
    this.t.push(t);
    this.kind.push(kind);
    this.node.push(node);
    let i = this.t.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { t: number; kind: number; node: SimNode } {
    const top = { t: this.t[0] as number, kind: this.kind[0] as number, node: this.node[0] as SimNode };
    const last = this.t.length - 1;
    this.swap(0, last);
    this.t.pop();
    this.kind.pop();
    this.node.pop();
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

export function runEngine(jobs: readonly SimJob[], controller: Controller | undefined, opts: EngineOptions): EngineResult {
  const n = jobs.length;
  const waitsS = new Float64Array(n);
  if (n === 0) return { waitsS, nodeMinutes: 0, peakNodes: 0, scaleUps: 0, scaleDowns: 0, scaleUpEvents: 0, scaleDownEvents: 0, busyDestroys: 0, startAt: 0, endAt: 0 };
  const J = opts.ephemeral ? 1 : opts.jobsPerNode;
  const startAt = (jobs[0] as SimJob).queuedAt;
  const heap = new EventHeap();
  const nodes: SimNode[] = [];
  const byName = new Map<string, SimNode>();
  const waiting: number[] = [];
  let waitHead = 0;
  let running = 0;
  let live = 0;
  let peakNodes = 0;
  let nodeMs = 0;
  let scaleUps = 0;
  let scaleDowns = 0;
  let scaleUpEvents = 0;
  let scaleDownEvents = 0;
  let busyDestroys = 0;

  const addNode = (name: string, t: number, readyAt: number) => {
    const node: SimNode = { name, createdAt: t, readyAt, ready: readyAt <= t, drainingSince: undefined, busy: 0, jobsStarted: 0, lastBusyAt: undefined, alive: true };
    nodes.push(node);
    byName.set(name, node);
    live++;
    if (live > peakNodes) peakNodes = live;
    if (!node.ready) heap.push(readyAt, READY, node);
  };
  for (let i = 0; i < (opts.initialNodes ?? 0); i++) addNode(`static-${i}`, startAt, startAt);

  const pick = (): SimNode | undefined => {
    let best: SimNode | undefined;
    for (const node of nodes) {
      if (!node.alive || !node.ready || node.drainingSince !== undefined || node.busy >= J) continue;
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

  let ai = 0;
  let arrivedSinceProbe = 0;
  let nextProbe = controller ? Math.floor(startAt / opts.probeMs) * opts.probeMs : Infinity;
  let now = startAt;
  for (;;) {
    if (ai >= n && waitHead >= waiting.length && running === 0) break;
    const tA = ai < n ? (jobs[ai] as SimJob).queuedAt : Infinity;
    const tH = heap.peekTime();
    if (tH <= tA && tH <= nextProbe) {
      const e = heap.pop();
      now = e.t;
      if (!e.node.alive) continue;
      if (e.kind === COMPLETE) {
        e.node.busy--;
        e.node.lastBusyAt = now;
        running--;
      } else e.node.ready = true;
      dispatch(now);
    } else if (tA <= nextProbe) {
      now = tA;
      waiting.push(ai++);
      arrivedSinceProbe++;
      dispatch(now);
    } else {
      now = nextProbe;
      nextProbe += opts.probeMs;
      const views: NodeView[] = [];
      for (const node of nodes) {
        if (!node.alive) continue;
        const v: NodeView = { name: node.name, createdAt: node.createdAt };
        if (node.drainingSince !== undefined) v.drainingSince = node.drainingSince;
        if (node.ready) v.runner = { online: true, busy: node.busy > 0, paused: node.drainingSince !== undefined, jobsStarted: node.jobsStarted };
        if (node.lastBusyAt !== undefined) v.lastBusyAt = node.lastBusyAt;
        views.push(v);
      }
      const a = (controller as Controller).probe({ now, queued: waiting.length - waitHead, running, arrived: arrivedSinceProbe, nodes: views });
      arrivedSinceProbe = 0;
      let destroyed = 0;
      for (const name of a.destroy) {
        const node = byName.get(name);
        if (!node?.alive) continue;
        if (node.busy > 0) {
          busyDestroys++;
          continue;
        }
        node.alive = false;
        byName.delete(name);
        live--;
        destroyed++;
        nodeMs += now - node.createdAt;
      }
      for (const name of a.drain) {
        const node = byName.get(name);
        if (node && node.drainingSince === undefined) node.drainingSince = now;
      }
      for (const name of a.resume) {
        const node = byName.get(name);
        if (node) node.drainingSince = undefined;
      }
      for (const name of a.create) addNode(name, now, now + opts.bootMs);
      scaleUps += a.create.length;
      scaleDowns += destroyed;
      if (a.create.length) scaleUpEvents++;
      if (destroyed) scaleDownEvents++;
      if (destroyed) compact();
      dispatch(now);
    }
  }
  function compact() {
    if (nodes.length > 4 * live + 16) {
      const keep = nodes.filter((x) => x.alive);
      nodes.length = 0;
      nodes.push(...keep);
    }
  }
  for (const node of nodes) if (node.alive) nodeMs += now - node.createdAt;
  return { waitsS, nodeMinutes: nodeMs / 60_000, peakNodes, scaleUps, scaleDowns, scaleUpEvents, scaleDownEvents, busyDestroys, startAt, endAt: now };
}
