/**
 * `npm run soak -- --cycles N --seed S [--json]`: reconcile cycles against the GitLab, GitHub and
 * Jenkins emulators, the local platform and a real Redis, with a seeded workload and injected
 * faults — emulator 5xx, timeouts, 429s and garbage; terraform failing mid-apply; Redis restarted;
 * a second reconciler racing for the leases; a reconciler killed with SIGKILL mid-cycle. After every
 * cycle the invariants are checked; after the faults stop, convergence is measured.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from '../src/cli/args.js';
import { UsageError, type Io } from '../src/cli/errors.js';
import { createEmitters } from '../src/emitters/index.js';
import { RedisHistoryStore } from '../src/history/redis.js';
import { loadPolicy } from '../src/policy/load.js';
import { poolDir, reconcileOnce, type CycleResult, type ReconcileDeps } from '../src/reconcile/cycle.js';
import { rng } from '../src/sim/generate.js';
import { Terraform } from '../src/terraform/runner.js';
import { readStateNodes } from '../src/terraform/state.js';
import { issuedSecrets } from '../test/emulators/base.js';
import { GithubEmulator } from '../test/emulators/github.js';
import { GitlabEmulator, type GlProject } from '../test/emulators/gitlab.js';
import { JenkinsEmulator } from '../test/emulators/jenkins.js';
import { startRedis } from '../test/redis-server.js';

const HELP = `Usage: npm run soak -- [--cycles 40] [--seed 7] [--json]

Runs reconcile cycles against emulated GitLab, GitHub and Jenkins, real terraform (local platform)
and a real redis-server, with a seeded workload and injected faults during the first 60% of the
cycles, then measures convergence. Needs terraform and redis-server on PATH.
--json prints {"cycles", "faults", "busyRunnersDeleted", "maxExceeded", "leakedVMs",
"orphanRunners", "convergedWithinCycles", "tokensInOutput"}. Exit 0 when every invariant held and
the fleet converged.`;

const FAULTS = ['gitlab-500', 'github-429', 'jenkins-timeout', 'gitlab-garbage', 'github-500', 'terraform-apply', 'redis-restart', 'race', 'sigkill'] as const;
type FaultKind = (typeof FAULTS)[number];

interface Platform {
  pool: string;
  addJob(): void;
  /** The platform hands queued jobs to online, unpaused, idle runners. */
  dispatch(): void;
  finish(rand: () => number): void;
  /** VMs that exist boot: their runner registers (GitHub) and comes online. */
  boot(nodes: string[]): void;
  busy(): Set<string>;
  runners(): Set<string>;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('soak', argv, { cycles: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const cycles = Number(values.cycles ?? 40);
  const seed = Number(values.seed ?? 7);
  if (!Number.isInteger(cycles) || cycles < 5 || cycles > 10_000) throw new UsageError('soak: --cycles must be a whole number from 5 to 10000');
  if (!Number.isInteger(seed)) throw new UsageError('soak: --seed must be a whole number');
  const r = await soak(cycles, seed, values.json ? undefined : (l) => io.err(l));
  if (values.json) io.out(JSON.stringify(r));
  else io.out(Object.entries(r).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
  const ok = r.busyRunnersDeleted === 0 && r.maxExceeded === 0 && r.leakedVMs === 0 && r.orphanRunners === 0 && r.tokensInOutput === 0 && r.convergedWithinCycles !== null;
  return ok ? 0 : 1;
}

export interface SoakResult {
  cycles: number;
  faults: number;
  faultsByKind: Record<string, number>;
  busyRunnersDeleted: number;
  maxExceeded: number;
  leakedVMs: number;
  orphanRunners: number;
  convergedWithinCycles: number | null;
  tokensInOutput: number;
  poolErrors: number;
}

export async function soak(cycles: number, seed: number, progress?: (line: string) => void): Promise<SoakResult> {
  const rand = rng(seed);
  const root = mkdtempSync(join(tmpdir(), 'parmanu-soak-'));
  const redis = await startRedis();
  const gl = await new GitlabEmulator().start();
  const gh = await new GithubEmulator().start();
  const jk = await new JenkinsEmulator().start();
  gl.strict = gh.strict = jk.strict = false;
  const stateDir = join(root, 'state');
  const env = { GL_TOKEN: gl.token, GH_TOKEN: gh.token, JK_USER: jk.user, JK_TOKEN: jk.token };
  const policyFile = join(root, 'soak.yaml');
  const pools = (name: string, emitter: string) => `  ${name}:\n    emitter: ${emitter}\n    platform: lab\n    labels: [linux]\n    runner: { jobsPerNode: 1 }\n    scaling: { max: 4, spare: 0, maxStep: 4, scaleDownAfter: 1m, minLifetime: 0s, bootTimeout: 3m, predict: false }\n`;
  writeFileSync(
    policyFile,
    `emitters:\n  gl: { type: gitlab, url: "${gl.url}", token: "\${env:GL_TOKEN}", projects: [platform/api], runnerOwner: { group: platform }, requestTimeout: 1s, retries: 2 }\n  gh: { type: github, owner: acme, repos: [api], token: "\${env:GH_TOKEN}", apiUrl: "${gh.url}", requestTimeout: 1s, retries: 2 }\n  jk: { type: jenkins, url: "${jk.url}", user: "\${env:JK_USER}", token: "\${env:JK_TOKEN}", requestTimeout: 1s, retries: 2 }\nplatforms:\n  lab: { type: local }\npools:\n${pools('gl-pool', 'gl')}${pools('gh-pool', 'gh')}${pools('jk-pool', 'jk')}`,
  );
  const loaded = loadPolicy([policyFile]);
  if (!loaded.policy) throw new Error(`soak policy invalid: ${loaded.problems.map((p) => p.message).join('; ')}`);
  const policy = loaded.policy;

  // Terraform that fails the next apply when a flag file exists (a failure mid-apply).
  const flag = join(root, 'fail-next-apply');
  const wrapper = join(root, 'terraform');
  writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = apply ] && [ -e ${flag} ]; then rm -f ${flag}; echo "Error: injected failure mid-apply" >&2; exit 1; fi\nexec terraform "$@"\n`);
  chmodSync(wrapper, 0o755);

  const group = gl.addGroup('platform');
  const project: GlProject = gl.addProject('api', group);
  gh.repos.push('api');
  const platforms = [gitlabPlatform(gl, project), githubPlatform(gh), jenkinsPlatform(jk)];

  const now = { t: Date.parse('2026-11-02T09:00:00Z') };
  const history = new RedisHistoryStore(redis.url, () => now.t);
  const emitters = createEmitters(policy, { env, readFile: () => '' }, () => now.t);
  const outputs: string[] = [];
  const deps: ReconcileDeps = { policy, emitters, history, terraform: new Terraform({ bin: wrapper }), stateDir, clock: () => now.t, owner: 'soak-a', orphanGraceMs: 60_000, leaseTtlMs: 3000, driftCheckMs: 30 * 60_000, log: (e) => outputs.push(JSON.stringify(e)) };
  const stateNodes = (pool: string) => readStateNodes(join(poolDir(stateDir, pool), 'terraform.tfstate')).map((n) => n.name);
  const result: SoakResult = { cycles, faults: 0, faultsByKind: {}, busyRunnersDeleted: 0, maxExceeded: 0, leakedVMs: 0, orphanRunners: 0, convergedWithinCycles: null, tokensInOutput: 0, poolErrors: 0 };
  const faultsUntil = Math.floor(cycles * 0.6);
  let converged: number | null = null;
  let bag: FaultKind[] = [];

  try {
    for (let i = 0; i < cycles; i++) {
      now.t += 30_000;
      if (i < faultsUntil) for (const p of platforms) if (rand() < 0.35) for (let k = 1 + Math.floor(rand() * 2); k > 0; k--) p.addJob();
      for (const p of platforms) p.finish(rand);
      for (const p of platforms) p.dispatch();

      let fault: FaultKind | undefined;
      if (i < faultsUntil && rand() < 0.6) {
        // A seeded shuffle, drawn in turn: every kind of fault happens once before any repeats.
        if (bag.length === 0) bag = shuffle([...FAULTS], rand);
        fault = bag.pop();
      }
      if (fault) {
        result.faults++;
        result.faultsByKind[fault] = (result.faultsByKind[fault] ?? 0) + 1;
        if (fault === 'gitlab-500') gl.faults.push({ path: /jobs$/, status: 500, times: 3 });
        if (fault === 'github-500') gh.faults.push({ path: /runs$/, status: 502, times: 4 });
        if (fault === 'github-429') gh.faults.push({ path: /runs$/, status: 429, times: 1, headers: { 'retry-after': '1' } });
        if (fault === 'jenkins-timeout') jk.faults.push({ path: /queue/, delayMs: 1500, times: 1, status: 200, body: { items: [] } });
        if (fault === 'gitlab-garbage') gl.faults.push({ path: /runners$/, malformed: true, times: 3 });
        if (fault === 'terraform-apply') writeFileSync(flag, '');
        if (fault === 'redis-restart') await redis.restart();
      }
      const busyBefore = new Map(platforms.map((p) => [p.pool, p.busy()]));
      const stateBefore = new Map(platforms.map((p) => [p.pool, new Set(stateNodes(p.pool))]));

      let results: CycleResult[];
      if (fault === 'race') results = await Promise.all([reconcileOnce(deps), reconcileOnce({ ...deps, owner: 'soak-b' })]);
      else if (fault === 'sigkill') {
        outputs.push(await killMidCycle(policyFile, { ...env, REDIS_URL: redis.url, PARMANU_STATE_DIR: stateDir, PARMANU_LEASE_TTL: '3s', PARMANU_TERRAFORM: wrapper }, new Date(now.t).toISOString(), 150 + Math.floor(rand() * 900)));
        await new Promise((r) => setTimeout(r, 3200));
        results = [await reconcileOnce(deps)];
      } else results = [await reconcileOnce(deps)];
      outputs.push(JSON.stringify(results));
      for (const r of results) result.poolErrors += r.pools.filter((p) => p.error).length;

      for (const p of platforms) p.boot(stateNodes(p.pool));
      for (const p of platforms) {
        const state = new Set(stateNodes(p.pool));
        const runners = p.runners();
        for (const b of busyBefore.get(p.pool) ?? []) if (!runners.has(b) || (stateBefore.get(p.pool)?.has(b) && !state.has(b))) result.busyRunnersDeleted++;
        const max = policy.pools.find((x) => x.name === p.pool)?.scaling.max ?? 0;
        if (state.size > max) result.maxExceeded++;
      }

      // Convergence, once faults and new work have stopped: every VM has its runner, every runner its VM, no error.
      if (i >= faultsUntil) {
        const ok = results.every((r) => r.ok && r.pools.every((p) => !p.skipped)) && platforms.every((p) => sameSet(stateNodes(p.pool), [...p.runners()]));
        if (ok && converged === null) converged = i - faultsUntil + 1;
        if (!ok) converged = null;
      }
      progress?.(`cycle ${i + 1}/${cycles}${fault ? ` fault=${fault}` : ''}: ${platforms.map((p) => `${p.pool} ${stateNodes(p.pool).length} nodes`).join(', ')}${results.some((r) => !r.ok) ? ' (a pool failed)' : ''}`);
    }
    for (const p of platforms) {
      const state = new Set(stateNodes(p.pool));
      const runners = p.runners();
      result.leakedVMs += [...state].filter((n) => !runners.has(n)).length;
      result.orphanRunners += [...runners].filter((n) => !state.has(n)).length;
    }
    result.convergedWithinCycles = converged;
    // Every credential the emulators accepted or issued (API tokens, runner tokens, agent secrets),
    // against every log event, cycle result and killed child's output…
    const tokens = [...issuedSecrets];
    // …and every request body the emulators received (comments, registrations): credentials travel in headers only.
    const bodies = [gl, gh, jk].flatMap((e) => e.bodies.map((b) => b.body));
    result.tokensInOutput = [...outputs, ...bodies].filter((o) => tokens.some((t) => o.includes(t))).length;
    return result;
  } finally {
    await history.close();
    await Promise.all([gl.stop(), gh.stop(), jk.stop(), redis.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
  }
  return xs;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** Starts `parmanu reconcile` in a child process and SIGKILLs it after `afterMs`. Returns its output. */
async function killMidCycle(policyFile: string, env: Record<string, string>, nowIso: string, afterMs: number): Promise<string> {
  // From dist/bench or from bench/ (tests run the source): the repository's bin/ is above.
  let at = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(at, 'bin', 'parmanu.js')) && dirname(at) !== at) at = dirname(at);
  const bin = join(at, 'bin', 'parmanu.js');
  if (!existsSync(bin)) throw new Error('no bin/parmanu.js above the soak module');
  const child = spawn(process.execPath, [bin, 'reconcile', '--policy', policyFile, '--now', nowIso, '--json'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), afterMs);
  await new Promise((r) => child.once('exit', r));
  clearTimeout(timer);
  return out;
}

// ---------------------------------------------------------------- the platforms' side of the work

function gitlabPlatform(emu: GitlabEmulator, project: GlProject): Platform {
  const ends = new Map<number, number>();
  let tick = 0;
  return {
    pool: 'gl-pool',
    addJob: () => void emu.addJob(project, 'pending', ['linux']),
    dispatch() {
      tick++;
      for (const j of emu.jobs.filter((x) => x.status === 'pending')) {
        const r = emu.runners.find((x) => x.description.startsWith('gl-pool-') && x.status === 'online' && !x.paused && !emu.jobs.some((y) => y.status === 'running' && y.runner?.id === x.id));
        if (!r) break;
        Object.assign(j, { status: 'running', runner: { id: r.id, description: r.description } });
        ends.set(j.id, tick + 2);
      }
    },
    finish(rand) {
      for (const j of emu.jobs) if (j.status === 'running' && (ends.get(j.id) ?? 0) <= tick + Math.floor(rand() * 2)) j.status = 'success';
    },
    boot(nodes) {
      for (const r of emu.runners) if (nodes.includes(r.description)) r.status = 'online';
    },
    busy: () => new Set(emu.jobs.filter((j) => j.status === 'running' && j.runner).map((j) => j.runner?.description as string)),
    runners: () => new Set(emu.runners.filter((r) => r.description.startsWith('gl-pool-')).map((r) => r.description)),
  };
}

function githubPlatform(emu: GithubEmulator): Platform {
  const ends = new Map<number, number>();
  let tick = 0;
  let id = 70_000;
  return {
    pool: 'gh-pool',
    addJob: () => void emu.addRun('api', [{ labels: ['self-hosted', 'linux'] }]),
    dispatch() {
      tick++;
      for (const j of emu.jobs.filter((x) => x.status === 'queued')) {
        const r = emu.runners.find((x) => x.name.startsWith('gh-pool-') && x.status === 'online' && !x.busy);
        if (!r) break;
        r.busy = true;
        Object.assign(j, { status: 'in_progress', runner_name: r.name, started_at: new Date().toISOString() });
        const run = emu.runs.find((x) => x.id === j.run_id);
        if (run) run.status = 'in_progress';
        ends.set(j.id, tick + 2);
      }
    },
    finish(rand) {
      for (const j of emu.jobs) {
        if (j.status !== 'in_progress' || (ends.get(j.id) ?? 0) > tick + Math.floor(rand() * 2)) continue;
        j.status = 'completed';
        const r = emu.runners.find((x) => x.name === j.runner_name);
        if (r) r.busy = false;
        const run = emu.runs.find((x) => x.id === j.run_id);
        if (run && emu.jobs.filter((x) => x.run_id === run.id).every((x) => x.status === 'completed')) run.status = 'completed';
      }
    },
    boot(nodes) {
      // Long-lived runners register from the VM with their registration token (config.sh).
      for (const n of nodes) if (!emu.runners.some((r) => r.name === n)) emu.runners.push({ id: id++, name: n, os: 'linux', status: 'online', busy: false, labels: ['self-hosted', 'linux'], ephemeral: false });
    },
    busy: () => new Set(emu.runners.filter((r) => r.busy && r.name.startsWith('gh-pool-')).map((r) => r.name)),
    runners: () => new Set(emu.runners.filter((r) => r.name.startsWith('gh-pool-')).map((r) => r.name)),
  };
}

function jenkinsPlatform(emu: JenkinsEmulator): Platform {
  const ends: Array<{ node: string; at: number }> = [];
  let tick = 0;
  return {
    pool: 'jk-pool',
    addJob: () => void emu.enqueue('linux'),
    dispatch() {
      tick++;
      while (emu.queue.length) {
        const n = emu.nodes.find((x) => x.name.startsWith('jk-pool-') && x.online && !x.temporarilyOffline && x.busyExecutors < x.numExecutors);
        if (!n) break;
        emu.queue.shift();
        n.busyExecutors++;
        ends.push({ node: n.name, at: tick + 2 });
      }
    },
    finish(rand) {
      for (let k = ends.length - 1; k >= 0; k--) {
        const e = ends[k] as { node: string; at: number };
        if (e.at > tick + Math.floor(rand() * 2)) continue;
        const n = emu.node(e.node);
        if (n && n.busyExecutors > 0) n.busyExecutors--;
        ends.splice(k, 1);
      }
    },
    boot(nodes) {
      for (const n of emu.nodes) if (nodes.includes(n.name)) n.online = true;
    },
    busy: () => new Set(emu.nodes.filter((n) => n.busyExecutors > 0 && n.name.startsWith('jk-pool-')).map((n) => n.name)),
    runners: () => new Set(emu.nodes.filter((n) => n.name.startsWith('jk-pool-')).map((n) => n.name)),
  };
}
