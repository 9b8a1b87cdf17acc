/**
 * `parmanu report` as a user runs it, on a file history with a day of samples (one line torn):
 * the numbers in JSON, the HTML file, and one warning naming the torn line.
 */
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileHistoryStore } from '../../src/history/file.js';
import { cli } from '../cli.js';
import { generateDay } from '../gitops/report-day.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parmanu report', () => {
  it('reports a day of history in JSON and HTML, skipping a torn line with one warning', async () => {
    writeFileSync(join(dir, 'policy.yaml'), 'emitters:\n  gl: { type: gitlab, url: "http://127.0.0.1:9", token: "${env:NOT_SET_HERE}", projects: [a/b], runnerOwner: instance }\nplatforms:\n  lab: { type: local }\npools:\n  linux-x64: { emitter: gl, platform: lab, machine: { hourlyCost: 0.25 } }\n');
    const start = Math.floor(Date.now() / 60_000) * 60_000 - 86_400_000 + 60_000;
    const day = generateDay({ pool: 'linux-x64', start, errors: [[600, 'terraform apply failed: boom']] });
    const store = new FileHistoryStore(join(dir, '.parmanu'));
    for (const s of day.samples) await store.addSample('linux-x64', s);
    for (const e of day.events) await store.addEvent(e);
    const samplesDir = join(dir, '.parmanu', 'history', 'samples', 'linux-x64');
    const last = readdirSync(samplesDir).sort().at(-1) as string;
    appendFileSync(join(samplesDir, last), '{"at":1796,"queu');
    const lines = readFileSync(join(samplesDir, last), 'utf8').split('\n').length;

    const json = cli(['report', '--policy', 'policy.yaml', '--format', 'json'], { cwd: dir });
    expect(json.code, json.err).toBe(0);
    expect(json.err.trim().split('\n')).toEqual([`report: warning: ${join(samplesDir, last)}: skipped 1 unreadable sample of pool linux-x64 (line ${lines})`]);
    const r = JSON.parse(json.out) as { since: number; until: number; pools: Array<{ pool: string; samples: number; nodeHours: number; cost: number; hourlyCost: number; waits: { jobs: number; p50: number; p95: number }; waitsByHour: unknown[]; series: { points: unknown[] }; scaleUps: number; failedCycles: Array<{ detail: string }> }> };
    const p = r.pools[0]!;
    expect(p).toMatchObject({ pool: 'linux-x64', samples: day.samples.length, hourlyCost: 0.25, scaleUps: day.events.filter((e) => e.kind === 'scale-up').length, failedCycles: [{ detail: 'terraform apply failed: boom' }] });
    expect(r.since).toBe(start);
    expect(p.nodeHours).toBeGreaterThan(24 * 2 - 1);
    expect(p.cost).toBeCloseTo(p.nodeHours * 0.25, 1);
    expect(p.waits.jobs).toBe(day.samples.reduce((n, s) => n + (s.waits?.length ?? 0), 0));
    expect(p.waits.p95).toBeGreaterThanOrEqual(p.waits.p50);
    expect(p.waitsByHour.length).toBeGreaterThanOrEqual(23);
    expect(p.series.points.length).toBeGreaterThan(200);

    const html = cli(['report', '--policy', 'policy.yaml', '--out', 'r.html'], { cwd: dir });
    expect(html.code, html.err).toBe(0);
    expect(html.out.trim()).toBe(`report: 1 pools → ${join(dir, 'r.html')}`);
    const page = readFileSync(join(dir, 'r.html'), 'utf8');
    expect(page.match(/<svg /g)).toHaveLength(2);
    expect(page).toContain(`cost <b>${p.cost.toFixed(2)}</b>`);
  });
});
