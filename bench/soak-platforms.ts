/**
 * The CI platforms' side of the soak: what GitLab, GitHub and Jenkins do on their own between (and,
 * for the faults, inside) Parmanu's cycles. Queued jobs go to online, unpaused, idle runners that
 * carry Parmanu's marker and whose VM exists; jobs run for a few ticks; a VM that exists boots and
 * its runner connects (or never does: a broken node); a VM that is gone takes its runner offline
 * and its job with it. Every job goes through the emulators' own helpers, so that their job records
 * (which runner ran which job, when) are the independent truth the invariants are checked against.
 */
import type { GithubEmulator } from '../test/emulators/github.js';
import type { GitlabEmulator, GlProject } from '../test/emulators/gitlab.js';
import type { JenkinsEmulator } from '../test/emulators/jenkins.js';

export interface Platform {
  kind: 'gitlab' | 'github' | 'jenkins';
  /** A job for the pool's labels joins the queue. */
  addJob(pool: string): void;
  /** Ends the jobs whose time has come (and starts Jenkins builds assigned a tick ago). */
  finish(tick: number): void;
  /** Queued jobs go to free runners of the given nodes (VMs in state). */
  dispatch(tick: number, vms: ReadonlySet<string>, rand: () => number): void;
  /** The runner's VM is up: it connects. */
  connect(name: string): void;
  /** The runner's VM is gone: the runner is offline and its jobs die with it. */
  lose(name: string): void;
  /** A fault: a job lands on the runner now (if it is there to take one); true when it did. */
  land(name: string, tick: number, rand: () => number): boolean;
  /** The platform's own truth: the runner runs (or was given) a job now. */
  running(name: string): boolean;
  /** Names of runners carrying the marker of the pool. */
  marked(pool: string): Set<string>;
  /** Runners carrying any marker, with their online state. */
  online(name: string): boolean;
  /** Names a runner credential was handed out for. */
  credentials(): Set<string>;
  removedWhileBusy(): number;
  touched(name: string): number;
  /** Drops queued jobs of a pool that is gone (nothing will ever run them). */
  cancel(pool: string): void;
  /** Jobs queued or running on the platform. */
  work(): number;
}

const duration = (rand: () => number) => 1 + Math.floor(rand() * 4);

/** Finishes (and forgets) the active jobs whose end has come by `tick`. */
function finishDue(active: Array<{ id: number; end: number }>, tick: number, finishJob: (id: number) => void): void {
  for (let i = active.length - 1; i >= 0; i--) {
    const a = active[i] as { id: number; end: number };
    if (a.end > tick) continue;
    finishJob(a.id);
    active.splice(i, 1);
  }
}

export function gitlabPlatform(emu: GitlabEmulator, project: GlProject, labels: Record<string, string[]>): Platform {
  const active: Array<{ id: number; end: number }> = [];
  const marker = (pool: string) => `parmanu-pool=${pool}`;
  const isMarked = (note: string | null | undefined) => typeof note === 'string' && /^parmanu-pool=/m.test(note);
  return {
    kind: 'gitlab',
    addJob: (pool) => void emu.addJob(project, 'pending', labels[pool] ?? ['linux']),
    finish: (tick) => finishDue(active, tick, (id) => emu.finishJob(id)),
    dispatch(tick, vms, rand) {
      for (const j of emu.jobs.filter((x) => x.status === 'pending')) {
        const r = emu.runners.find((x) => isMarked(x.maintenance_note) && vms.has(x.description) && x.status === 'online' && !x.paused && j.tag_list.every((t) => x.tag_list.includes(t)) && emu.runningOn(x.description).length === 0);
        if (!r) continue;
        emu.jobs.splice(emu.jobs.indexOf(j), 1);
        active.push({ id: emu.startJob(r.description, project, j.tag_list).id, end: tick + duration(rand) });
      }
    },
    connect(name) {
      const r = emu.runnerNamed(name);
      if (r && isMarked(r.maintenance_note) && r.status !== 'online') emu.connect(name);
    },
    lose(name) {
      emu.finishJob(name, 'failed');
      const r = emu.runnerNamed(name);
      if (r && isMarked(r.maintenance_note)) r.status = 'offline';
    },
    land(name, tick, rand) {
      const r = emu.runnerNamed(name);
      if (!r || !isMarked(r.maintenance_note) || r.status !== 'online' || emu.runningOn(name).length) return false;
      active.push({ id: emu.startJob(name, project, r.tag_list).id, end: tick + duration(rand) });
      return true;
    },
    running: (name) => emu.runningOn(name).length > 0 || emu.jobRecords.some((j) => j.runner === name && j.end === undefined),
    marked: (pool) => new Set(emu.runners.filter((r) => (r.maintenance_note ?? '').split('\n').includes(marker(pool))).map((r) => r.description)),
    online: (name) => emu.runnerNamed(name)?.status === 'online',
    credentials: () => new Set(emu.credentials.map((c) => c.runner)),
    removedWhileBusy: () => emu.removedWhileBusy().length,
    touched: (name) => emu.touched(name).length,
    cancel(pool) {
      const tags = labels[pool] ?? [];
      for (const j of emu.jobs) if (j.status === 'pending' && j.tag_list.length === tags.length && tags.every((t) => j.tag_list.includes(t))) j.status = 'canceled';
    },
    work: () => emu.jobs.filter((j) => j.status === 'pending' || j.status === 'running').length,
  };
}

