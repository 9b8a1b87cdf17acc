/**
 * `npm run soak -- --cycles N --seed S [--json]` (soak v2): reconcile cycles against the GitLab,
 * GitHub and Jenkins emulators, real terraform (local platform) and a real Redis, with a seeded
 * workload and faults at the worst moments, inside the cycle (through its hooks) as well as between
 * cycles:
 *
 * - job-lands        a job lands on a node after its drain was recorded, or between its last idle
 *                    check and the apply (hook 'drain-recorded' / 'before-idle-check')
 * - vanish-between   a VM vanishes out of band between cycles (`terraform state rm`)
 * - vanish-inside    the same right after the cycle read the state (hook 'observed')
 * - partial-apply    terraform fails after creating some of the planned nodes
 * - sigkill          the reconciler (a child process) is SIGKILLed right after a pause and before
 *                    its record, after a registration and before the apply, or after the apply and
 *                    before the record
 * - lease-race       a pool's lease expires mid-cycle and a second reconciler takes the pool
 * - emulator 5xx, 429s, timeouts and garbage; Redis restarted (history lost)
 * - GitHub's runner busy flag lags behind the job for the whole soak
 * - a pool is removed from the policy, and the image of every pool bumped, mid-soak
 *
 * The invariants come from sources Parmanu does not write: the emulators' own records of which
 * runner ran which job and of every runner credential they issued, the terraform state, and the
 * requests that touched hand-made runners.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { parse } from '../src/cli/args.js';
import { UsageError, type Io } from '../src/cli/errors.js';
import { createEmitters } from '../src/emitters/index.js';
import { RedisHistoryStore } from '../src/history/redis.js';
import { loadPolicy } from '../src/policy/load.js';
import type { Policy } from '../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleResult, type HookPoint, type ReconcileDeps } from '../src/reconcile/cycle.js';
import { rng } from '../src/sim/generate.js';
import { Terraform } from '../src/terraform/runner.js';
import { readStateNodes, StateError, type StateNode } from '../src/terraform/state.js';
import { nodeSpec } from '../stacks/spec.js';
import { issuedSecrets } from '../test/emulators/base.js';
import { GithubEmulator } from '../test/emulators/github.js';
import { GitlabEmulator } from '../test/emulators/gitlab.js';
import { JenkinsEmulator } from '../test/emulators/jenkins.js';
import { startRedis } from '../test/redis-server.js';
import { githubPlatform, gitlabPlatform, jenkinsPlatform, type Platform } from './soak-platforms.js';

const HELP = `Usage: npm run soak -- [--cycles 40] [--seed 7] [--json]

Runs reconcile cycles against emulated GitLab, GitHub and Jenkins, real terraform (local platform)
and a real redis-server, with a seeded workload and faults injected inside the cycle and between
cycles during the first 60% of the cycles (a pool is removed from the policy at 30%, every image
bumped at 40%), then measures convergence. Needs terraform and redis-server on PATH.
--json prints {"cycles", "faults", "faultsByKind", "faultsHit", "busyRunnersDeleted",
"maxExceeded", "leakedVMs", "orphanRunners", "convergedWithinCycles", "tokensInOutput",
"poolErrors", "vanishedRecreatedWithoutCredential", "outdatedLeft", "removedPoolLeftovers",
"unmarkedRunnersTouched", "stuckPools", "incidents", "wallS"}. Exit 0 when every invariant held
and the fleet converged.`;

/** Faults between cycles (at most one a cycle). */
const OUTSIDE = ['gitlab-500', 'github-429', 'jenkins-timeout', 'gitlab-garbage', 'github-500', 'redis-restart', 'vanish-between'] as const;
/** Faults inside the cycle (at most one armed a cycle; some wait for their moment). */
const INSIDE = ['job-lands', 'vanish-inside', 'partial-apply', 'sigkill', 'lease-race'] as const;
type FaultKind = (typeof OUTSIDE)[number] | (typeof INSIDE)[number];

