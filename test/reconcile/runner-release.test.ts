/**
 * Pinned runner binaries, end to end (real terraform on the local platform, real Redis): the
 * reconciler resolves `latest` through the emitter and a new node boots the bootstrap of that
 * release (its digest is recorded on the node's terraform_data); a later upstream release reaches
 * only nodes created after it, and the node spec — hence "outdated" — does not move. When the
 * release source fails, new nodes take the last release resolved for the pool (history), and
 * without one they are created unpinned, with a reason: the scale-up is never held.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RELEASE_RETRY_MS, RELEASE_TTL_MS } from '../../src/emitters/release.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy, PoolConfig } from '../../src/policy/types.js';
import { poolDir, reconcileOnce, type CycleResult, type ReconcileDeps } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { sha256, userData, type RunnerRelease } from '../../stacks/bootstrap.js';
import { localCredentialFile } from '../../stacks/pool-stack.js';
import { nodeSpec } from '../../stacks/spec.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { useRedisSuite } from './suite.js';

const suite = useRedisSuite();

const T0 = Date.parse('2026-11-02T10:00:00Z');
const hex = (c: string) => c.repeat(64);
const R175: RunnerRelease = { version: '17.5.0', sha256: { 'linux-amd64': hex('1'), 'linux-arm64': hex('2'), 'windows-amd64': hex('3') } };
const R176: RunnerRelease = { version: '17.6.0', sha256: { 'linux-amd64': hex('4'), 'linux-arm64': hex('5'), 'windows-amd64': hex('6') } };

async function setup() {
  const emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  const project = emu.addProject('api', group);
  const policy: Policy = normalize({
    emitters: new Map([['ci', EmitterSchema.parse({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } })]]),
    platforms: new Map([['lab', PlatformSchema.parse({ type: 'local' })]]),
    pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'lab', labels: ['linux'], runner: { version: 'latest' }, scaling: { predict: false, scaleDownAfter: '1m', minLifetime: '0s', bootTimeout: '10m' } })]]),
  });
  const root = suite.tempDir('parmanu-release-');
  const stateDir = join(root, 'state');
  const now = { t: T0 };
  const history = new RedisHistoryStore(suite.url, () => now.t, `parmanu:rel${Math.random().toString(36).slice(2)}:`);
  const emitter = () => new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 0, concurrency: 8, backoffMs: 5 }), () => now.t, emu.runnerSource());
  let id = 0;
  const deps: ReconcileDeps = { policy, emitters: new Map([['ci', emitter()]]), history, terraform: new Terraform({ bin: process.env.PARMANU_TERRAFORM ?? 'terraform' }), stateDir, clock: () => now.t, owner: 'test', newId: () => `n${(id++).toString().padStart(3, '0')}` };
  const pool = policy.pools[0] as PoolConfig;
  const cycle = async (): Promise<CycleResult> => {
    const r = await reconcileOnce(deps);
    expect(r.pools[0]?.error).toBeUndefined();
    now.t += 30_000;
    return r;
  };
  /** What terraform recorded for each node: the bootstrap digest and the spec. */
  const recorded = () => {
    const state = JSON.parse(readFileSync(join(poolDir(stateDir, 'p'), 'terraform.tfstate'), 'utf8')) as { resources: Array<{ type: string; name: string; instances: Array<{ attributes: { input?: { value?: Record<string, string> } } }> }> };
    const out = new Map<string, { bootstrap: string; spec: string }>();
    for (const r of state.resources) {
      const v = r.instances[0]?.attributes.input?.value;
      if (r.type === 'terraform_data' && r.name.startsWith('node_') && v) out.set(r.name.slice(5), { bootstrap: v.bootstrap_sha256 ?? '', spec: v.spec ?? '' });
    }
    return out;
  };
  /** The digest of the bootstrap node `name` boots, pinned to `release` or not. */
  const digest = (name: string, release?: RunnerRelease) => sha256(userData(pool, name, { kind: 'gitlab', url: emu.url }, { kind: 'file', path: localCredentialFile(stateDir, 'p', name) }, release ? { release } : {}));
  const demand = (project: GlProject, n: number) => {
    emu.jobs.splice(0, emu.jobs.length);
    for (let i = 0; i < n; i++) emu.addJob(project, 'pending', ['linux']);
  };
  return { emu, project, policy, pool, deps, now, history, emitter, cycle, recorded, digest, demand, stateDir };
}

