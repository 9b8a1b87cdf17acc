import { describe, expect, it } from 'vitest';
import { buildReport, reportHtml } from '../../src/gitops/report.js';

const T = Date.parse('2026-11-02T10:00:00Z');
const samples = [0, 1, 2, 3].map((i) => ({ at: T + i * 60_000, queued: [4, 2, 0, 0][i] as number, running: [0, 2, 2, 0][i] as number, arrivals: 0, nodes: [0, 4, 4, 2][i] as number, desired: 4 }));
const events = [
  { at: T + 60_000, pool: 'p', kind: 'scale-up' as const, detail: '+4: p-a p-b p-c p-d' },
  { at: T + 180_000, pool: 'p', kind: 'scale-down' as const, detail: '-2: p-c p-d' },
  { at: T + 200_000, pool: 'p', kind: 'error' as const, detail: 'terraform apply failed: <boom>' },
  { at: T, pool: 'other', kind: 'scale-up' as const, detail: '+1' },
];

describe('report', () => {
  const r = buildReport([{ pool: 'p', samples }, { pool: 'q', samples: [] }], events, T, T + 4 * 60_000);

  it('computes node-hours, peaks and the pool\'s events', () => {
    expect(r.pools[0]).toMatchObject({ pool: 'p', nodeHours: 0.2, peakNodes: 4, peakDemand: 4, meanDemand: 2.5 });
    expect(r.pools[0]?.events.map((e) => e.kind)).toEqual(['scale-up', 'scale-down', 'error']);
    expect(r.pools[1]).toMatchObject({ pool: 'q', nodeHours: 0, samples: [] });
  });

  it('renders one self-contained HTML file with an inline SVG per pool and escaped text', () => {
    const html = reportHtml(r);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(1);
    expect(html).toContain('<b>0.2</b> node-hours');
    expect(html).toContain('<b>1</b> scale-ups, <b>1</b> scale-downs');
    expect(html).toContain('terraform apply failed: &lt;boom&gt;');
    expect(html).toContain('No samples in this period');
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
  });
});
