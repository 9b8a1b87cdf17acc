/**
 * The services mode's command line: `probe` and `reconcile --from-redis` as a user runs them
 * (the compiled CLI, a real redis-server, the GitLab emulator over HTTP), their refusals, and the
 * listener's /healthz and /readyz.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import { Listener } from '../../src/reconcile/webhooks.js';
import { cli, cliAsync } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { startRedis, type RedisServer } from '../redis-server.js';

let redis: RedisServer;
let emu: GitlabEmulator;
const dir = mkdtempSync(join(tmpdir(), 'parmanu-cli-services-'));
let policy = '';
beforeAll(async () => {
  redis = await startRedis();
  emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  emu.addProject('api', group);
  policy = join(dir, 'fleet.yaml');
  writeFileSync(policy, `emitters:\n  gl: { type: gitlab, url: "${emu.url}", token: "\${env:GL_TOKEN}", groups: [platform], runnerOwner: { group: platform }, probeInterval: 30s }\nplatforms:\n  lab: { type: local }\npools:\n  small: { emitter: gl, platform: lab, labels: [linux], scaling: { predict: false, spare: 0 } }\n`);
});
afterAll(async () => {
  await emu.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
});

const env = () => ({ GL_TOKEN: emu.token, REDIS_URL: redis.url, PARMANU_STATE_DIR: join(dir, 'state') });

describe('probe and reconcile --from-redis', () => {
  it.each([
    [['probe', '--policy', 'examples/demo'], {}, /^parmanu: probe: the prober needs REDIS_URL \(observations and the work queue live in Redis\)$/],
    [['reconcile', '--policy', 'examples/demo', '--from-redis'], {}, /^parmanu: reconcile: --from-redis needs REDIS_URL/],
    [['reconcile', '--policy', 'examples/demo', '--from-redis', '--watch', '--pool', 'demo-linux'], { REDIS_URL: 'redis://127.0.0.1:1' }, /--pool cannot go with --from-redis/],
    [['reconcile', '--policy', 'examples/demo', '--concurrency', '2'], {}, /--concurrency goes with --from-redis --watch/],
    [['reconcile', '--policy', 'examples/demo', '--from-redis', '--watch', '--concurrency', '0'], { REDIS_URL: 'redis://127.0.0.1:1' }, /--concurrency must be a whole number from 1 to 64, not "0"/],
    [['probe', '--policy', 'examples/demo', '--listen', '127.0.0.1:0'], { REDIS_URL: 'redis://127.0.0.1:1' }, /probe: --listen needs --watch/],
    [['probe', '--policy', 'examples/demo', '--for', '1m'], { REDIS_URL: 'redis://127.0.0.1:1' }, /probe: --for needs --watch/],
  ])('%j is refused with exit 2 and one line', (args, extra, message) => {
    const r = cli(args, { env: { PARMANU_STATE_DIR: join(dir, 'refused'), ...extra } });
    expect(r.code).toBe(2);
    expect(r.err.trim()).toMatch(message);
    expect(r.err.trim().split('\n')).toHaveLength(1);
  });

  it('probe writes the observation with a version that moves only when what was seen changes; a scaler reads it without probing', async () => {
    const first = await cliAsync(['probe', '--policy', policy, '--json'], { env: env() });
    expect(first.code).toBe(0);
    const a = JSON.parse(first.out.trim()) as { emitter: string; ok: boolean; version: number; changed: boolean; written: boolean; jobs: number };
    expect(a).toMatchObject({ emitter: 'gl', ok: true, changed: true, written: true, jobs: 0 });
    const again = JSON.parse((await cliAsync(['probe', '--policy', policy, '--json'], { env: env() })).out.trim()) as typeof a;
    expect(again).toMatchObject({ version: a.version, changed: false, written: true });
    const project = emu.projects[0]!;
    emu.addJob(project, 'pending', ['linux']);
    const changed = JSON.parse((await cliAsync(['probe', '--policy', policy, '--json'], { env: env() })).out.trim()) as typeof a;
    expect(changed).toMatchObject({ changed: true, jobs: 1 });
    expect(changed.version).toBeGreaterThan(a.version);
    // The terminal form says what was seen and the version.
    expect((await cliAsync(['probe', '--policy', policy], { env: env() })).out.trim()).toBe(`gl: 1 queued, 0 running, 0 runners; version ${changed.version}`);

    // A scaler's one cycle from Redis: it plans from the stored observation and never asks the platform for jobs.
    const jobsAsked = emu.count('GET', /\/jobs/);
    const r = await cliAsync(['reconcile', '--policy', policy, '--from-redis', '--dry-run', '--json'], { env: env() });
    expect(r.code).toBe(0);
    const cycle = JSON.parse(r.out.trim()) as { pools: Array<{ pool: string; observed: { queued: number }; create: string[]; probe: { ok: boolean; stale: boolean } }> };
    expect(cycle.pools[0]).toMatchObject({ pool: 'small', observed: { queued: 1 }, probe: { ok: true, stale: false } });
    expect(cycle.pools[0]!.create).toHaveLength(1);
    expect(emu.count('GET', /\/jobs/)).toBe(jobsAsked);
  });

  it('a scaler with no observation in Redis holds its pools and says why', async () => {
    const other = await startRedis();
    try {
      const r = await cliAsync(['reconcile', '--policy', policy, '--from-redis', '--dry-run'], { env: { ...env(), REDIS_URL: other.url } });
      expect(r.code).toBe(1);
      expect(r.out).toContain('small (dry run): probe failed: no observation of emitter gl in Redis yet (is a prober running? parmanu probe --watch), holding');
    } finally {
      await other.stop();
    }
  });

  it('says in --help what services mode is', () => {
    const p = cli(['probe', '--help']).out;
    expect(p).toMatch(/^Usage: parmanu probe \[--policy PATH\] \[--watch \[--for DURATION\]\] \[--listen HOST:PORT\|none\]/);
    expect(p).toMatch(/\/healthz/);
    expect(p).toMatch(/\/readyz/);
    const r = cli(['reconcile', '--help']).out;
    expect(r).toMatch(/--from-redis\s+services mode \(a scaler\): never probe/);
    expect(r).toMatch(/--concurrency N/);
  });
});

describe('the listener: /healthz and /readyz', () => {
  it('/healthz answers while the process serves; /readyz answers 503 with the reason while Redis cannot be reached, 200 once it can', async () => {
    const down = new RedisHistoryStore('redis://127.0.0.1:1');
    const up = new RedisHistoryStore(redis.url);
    let store = down;
    const listener = new Listener(new ReconcileMetrics(), undefined, {}, async () => store.ping().then(() => undefined));
    const base = await listener.listen('127.0.0.1', 0);
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toBe('not ready: redis PING: cannot connect to 127.0.0.1:1 (is Redis running at REDIS_URL?)\n');
      store = up;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/nowhere`)).status).toBe(404);
    } finally {
      await listener.close();
      await down.close();
      await up.close();
    }
  });
});
