import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, cli as runCli, cliAsync, root } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { expectNoSecrets } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-rec-'));
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env });
/** A port on 127.0.0.1 that nothing listens on: a GitLab that cannot be reached. */
let closedPort = 0;
const GL_ENV = { GL_TOKEN: 'glpat-not-a-real-token-0123' };

beforeAll(async () => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  writeFileSync(join(dir, 'unreachable.yaml'), `emitters:\n  gl: { type: gitlab, url: "http://127.0.0.1:${closedPort}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, retries: 0 }\nplatforms:\n  lab: { type: local }\npools:\n  gl-pool: { emitter: gl, platform: lab }\n`);
  cpSync(join(root, 'examples'), join(dir, 'examples'), { recursive: true });
  writeFileSync(join(dir, 'old-terraform'), '#!/bin/sh\necho \'{"terraform_version": "1.2.9"}\'\n');
  chmodSync(join(dir, 'old-terraform'), 0o755);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parmanu reconcile', () => {
  it('runs the README\'s offline demo: scales up through terraform, then takes the no-op path', () => {
    // The demo replays at 600×: a fixed trace time keeps both runs on the same queue.
    const first = cli(['reconcile', '--policy', 'examples/demo', '--json', '--now', '2025-01-06T07:55:00Z']);
    expect(first.code).toBe(0);
    const a = JSON.parse(first.out) as { ok: boolean; dryRun: boolean; pools: Array<Record<string, unknown>> };
    expect(a.ok).toBe(true);
    expect(a.dryRun).toBe(false);
    const linux = a.pools.find((p) => p.pool === 'demo-linux') as { probe: unknown; create: string[]; terraform: { ran: boolean; add: number }; observed: Record<string, number>; durationMs: number; reasons: string[] };
    expect(Object.keys(linux).sort()).toEqual(['create', 'desired', 'destroy', 'drain', 'durationMs', 'observed', 'pool', 'probe', 'reasons', 'start', 'states', 'stop', 'terraform', 'vanished']);
    expect(linux.probe).toEqual({ ok: true, partial: false, reason: null, ageS: expect.any(Number) as number, stale: false });
    expect(Object.keys(linux.observed).sort()).toEqual(['busy', 'nodes', 'queued', 'running']);
    expect(linux.create.length).toBeGreaterThan(0);
    // Each node and the resource that writes its runner's credential file (how the replay sees it up).
    expect(linux.terraform).toMatchObject({ ran: true, add: 2 * linux.create.length });
    expect(existsSync(join(dir, '.parmanu', 'pools', 'demo-linux', 'terraform.tfstate'))).toBe(true);
    // Not a terminal: structured JSON logs on stderr, one object a line.
    const logs = first.err.trim().split('\n').map((l) => JSON.parse(l) as { level: string; msg: string; pool?: string; step?: string; durationMs?: number; name: string });
    expect(logs.some((l) => l.level === 'info' && l.pool === 'demo-linux' && l.step === 'terraform-apply' && typeof l.durationMs === 'number' && l.name === 'parmanu')).toBe(true);
    const second = JSON.parse(cli(['reconcile', '--policy', 'examples/demo', '--json', '--now', '2025-01-06T07:55:00Z']).out) as { pools: Array<{ terraform: { ran: boolean } }> };
    expect(second.pools.map((p) => p.terraform.ran)).toEqual([false, false]);
  });

  it('shows each pool\'s nodes with status', () => {
    const r = cli(['status', '--policy', 'examples/demo', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { pools: Array<{ pool: string; probe: string; nodes: Array<{ name: string; runner: string }> }> };
    const linux = out.pools.find((p) => p.pool === 'demo-linux');
    expect(linux?.probe).toBe('ok');
    expect(linux?.nodes.length).toBeGreaterThan(0);
    // The replay's runner registry: the node's runner came online when terraform wrote its credential file.
    expect(linux?.nodes[0]?.runner).toMatch(/^online, (idle|busy)$/);
    expect(cli(['status', '--policy', 'examples/demo']).out).toMatch(/^demo-linux: \d+ nodes? \(probe ok\)$/m);
  });

  it('needs the secrets of the selected pools\' emitters only', () => {
    writeFileSync(join(dir, 'two.yaml'), 'emitters:\n  r: { type: replay, trace: examples/demo/trace.csv }\n  gl: { type: gitlab, url: "http://127.0.0.1:9", token: "${env:NOT_SET_HERE}", projects: [a/b], runnerOwner: instance }\nplatforms:\n  lab: { type: local }\npools:\n  r-pool: { emitter: r, platform: lab }\n  gl-pool: { emitter: gl, platform: lab }\n');
    const selected = cli(['reconcile', '--policy', 'two.yaml', '--pool', 'r-pool', '--dry-run'], { PARMANU_STATE_DIR: join(dir, 'two') });
    expect(selected.code, selected.err).toBe(0);
    expect(selected.out).toMatch(/^r-pool \(dry run\): /m);
    const all = cli(['reconcile', '--policy', 'two.yaml', '--dry-run'], { PARMANU_STATE_DIR: join(dir, 'two') });
    expect(all.code).toBe(2);
    expect(all.err).toMatch(/two\.yaml:3:\d+: emitters\.gl\.token: \$\{env:NOT_SET_HERE\}: environment variable NOT_SET_HERE is not set/);
  });

  it('plans but applies nothing with --dry-run, and says so in the terminal and in --json', () => {
    // A fixed trace time: the dry run and the real run below see the same queue.
    const at = ['--now', '2025-01-06T07:55:00Z'];
    const r = cli(['reconcile', '--policy', 'examples/demo', '--pool', 'demo-linux', '--dry-run', ...at], { PARMANU_STATE_DIR: join(dir, 'dry') });
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('dry run: nothing is applied, no runner is registered or paused');
    // The plan has the nodes, not the credential file each gets once its runner is registered: the line says so.
    const dryLine = /^demo-linux \(dry run\): \d+ queued, \d+ running; 0 → [1-9]\d* nodes, would create ([1-9]\d*), drain 0, destroy 0; terraform plan \+([1-9]\d*) ~0 -0, not applied \(\+([1-9]\d*) runner credential files? not counted: a dry run registers no runner\) \[\d+ ms\]$/.exec(lines[1] ?? '');
    expect(dryLine, lines[1]).not.toBeNull();
    const wouldCreate = Number(dryLine?.[1]);
    expect(Number(dryLine?.[2])).toBe(wouldCreate);
    expect(Number(dryLine?.[3])).toBe(wouldCreate);
    expect(existsSync(join(dir, 'dry', 'pools', 'demo-linux', 'terraform.tfstate'))).toBe(false);
    const j = cli(['reconcile', '--policy', 'examples/demo', '--pool', 'demo-linux', '--dry-run', '--json'], { PARMANU_STATE_DIR: join(dir, 'dry') });
    expect(j.code).toBe(0);
    const out = JSON.parse(j.out) as { ok: boolean; dryRun: boolean; pools: Array<{ create: string[]; terraform: { ran: boolean; add: number } }> };
    expect(out.dryRun).toBe(true);
    expect(out.pools[0]?.create.length).toBeGreaterThan(0);
    expect(out.pools[0]?.terraform.ran).toBe(true);
    expect(existsSync(join(dir, 'dry', 'pools', 'demo-linux', 'terraform.tfstate'))).toBe(false);
    // A real run is not marked.
    const real = cli(['reconcile', '--policy', 'examples/demo', '--pool', 'demo-linux', ...at], { PARMANU_STATE_DIR: join(dir, 'not-dry') });
    expect(real.code).toBe(0);
    expect(real.out).not.toMatch(/dry run|would create|not applied|not counted/);
    // The same nodes, each with its credential file: what the dry run's line added up to.
    expect(real.out).toMatch(new RegExp(`^demo-linux: \\d+ queued, \\d+ running; 0 → ${wouldCreate} nodes \\(\\+${wouldCreate} drain 0 -0\\), terraform \\+${2 * wouldCreate} ~0 -0 \\[\\d+ ms\\]$`, 'm'));
  });

  it('counts a gitlab pool\'s credential resources in a dry run\'s plan (its placeholder credential has them): no note', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      emu.addProject('api', emu.addGroup('platform'));
      writeFileSync(join(dir, 'gl-dry.yaml'), `emitters:\n  ci: { type: gitlab, url: "${emu.url}", token: "\${env:T}", groups: [platform], runnerOwner: { group: platform } }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: ci, platform: lab, labels: [linux], runner: { install: preinstalled }, scaling: { min: 2, max: 2, predict: false } }\n`);
      const r = await cliAsync(['reconcile', '--policy', 'gl-dry.yaml', '--dry-run'], { cwd: dir, env: { T: emu.token, PARMANU_STATE_DIR: join(dir, 'gl-dry') }, timeoutMs: 120_000 });
      expect(r.code, r.err).toBe(0);
      // Two nodes and their two credential resources.
      expect(r.out).toMatch(/^p \(dry run\): 0 queued, 0 running; 0 → 2 nodes, would create 2, drain 0, destroy 0; terraform plan \+4 ~0 -0, not applied \[\d+ ms\]$/m);
    } finally {
      await emu.stop();
    }
  });

  it('logs what it sets aside in the state directory as JSON lines, like the rest of the log (--json)', () => {
    const state = join(dir, 'set-aside');
    const first = cli(['reconcile', '--policy', 'examples/demo', '--json', '--now', '2025-01-06T07:55:00Z'], { PARMANU_STATE_DIR: state });
    expect(first.code, first.err).toBe(0);
    // Torn writes: the pool's history record and the replay's state cut short.
    const record = join(state, 'history', 'pools', 'demo-linux.json');
    const replay = join(state, 'replay', 'demo.json');
    expect(existsSync(record) && existsSync(replay)).toBe(true);
    writeFileSync(record, '{"pool": "demo-li');
    writeFileSync(replay, '{"anchor": {');
    const r = cli(['reconcile', '--policy', 'examples/demo', '--json'], { PARMANU_STATE_DIR: state });
    expect(r.code, r.err).toBe(0);
    const lines = r.err.trim().split('\n');
    for (const l of lines) expect(() => JSON.parse(l) as unknown, l).not.toThrow();
    const logs = lines.map((l) => JSON.parse(l) as { level: string; msg: string });
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/^history: the history record of pool demo-linux .*demo-linux\.json is not JSON: set aside as .*demo-linux\.json\.corrupt-/) as string }));
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/^replay state .*demo\.json is corrupt \(not JSON\): set aside as .*demo\.json\.corrupt-\d+, the replay starts over$/) as string }));
    // The policy's warnings too.
    writeFileSync(join(dir, 'unused.yaml'), 'emitters:\n  r: { type: replay, trace: examples/demo/trace.csv }\n  idle: { type: replay, trace: examples/demo/trace.csv }\nplatforms:\n  lab: { type: local }\npools:\n  r-pool: { emitter: r, platform: lab }\n');
    const w = cli(['reconcile', '--policy', 'unused.yaml', '--json', '--dry-run'], { PARMANU_STATE_DIR: join(dir, 'unused') });
    expect(w.code, w.err).toBe(0);
    const wl = w.err.trim().split('\n');
    for (const l of wl) expect(() => JSON.parse(l) as unknown, l).not.toThrow();
    expect(wl.map((l) => JSON.parse(l) as { level: string; msg: string })).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'unused.yaml:3:3: warning: emitters.idle: no pool uses this emitter' }));
  });

  it('shows a probe that failed as "probe failed: REASON, holding", naming the refused address, in the terminal, in --json and in status', () => {
    const env = { ...GL_ENV, PARMANU_STATE_DIR: join(dir, 'unreachable') };
    const r = cli(['reconcile', '--policy', 'unreachable.yaml'], env);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^gl-pool: probe failed: GET /api/v4/groups/platform: ECONNREFUSED 127\\.0\\.0\\.1:${closedPort} \\(connection refused\\), holding; 0 → 0 nodes `, 'm'));
    expect(r.out).not.toMatch(/queued/);
    const j = cli(['reconcile', '--policy', 'unreachable.yaml', '--json'], env);
    expect(j.code).toBe(1);
    const out = JSON.parse(j.out) as { ok: boolean; pools: Array<{ pool: string; probe: { ok: boolean; reason: string | null; ageS: number; stale: boolean } }> };
    expect(out.ok).toBe(false);
    const probe = out.pools[0]?.probe;
    expect(probe?.ok).toBe(false);
    expect(probe?.reason).toContain(`ECONNREFUSED 127.0.0.1:${closedPort}`);
    expect(probe?.ageS).toBeGreaterThanOrEqual(0);
    expect(probe?.ageS).toBeLessThan(30);
    const st = cli(['status', '--policy', 'unreachable.yaml', '--json'], env);
    expect(st.code).toBe(0);
    const status = JSON.parse(st.out) as { pools: Array<{ probe: string; probeStatus: { ok: boolean; reason: string } }> };
    expect(status.pools[0]?.probe).toMatch(new RegExp(`^failed: .*ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}`));
    expect(status.pools[0]?.probeStatus).toMatchObject({ ok: false, reason: expect.stringContaining(`ECONNREFUSED 127.0.0.1:${closedPort}`) as string });
    expect(cli(['status', '--policy', 'unreachable.yaml'], env).out).toMatch(new RegExp(`^gl-pool: 0 nodes \\(probe failed: .*ECONNREFUSED 127\\.0\\.0\\.1:${closedPort} \\(connection refused\\)\\)$`, 'm'));
  });

  it('shows a stale probe as "probe stale (Ns old), holding" and "stale": true', () => {
    // A replay at 10000 trace seconds per second with a 100ms probe interval: the few wall-clock
    // milliseconds between the probe and the pool's cycle are minutes of trace time, past 2 × 100ms.
    writeFileSync(join(dir, 'stale.yaml'), 'emitters:\n  fast: { type: replay, trace: examples/demo/trace.csv, speed: 10000, probeInterval: 100ms }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: fast, platform: lab }\n');
    const env = { PARMANU_STATE_DIR: join(dir, 'stale') };
    const r = cli(['reconcile', '--policy', 'stale.yaml'], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^p: probe stale \(\d+(\.\d)?s old\), holding; /m);
    const j = JSON.parse(cli(['reconcile', '--policy', 'stale.yaml', '--json'], env).out) as { pools: Array<{ probe: { ok: boolean; ageS: number; stale: boolean } }> };
    expect(j.pools[0]?.probe).toMatchObject({ ok: true, stale: true });
    expect(j.pools[0]?.probe.ageS).toBeGreaterThan(0.2);
  });

  it('ends a --watch --for on its own once the time is up, with the last cycle\'s exit code', async () => {
    const timed = async (args: string[], env: Record<string, string>) => {
      const t0 = Date.now();
      const r = await cliAsync(args, { cwd: dir, env, timeoutMs: 60_000 });
      return { ...r, tookMs: Date.now() - t0 };
    };
    const ok = await timed(['reconcile', '--policy', 'examples/demo', '--watch', '--for', '3s', '--metrics-listen', 'none'], { PARMANU_STATE_DIR: join(dir, 'for-ok') });
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toMatch(/^demo-linux: /m);
    expect(ok.tookMs).toBeGreaterThanOrEqual(3000);
    expect(ok.tookMs).toBeLessThan(25_000);
    expect(ok.err).toMatch(/--for 3s is up after \d+ cycles?; the last one was ok/);
    // The probe interval (30s) is longer than --for: one cycle, then the wait is cut at the deadline.
    const failed = await timed(['reconcile', '--policy', 'unreachable.yaml', '--watch', '--for', '2s', '--metrics-listen', 'none'], { ...GL_ENV, PARMANU_STATE_DIR: join(dir, 'for-failed') });
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/^gl-pool: probe failed: /m);
    expect(failed.tookMs).toBeGreaterThanOrEqual(2000);
    expect(failed.tookMs).toBeLessThan(25_000);
    expect(failed.err).toMatch(/--for 2s is up after 1 cycle; the last one failed/);
  });

  it('serves no metrics with --metrics-listen none (or off), with or without --watch', async () => {
    for (const v of ['none', 'off']) {
      const r = await cliAsync(['reconcile', '--policy', 'examples/demo', '--watch', '--for', '1s', '--metrics-listen', v], { cwd: dir, env: { PARMANU_STATE_DIR: join(dir, `metrics-${v}`) }, timeoutMs: 60_000 });
      expect(r.code, r.err).toBe(0);
      expect(r.err).not.toMatch(/metrics at/);
      expect(r.out).toMatch(/^demo-arm: /m);
    }
    const once = cli(['reconcile', '--policy', 'examples/demo', '--metrics-listen', 'none'], { PARMANU_STATE_DIR: join(dir, 'metrics-once') });
    expect(once.code, once.err).toBe(0);
    expect(once.err).not.toMatch(/metrics at/);
  });

  it.each([
    [['reconcile', '--policy', 'examples/demo', '--now', 'yesterday'], {}, /--now must be an ISO-8601 time/],
    [['reconcile', '--policy', 'examples/demo', '--pool', 'nope'], {}, /no pool named "nope"/],
    [['reconcile', '--policy', 'examples/demo'], { PARMANU_TERRAFORM: 'no-such-terraform' }, /no-such-terraform not found on PATH: install Terraform ≥ 1\.11\.0 or OpenTofu ≥ 1\.11\.0, or set PARMANU_TERRAFORM/],
    [['reconcile', '--policy', join(root, 'policies')], {}, /\$\{env:GITLAB_TOKEN\}: environment variable GITLAB_TOKEN is not set/],
    [['reconcile', '--policy', 'examples/demo'], { PARMANU_TERRAFORM: join(dir, 'old-terraform') }, /old-terraform 1\.2\.9 is too old: Parmanu needs Terraform ≥ 1\.11\.0 or OpenTofu ≥ 1\.11\.0/],
    [['reconcile', '--policy', 'examples/demo', '--metrics-listen', 'nowhere'], {}, /--metrics-listen must be HOST:PORT, or none \(no listener\), not "nowhere"/],
    [['reconcile', '--policy', 'examples/demo', '--for', '55m'], {}, /--for needs --watch/],
    [['reconcile', '--policy', 'examples/demo', '--watch', '--for', 'soon'], {}, /--for must be a duration such as 55m, not "soon"/],
    [['reconcile', '--policy', 'examples/demo', '--watch', '--for', '0s'], {}, /--for must be a duration such as 55m, not "0s"/],
  ])('refuses %j with exit 2 and one clear line', (args, env, message) => {
    const r = cli(args, env as Record<string, string>);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('loops with --watch and exits 0 on SIGTERM after finishing its cycle', async () => {
    const child = spawn(process.execPath, [bin, 'reconcile', '--policy', 'examples/demo', '--watch', '--metrics-listen', '127.0.0.1:0'], { cwd: dir, env: { PATH: process.env.PATH ?? '', PARMANU_STATE_DIR: join(dir, 'watch') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no cycle output: ${out}`)), 20_000);
      child.stdout.on('data', () => {
        if (/demo-arm:/.test(out)) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    // stderr is not a terminal: the address is in the log's JSON line.
    const url = err.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; url?: string }).find((l) => l.msg.startsWith('metrics at '))?.url;
    expect(url).toBeDefined();
    const body = await (await fetch(url as string)).text();
    expect(body).toMatch(/^parmanu_pool_desired_nodes\{pool="demo-linux"\} \d+$/m);
    expect(body).toMatch(/^parmanu_pool_queued_jobs\{pool="demo-arm"\} 0$/m);
    expect(body).toMatch(/^parmanu_cycle_duration_seconds_count 1$/m);
    expect(body).toMatch(/^parmanu_probe_duration_seconds_count\{emitter="demo",ok="true"\} 1$/m);
    expect(body).toMatch(/^parmanu_terraform_duration_seconds_count\{pool="demo-linux"\} 1$/m);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    expectNoSecrets('reconcile --watch', out + err);
    expect(out).toMatch(/^demo-linux: /m);
  });
});
