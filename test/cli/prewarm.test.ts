/**
 * Scheduled pre-warm (#17 item 4) end to end: the GitLab emulator's pipeline schedules over HTTP
 * through the real @gitbeaker client, the real CLI, real terraform on the `local` platform. A
 * schedule whose last runs had 5, 6 and 4 jobs of the pool's labels is due at 10:00 with a lead of
 * 3 minutes: a cycle at 09:56 does nothing; one at 09:57:30 creates ⌈6 ÷ 2⌉ = 3 nodes with the
 * pre-warm reason; they are online (ready) before 10:00; the schedule runs at 10:00 and its jobs
 * take the warm nodes, nothing created for them. An inactive schedule of another pool pre-warms
 * nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-prewarm-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Pool { pool: string; desired: number; create: string[]; drain: string[]; destroy: string[]; states: Record<string, string>; reasons: string[] }

describe('pre-warming before a GitLab pipeline schedule, through the CLI', () => {
  it('creates the nodes within the lead, ready at next_run_at, and the scheduled jobs take them; an inactive schedule pre-warms nothing', { timeout: 240_000 }, async () => {
    const emu = await new GitlabEmulator().start();
    try {
      let now = Date.parse('2026-03-02T09:50:00Z');
      emu.clock = () => now;
      const api = emu.addProject('api', emu.addGroup('platform'));
      const nightly = emu.addSchedule(api, { description: 'nightly', cron: '0 10 * * *' });
      for (const n of [5, 6, 4]) emu.finishPipeline(emu.runSchedule(nightly, Array.from({ length: n }, () => ({ tags: ['linux'] })), { due: false }));
      const off = emu.addSchedule(api, { description: 'weekly docker', cron: '58 9 * * *', active: false });
      emu.finishPipeline(emu.runSchedule(off, Array.from({ length: 8 }, () => ({ tags: ['docker', 'linux'] })), { due: false }));
      expect(nightly.next_run_at).toBe('2026-03-02T10:00:00.000Z');
      writeFileSync(
        join(dir, 'policy.yaml'),
        `emitters:\n  ci: { type: gitlab, url: "${emu.url}", token: "\${env:T}", groups: [platform], runnerOwner: { group: platform } }\nplatforms:\n  lab: { type: local }\npools:\n` +
          `  nightly: { emitter: ci, platform: lab, labels: [linux], runner: { install: preinstalled, jobsPerNode: 2 }, scaling: { max: 10, prewarm: { lead: 3m } } }\n` +
          `  docker: { emitter: ci, platform: lab, labels: [linux, docker], runner: { install: preinstalled, jobsPerNode: 2 }, scaling: { max: 10, prewarm: { lead: 3m } } }\n`,
      );
      const reconcile = async (at: string): Promise<Record<string, Pool>> => {
        now = Date.parse(at);
        const r = await cliAsync(['reconcile', '--policy', 'policy.yaml', '--json', '--now', at], { cwd: dir, env: { T: emu.token, PARMANU_STATE_DIR: join(dir, 'state') }, timeoutMs: 120_000 });
        expect(r.code, r.err).toBe(0);
        return Object.fromEntries((JSON.parse(r.out) as { pools: Pool[] }).pools.map((p) => [p.pool, p]));
      };

      // 4 minutes before: outside the 3-minute lead, nothing.
      const early = await reconcile('2026-03-02T09:56:00Z');
      expect(early.nightly).toMatchObject({ desired: 0, create: [] });
      expect(early.nightly?.reasons.join('\n')).not.toMatch(/pre-warm/);

      // Within the lead: ⌈6 ÷ 2⌉ nodes (the most of the last 3 runs), with the reason.
      const warm = await reconcile('2026-03-02T09:57:30Z');
      expect(warm.nightly?.create).toHaveLength(3);
      expect(warm.nightly?.reasons).toContain('pre-warm: schedule "nightly" of platform/api due 10:00 UTC ran 6 jobs here (the most of its last 3 runs) → 3 nodes');
      const nodes = warm.nightly?.create ?? [];
      expect(emu.runners.map((r) => r.description).sort()).toEqual([...nodes].sort());

      // Their machines boot and the runners check in: ready before the schedule is due, and kept.
      for (const n of nodes) emu.connect(n);
      const ready = await reconcile('2026-03-02T09:59:00Z');
      expect(ready.nightly).toMatchObject({ desired: 3, create: [], drain: [] });
      expect(Object.values(ready.nightly?.states ?? {})).toEqual(['ready', 'ready', 'ready']);

      // 10:00: the schedule runs (next_run_at moves to tomorrow) and its 6 jobs are queued.
      now = Date.parse('2026-03-02T10:00:00Z');
      const p = emu.runSchedule(nightly, Array.from({ length: 6 }, () => ({ tags: ['linux'] })));
      expect(nightly.next_run_at).toBe('2026-03-03T10:00:00.000Z');
      const queued = await reconcile('2026-03-02T10:00:20Z');
      expect(queued.nightly).toMatchObject({ desired: 3, create: [], drain: [] });
      expect(queued.nightly?.reasons.join('\n')).toMatch(/^6 queued \+ 0 running jobs ÷ 2 per node = 3$/m);
      // The warm nodes take them: two each, nothing booted for them.
      const jobs = emu.jobs.filter((j) => j.pipeline_id === p.id);
      jobs.forEach((j, i) => emu.takeJob(j, nodes[i % nodes.length] as string));
      const running = await reconcile('2026-03-02T10:01:00Z');
      expect(running.nightly).toMatchObject({ desired: 3, create: [], drain: [] });
      expect(Object.values(running.nightly?.states ?? {})).toEqual(['busy', 'busy', 'busy']);
      expect(new Set(emu.jobRecords.map((r) => r.runner))).toEqual(new Set(nodes));

      // The inactive schedule's pool never got a node.
      for (const r of [early, warm, ready, queued, running]) expect(r.docker).toMatchObject({ desired: 0, create: [] });
      expect(emu.unexpected).toEqual([]);
    } finally {
      await emu.stop();
    }
  });
});
