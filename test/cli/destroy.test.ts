/**
 * `parmanu destroy` end to end, as a user runs it: the compiled CLI, real terraform (local
 * platform), real Redis, and the GitLab emulator served from this process. Nodes are created by
 * `reconcile`; one of them runs a job. The idle ones go, the busy one stays until its job ends,
 * then goes; the state ends empty and the runners removed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newNodes } from '../../src/cli/destroy.js';
import { readStateNodes, StateError } from '../../src/terraform/state.js';
import { cli, cliAsync } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { useRedisSuite } from '../reconcile/suite.js';

const suite = useRedisSuite();

/** Said before the first cycle when the pool torn down is still in the policy. */
const NOTE = /^note: p is still in the policy: a scheduled or watching reconcile \(the pipelines' reconcile --watch\) sizes it again, within seconds; to keep it empty, remove it from the policy instead \(reconcile then drains and destroys it itself\), or set scaling\.max: 0, or stop the schedule first$/m;

describe('parmanu destroy', () => {
  let emu: GitlabEmulator;
  let dir: string;
  let env: Record<string, string>;
  const stateFile = () => join(dir, 'state', 'pools', 'p', 'terraform.tfstate');
  const names = () => readStateNodes(stateFile()).map((n) => n.name).sort();
  /** The names while another process's terraform may be writing the state (a read mid-write is not JSON yet): read again. */
  const namesWhileRunning = async (): Promise<string[]> => {
    for (let i = 0; ; i++) {
      try {
        return names();
      } catch (err) {
        if (!(err instanceof StateError) || i >= 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const run = (args: string[], extra: Record<string, string> = {}) => cliAsync(args, { cwd: dir, env: { ...env, ...extra }, timeoutMs: 240_000 });

  beforeAll(async () => {
    emu = await new GitlabEmulator().start();
    emu.addProject('api', emu.addGroup('platform'));
    dir = suite.tempDir('parmanu-destroy-');
    mkdirSync(join(dir, 'policies'));
    writeFileSync(
      join(dir, 'policies', 'fleet.yaml'),
      `emitters:\n  ci: { type: gitlab, url: "${emu.url}", token: "\${env:T}", groups: [platform], runnerOwner: { group: platform }, probeInterval: 1s }\nplatforms:\n  lab: { type: local, backend: { type: local } }\npools:\n  p: { emitter: ci, platform: lab, labels: [linux], scaling: { min: 3, max: 3, predict: false } }\n`,
    );
  });
  afterAll(async () => {
    await emu.stop();
  });

  it('refuses --all without --yes, and --pool without --yes outside CI, before touching anything', async () => {
    env = { REDIS_URL: suite.url, PARMANU_STATE_DIR: join(dir, 'state'), T: emu.token };
    const rec = await run(['reconcile']);
    expect(rec.code, rec.err).toBe(0);
    expect(names()).toHaveLength(3);
    for (const n of names()) emu.connect(n);

    const before = emu.log.length;
    const all = await run(['destroy', '--all']);
    expect(all.code).toBe(2);
    expect(all.err.trim()).toBe('parmanu: destroy: --all destroys every pool: add --yes to confirm');
    expect(all.out).toBe('');
    // Even in CI, --all needs --yes.
    expect((await run(['destroy', '--all'], { CI: 'true' })).code).toBe(2);
    const pool = await run(['destroy', '--pool', 'p']);
    expect(pool.code).toBe(2);
    expect(pool.err).toMatch(/^parmanu: destroy: this destroys every node of p: add --yes to confirm/);
    expect(pool.err.trim().split('\n')).toHaveLength(1);
    expect(emu.log.slice(before)).toEqual([]);
    expect(names()).toHaveLength(3);
    expect(emu.runners.map((r) => r.paused)).toEqual([false, false, false]);
    expect(cli(['destroy', '--pool', 'nope', '--yes'], { cwd: dir, env }).err).toMatch(/no pool named "nope"/);
  });

  it('--dry-run says which nodes would go and changes nothing', async () => {
    const [busy] = names() as [string];
    emu.startJob(busy);
    const r = await run(['destroy', '--pool', 'p', '--dry-run']);
    expect(r.code, r.err).toBe(0);
    const idle = names().filter((n) => n !== busy);
    expect(r.out).toContain(`p: would destroy 3 nodes: idle ${idle.join(', ')}; busy (destroyed once their job ends) ${busy}`);
    // The warning about a scheduled reconcile comes first, in a dry run too.
    expect(r.out.split('\n')[0]).toMatch(NOTE);
    expect(emu.runners.map((x) => x.paused)).toEqual([false, false, false]);
    expect(names()).toHaveLength(3);
  });

  it('destroys the idle nodes, keeps the busy one until its job ends, then destroys it; state empty, runners removed', async () => {
    const [busy] = names() as [string];
    expect(emu.runningOn(busy)).toHaveLength(1);
    // A short timeout: the busy node outlives it (exit 1), still paused; nothing busy was destroyed.
    const short = await run(['destroy', '--pool', 'p', '--timeout', '2s'], { CI: 'true' });
    expect(short.code, short.out + short.err).toBe(1);
    expect(short.err).toMatch(/--timeout 2s passed with p not empty/);
    expect(names()).toContain(busy);
    expect(emu.runnerNamed(busy)?.paused).toBe(true);

    // A runner of the pool that no VM backs goes too (no grace period when tearing down); a runner
    // without Parmanu's marker is never touched.
    emu.addRunner('p-orphan', { maintenance_note: 'parmanu-pool=p' });
    emu.addRunner('hand-made');
    const whole = run(['destroy', '--pool', 'p', '--yes', '--timeout', '3m']);
    // Wait until only the busy node is left, while its job runs.
    const deadline = Date.now() + 120_000;
    while ((await namesWhileRunning()).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await namesWhileRunning()).toEqual([busy]);
    await new Promise((r) => setTimeout(r, 2500));
    expect(names()).toEqual([busy]);
    expect(emu.runnerNamed(busy)).toBeDefined();
    emu.finishJob(busy);
    const r = await whole;
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^cycle \\d+: p: 1 node left; waiting for the job of ${busy}$`, 'm'));
    expect(r.out).toMatch(new RegExp(`^cycle \\d+: p: 0 nodes left; destroyed ${busy}; empty: forgotten$`, 'm'));
    // The warning came before the first cycle, not after the success.
    expect(r.out.split('\n')[0]).toMatch(NOTE);
    expect(r.out.match(/^note:/gm)).toHaveLength(1);
    expect(names()).toEqual([]);
    expect(emu.runners.map((x) => x.description)).toEqual(['hand-made']);
    expect(emu.touched('hand-made')).toEqual([]);
    // No runner was removed while the emulator says it ran a job.
    expect(emu.removedWhileBusy()).toEqual([]);
    expect(emu.runnerDeleted(busy)?.busy).toBe(false);
    // The pool's record is gone: another destroy has nothing to wait for.
    const again = await run(['destroy', '--pool', 'p', '--yes']);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/^cycle 1: p: 0 nodes left; empty: forgotten$/m);
  });

  it('stops (exit 1) when a reconcile sizes the pool again while destroy tears it down', async () => {
    const rec = await run(['reconcile']);
    expect(rec.code, rec.err).toBe(0);
    expect(names()).toHaveLength(3);
    for (const n of names()) emu.connect(n);
    const [busy] = names() as [string];
    emu.startJob(busy);
    const whole = run(['destroy', '--pool', 'p', '--yes', '--timeout', '3m']);
    const deadline = Date.now() + 120_000;
    while ((await namesWhileRunning()).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(await namesWhileRunning()).toEqual([busy]);
    // A scheduled reconcile's cycle between two of destroy's (skipped while destroy holds the lease).
    let regrown: string[] = [];
    while (Date.now() < deadline) {
      const again = await run(['reconcile']);
      expect(again.code, again.err).toBe(0);
      regrown = (await namesWhileRunning()).filter((n) => n !== busy);
      if (regrown.length) break;
    }
    expect(regrown.length).toBeGreaterThan(0);
    emu.finishJob(busy);
    const r = await whole;
    expect(r.code, r.out + r.err).toBe(1);
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^destroy: p \(new nodes [^)]+\) grew back: another reconcile \(a scheduled or watching one\?\) sizes it again, as it is still in the policy: stopped; remove it from the policy, set scaling\.max: 0 or stop the schedule, then run destroy again$/);
    for (const n of regrown) expect(lines[0]).toContain(n);
  });

  it('newNodes: the nodes a cycle sees that the previous one neither saw nor destroyed', () => {
    const prev = { states: { a: 'draining', b: 'draining', c: 'busy' }, destroy: ['a', 'b'] };
    expect(newNodes(prev, { states: { c: 'draining' } })).toEqual([]);
    expect(newNodes(prev, { states: {} })).toEqual([]);
    // A node destroyed last cycle that shows up again was created again (names are reused only by a create).
    expect(newNodes(prev, { states: { c: 'draining', e: 'booting', a: 'booting' } })).toEqual(['a', 'e']);
  });
});
