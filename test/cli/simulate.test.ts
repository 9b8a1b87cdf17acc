import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli, root } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-sim-'));
const cli = (args: string[]) => runCli(args, { cwd: dir, inheritEnv: true });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const M = ['jobs', 'unmatched', 'waitMeanS', 'waitP50S', 'waitP95S', 'waitMaxS', 'nodeMinutes', 'standbyMinutes', 'costVsOracle', 'peakNodes', 'scaleUps', 'scaleDowns', 'scaleUpEvents', 'scaleDownEvents', 'starts', 'stops'];

describe('parmanu simulate', () => {
  it('prints the design\'s JSON for the demo trace', () => {
    const r = cli(['simulate', '--trace', join(root, 'examples/demo/trace.csv'), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { params: Record<string, unknown>; results: Record<string, Record<string, number>>; invariants: Record<string, number> };
    expect(Object.keys(out.results).sort()).toEqual(['oracle', 'parmanu', 'perJob', 'reactive', 'reactiveStandby', 'staticPeak']);
    for (const m of Object.values(out.results)) expect(Object.keys(m).sort()).toEqual([...M].sort());
    const rows = readFileSync(join(root, 'examples/demo/trace.csv'), 'utf8').trim().split('\n').length - 1;
    expect(out.params).toMatchObject({ bootS: 90, probeS: 30, signal: 'poll', webhookLatencyS: 2, resumeS: 40, stoppedCost: 0.05, standby: null, reactiveStandby: 4, jobs: rows });
    expect(out.results.oracle?.waitMeanS).toBe(0);
    expect(out.results.perJob?.waitMeanS).toBe(90);
    expect(out.invariants).toEqual({ busyDestroys: 0, busyStops: 0, maxExceeded: 0 });
  });

  it('uses a policy\'s pools and reports unmatched jobs', () => {
    const r = cli(['simulate', '--trace', join(root, 'examples/demo/trace.csv'), '--policy', join(root, 'examples/demo'), '--boot', '60s', '--probe', '15s']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/pool demo-linux \(labels linux, x64; 2 jobs\/node\)/);
    expect(r.out).toMatch(/pool demo-arm/);
    expect(r.out).toMatch(/^parmanu\s+\d+/m);
  });

  it('names what its columns count: nodes added and removed, the same for every baseline (a hand-made trace)', () => {
    // Two 60 s jobs at 00:00, one at 00:20; boot 60 s, probe 30 s; one job a node. By hand (see test/sim/engine.test.ts):
    // parmanu +2 at 0 s, −2 after its 1 m scale-down window, +1 at 20 min; reactive +3 (2 + 1 spare), −2 after 10 min, +1.
    writeFileSync(join(dir, 'tiny.csv'), 'queued_at,duration_s,labels\n2026-01-05T00:00:00Z,60,linux\n2026-01-05T00:00:00Z,60,linux\n2026-01-05T00:20:00Z,60,linux\n');
    writeFileSync(join(dir, 'tiny.yaml'), 'emitters:\n  r: { type: replay, trace: tiny.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab, labels: [linux], scaling: { predict: false, spare: 0, scaleDownAfter: 1m, minLifetime: 0s } }\n');
    const args = ['simulate', '--trace', 'tiny.csv', '--policy', 'tiny.yaml', '--boot', '60s', '--probe', '30s'];
    const json = cli([...args, '--json']);
    expect(json.code, json.err).toBe(0);
    const results = (JSON.parse(json.out) as { results: Record<string, Record<string, number>> }).results;
    const counts = Object.fromEntries(Object.entries(results).map(([b, m]) => [b, [m.scaleUps, m.scaleDowns, m.scaleUpEvents, m.scaleDownEvents]]));
    // reactiveStandby (standby 4): 2 + 1 spare and 4 nodes to fill the standby at 0 s, which stop
    // once online (60 s); 10 min after the jobs, 2 idle nodes go (the standby is full). At 20 min
    // the job runs on the spare: the new spare starts from standby and a node is made to refill it.
    expect(counts).toEqual({ parmanu: [3, 2, 2, 1], oracle: [0, 0, 0, 0], perJob: [3, 3, 3, 3], reactive: [4, 2, 2, 1], reactiveStandby: [8, 2, 2, 2], staticPeak: [0, 0, 0, 0] });
    expect([results.reactiveStandby?.starts, results.reactiveStandby?.stops]).toEqual([1, 4]);
    const out = cli(args).out.split('\n');
    expect(out).toContain('                 jobs  wait mean  p50  p95  max  node-min  standby-min  ×oracle  peak  nodes added  nodes removed  started  stopped');
    expect(out.find((l) => l.startsWith('reactive '))).toMatch(/\s4\s+2\s+0\s+0$/);
    expect(out.find((l) => l.startsWith('perJob'))).toMatch(/\s3\s+3\s+0\s+0$/);
    expect(cli(['simulate', '--help']).out).toMatch(/nodes added, nodes removed \(scaleUps,\s+scaleDowns:\s+nodes\s+created\s+and\s+destroyed\s+during\s+the\s+trace/);
  });

  it('takes the signal, resume time, stopped cost and standby, and counts standby at the stopped fraction', () => {
    // One 60 s job at 00:00:10 and one at 00:20:10; boot 60 s, probe 30 s; a pool without spare or predict.
    writeFileSync(join(dir, 'two.csv'), 'queued_at,duration_s,labels\n2026-01-05T00:00:10Z,60,linux\n2026-01-05T00:20:10Z,60,linux\n');
    writeFileSync(join(dir, 'two.yaml'), 'emitters:\n  r: { type: replay, trace: two.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab, labels: [linux], scaling: { predict: false, spare: 0 } }\n');
    const base = ['simulate', '--trace', 'two.csv', '--policy', 'two.yaml', '--boot', '60s', '--probe', '30s', '--json'];
    const run = (extra: string[]) => {
      const r = cli([...base, ...extra]);
      expect(r.code, r.err).toBe(0);
      return JSON.parse(r.out) as { params: Record<string, unknown>; results: Record<string, Record<string, number>> };
    };
    const polled = run([]);
    const hooked = run(['--signal', 'webhook', '--webhook-latency', '3s']);
    expect(hooked.params).toMatchObject({ signal: 'webhook', webhookLatencyS: 3 });
    // Polling: each job waits for the next probe (20 s) and a boot; a webhook: 3 s and a boot.
    expect([polled.results.parmanu?.waitMeanS, polled.results.parmanu?.waitMaxS]).toEqual([80, 80]);
    expect([hooked.results.parmanu?.waitMeanS, hooked.results.parmanu?.waitMaxS]).toEqual([63, 63]);
    // perJob is webhook-driven whatever the signal: one boot.
    expect(polled.results.perJob?.waitMeanS).toBe(60);
    const sb = run(['--reactive-standby', '2', '--stopped-cost', '0.5', '--resume', '20s']);
    expect(sb.params).toMatchObject({ reactiveStandby: 2, stoppedCost: 0.5, resumeS: 20, standby: null });
    const m = sb.results.reactiveStandby as { nodeMinutes: number; standbyMinutes: number; costVsOracle: number };
    const oracle = sb.results.oracle?.nodeMinutes as number;
    expect(m.standbyMinutes).toBeGreaterThan(0);
    expect(m.costVsOracle).toBeCloseTo((m.nodeMinutes + 0.5 * m.standbyMinutes) / oracle, 1);
    // The same run at a stopped cost of 0 costs only its running minutes.
    const free = run(['--reactive-standby', '2', '--stopped-cost', '0', '--resume', '20s']).results.reactiveStandby as { nodeMinutes: number; costVsOracle: number };
    expect(free.costVsOracle).toBeCloseTo(free.nodeMinutes / oracle, 1);
    expect(free.costVsOracle).toBeLessThan(m.costVsOracle);
    // The policy's pool has no standby; --standby 1 gives it one: the second job starts it (20 s resume).
    expect(polled.results.parmanu?.standbyMinutes).toBe(0);
    const withStandby = run(['--standby', '1', '--resume', '20s']);
    expect(withStandby.params.standby).toBe(1);
    expect(withStandby.results.parmanu?.standbyMinutes).toBeGreaterThan(0);
    // The second job waits for the probe (20 s) and a start (20 s) instead of a boot.
    expect(withStandby.results.parmanu?.starts).toBe(1);
    expect(withStandby.results.parmanu?.waitP50S).toBe(40);
    expect(withStandby.results.parmanu?.waitMaxS).toBeLessThanOrEqual(80);
    expect(run(['--standby', 'auto']).params.standby).toBe('auto');
  });

  it('reports malformed rows as FILE:LINE and exits 2', () => {
    writeFileSync(join(dir, 'bad.csv'), 'queued_at,duration_s,labels\n2025-01-01T00:00:00Z,10,a\nyesterday,10,a\n2025-01-01T00:00:00Z,x,a\n');
    const r = cli(['simulate', '--trace', 'bad.csv']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('bad.csv:3: queued_at "yesterday" is not an ISO-8601 time');
    expect(r.err).toContain('bad.csv:4: duration_s "x" is not a whole number of seconds');
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it.each([
    [['simulate'], /--trace CSV \(or --shape NAME\) is required/],
    [['simulate', '--shape', 'weekly'], /--shape must be one of office-hours, nightly, quiet-gaps/],
    [['simulate', '--shape', 'nightly', '--days', '0'], /--days must be a whole number from 1/],
    [['simulate', '--trace', 'nope.csv'], /nope\.csv: no such file/],
    [['simulate', '--trace', 'x.csv', '--boot', 'soon'], /--boot must be a duration/],
    [['simulate', '--trace', 'x.csv', '--signal', 'push'], /--signal must be poll or webhook, not "push"/],
    [['simulate', '--trace', 'x.csv', '--resume', 'fast'], /--resume must be a duration/],
    [['simulate', '--trace', 'x.csv', '--stopped-cost', '1.5'], /--stopped-cost must be a fraction from 0 to 1/],
    [['simulate', '--trace', 'x.csv', '--stopped-cost', '5%'], /--stopped-cost must be a fraction from 0 to 1/],
    [['simulate', '--trace', 'x.csv', '--standby', 'many'], /--standby must be a whole number from 0 to 1000/],
    [['simulate', '--trace', 'x.csv', '--reactive-standby', '-1'], /--reactive-standby|--reactive-standby must be/],
  ])('refuses bad input %j with exit 2', (args, message) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});
