/**
 * `reconcile --watch --listen` as a user runs it: the compiled CLI, a policy with a webhook secret
 * from the environment, the GitLab emulator delivering a Job Hook over HTTP, real terraform.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bin, cli } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { expectNoSecrets } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-cli-webhooks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'emulated-cli-webhook-SECRET-77aa';

describe('reconcile --watch --listen', () => {
  it('serves metrics and the emitter\'s webhooks on one listener; a Job Hook scales up long before the 10-minute probe', async () => {
    const emu = await new GitlabEmulator().start();
    const group = emu.addGroup('platform');
    const project = emu.addProject('api', group);
    const policy = join(dir, 'gl.yaml');
    writeFileSync(policy, `emitters:\n  gl: { type: gitlab, url: "${emu.url}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, probeInterval: 10m, webhook: { secret: "\${env:GL_WEBHOOK_SECRET}" } }\nplatforms:\n  lab: { type: local }\npools:\n  gl-pool: { emitter: gl, platform: lab, labels: [linux], scaling: { predict: false, spare: 0 } }\n`);
    const child = spawn(process.execPath, [bin, 'reconcile', '--policy', policy, '--watch', '--listen', '127.0.0.1:0', '--json'], { cwd: dir, env: { PATH: process.env.PATH ?? '', GL_TOKEN: emu.token, GL_WEBHOOK_SECRET: SECRET, PARMANU_STATE_DIR: join(dir, 'state') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const lines = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const until = async (f: () => boolean, what: string) => {
      for (const end = Date.now() + 60_000; !f(); await new Promise((r) => setTimeout(r, 25))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${out}\n${err}`);
    };
    try {
      await until(() => lines(out).length >= 1, 'the first cycle');
      const hooks = lines(err).find((l) => typeof l.msg === 'string' && l.msg.startsWith('webhooks of gl at '))?.url as string;
      const metrics = lines(err).find((l) => typeof l.msg === 'string' && l.msg.startsWith('metrics at '))?.url as string;
      expect(hooks).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/webhooks\/gl$/);
      expect(metrics).toBe(hooks.replace(/webhooks\/gl$/, 'metrics'));
      emu.webhook = { url: hooks, secret: SECRET };
      emu.addJob(project, 'pending', ['linux']);
      await until(() => lines(out).some((l) => l.trigger === 'webhook'), 'the webhook cycle');
      await emu.webhooksSettled();
      expect(emu.deliveries.map((d) => d.status)).toEqual([202]);
      const cycle = lines(out).find((l) => l.trigger === 'webhook') as { ok: boolean; pools: Array<{ pool: string; create: string[] }> };
      expect(cycle).toMatchObject({ ok: true, pools: [{ pool: 'gl-pool', create: [expect.stringMatching(/^gl-pool-/)] }] });
      const m = await (await fetch(metrics)).text();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="gl",result="accepted"\} 1$/m);
      expect(m).toMatch(/^parmanu_webhook_apply_latency_seconds_count\{pool="gl-pool"\} 1$/m);
      child.kill('SIGTERM');
      expect(await new Promise<number | null>((resolve) => child.once('exit', resolve))).toBe(0);
      // The secret (the emulator sends it as X-Gitlab-Token) is in no output.
      expectNoSecrets('reconcile --watch --listen', out + err);
      expect(out + err).not.toContain(SECRET);
    } finally {
      child.kill('SIGKILL');
      await emu.stop();
    }
  });

  it.each([
    [['--listen', '127.0.0.1:1', '--metrics-listen', '127.0.0.1:2'], /--listen and --metrics-listen are the same option; give one/],
    [['--listen', 'nowhere'], /--listen must be HOST:PORT, or none \(no listener\), not "nowhere"/],
  ])('refuses %j with exit 2 and one line', (args, message) => {
    const r = cli(['reconcile', '--policy', 'examples/demo', '--watch', ...args], { env: { PARMANU_STATE_DIR: join(dir, 'refused') } });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('says in --help what the listener serves', () => {
    const r = cli(['reconcile', '--help']);
    expect(r.out).toMatch(/--listen HOST:PORT\|none/);
    expect(r.out).toMatch(/POST \/webhooks\/<emitter>/);
    expect(r.out).toMatch(/--metrics-listen HOST:PORT\|none\n\s+the same as --listen/);
  });
});
