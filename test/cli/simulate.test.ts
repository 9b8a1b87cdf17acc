import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli, root } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-sim-'));
const cli = (args: string[]) => runCli(args, { cwd: dir, inheritEnv: true });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const M = ['jobs', 'unmatched', 'waitMeanS', 'waitP50S', 'waitP95S', 'waitMaxS', 'nodeMinutes', 'costVsOracle', 'peakNodes', 'scaleUps', 'scaleDowns', 'scaleUpEvents', 'scaleDownEvents'];

describe('parmanu simulate', () => {
  it('prints the design\'s JSON for the demo trace', () => {
    const r = cli(['simulate', '--trace', join(root, 'examples/demo/trace.csv'), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { params: Record<string, unknown>; results: Record<string, Record<string, number>>; invariants: Record<string, number> };
    expect(Object.keys(out.results).sort()).toEqual(['oracle', 'parmanu', 'perJob', 'reactive', 'staticPeak']);
    for (const m of Object.values(out.results)) expect(Object.keys(m).sort()).toEqual([...M].sort());
    const rows = readFileSync(join(root, 'examples/demo/trace.csv'), 'utf8').trim().split('\n').length - 1;
    expect(out.params).toMatchObject({ bootS: 90, probeS: 30, jobs: rows });
    expect(out.results.oracle?.waitMeanS).toBe(0);
    expect(out.results.perJob?.waitMeanS).toBe(90);
    expect(out.invariants).toEqual({ busyDestroys: 0, maxExceeded: 0 });
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
    expect(counts).toEqual({ parmanu: [3, 2, 2, 1], oracle: [0, 0, 0, 0], perJob: [3, 3, 3, 3], reactive: [4, 2, 2, 1], staticPeak: [0, 0, 0, 0] });
    const out = cli(args).out.split('\n');
    expect(out).toContain('            jobs  wait mean  p50  p95  max  node-min  ×oracle  peak  nodes added  nodes removed');
    expect(out.find((l) => l.startsWith('reactive'))).toMatch(/\s4\s+2$/);
    expect(out.find((l) => l.startsWith('perJob'))).toMatch(/\s3\s+3$/);
    expect(cli(['simulate', '--help']).out).toMatch(/nodes added, nodes removed \(scaleUps,\s+scaleDowns: nodes created and destroyed during the trace/);
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
  ])('refuses bad input %j with exit 2', (args, message) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});