export function githubPlatform(emu: GithubEmulator, labels: Record<string, string[]>): Platform {
  const active: Array<{ id: number; end: number }> = [];
  const markerOf = (labelsOf: readonly string[]) => labelsOf.find((l) => l.startsWith('parmanu-pool-'));
  const runner = (name: string) => emu.runners.find((r) => r.name === name && markerOf(r.labels) !== undefined);
  return {
    kind: 'github',
    addJob: (pool) => void emu.addRun('api', [{ labels: ['self-hosted', ...(labels[pool] ?? ['linux'])] }]),
    finish: (tick) => finishDue(active, tick, (id) => emu.finishJob(id)),
    dispatch(tick, vms, rand) {
      for (const j of emu.jobs.filter((x) => x.status === 'queued')) {
        const r = emu.runners.find((x) => markerOf(x.labels) !== undefined && vms.has(x.name) && x.status === 'online' && j.labels.every((l) => x.labels.includes(l)) && emu.runningJobs(x.name).length === 0);
        if (!r) continue;
        emu.jobs.splice(emu.jobs.indexOf(j), 1);
        const run = emu.runs.findIndex((x) => x.id === j.run_id);
        if (run >= 0 && !emu.jobs.some((x) => x.run_id === j.run_id)) emu.runs.splice(run, 1);
        active.push({ id: emu.startJob(r.name, 'api', j.labels).id, end: tick + duration(rand) });
      }
    },
    connect(name) {
      const r = runner(name);
      if (r && r.status !== 'online') emu.connect(name);
    },
    lose(name) {
      for (const j of emu.runningJobs(name)) emu.finishJob(j.id);
      const r = runner(name);
      if (r) r.status = 'offline';
    },
    land(name, tick, rand) {
      const r = runner(name);
      if (!r || r.status !== 'online' || emu.runningJobs(name).length) return false;
      active.push({ id: emu.startJob(name, 'api', r.labels.filter((l) => !l.startsWith('parmanu-pool-'))).id, end: tick + duration(rand) });
      return true;
    },
    running: (name) => emu.runningJobs(name).length > 0 || emu.jobRecords.some((j) => j.runner === name && j.end === undefined),
    marked: (pool) => new Set(emu.runners.filter((r) => markerOf(r.labels) === `parmanu-pool-${pool}`).map((r) => r.name)),
    online: (name) => runner(name)?.status === 'online',
    credentials: () => new Set(emu.credentials.map((c) => c.runner)),
    removedWhileBusy: () => emu.removedWhileBusy().length,
    touched: (name) => emu.touched(name).length,
    cancel(pool) {
      const want = ['self-hosted', ...(labels[pool] ?? [])];
      emu.jobs.splice(0, emu.jobs.length, ...emu.jobs.filter((j) => j.status !== 'queued' || j.labels.length !== want.length || !want.every((l) => j.labels.includes(l))));
    },
    work: () => emu.jobs.filter((j) => j.status !== 'completed').length,
  };
}

