import { describe, expect, it } from 'vitest';
import { buildReport, reportHtml } from '../../src/gitops/report.js';
import type { Sample } from '../../src/history/types.js';
import { generateDay } from './report-day.js';

const T = Date.parse('2026-11-02T10:00:00Z');
const samples: Sample[] = [0, 1, 2, 3].map((i) => ({ at: T + i * 60_000, queued: [4, 2, 0, 0][i] as number, running: [0, 2, 2, 0][i] as number, arrivals: 0, nodes: [0, 4, 4, 2][i] as number, desired: 4 }));
samples[1]!.waits = [30, 50];
samples[2]!.waits = [10, 20, 40, 600];
const events = [
  { at: T + 60_000, pool: 'p', kind: 'scale-up' as const, detail: '+4: p-a p-b p-c p-d', reasons: ['4 queued + 0 running jobs ÷ 1 per node = 4'] },
  { at: T + 180_000, pool: 'p', kind: 'scale-down' as const, detail: '-2: p-c p-d' },
  { at: T + 200_000, pool: 'p', kind: 'error' as const, detail: 'terraform apply failed: <boom>' },
  { at: T, pool: 'other', kind: 'scale-up' as const, detail: '+1' },
];

describe('report', () => {
  const r = buildReport([{ pool: 'p', samples, hourlyCost: 0.5 }, { pool: 'q', samples: [] }], events, T, T + 4 * 60_000);

  it('computes node-hours, cost, peaks, waits (p50/p95 per hour, nearest rank) and the pool\'s events', () => {
    expect(r.pools[0]).toMatchObject({ pool: 'p', samples: 4, nodeHours: 0.2, hourlyCost: 0.5, cost: 0.08, peakNodes: 4, peakDemand: 4, meanDemand: 2.5, scaleUps: 1, scaleDowns: 1 });
    expect(r.pools[0]?.waits).toEqual({ jobs: 6, p50: 30, p95: 600 });
    expect(r.pools[0]?.waitsByHour).toEqual([{ at: T, jobs: 6, p50: 30, p95: 600 }]);
    expect(r.pools[0]?.events.map((e) => e.kind)).toEqual(['scale-up', 'scale-down']);
    expect(r.pools[0]?.failedCycles).toEqual([{ at: T + 200_000, detail: 'terraform apply failed: <boom>' }]);
    expect(r.pools[1]).toMatchObject({ pool: 'q', nodeHours: 0, samples: 0, waits: { jobs: 0, p50: null, p95: null } });
    expect(r.pools[1]).not.toHaveProperty('cost');
  });

  it('groups waits by UTC hour', () => {
    const s = (at: number, waits: number[]): Sample => ({ at, queued: 0, running: 1, arrivals: 0, nodes: 1, desired: 1, waits });
    const h = Date.parse('2026-11-02T08:00:00Z');
    const w = buildReport([{ pool: 'p', samples: [s(h + 60_000, [1, 2, 3]), s(h + 3_599_000, [100]), s(h + 3_600_000, [7])] }], [], h, h + 7_200_000).pools[0]!;
    expect(w.waitsByHour).toEqual([
      { at: h, jobs: 4, p50: 2, p95: 100 },
      { at: h + 3_600_000, jobs: 1, p50: 7, p95: 7 },
    ]);
  });

  it('buckets a day into at most 600 points (the busiest sample of each) and breaks the series where samples stop', () => {
    const start = Date.parse('2026-11-27T00:00:00Z');
    const day = generateDay({ pool: 'p', start, gap: [600, 660] });
    const p = buildReport([{ pool: 'p', samples: day.samples }], day.events, start, start + 86_400_000).pools[0]!;
    expect(p.series.bucketMs).toBe(300_000);
    expect(p.series.points.length).toBeLessThanOrEqual(288);
    expect(p.series.points.filter((x) => x.gapBefore).map((x) => new Date(x.at).toISOString())).toEqual(['2026-11-27T11:00:00.000Z']);
    const busiest = Math.max(...day.samples.map((x) => x.queued + x.running));
    expect(Math.max(...p.series.points.map((x) => x.queued + x.running))).toBe(busiest);
    expect(p.peakDemand).toBe(busiest);
    // The morning ramp: more nodes at 10:00 than at 04:00.
    const at = (iso: string) => p.series.points.find((x) => x.at === Date.parse(iso))!;
    expect(at('2026-11-27T09:30:00Z').nodes).toBeGreaterThan(at('2026-11-27T04:00:00Z').nodes * 3);
  });

  it('renders one self-contained HTML file: two inline SVG charts per pool, readable time ticks, tables of events with reasons and of failed cycles, all text escaped', () => {
    const hostile = buildReport([{ pool: 'p<img src=x onerror=alert(1)>', samples, hourlyCost: 0.5 }, { pool: 'q', samples: [] }], events.map((e) => ({ ...e, pool: e.pool === 'p' ? 'p<img src=x onerror=alert(1)>' : e.pool, reasons: e.reasons?.map((x) => `${x} <script>alert(2)</script>`) })), T, T + 4 * 60_000);
    const html = reportHtml(hostile);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).not.toMatch(/<script|<img|https?:\/\/(?!www\.w3\.org)|\bsrc=["']|url\(/);
    expect(html).toContain('p&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('4 queued + 0 running jobs ÷ 1 per node = 4 &lt;script&gt;alert(2)&lt;/script&gt;');
    expect(html).toContain('terraform apply failed: &lt;boom&gt;');
    expect(html).toContain('<b>0.2</b> node-hours · cost <b>0.08</b>');
    expect(html).toContain('<b>1</b> scale-ups, <b>1</b> scale-downs');
    expect(html).toContain('No samples in this period');
    // Time ticks are clock times with the date under the first one, not raw numbers.
    expect(html).toMatch(/>10:00<\/text><text [^>]*class="axis date"[^>]*>Mon 2 Nov<\/text>/);
    expect(html).toContain('Mon 2 Nov 10:00 → Mon 2 Nov 10:04 UTC');
    expect(html).toMatch(/<td class="t">Mon 2 Nov 10:01<\/td><td class="c"><span class="tag scale-up">scale-up<\/span> \+4<\/td><td class="names">p-a p-b p-c p-d<\/td>/);
  });

  it('picks tick steps that keep labels apart on a day and on a week', () => {
    const start = Date.parse('2026-11-23T00:00:00Z');
    const week = Array.from({ length: 7 }, (_, d) => generateDay({ pool: 'p', start: start + d * 86_400_000, seed: d + 1 }).samples).flat();
    const html = reportHtml(buildReport([{ pool: 'p', samples: week }], [], start, start + 7 * 86_400_000));
    const labels = [...html.matchAll(/y="297" class="axis" text-anchor="(?:start|middle|end)">([^<]+)<\/text>/g)].map((m) => m[1]);
    // A week: 12-hour steps, each day's date under its midnight tick.
    expect(labels.slice(0, 3)).toEqual(['00:00', '12:00', '00:00']);
    expect([...html.matchAll(/class="axis date"[^>]*>([^<]+)</g)].map((m) => m[1]).slice(0, 8)).toEqual(['Mon 23 Nov', 'Tue 24 Nov', 'Wed 25 Nov', 'Thu 26 Nov', 'Fri 27 Nov', 'Sat 28 Nov', 'Sun 29 Nov', 'Mon 30 Nov']);
    const xs = [...html.matchAll(/<line x1="([\d.]+)" x2="[\d.]+" y1="32" y2="280" class="vgrid"\/>/g)].map((m) => Number(m[1]));
    expect(xs.length).toBeGreaterThan(6);
    for (let i = 1; i < xs.length; i++) expect(xs[i]! - xs[i - 1]!).toBeGreaterThanOrEqual(60);
  });
});
