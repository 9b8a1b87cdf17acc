import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bin, cli as runCli, root } from '../cli.js';
import { expectNoSecrets } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-rec-'));
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env });

beforeAll(() => {
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
    const a = JSON.parse(first.out) as { ok: boolean; pools: Array<Record<string, unknown>> };
    expect(a.ok).toBe(true);
    const linux = a.pools.find((p) => p.pool === 'demo-linux') as { create: string[]; terraform: { ran: boolean; add: number }; observed: Record<string, number>; durationMs: number; reasons: string[] };
    expect(Object.keys(linux).sort()).toEqual(['create', 'desired', 'destroy', 'drain', 'durationMs', 'observed', 'pool', 'reasons', 'states', 'terraform', 'vanished']);
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
    expect(selected.out).toMatch(/^r-pool: /m);
    const all = cli(['reconcile', '--policy', 'two.yaml', '--dry-run'], { PARMANU_STATE_DIR: join(dir, 'two') });
    expect(all.code).toBe(2);
    expect(all.err).toMatch(/two\.yaml:3:\d+: emitters\.gl\.token: \$\{env:NOT_SET_HERE\}: environment variable NOT_SET_HERE is not set/);
  });

  it('plans but applies nothing with --dry-run', () => {
    const r = cli(['reconcile', '--policy', 'examples/demo', '--pool', 'demo-linux', '--dry-run'], { PARMANU_STATE_DIR: join(dir, 'dry') });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^demo-linux: \d+ queued/);
    expect(existsSync(join(dir, 'dry', 'pools', 'demo-linux', 'terraform.tfstate'))).toBe(false);
  });

  it.each([
    [['reconcile', '--policy', 'examples/demo', '--now', 'yesterday'], {}, /--now must be an ISO-8601 time/],
    [['reconcile', '--policy', 'examples/demo', '--pool', 'nope'], {}, /no pool named "nope"/],
    [['reconcile', '--policy', 'examples/demo'], { PARMANU_TERRAFORM: 'no-such-terraform' }, /no-such-terraform not found on PATH: install Terraform ≥ 1\.11\.0 or OpenTofu ≥ 1\.11\.0, or set PARMANU_TERRAFORM/],
    [['reconcile', '--policy', join(root, 'policies')], {}, /\$\{env:GITLAB_TOKEN\}: environment variable GITLAB_TOKEN is not set/],
    [['reconcile', '--policy', 'examples/demo'], { PARMANU_TERRAFORM: join(dir, 'old-terraform') }, /old-terraform 1\.2\.9 is too old: Parmanu needs Terraform ≥ 1\.11\.0 or OpenTofu ≥ 1\.11\.0/],
    [['reconcile', '--policy', 'examples/demo', '--metrics-listen', 'nowhere'], {}, /--metrics-listen must be HOST:PORT or off/],
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
    const url = /metrics at (http:\S+)/.exec(err)?.[1];
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
