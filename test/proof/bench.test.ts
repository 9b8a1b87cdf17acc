/**
 * The benchmark harness as developers run it (`npm run bench` → dist/bench/cli.js): every figure the issues name is a case, the JSON has its
 * documented shape, a ratio is value ÷ baseline, and BENCHMARKS.md's table lists every figure.
 * (Timing is never asserted here: the figures live in `npm run bench`.)
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, root } from '../cli.js';

const NAMED = ['cold-start', 'validate-200-pools', 'simulate-bitcoin', 'probe-gitlab-500-projects', 'probe-github-etag', 'synth-1000-nodes', 'noop-cycle-50-pools', 'redis-round-trips-per-cycle', 'reconcile-vs-terraform-200-nodes'];

describe('npm run bench', () => {
  it('has a case for every named figure', async () => {
    const r = await cliAsync(['bench', '--help'], { inheritEnv: true, dev: true });
    expect(r.code).toBe(0);
    for (const n of NAMED) expect(r.out).toContain(n);
  });

  it('prints figures with baselines measured in the same run as JSON, and as Markdown', async () => {
    const r = await cliAsync(['bench', '--only', 'cold-start,probe-github-etag', '--json'], { inheritEnv: true, dev: true, timeoutMs: 120_000 });
    expect(r.code, r.err).toBe(0);
    const { figures } = JSON.parse(r.out) as { figures: Array<{ name: string; value: number; unit: string; baseline?: { name: string; value: number }; ratio?: number }> };
    expect(figures.map((f) => f.name)).toEqual(['cold-start', 'probe-github-etag']);
    const cold = figures[0];
    expect(cold?.baseline?.name).toBe('node -e 0');
    expect(cold?.ratio).toBeCloseTo((cold?.value ?? 0) / (cold?.baseline?.value ?? 1), 1);
    expect(figures[1]).toMatchObject({ value: 100, unit: '% 304' });
    const md = await cliAsync(['bench', '--only', 'probe-github-etag', '--markdown'], { inheritEnv: true, dev: true, timeoutMs: 120_000 });
    expect(md.out.split('\n')[0]).toBe('| figure | value | baseline | ratio | note |');
    expect(md.out).toMatch(/^\| probe-github-etag \| 100 % 304 \|/m);
  });

  it('refuses an unknown case in one line, exit 2', async () => {
    const r = await cliAsync(['bench', '--only', 'nope'], { dev: true });
    expect(r.code).toBe(2);
    expect(r.err.trim()).toMatch(/^parmanu: bench: no case named "nope" \(cases: .*\)$/);
  });

  it('outside the workspace (no traces folder) skips the trace figures with one clear line', async () => {
    const missing = join(tmpdir(), 'parmanu-no-traces-here');
    const r = await cliAsync(['bench', '--only', 'simulate-bitcoin', '--json'], { inheritEnv: true, dev: true, env: { PARMANU_TRACES_DIR: missing }, timeoutMs: 60_000 });
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ figures: [] });
    const lines = r.err.trim().split('\n');
    expect(lines.filter((l) => l.includes('skipped'))).toEqual([`bench: simulate-bitcoin skipped: no trace ${join(missing, 'bitcoin-core-gha.csv')} (set PARMANU_TRACES_DIR to the folder that holds bitcoin-core-gha.csv)`]);
    expect(r.err).not.toMatch(/internal error|ENOENT|\n\s+at /);
  });

  it('BENCHMARKS.md records every figure', () => {
    const doc = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
    for (const n of [...NAMED, 'cycle-50-pools-peak-rss']) expect(doc).toMatch(new RegExp(`^\\| ${n} \\|`, 'm'));
  });
});