/** The pools: one per platform kept to the end, and one removed from the policy mid-soak. */
const POOLS: Record<string, { emitter: 'gl' | 'gh' | 'jk'; labels: string[]; min: number; ephemeral?: boolean }> = {
  'gl-pool': { emitter: 'gl', labels: ['linux'], min: 1 },
  'gh-pool': { emitter: 'gh', labels: ['linux'], min: 1, ephemeral: true },
  'jk-pool': { emitter: 'jk', labels: ['linux'], min: 1 },
  'gl-old': { emitter: 'gl', labels: ['linux', 'old'], min: 0 },
};
const REMOVED = 'gl-old';
const MAX = 4;
/** A pool failing in each of this many last cycles is stuck. */
const STUCK_AFTER = 3;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('soak', argv, { cycles: { type: 'string' }, seed: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const cycles = Number(values.cycles ?? 40);
  const seed = Number(values.seed ?? 7);
  if (!Number.isInteger(cycles) || cycles < 10 || cycles > 10_000) throw new UsageError('soak: --cycles must be a whole number from 10 to 10000');
  if (!Number.isInteger(seed)) throw new UsageError('soak: --seed must be a whole number');
  const r = await soak(cycles, seed, values.json ? undefined : (l) => io.err(l));
  if (values.json) io.out(JSON.stringify(r));
  else io.out(Object.entries(r).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join('\n'));
  return soakPassed(r) ? 0 : 1;
}

export function soakPassed(r: SoakResult): boolean {
  return (
    r.busyRunnersDeleted === 0 &&
    r.maxExceeded === 0 &&
    r.leakedVMs === 0 &&
    r.orphanRunners === 0 &&
    r.tokensInOutput === 0 &&
    r.vanishedRecreatedWithoutCredential === 0 &&
    r.outdatedLeft === 0 &&
    r.removedPoolLeftovers === 0 &&
    r.unmarkedRunnersTouched === 0 &&
    r.stuckPools === 0 &&
    r.convergedWithinCycles !== null
  );
}

export interface SoakResult {
  cycles: number;
  /** Faults injected (armed). */
  faults: number;
  faultsByKind: Record<string, number>;
  /** Faults that found their moment (a job did land, a kill did happen at its point, …). */
  faultsHit: Record<string, number>;
  /** Nodes that left the state, or runners removed, while the emulator's own record says a job ran on them. */
  busyRunnersDeleted: number;
  maxExceeded: number;
  leakedVMs: number;
  orphanRunners: number;
  convergedWithinCycles: number | null;
  tokensInOutput: number;
  poolErrors: number;
  /** A vanished node's name back in state, or a node in state no emulator issued a credential for. */
  vanishedRecreatedWithoutCredential: number;
  /** Nodes with an old spec in the state at the end. */
  outdatedLeft: number;
  /** VMs or marked runners of the removed pool at the end. */
  removedPoolLeftovers: number;
  /** Requests that changed a hand-made, unmarked runner named like a pool node. */
  unmarkedRunnersTouched: number;
  /** Pools that failed in each of the last cycles, or whose VMs and runners did not match at the end. */
  stuckPools: number;
  /** What broke, where (empty when every invariant held). */
  incidents: string[];
  wallS: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function soak(cycles: number, seed: number, progress?: (line: string) => void): Promise<SoakResult> {
  const t0 = Date.now();
  const rand = rng(seed);
  const root = mkdtempSync(join(tmpdir(), 'parmanu-soak-'));
  const redis = await startRedis();
  const gl = await new GitlabEmulator().start();
  const gh = await new GithubEmulator().start();
  const jk = await new JenkinsEmulator().start();
  gl.strict = gh.strict = jk.strict = false;
  // GitHub's busy flag lags the job for the whole soak: only the job records and the 422 tell.
  gh.busyLagMs = 24 * 3_600_000;
  const stateDir = join(root, 'state');
  const env = { GL_TOKEN: gl.token, GH_TOKEN: gh.token, JK_USER: jk.user, JK_TOKEN: jk.token };
  const policyFile = join(root, 'soak.yaml');
  const realTf = process.env.PARMANU_TERRAFORM ?? 'terraform';

  const group = gl.addGroup('platform');
  const project = gl.addProject('api', group);
  gh.repos.push('api');
  const labels = Object.fromEntries(Object.entries(POOLS).map(([k, v]) => [k, v.labels]));
  const byKind = { gl: gitlabPlatform(gl, project, labels), gh: githubPlatform(gh, labels), jk: jenkinsPlatform(jk, labels) };
  const platformOf = (pool: string): Platform => byKind[POOLS[pool]?.emitter ?? 'gl'];
  const platforms = Object.values(byKind);
  const allPools = Object.keys(POOLS);
  // Hand-made runners named like pool nodes, without Parmanu's marker: never to be touched.
  gl.addRunner('gl-pool-01', { tag_list: ['linux'] });
  gl.addRunner('gl-old-01', { tag_list: ['linux', 'old'] });
  gh.configureRunner('gh-pool-01', ['linux'], false);
  jk.addNode('jk-pool-01', { labels: ['linux'] });
  const unmarked: Array<[Platform, string]> = [[byKind.gl, 'gl-pool-01'], [byKind.gl, 'gl-old-01'], [byKind.gh, 'gh-pool-01'], [byKind.jk, 'jk-pool-01']];

  const faultsUntil = Math.floor(cycles * 0.6);
  const removeAt = Math.floor(cycles * 0.3);
  const bumpAt = Math.floor(cycles * 0.4);
  let image = 'img-1';
  let withRemoved = true;
  const writePolicy = (): Policy => {
    const pools = Object.entries(POOLS)
      .filter(([name]) => withRemoved || name !== REMOVED)
      .map(([name, p]) => `  ${name}:\n    emitter: ${p.emitter}\n    platform: lab\n    labels: [${p.labels.join(', ')}]\n    machine: { image: ${image} }\n    runner: { jobsPerNode: 1${p.ephemeral ? ', ephemeral: true' : ''} }\n    scaling: { min: ${p.min}, max: ${MAX}, spare: 0, maxStep: 4, scaleDownAfter: 1m, minLifetime: 0s, bootTimeout: 3m, predict: false }\n`)
      .join('');
    writeFileSync(
      policyFile,
      `emitters:\n  gl: { type: gitlab, url: "${gl.url}", token: "\${env:GL_TOKEN}", projects: [platform/api], runnerOwner: { group: platform }, requestTimeout: 1s, retries: 2 }\n  gh: { type: github, owner: acme, repos: [api], token: "\${env:GH_TOKEN}", apiUrl: "${gh.url}", runnerOwner: org, requestTimeout: 1s, retries: 2 }\n  jk: { type: jenkins, url: "${jk.url}", user: "\${env:JK_USER}", token: "\${env:JK_TOKEN}", requestTimeout: 1s, retries: 2 }\nplatforms:\n  lab: { type: local }\npools:\n${pools}`,
    );
    const loaded = loadPolicy([policyFile]);
    if (!loaded.policy) throw new Error(`soak policy invalid: ${loaded.problems.map((p) => p.message).join('; ')}`);
    return loaded.policy;
  };

  // Terraform, through a wrapper that fails an apply after creating some of its nodes when a flag
  // file exists: it applies only the first half of the planned creates (-target), then exits 1.
  const flag = join(root, 'fail-next-apply');
  const partialLog = join(root, 'partial-applies');
  const partial = join(root, 'partial-apply.mjs');
  writeFileSync(
    partial,
    `import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, rmSync } from 'node:fs';
const [tf, flag, log, ...args] = process.argv.slice(2);
const shown = JSON.parse(execFileSync(tf, ['show', '-json', args[args.length - 1]], { encoding: 'utf8', maxBuffer: 1 << 28 }));
const creates = (shown.resource_changes ?? []).filter((r) => r.mode === 'managed' && r.change.actions.length === 1 && r.change.actions[0] === 'create').map((r) => r.address);
if (creates.length === 0) process.exit(spawnSync(tf, args, { stdio: 'inherit' }).status ?? 1);
rmSync(flag, { force: true });
const some = creates.slice(0, Math.ceil(creates.length / 2));
// The planned destroys are done: the apply fails after them and some of the creates.
const deletes = (shown.resource_changes ?? []).filter((r) => r.mode === 'managed' && r.change.actions.includes('delete')).map((r) => r.address);
const r = spawnSync(tf, ['apply', '-input=false', '-no-color', '-auto-approve', '-lock-timeout=60s', ...[...deletes, ...some].map((a) => '-target=' + a)], { stdio: ['ignore', 'ignore', 'inherit'] });
appendFileSync(log, 'partial ' + some.length + '/' + creates.length + ' exit ' + r.status + '\\n');
process.stderr.write('Error: injected failure: the apply stopped after creating ' + some.length + ' of ' + creates.length + ' resources\\n');
process.exit(1);
`,
  );
  const wrapper = join(root, 'terraform');
  writeFileSync(wrapper, `#!/bin/sh\nif [ "$1" = apply ] && [ -e '${flag}' ]; then exec '${process.execPath}' '${partial}' '${realTf}' '${flag}' '${partialLog}' "$@"; fi\nexec '${realTf}' "$@"\n`);
  chmodSync(wrapper, 0o755);

  let policy = writePolicy();
  const now = { t: Date.parse('2026-11-02T09:00:00Z') };
  const history = new RedisHistoryStore(redis.url, () => now.t);
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 3 });
  raw.on('error', () => undefined);
  const outputs: string[] = [];
  const mkEmitters = () => createEmitters(policy, { env, readFile: () => '' }, () => now.t);
  const deps: ReconcileDeps = { policy, emitters: mkEmitters(), history, terraform: new Terraform({ bin: wrapper }), stateDir, clock: () => now.t, owner: 'soak-a', orphanGraceMs: 60_000, leaseTtlMs: 3000, driftCheckMs: 30 * 60_000, log: (e) => outputs.push(JSON.stringify(e)) };

  const result: SoakResult = {
    cycles,
    faults: 0,
    faultsByKind: {},
    faultsHit: {},
    busyRunnersDeleted: 0,
    maxExceeded: 0,
    leakedVMs: 0,
    orphanRunners: 0,
    convergedWithinCycles: null,
    tokensInOutput: 0,
    poolErrors: 0,
    vanishedRecreatedWithoutCredential: 0,
    outdatedLeft: 0,
    removedPoolLeftovers: 0,
    unmarkedRunnersTouched: 0,
    stuckPools: 0,
    incidents: [],
    wallS: 0,
  };
  const hit = (k: string) => (result.faultsHit[k] = (result.faultsHit[k] ?? 0) + 1);
  const incident = (s: string) => {
    result.incidents.push(s);
    progress?.(`  INCIDENT ${s}`);
  };

  /**
   * A pool's nodes from its local state file, read between cycles when no terraform runs (the
   * soak waits for a killed reconciler's orphaned terraform to exit first: terraform rewrites the
   * file in place, and a read during the write sees half a document).
   */
  const stateOf = (pool: string): StateNode[] => {
    const file = join(poolDir(stateDir, pool), 'terraform.tfstate');
    for (let i = 0; ; i++) {
      try {
        return readStateNodes(file);
      } catch (err) {
        if (!(err instanceof StateError) || i >= 20) throw err;
        execFileSync('sleep', ['0.1']);
      }
    }
  };
  const names = (pool: string) => new Set(stateOf(pool).map((n) => n.name));
  const vmsOf = (p: Platform) => new Set(allPools.filter((x) => platformOf(x) === p).flatMap((x) => [...names(x)]));

  // Independent bookkeeping.
  const vanished = new Set<string>();
  const seen = new Set<string>();
  const reappeared = new Set<string>();
  const bootAt = new Map<string, number>();
  const failures = new Map<string, boolean[]>(allPools.map((p) => [p, []]));
  let converged: number | null = null;
  /** The first cycle after the faults at which no job was queued or running. */
  let drainedAt: number | null = null;
  let tick = 0;

  /** A VM vanishes out of band: gone from the cloud and from the refreshed state; its runner goes offline, its job dies. */
  const vanish = (pool: string, node: string) => {
    execFileSync(realTf, ['state', 'rm', '-lock-timeout=60s', `terraform_data.node_${node}`], { cwd: poolDir(stateDir, pool), stdio: 'ignore' });
    vanished.add(node);
    platformOf(pool).lose(node);
  };

  // In-cycle faults, armed by the loop and fired by the hook at their moment.
  const armed: { jobLands?: HookPoint; vanishInside?: boolean; leaseRace?: HookPoint; sigkill?: HookPoint } = {};
  let second: Promise<CycleResult> | undefined;
  const hook: ReconcileDeps['hook'] = async (point, info) => {
    if (armed.vanishInside && point === 'observed' && info.nodes.length) {
      const n = pick(info.nodes, rand);
      armed.vanishInside = false;
      vanish(info.pool, n);
      hit('vanish-inside');
      progress?.(`  vanish-inside: ${n} of ${info.pool} removed from the cloud after the state was read`);
    }
    if (armed.jobLands && (point === armed.jobLands || point === 'before-idle-check') && info.nodes.length) {
      for (const n of shuffle([...info.nodes], rand)) {
        if (!platformOf(info.pool).land(n, tick, rand)) continue;
        hit('job-lands');
        progress?.(`  job-lands: a job landed on ${n} (${info.pool}) at ${point}`);
        delete armed.jobLands;
        break;
      }
    }
    if (armed.leaseRace && point === armed.leaseRace && !second) {
      delete armed.leaseRace;
      const key = `parmanu:lease:${info.pool}`;
      // The lease expires (a stalled process) and a second reconciler, with its own emitters, starts.
      await raw.del(key).catch(() => undefined);
      let done = false;
      second = reconcileOnce({ ...deps, owner: 'soak-b', emitters: mkEmitters(), hook: undefined }).finally(() => (done = true));
      for (let i = 0; i < 250 && !done; i++) {
        const v = await raw.get(key).catch(() => null);
        if (v?.endsWith(':soak-b')) break;
        await sleep(20);
      }
      hit('lease-race');
      progress?.(`  lease-race: the lease of ${info.pool} expired at ${point}; a second reconciler took it`);
    }
  };
  deps.hook = hook;

  let outBag: FaultKind[] = [];
  let inBag: FaultKind[] = [];
  try {
    for (let i = 0; i < cycles; i++) {
      tick = i;
      now.t += 30_000;
      const faulty = i < faultsUntil;
      if (i === removeAt) {
        withRemoved = false;
        policy = writePolicy();
        deps.policy = policy;
        deps.emitters = mkEmitters();
        byKind.gl.cancel(REMOVED);
        progress?.(`  policy: pool ${REMOVED} removed`);
      }
      if (i === bumpAt) {
        image = 'img-2';
        policy = writePolicy();
        deps.policy = policy;
        deps.emitters = mkEmitters();
        progress?.('  policy: every image bumped to img-2');
      }
      if (i === faultsUntil) {
        rmSync(flag, { force: true });
        for (const k of Object.keys(armed)) delete armed[k as keyof typeof armed];
      }

      // The platforms' side: jobs end, new ones queue, queued ones go to free runners.
      for (const p of platforms) p.finish(tick);
      if (faulty) for (const pool of allPools) if ((withRemoved || pool !== REMOVED) && rand() < 0.35) for (let k = 1 + Math.floor(rand() * 2); k > 0; k--) platformOf(pool).addJob(pool);
      for (const p of platforms) p.dispatch(tick, vmsOf(p), rand);

      // Faults.
      const kinds: FaultKind[] = [];
      if (faulty && rand() < 0.45) {
        if (outBag.length === 0) outBag = shuffle([...OUTSIDE], rand);
        kinds.push(outBag.pop() as FaultKind);
      }
      if (faulty && rand() < 0.75) {
        if (inBag.length === 0) inBag = shuffle([...INSIDE], rand);
        kinds.push(inBag.pop() as FaultKind);
      }
      for (const fault of kinds) {
        result.faults++;
        result.faultsByKind[fault] = (result.faultsByKind[fault] ?? 0) + 1;
        if (fault === 'gitlab-500') gl.faults.push({ path: /jobs$/, status: 500, times: 3 });
        if (fault === 'github-500') gh.faults.push({ path: /runs$/, status: 502, times: 4 });
        if (fault === 'github-429') gh.faults.push({ path: /runs$/, status: 429, times: 1, headers: { 'retry-after': '1' } });
        if (fault === 'jenkins-timeout') jk.faults.push({ path: /queue/, delayMs: 1500, times: 1, status: 200, body: { items: [] } });
        if (fault === 'gitlab-garbage') gl.faults.push({ path: /runners$/, malformed: true, times: 3 });
        if (fault === 'redis-restart') await redis.restart();
        if (fault === 'vanish-between') {
          const candidates = allPools.flatMap((p) => [...names(p)].map((n) => [p, n] as const));
          if (candidates.length) {
            const [p, n] = pick(candidates, rand);
            vanish(p, n);
            hit(fault);
            progress?.(`  vanish-between: ${n} of ${p} removed from the cloud`);
          }
        }
        if (fault === 'job-lands') armed.jobLands = rand() < 0.4 ? 'drain-recorded' : 'before-idle-check';
        if (fault === 'vanish-inside') armed.vanishInside = true;
        if (fault === 'partial-apply') writeFileSync(flag, '');
        if (fault === 'lease-race') armed.leaseRace = pick(['observed', 'registered', 'planned', 'before-apply'] as HookPoint[], rand);
        if (fault === 'sigkill') armed.sigkill = pick(['paused', 'paused', 'registered', 'applied'] as HookPoint[], rand);
      }
      const sigkill = armed.sigkill;

      const before = new Map(allPools.map((p) => [p, names(p)]));
      const partialsBefore = partialCount(partialLog);
      const removalsBefore = platforms.reduce((s, p) => s + p.removedWhileBusy(), 0);
      let results: CycleResult[];
      if (sigkill) {
        // The cycle runs in a child process that kills itself at the point, if the point comes.
        const { out, killedAt } = await killedCycle({ policyFile, stateDir, redisUrl: redis.url, nowIso: new Date(now.t).toISOString(), terraform: wrapper, points: [sigkill], env });
        outputs.push(out);
        if (killedAt) {
          delete armed.sigkill;
          hit('sigkill');
          progress?.(`  sigkill: the reconciler was killed ${killedAt}`);
          // Its leases expire; the next reconciler finishes what it left.
          await sleep(1700);
          results = [await reconcileOnce(deps)];
        } else results = [childResult(out)];
      } else {
        results = [await reconcileOnce(deps)];
        if (second) {
          results.push(await second);
          second = undefined;
        }
      }
      if (partialCount(partialLog) > partialsBefore) {
        hit('partial-apply');
        progress?.('  partial-apply: terraform failed after creating some nodes');
      }
      outputs.push(JSON.stringify(results));
      for (const r of results) result.poolErrors += r.pools.filter((p) => p.error).length;

      // Invariants after the cycle.
      const after = new Map(allPools.map((p) => [p, names(p)]));
      for (const pool of allPools) {
        const p = platformOf(pool);
        const now_ = after.get(pool) ?? new Set();
        for (const n of before.get(pool) ?? []) {
          if (now_.has(n) || vanished.has(n)) continue;
          if (p.running(n)) {
            result.busyRunnersDeleted++;
            incident(`cycle ${i + 1}: ${n} (${pool}) left the state while the ${p.kind} emulator says it runs a job`);
          }
        }
        for (const n of now_) {
          if (vanished.has(n) && !reappeared.has(n)) {
            reappeared.add(n);
            result.vanishedRecreatedWithoutCredential++;
            incident(`cycle ${i + 1}: ${n} (${pool}) vanished earlier and is back in state`);
          }
          if (seen.has(n)) continue;
          seen.add(n);
          if (!p.credentials().has(n)) {
            result.vanishedRecreatedWithoutCredential++;
            incident(`cycle ${i + 1}: ${n} (${pool}) is in state but the ${p.kind} emulator never issued a credential for it`);
          }
        }
        const max = policy.pools.find((x) => x.name === pool)?.scaling.max ?? MAX;
        if (now_.size > max) {
          result.maxExceeded++;
          const o = results.flatMap((r) => r.pools).find((x) => x.pool === pool && !x.skipped);
          incident(`cycle ${i + 1}: ${pool} has ${now_.size} nodes, max ${max}${o ? ` (desired ${o.desired}, states ${JSON.stringify(o.states)}, create [${o.create.join(' ')}], drain [${o.drain.join(' ')}], destroy [${o.destroy.join(' ')}]${o.error ? `, error ${o.error.slice(0, 200)}` : ''}, reasons ${JSON.stringify(o.reasons)})` : ''}`);
        }
      }
      const removalsAfter = platforms.reduce((s, p) => s + p.removedWhileBusy(), 0);
      if (removalsAfter > removalsBefore) {
        result.busyRunnersDeleted += removalsAfter - removalsBefore;
        incident(`cycle ${i + 1}: ${removalsAfter - removalsBefore} runner registration(s) removed while the emulator says they ran a job`);
      }
      for (const pool of allPools) {
        const outcome = results.map((r) => r.pools.find((x) => x.pool === pool)).find((x) => x && !x.skipped) ?? results[0]?.pools.find((x) => x.pool === pool);
        if (outcome) failures.get(pool)?.push(outcome.error !== undefined || outcome.skipped !== undefined);
        else failures.get(pool)?.push(false);
      }

      // VMs that exist boot (a few never do while faults last: broken nodes); VMs that are gone take their runner offline.
      for (const pool of allPools) {
        const p = platformOf(pool);
        const vms = after.get(pool) ?? new Set();
        for (const n of vms) if (!bootAt.has(n)) bootAt.set(n, faulty && rand() < 0.08 ? Number.POSITIVE_INFINITY : tick + (rand() < 0.6 ? 0 : 1));
        for (const n of p.marked(pool)) {
          if (vms.has(n)) {
            if ((bootAt.get(n) ?? 0) <= tick) p.connect(n);
          } else if (p.online(n)) p.lose(n);
        }
      }

      // Convergence, once the faults have stopped and the last job has ended: every VM has its runner, every runner its VM, no pool failed.
      if (i >= faultsUntil && drainedAt === null && platforms.every((p) => p.work() === 0)) drainedAt = i;
      if (drainedAt !== null) {
        const ok = results.every((r) => r.ok && r.pools.every((p) => !p.skipped)) && allPools.every((pool) => sameSet(after.get(pool) ?? new Set(), platformOf(pool).marked(pool)));
        if (ok && converged === null) converged = i - drainedAt + 1;
        if (!ok) {
          converged = null;
          const why = [
            ...results.flatMap((r) => [...r.pools.filter((p) => p.skipped || p.error).map((p) => `${p.pool} ${p.skipped ? 'skipped' : 'failed'}`), ...r.probes.filter((p) => !p.ok).map((p) => `probe ${p.emitter} failed`)]),
            ...allPools.filter((pool) => !sameSet(after.get(pool) ?? new Set(), platformOf(pool).marked(pool))).map((pool) => `${pool}: VMs [${[...(after.get(pool) ?? [])].join(' ')}] runners [${[...platformOf(pool).marked(pool)].join(' ')}]`),
          ];
          progress?.(`  not converged: ${why.join('; ')}`);
        }
      }
      const failed = results.flatMap((r) => r.pools.filter((p) => p.error).map((p) => `${p.pool}: ${p.error}`));
      progress?.(`cycle ${i + 1}/${cycles}${kinds.length ? ` faults=${kinds.join(',')}` : ''}: ${allPools.map((p) => `${p} ${after.get(p)?.size ?? 0}`).join(', ')}${failed.length ? ` (failed: ${failed.map((f) => f.slice(0, 160)).join(' | ')})` : ''}`);
    }

    // The end, read through terraform (state pull), the way every backend is read.
    const tf = new Terraform({ bin: realTf });
    for (const pool of allPools) {
      const dir = poolDir(stateDir, pool);
      const nodes = existsSync(join(dir, '.terraform')) ? await tf.pullState(dir) : [];
      const state = new Set(nodes.map((n) => n.name));
      const runners = platformOf(pool).marked(pool);
      const leaked = [...state].filter((n) => !runners.has(n));
      const orphans = [...runners].filter((n) => !state.has(n));
      result.leakedVMs += leaked.length;
      result.orphanRunners += orphans.length;
      if (leaked.length || orphans.length) incident(`end: ${pool} has VMs without runners [${leaked.join(' ')}] and runners without VMs [${orphans.join(' ')}]`);
      const cfg = policy.pools.find((p) => p.name === pool);
      if (cfg) {
        const spec = nodeSpec(cfg, policy.emitters[cfg.emitter]);
        const old = nodes.filter((n) => n.spec !== spec);
        result.outdatedLeft += old.length;
        if (old.length) incident(`end: ${pool} still has outdated nodes ${old.map((n) => n.name).join(' ')}`);
      } else {
        result.removedPoolLeftovers += state.size + runners.size;
        if (state.size + runners.size) incident(`end: removed pool ${pool} still has VMs [${[...state].join(' ')}] and runners [${[...runners].join(' ')}]`);
      }
      const last = (failures.get(pool) ?? []).slice(-STUCK_AFTER);
      if ((last.length === STUCK_AFTER && last.every(Boolean)) || leaked.length || orphans.length) {
        result.stuckPools++;
        incident(`end: ${pool} is stuck (last cycles failed: ${last.join(',')})`);
      }
    }
    for (const [p, name] of unmarked) {
      const n = p.touched(name);
      result.unmarkedRunnersTouched += n;
      if (n) incident(`hand-made runner ${name} (no marker) was changed ${n} time(s)`);
    }
    result.convergedWithinCycles = converged;
    // Every credential the emulators accepted or issued (API tokens, runner tokens, agent secrets),
    // against every log event, cycle result and killed child's output…
    const tokens = [...issuedSecrets];
    // …and every request body the emulators received (comments, registrations): credentials travel in headers only.
    const bodies = [gl, gh, jk].flatMap((e) => e.bodies.map((b) => b.body));
    result.tokensInOutput = [...outputs, ...bodies].filter((o) => tokens.some((t) => o.includes(t))).length;
    result.wallS = Math.round((Date.now() - t0) / 100) / 10;
    return result;
  } finally {
    raw.disconnect();
    await history.close();
    await Promise.all([gl.stop(), gh.stop(), jk.stop(), redis.stop()]);
    rmSync(root, { recursive: true, force: true });
  }
}

