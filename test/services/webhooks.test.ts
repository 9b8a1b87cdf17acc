/**
 * Webhooks in services mode: the prober serves them. A GitLab Job Hook for a queued job makes the
 * prober probe its emitter at once (the probe interval is 10 minutes), the changed observation
 * enqueues the job's pool as a grow-only cycle, and a scaler (which never probes) creates its node
 * within seconds. Real processes of the compiled CLI, real Redis and terraform, the GitLab emulator
 * delivering the hook over HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bin } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { useRedisSuite } from '../reconcile/suite.js';
import { expectNoSecrets } from '../secret-scan.js';

const SECRET = 'emulated-services-webhook-SECRET-5c1e';
// A redis-server for the file, and a directory removed after it.
const redis = useRedisSuite();
const dir = redis.tempDir('parmanu-services-hooks-');

function run(args: string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [bin, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p = { child, out: '', err: '' };
  child.stdout?.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (p.err += d.toString()));
  return p;
}
const lines = (text: string) => text.split('\n').filter(Boolean).flatMap((l) => {
  try {
    return [JSON.parse(l) as Record<string, unknown>];
  } catch {
    return [];
  }
});

describe('services mode: webhooks', () => {
  it('a Job Hook to the prober scales up through a scaler long before the 10-minute probe', { timeout: 120_000 }, async () => {
    const emu = await new GitlabEmulator().start();
    const group = emu.addGroup('platform');
    const project = emu.addProject('api', group);
    const policy = join(dir, 'gl.yaml');
    writeFileSync(policy, `emitters:\n  gl: { type: gitlab, url: "${emu.url}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, probeInterval: 10m, webhook: { secret: "\${env:GL_WEBHOOK_SECRET}" } }\nplatforms:\n  lab: { type: local }\npools:\n  hooked: { emitter: gl, platform: lab, labels: [linux], scaling: { predict: false, spare: 0 } }\n  other: { emitter: gl, platform: lab, labels: [arm64], scaling: { predict: false, spare: 0 } }\n`);
    const env = { GL_TOKEN: emu.token, GL_WEBHOOK_SECRET: SECRET, REDIS_URL: redis.url, PARMANU_STATE_DIR: join(dir, 'state'), PARMANU_LEASE_TTL: '4s' };
    const prober = run(['probe', '--policy', policy, '--watch', '--listen', '127.0.0.1:0', '--json'], env);
    const scaler = run(['reconcile', '--policy', policy, '--watch', '--from-redis', '--listen', 'none', '--json'], env);
    const until = async (f: () => boolean, what: string) => {
      for (const end = Date.now() + 60_000; !f(); await new Promise((r) => setTimeout(r, 25))) if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${prober.err.slice(-2000)}\n${scaler.err.slice(-2000)}`);
    };
    try {
      // The first probe is written; its pools' first cycles ran (nothing to do).
      await until(() => lines(prober.out).length >= 1, "the prober's first observation");
      await until(() => lines(scaler.out).filter((l) => Array.isArray(l.pools)).length >= 2, "the scaler's first cycles");
      const hooks = lines(prober.err).find((l) => typeof l.msg === 'string' && l.msg.startsWith('webhooks of gl at '))?.url as string;
      expect(hooks).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/webhooks\/gl$/);
      emu.webhook = { url: hooks, secret: SECRET };
      const at = Date.now();
      emu.addJob(project, 'pending', ['linux']);
      await until(() => lines(scaler.out).some((l) => l.trigger === 'webhook'), 'the webhook cycle');
      const cycle = lines(scaler.out).find((l) => l.trigger === 'webhook') as { ok: boolean; pools: Array<{ pool: string; create: string[] }> };
      // Only the job's pool, grown within seconds (the probe interval is 10 minutes).
      expect(cycle).toMatchObject({ ok: true, pools: [{ pool: 'hooked', create: [expect.stringMatching(/^hooked-/)] }] });
      expect(Date.now() - at).toBeLessThan(30_000);
      await emu.webhooksSettled();
      expect(emu.deliveries.map((d) => d.status)).toEqual([202]);
      // The prober wrote the webhook's observation (a change).
      expect(lines(prober.out).some((l) => l.webhook === true && l.changed === true)).toBe(true);
      // The metrics of the prober count the delivery.
      const m = await (await fetch(hooks.replace(/webhooks\/gl$/, 'metrics'))).text();
      expect(m).toMatch(/^parmanu_webhook_events_total\{emitter="gl",result="accepted"\} 1$/m);
      expect(m).toMatch(/^parmanu_prober_emitters_held\{emitter="gl"\} 1$/m);
      for (const p of [prober, scaler]) p.child.kill('SIGTERM');
      const codes = await Promise.all([prober, scaler].map((p) => new Promise<number | null>((resolve) => (p.child.exitCode !== null ? resolve(p.child.exitCode) : p.child.once('exit', resolve)))));
      expect(codes).toEqual([0, 0]);
      expectNoSecrets('services webhooks', prober.out + prober.err + scaler.out + scaler.err);
      expect(prober.out + prober.err + scaler.out + scaler.err).not.toContain(SECRET);
    } finally {
      prober.child.kill('SIGKILL');
      scaler.child.kill('SIGKILL');
      await emu.stop();
    }
  });
});
