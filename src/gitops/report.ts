/**
 * The fleet report: per pool, queued + running jobs against nodes over time (inline SVG), node-hours,
 * scale events. Self-contained HTML (no CDN, no script) or JSON. Pure: data in, text out.
 */
import type { HistoryEvent, Sample } from '../history/types.js';

export interface PoolReport {
  pool: string;
  samples: Sample[];
  events: HistoryEvent[];
  nodeHours: number;
  peakNodes: number;
  peakDemand: number;
  meanDemand: number;
}

export interface FleetReport {
  since: number;
  until: number;
  pools: PoolReport[];
}

export function buildReport(pools: Array<{ pool: string; samples: Sample[] }>, events: HistoryEvent[], since: number, until: number): FleetReport {
  return {
    since,
    until,
    pools: pools.map(({ pool, samples }) => {
      let nodeMs = 0;
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i] as Sample;
        const next = samples[i + 1]?.at ?? Math.min(until, s.at + 60_000);
        nodeMs += s.nodes * Math.max(0, next - s.at);
      }
      const demand = samples.map((s) => s.queued + s.running);
      return {
        pool,
        samples,
        events: events.filter((e) => e.pool === pool),
        nodeHours: Math.round((nodeMs / 3_600_000) * 10) / 10,
        peakNodes: Math.max(0, ...samples.map((s) => s.nodes)),
        peakDemand: Math.max(0, ...demand),
        meanDemand: demand.length ? Math.round((demand.reduce((a, b) => a + b, 0) / demand.length) * 10) / 10 : 0,
      };
    }),
  };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
const iso = (t: number) => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');

function chart(p: PoolReport, since: number, until: number): string {
  const W = 880;
  const H = 220;
  const L = 44;
  const B = 28;
  const span = Math.max(1, until - since);
  const top = Math.max(1, p.peakNodes, p.peakDemand);
  const x = (t: number) => L + ((t - since) / span) * (W - L - 10);
  const y = (v: number) => H - B - (v / top) * (H - B - 12);
  const step = (vals: Array<[number, number]>) => {
    let d = '';
    vals.forEach(([t, v], i) => {
      d += i === 0 ? `M${x(t).toFixed(1)},${y(v).toFixed(1)}` : `H${x(t).toFixed(1)}V${y(v).toFixed(1)}`;
    });
    if (vals.length) d += `H${x(until).toFixed(1)}`;
    return d;
  };
  const demand = step(p.samples.map((s) => [s.at, s.queued + s.running]));
  const nodes = step(p.samples.map((s) => [s.at, s.nodes]));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * top));
  const grid = [...new Set(ticks)].map((v) => `<line x1="${L}" x2="${W - 10}" y1="${y(v)}" y2="${y(v)}" class="grid"/><text x="${L - 6}" y="${y(v) + 4}" class="axis" text-anchor="end">${v}</text>`).join('');
  const marks = p.events.filter((e) => e.kind === 'scale-up' || e.kind === 'scale-down').map((e) => `<line x1="${x(e.at)}" x2="${x(e.at)}" y1="${H - B}" y2="${H - B + 6}" class="${e.kind}"><title>${esc(`${iso(e.at)} ${e.kind}: ${e.detail}`)}</title></line>`).join('');
  return `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(p.pool)}: jobs and nodes over time">
${grid}<line x1="${L}" x2="${W - 10}" y1="${H - B}" y2="${H - B}" class="base"/>
<path d="${demand}" class="demand"/><path d="${nodes}" class="nodes"/>${marks}
<text x="${L}" y="${H - 8}" class="axis">${esc(iso(since))}</text><text x="${W - 10}" y="${H - 8}" class="axis" text-anchor="end">${esc(iso(until))}</text>
</svg>`;
}

export function reportHtml(r: FleetReport): string {
  const sections = r.pools
    .map((p) => {
      const ups = p.events.filter((e) => e.kind === 'scale-up').length;
      const downs = p.events.filter((e) => e.kind === 'scale-down').length;
      const errors = p.events.filter((e) => e.kind === 'error');
      return `<section><h2>${esc(p.pool)}</h2>
<p class="facts"><b>${p.nodeHours}</b> node-hours · peak <b>${p.peakNodes}</b> nodes · demand mean <b>${p.meanDemand}</b>, peak <b>${p.peakDemand}</b> jobs · <b>${ups}</b> scale-ups, <b>${downs}</b> scale-downs${errors.length ? ` · <b class="err">${errors.length}</b> failed cycles` : ''}</p>
${p.samples.length ? chart(p, r.since, r.until) : '<p class="none">No samples in this period: the pool has not been reconciled.</p>'}
${errors.length ? `<details><summary>Failed cycles</summary><ul>${errors.slice(-20).map((e) => `<li>${esc(iso(e.at))}: ${esc(e.detail)}</li>`).join('')}</ul></details>` : ''}
</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parmanu fleet report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:24px 0 4px}
.sub{color:#57606a;margin:0 0 12px}.facts{margin:4px 0 8px;color:#24292f}
.legend span{display:inline-block;margin-right:16px}.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:6px}
.grid{stroke:#eaeef2}.base{stroke:#8c959f}.axis{font-size:11px;fill:#57606a}
.demand{fill:none;stroke:#cf222e;stroke-width:1.5}.nodes{fill:none;stroke:#0969da;stroke-width:2}
.scale-up{stroke:#1a7f37;stroke-width:1.5}.scale-down{stroke:#9a6700;stroke-width:1.5}
.none{color:#57606a;font-style:italic}.err{color:#cf222e}
</style></head><body>
<h1>Parmanu fleet report</h1>
<p class="sub">${esc(iso(r.since))} → ${esc(iso(r.until))} · ${r.pools.length} pool${r.pools.length === 1 ? '' : 's'}</p>
<p class="legend"><span><i style="background:#cf222e"></i>queued + running jobs</span><span><i style="background:#0969da"></i>nodes</span><span><i style="background:#1a7f37"></i>scale-up</span><span><i style="background:#9a6700"></i>scale-down</span></p>
${sections}
</body></html>
`;
}
