import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli, root } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-sim-'));
const cli = (args: string[]) => runCli(args, { cwd: dir, inheritEnv: true });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const M = ['jobs', 'unmatched', 'waitMeanS', 'waitP50S', 'waitP95S', 'waitMaxS', 'nodeMinutes', 'costVsOracle', 'peakNodes', 'scaleUps', 'scaleDowns'];

describe('parmanu simulate', () => {
  it('prints the design\'s JSON for the demo trace', () => {
    const r = cli(['simulate', '--trace', join(root, 'examples/demo/trace.csv'), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { params: Record<string, unknown>; results: Record<string, Record<string, number>>; invariants: Record<string, number> };
    expect(Object.keys(out.results).sort()).toEqual(['oracle', 'parmanu', 'perJob', 'reactive', 'staticPeak']);
    for (const m of Object.values(out.results)) expect(Object.keys(m).sort()).toEqual([...M].sort());
    expect(out.params).toMatchObject({ bootS: 90, probeS: 30, jobs: 60 });
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