export function jenkinsPlatform(emu: JenkinsEmulator, labels: Record<string, string[]>): Platform {
  const builds: Array<{ node: string; id: string; end: number }> = [];
  const assigned: Array<{ node: string; end: number }> = [];
  const isMarked = (d: string | undefined) => typeof d === 'string' && /^parmanu-pool=/m.test(d);
  const node = (name: string) => {
    const n = emu.node(name);
    return n && isMarked(n.description) ? n : undefined;
  };
  return {
    kind: 'jenkins',
    addJob: (pool) => void emu.enqueue((labels[pool] ?? ['linux'])[0]),
    finish(tick) {
      // Work assigned a tick ago becomes a build (the executor said idle: false before it existed).
      for (let i = assigned.length - 1; i >= 0; i--) {
        const a = assigned[i] as { node: string; end: number };
        assigned.splice(i, 1);
        const n = emu.node(a.node);
        if (n && (n.assigned ?? 0) > 0) builds.push({ node: a.node, id: emu.startBuild(a.node), end: a.end });
      }
      for (let i = builds.length - 1; i >= 0; i--) {
        const b = builds[i] as { node: string; id: string; end: number };
        if (b.end > tick) continue;
        builds.splice(i, 1);
        if (emu.node(b.node) && emu.runningOn(b.node).includes(b.id)) emu.finishBuild(b.node, b.id);
      }
    },
    dispatch(tick, vms, rand) {
      for (const q of [...emu.queue]) {
        const label = q.task.labelExpression;
        const n = emu.nodes.find((x) => isMarked(x.description) && vms.has(x.name) && x.online && !x.temporarilyOffline && (!label || x.labels.includes(label)) && emu.runningOn(x.name).length === 0);
        if (!n) continue;
        emu.queue.splice(emu.queue.indexOf(q), 1);
        if (rand() < 0.5) {
          emu.assign(n.name);
          assigned.push({ node: n.name, end: tick + 1 + duration(rand) });
        } else builds.push({ node: n.name, id: emu.startBuild(n.name), end: tick + duration(rand) });
      }
    },
    connect(name) {
      const n = node(name);
      if (n && !n.online) emu.connect(name);
    },
    lose(name) {
      const n = emu.node(name);
      if (!n || !isMarked(n.description)) return;
      for (let i = builds.length - 1; i >= 0; i--) {
        const b = builds[i] as { node: string; id: string };
        if (b.node !== name) continue;
        builds.splice(i, 1);
        if (emu.runningOn(name).includes(b.id)) emu.finishBuild(name, b.id);
      }
      n.assigned = 0;
      n.busyExecutors = 0;
      n.online = false;
    },
    land(name, tick, rand) {
      const n = node(name);
      if (!n || !n.online || emu.runningOn(name).length) return false;
      if (rand() < 0.5) {
        emu.assign(name);
        assigned.push({ node: name, end: tick + 1 + duration(rand) });
      } else builds.push({ node: name, id: emu.startBuild(name), end: tick + duration(rand) });
      return true;
    },
    running: (name) => emu.runningOn(name).length > 0 || emu.jobRecords.some((j) => j.runner === name && j.end === undefined),
    marked: (pool) => new Set(emu.nodes.filter((n) => n.description?.split('\n').includes(`parmanu-pool=${pool}`)).map((n) => n.name)),
    online: (name) => node(name)?.online === true,
    credentials: () => new Set(emu.credentials.map((c) => c.runner)),
    removedWhileBusy: () => emu.removedWhileBusy().length,
    touched: (name) => emu.touched(name).length,
    cancel(pool) {
      const label = (labels[pool] ?? [])[0];
      emu.queue.splice(0, emu.queue.length, ...emu.queue.filter((q) => q.task.labelExpression !== label));
    },
    work: () => emu.queue.length + emu.nodes.reduce((s, n) => s + emu.runningOn(n.name).length, 0),
  };
}