describe('pinned runner binaries (local platform, real terraform)', () => {
  it('pins new nodes to the release resolved now; a new upstream release changes new nodes\' bootstrap, never the spec or the nodes already running', async () => {
    const s = await setup();
    const { emu, project } = s;
    try {
      emu.runnerReleases.push(R175);
      s.demand(project, 1);
      let r = await s.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n000']);
      let rec = s.recorded();
      expect(rec.get('p-n000')?.bootstrap).toBe(s.digest('p-n000', R175));
      expect(rec.get('p-n000')?.bootstrap).not.toBe(s.digest('p-n000'));
      emu.connect('p-n000');

      // GitLab publishes 17.6.0; after the emitter's cache expires, the next new node gets it.
      emu.runnerReleases.push(R176);
      s.now.t += RELEASE_TTL_MS;
      s.demand(project, 2);
      r = await s.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n001']);
      rec = s.recorded();
      expect(rec.get('p-n001')?.bootstrap).toBe(s.digest('p-n001', R176));
      // The node already running keeps what it booted with, and is not outdated: one spec for both,
      // the spec of the policy as written (no release in it).
      expect(rec.get('p-n000')?.bootstrap).toBe(s.digest('p-n000', R175));
      const spec = nodeSpec(s.pool, s.policy.emitters.ci);
      expect(rec.get('p-n000')?.spec).toBe(spec);
      expect(rec.get('p-n001')?.spec).toBe(spec);
      emu.connect('p-n001');
      for (let i = 0; i < 3; i++) {
        r = await s.cycle();
        expect(r.pools[0]?.drain ?? []).toEqual([]);
        expect(r.pools[0]?.destroy ?? []).toEqual([]);
      }
      expect(readStateNodes(join(poolDir(s.stateDir, 'p'), 'terraform.tfstate')).map((n) => n.name).sort()).toEqual(['p-n000', 'p-n001']);
      // Resolved by the reconciler with the emitter (two look-ups: one per cache hour), never by a VM.
      expect(emu.count('GET', /gitlab-runner\/releases/)).toBe(2);
      expect(emu.tokenLeaks).toEqual([]);
    } finally {
      await s.history.close();
      await emu.stop();
    }
  });

  it('when the release source fails: the last release resolved for the pool (from history, across a restart), else unpinned with a reason; the scale-up is not held', async () => {
    const s = await setup();
    const { emu, project } = s;
    try {
      // Without any release resolved before: created unpinned, and the reason says so.
      emu.faults.push({ method: 'GET', path: /gitlab-runner\/releases$/, status: 503, times: 1 });
      s.demand(project, 1);
      let r = await s.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n000']);
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/could not resolve runner latest .*without checksum verification/);
      expect(s.recorded().get('p-n000')?.bootstrap).toBe(s.digest('p-n000'));
      emu.connect('p-n000');

      // The source is back: the next new node is pinned, and the release recorded on the pool.
      emu.runnerReleases.push(R175);
      s.now.t += RELEASE_RETRY_MS;
      s.demand(project, 2);
      r = await s.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n001']);
      expect(s.recorded().get('p-n001')?.bootstrap).toBe(s.digest('p-n001', R175));
      expect((await s.history.getPool('p'))?.release).toMatchObject({ kind: 'gitlab', requested: 'latest', version: '17.5.0' });
      emu.connect('p-n001');

      // A restarted reconciler (a fresh emitter, nothing cached) whose release source is down: pinned to 17.5.0 from history.
      emu.runnerReleases.push(R176);
      s.deps.emitters.set('ci', s.emitter());
      emu.faults.push({ method: 'GET', path: /release\.sha256$/, status: 500 });
      s.demand(project, 3);
      r = await s.cycle();
      expect(r.pools[0]?.create).toEqual(['p-n002']);
      expect(r.pools[0]?.reasons.join('\n')).toMatch(/could not resolve runner latest .*new nodes pinned to 17\.5\.0/);
      expect(s.recorded().get('p-n002')?.bootstrap).toBe(s.digest('p-n002', R175));
    } finally {
      await s.history.close();
      await emu.stop();
    }
  });
});