/** The cycle result a child that was not killed printed (a failed cycle when it printed none). */
function childResult(out: string): CycleResult {
  const line = out.split('\n').find((l) => l.startsWith('{"ok"'));
  if (line) return JSON.parse(line) as CycleResult;
  return { ok: false, pools: [], probes: [] };
}

function partialCount(file: string): number {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

function pick<T>(xs: readonly T[], rand: () => number): T {
  return xs[Math.floor(rand() * xs.length)] as T;
}

function shuffle<T>(xs: T[], rand: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [xs[i], xs[j]] = [xs[j] as T, xs[i] as T];
  }
  return xs;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/**
 * One cycle in a child process (bench/soak-child) that SIGKILLs itself at one of `points`. The child
 * leads its own process group: after it died, the soak waits until the terraform it left running
 * has exited too, so that nothing reads the state while an orphan rewrites it.
 */
async function killedCycle(o: { policyFile: string; stateDir: string; redisUrl: string; nowIso: string; terraform: string; points: HookPoint[]; env: Record<string, string> }): Promise<{ out: string; killedAt?: string }> {
  const child = join(dirname(fileURLToPath(import.meta.url)), 'soak-child.js');
  if (!existsSync(child)) throw new Error(`${child} is missing: build the development tools (npm run build:dev)`);
  const p = spawn(process.execPath, [child, o.policyFile, o.stateDir, o.redisUrl, o.nowIso, o.terraform, o.points.join(',')], { env: { PATH: process.env.PATH ?? '', ...o.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => p.once('close', r));
  for (let i = 0; i < 1200; i++) {
    try {
      process.kill(-(p.pid as number), 0);
    } catch {
      break;
    }
    await sleep(50);
  }
  const m = /killed (at \S+ in \S+)/.exec(out);
  return { out, ...(m?.[1] ? { killedAt: m[1] } : {}) };
}
