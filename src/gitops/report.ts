/**
 * The fleet report: per pool, queued and running jobs against nodes over time, job waits per hour
 * (p50/p95, from the starts reconcile observed), node-hours and cost, the scale events with their
 * reasons and the failed cycles. Self-contained HTML (inline SVG and CSS, no script, no external
 * resource: it opens offline) or JSON with the same numbers. Pure: data in, text out. Times are
 * UTC. Pool names, event details and reasons come from policies and CI platforms: every piece of
 * text is escaped.
 */
import { htmlEscape } from './markdown.js';
import { money as formatMoney, type BudgetState } from '../decide/budget.js';
import type { HistoryEvent, Sample } from '../history/types.js';

/** One point of a pool's chart: the bucket's busiest sample (queued, running), its most nodes and desired. */
export interface SeriesPoint {
  at: number;
  queued: number;
  running: number;
  nodes: number;
  desired: number;
  /** No sample for a while before this point (the reconciler was not running): the chart breaks there. */
  gapBefore?: true;
}

export interface WaitStats {
  /** Jobs whose start was observed. */
  jobs: number;
  /** Median wait, seconds (null without jobs). */
  p50: number | null;
  /** 95th percentile wait, seconds (null without jobs). */
  p95: number | null;
}

export interface PoolReport {
  pool: string;
  /** Samples in the period. */
  samples: number;
  nodeHours: number;
  /** The policy's `machine.hourlyCost`, when given. */
  hourlyCost?: number;
  /** nodeHours × hourlyCost, rounded to cents. */
  cost?: number;
  peakNodes: number;
  peakDemand: number;
  meanDemand: number;
  waits: WaitStats;
  /** Per UTC hour that had observed starts. */
  waitsByHour: Array<WaitStats & { at: number }>;
  /** The chart's points: at most about 600, each the busiest sample of a bucket of `bucketMs`. */
  series: { bucketMs: number; points: SeriesPoint[] };
  scaleUps: number;
  scaleDowns: number;
  /** Capacity fallbacks of new nodes (`fallback` events: re-rendered on-demand, moved to the next subnet/zone, or dropped). */
  fallbacks: number;
  /** A pool with failover platforms: where its new nodes go (its last cycle's choice), its failover list, and its moves in the period (`failover` events). */
  runsOn?: { platform: string; failover: string[]; moves: number };
  /** Scale-ups, scale-downs and other changes (all but errors), oldest first. */
  events: HistoryEvent[];
  /** The cycles that failed (error events), oldest first. */
  failedCycles: Array<{ at: number; detail: string }>;
}

/** A cost budget against what its pools spent: now, this month, and in the report's period. */
export interface BudgetReport extends BudgetState {
  /** What the budget's pools cost in the report's period (their samples' node-hours × hourlyCost). */
  periodSpend: number;
  /** The period's limits: maxPerHour × its hours, and maxPerMonth's share of them (÷ 730 per hour). */
  periodLimitByHour?: number;
  periodLimitByMonth?: number;
}

export interface FleetReport {
  since: number;
  until: number;
  pools: PoolReport[];
  /** Cost budgets (`budgets:` in the policy); absent without any. */
  budgets?: BudgetReport[];
  /** The policy's currency; absent: plain numbers. */
  currency?: string;
}

/** What the report shows of cost budgets: each budget as it stands now (decide/budget.ts `budgetStates`). */
export interface BudgetInput {
  budgets: BudgetState[];
  currency?: string | undefined;
}

export interface PoolInput {
  pool: string;
  samples: Sample[];
  hourlyCost?: number | undefined;
  /** A pool with failover platforms: where its new nodes went at its last cycle, and its failover list. */
  runsOn?: { platform: string; failover: string[] };
}

const MIN = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
/** Bucket widths for the chart's series, smallest first. */
const BUCKETS = [30_000, MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY];
const MAX_POINTS = 600;

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number | null {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number;
}

function waitStats(values: number[]): WaitStats {
  const sorted = [...values].sort((a, b) => a - b);
  const r = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
  return { jobs: sorted.length, p50: r(percentile(sorted, 0.5)), p95: r(percentile(sorted, 0.95)) };
}

/** The chart's series: samples bucketed (the busiest per bucket), with breaks where samples stop for a while. */
function series(samples: readonly Sample[], since: number, until: number): { bucketMs: number; points: SeriesPoint[] } {
  const bucketMs = BUCKETS.find((b) => (until - since) / b <= MAX_POINTS) ?? DAY;
  const gaps = samples.slice(1).map((s, i) => s.at - (samples[i] as Sample).at).sort((a, b) => a - b);
  const typical = gaps.length ? (gaps[Math.floor(gaps.length / 2)] as number) : MIN;
  // A pause much longer than the usual probe interval (and longer than a bucket) is a gap in the data.
  const gapMs = Math.max(5 * typical, 2 * bucketMs, 5 * MIN);
  const points: SeriesPoint[] = [];
  let prevAt: number | undefined;
  for (const s of samples) {
    const at = Math.floor(s.at / bucketMs) * bucketMs;
    const last = points[points.length - 1];
    const gap = prevAt !== undefined && s.at - prevAt > gapMs;
    prevAt = s.at;
    if (last && last.at === at && !gap) {
      if (s.queued + s.running > last.queued + last.running) Object.assign(last, { queued: s.queued, running: s.running });
      last.nodes = Math.max(last.nodes, s.nodes);
      last.desired = Math.max(last.desired, s.desired);
      continue;
    }
    points.push({ at: Math.max(at, since), queued: s.queued, running: s.running, nodes: s.nodes, desired: s.desired, ...(gap ? { gapBefore: true as const } : {}) });
  }
  return { bucketMs, points };
}

export function buildReport(pools: PoolInput[], events: HistoryEvent[], since: number, until: number, cost?: BudgetInput): FleetReport {
  const report: FleetReport = {
    since,
    until,
    pools: pools.map(({ pool, samples, hourlyCost, runsOn }) => {
      let nodeMs = 0;
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i] as Sample;
        const next = samples[i + 1]?.at ?? Math.min(until, s.at + 60_000);
        nodeMs += s.nodes * Math.max(0, next - s.at);
      }
      const demand = samples.map((s) => s.queued + s.running);
      const nodeHours = Math.round((nodeMs / HOUR) * 10) / 10;
      const byHour = new Map<number, number[]>();
      for (const s of samples) {
        if (!s.waits?.length) continue;
        const hour = Math.floor(s.at / HOUR) * HOUR;
        const list = byHour.get(hour) ?? [];
        list.push(...s.waits);
        byHour.set(hour, list);
      }
      const own = events.filter((e) => e.pool === pool);
      return {
        pool,
        samples: samples.length,
        nodeHours,
        ...(hourlyCost !== undefined ? { hourlyCost, cost: Math.round((nodeMs / HOUR) * hourlyCost * 100) / 100 } : {}),
        peakNodes: samples.reduce((m, s) => Math.max(m, s.nodes), 0),
        peakDemand: demand.reduce((m, d) => Math.max(m, d), 0),
        meanDemand: demand.length ? Math.round((demand.reduce((a, b) => a + b, 0) / demand.length) * 10) / 10 : 0,
        waits: waitStats(samples.flatMap((s) => s.waits ?? [])),
        waitsByHour: [...byHour.entries()].sort(([a], [b]) => a - b).map(([at, ws]) => ({ at, ...waitStats(ws) })),
        series: series(samples, since, until),
        scaleUps: own.filter((e) => e.kind === 'scale-up').length,
        scaleDowns: own.filter((e) => e.kind === 'scale-down').length,
        fallbacks: own.filter((e) => e.kind === 'fallback').length,
        ...(runsOn ? { runsOn: { ...runsOn, moves: own.filter((e) => e.kind === 'failover').length } } : {}),
        // (The fencing record of each apply is for audits, not a scale event.)
        events: own.filter((e) => e.kind !== 'error' && e.kind !== 'apply'),
        failedCycles: own.filter((e) => e.kind === 'error').map((e) => ({ at: e.at, detail: e.detail })),
      };
    }),
  };
  if (cost?.currency) report.currency = cost.currency;
  if (cost?.budgets.length) {
    const hours = Math.max(0, until - since) / HOUR;
    const cents = (v: number) => Math.round(v * 100) / 100;
    report.budgets = cost.budgets.map((b) => ({
      ...b,
      perHourNow: Math.round(b.perHourNow * 10_000) / 10_000,
      monthToDate: cents(b.monthToDate),
      ...(b.monthRate !== undefined ? { monthRate: Math.round(b.monthRate * 10_000) / 10_000 } : {}),
      periodSpend: cents(report.pools.filter((p) => b.pools.includes(p.pool)).reduce((a, p) => a + (p.cost ?? 0), 0)),
      ...(b.maxPerHour !== undefined ? { periodLimitByHour: cents(b.maxPerHour * hours) } : {}),
      ...(b.maxPerMonth !== undefined ? { periodLimitByMonth: cents((b.maxPerMonth / 730) * hours) } : {}),
    }));
  }
  return report;
}

// ------------------------------------------------------------------ HTML

const esc = htmlEscape;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const pad = (n: number) => String(n).padStart(2, '0');
const hhmm = (t: number) => `${pad(new Date(t).getUTCHours())}:${pad(new Date(t).getUTCMinutes())}`;
const dayName = (t: number) => `${WEEKDAYS[new Date(t).getUTCDay()]} ${new Date(t).getUTCDate()} ${MONTHS[new Date(t).getUTCMonth()]}`;
const when = (t: number) => `${dayName(t)} ${hhmm(t)}`;
const num = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** A wait in seconds as people read it: 45 s, 3.5 min, 1.2 h. */
function dur(s: number | null): string {
  if (s === null) return '—';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${num(Math.round((s / 60) * 10) / 10)} min`;
  return `${num(Math.round((s / 3600) * 10) / 10)} h`;
}

const TIME_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY];

/**
 * Time ticks at round UTC times: clock times at least 60 px apart, each with the date under it
 * where the day changes; or, for long periods, dates at least 100 px apart.
 */
function timeTicks(since: number, until: number, plotW: number): Array<{ at: number; time: string; date?: string }> {
  const span = Math.max(1, until - since);
  const step = TIME_STEPS.find((s) => (s / span) * plotW >= (s >= DAY ? 100 : 60)) ?? 7 * DAY;
  const out: Array<{ at: number; time: string; date?: string }> = [];
  let lastDay = -1;
  for (let t = Math.ceil(since / step) * step; t <= until; t += step) {
    const day = Math.floor(t / DAY);
    const daily = step >= DAY;
    out.push({ at: t, time: daily ? dayName(t) : hhmm(t), ...(!daily && day !== lastDay ? { date: dayName(t) } : {}) });
    lastDay = day;
  }
  return out;
}

/** Round value ticks from 0 to at least `max` (about five). */
function valueTicks(max: number, steps: readonly number[]): number[] {
  const step = steps.find((s) => max / s <= 5) ?? (steps[steps.length - 1] as number);
  const top = Math.max(step, Math.ceil(max / step) * step);
  const out: number[] = [];
  for (let v = 0; v <= top + 1e-9; v += step) out.push(v);
  return out;
}
const COUNT_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10_000];
const SECOND_STEPS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400];
const tickDur = (s: number) => (s === 0 ? '0' : s < 60 ? `${s} s` : s < 3600 ? `${s / 60} min` : `${num(s / 3600)} h`);

interface Frame {
  W: number;
  H: number;
  L: number;
  R: number;
  T: number;
  B: number;
  since: number;
  until: number;
}

const xOf = (f: Frame) => (t: number) => f.L + ((Math.min(f.until, Math.max(f.since, t)) - f.since) / Math.max(1, f.until - f.since)) * (f.W - f.L - f.R);

/** The time axis (ticks, labels, vertical grid) shared by both charts. */
function timeAxis(f: Frame): string {
  const x = xOf(f);
  const base = f.H - f.B;
  return timeTicks(f.since, f.until, f.W - f.L - f.R)
    .map((t) => {
      const px = x(t.at).toFixed(1);
      const anchor = x(t.at) - f.L < 30 ? 'start' : f.W - f.R - x(t.at) < 30 ? 'end' : 'middle';
      return `<line x1="${px}" x2="${px}" y1="${f.T}" y2="${base}" class="vgrid"/><line x1="${px}" x2="${px}" y1="${base}" y2="${base + 5}" class="base"/><text x="${px}" y="${base + 17}" class="axis" text-anchor="${anchor}">${esc(t.time)}</text>${t.date ? `<text x="${px}" y="${base + 31}" class="axis date" text-anchor="${anchor}">${esc(t.date)}</text>` : ''}`;
    })
    .join('');
}

function valueAxis(f: Frame, ticks: number[], y: (v: number) => number, label: (v: number) => string): string {
  return ticks.map((v) => `<line x1="${f.L}" x2="${f.W - f.R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/><text x="${f.L - 6}" y="${(y(v) + 4).toFixed(1)}" class="axis" text-anchor="end">${esc(label(v))}</text>`).join('');
}

/** Where a point's step ends: at the next point, or a bucket later before a gap and at the end. */
function stepEnd(points: readonly SeriesPoint[], i: number, until: number, bucketMs: number): number {
  const p = points[i] as SeriesPoint;
  const next = points[i + 1];
  return Math.max(p.at, next && !next.gapBefore ? next.at : Math.min(until, p.at + bucketMs));
}

/** Step-shaped runs of one value over the points, broken at gaps. */
function stepRuns(points: readonly SeriesPoint[], until: number, bucketMs: number, value: (p: SeriesPoint) => number): Array<Array<[number, number]>> {
  const runs: Array<Array<[number, number]>> = [];
  points.forEach((p, i) => {
    if (i === 0 || p.gapBefore) runs.push([]);
    (runs[runs.length - 1] as Array<[number, number]>).push([p.at, value(p)], [stepEnd(points, i, until, bucketMs), value(p)]);
  });
  return runs;
}

function demandChart(p: PoolReport, since: number, until: number): string {
  const f: Frame = { W: 1080, H: 320, L: 66, R: 16, T: 32, B: 40, since, until };
  const pts = p.series.points;
  const top = Math.max(1, ...pts.map((s) => Math.max(s.queued + s.running, s.nodes, s.desired)));
  const ticks = valueTicks(top, COUNT_STEPS);
  const max = ticks[ticks.length - 1] as number;
  const x = xOf(f);
  const y = (v: number) => f.H - f.B - (v / max) * (f.H - f.B - f.T);
  const runs = (value: (s: SeriesPoint) => number) => stepRuns(pts, until, p.series.bucketMs, value);
  const line = (value: (s: SeriesPoint) => number) => runs(value).map((r) => r.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('')).join('');
  const band = (lo: (s: SeriesPoint) => number, hi: (s: SeriesPoint) => number) => {
    const l = runs(lo);
    return runs(hi)
      .map((r, k) => {
        const under = [...(l[k] ?? [])].reverse();
        return `${r.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('')}${under.map(([t, v]) => `L${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('')}Z`;
      })
      .join('');
  };
  const gaps = pts.flatMap((s, i) => (s.gapBefore && i > 0 ? [[stepEnd(pts, i - 1, until, p.series.bucketMs), s.at] as const] : []));
  const gapRects = gaps.map(([a, b]) => `<rect x="${x(a).toFixed(1)}" y="${f.T}" width="${Math.max(1, x(b) - x(a)).toFixed(1)}" height="${f.H - f.B - f.T}" class="gap"><title>no samples ${esc(when(a))} – ${esc(when(b))}</title></rect>`).join('');
  // Scale events as short ticks in two rows above the plot: ups on top, downs below them.
  const marks = p.events
    .filter((e) => e.kind === 'scale-up' || e.kind === 'scale-down')
    .map((e) => {
      const px = x(e.at).toFixed(1);
      const [y0, y1] = e.kind === 'scale-up' ? [4, 12] : [14, 22];
      return `<line x1="${px}" x2="${px}" y1="${y0}" y2="${y1}" class="${e.kind}"><title>${esc(`${when(e.at)} UTC ${e.detail}${e.reasons?.length ? ` — ${e.reasons.join('; ')}` : ''}`)}</title></line>`;
    })
    .join('');
  const markLabels = p.scaleUps + p.scaleDowns ? `<text x="${f.L - 6}" y="12" class="axis small" text-anchor="end">up</text><text x="${f.L - 6}" y="22" class="axis small" text-anchor="end">down</text>` : '';
  return `<svg viewBox="0 0 ${f.W} ${f.H}" width="100%" role="img" aria-label="${esc(p.pool)}: queued and running jobs against nodes over time" class="chart">
${valueAxis(f, ticks, y, String)}${timeAxis(f)}${gapRects}
<path d="${band(() => 0, (s) => s.running)}" class="running"/><path d="${band((s) => s.running, (s) => s.running + s.queued)}" class="queued"/>
<path d="${line((s) => s.desired)}" class="desired"/><path d="${line((s) => s.nodes)}" class="nodes"/>
<line x1="${f.L}" x2="${f.W - f.R}" y1="${f.H - f.B}" y2="${f.H - f.B}" class="base"/>${marks}${markLabels}
<text x="14" y="${((f.T + f.H - f.B) / 2).toFixed(0)}" class="axis" text-anchor="middle" transform="rotate(-90 14 ${((f.T + f.H - f.B) / 2).toFixed(0)})">jobs · nodes</text>
</svg>`;
}

function waitChart(p: PoolReport, since: number, until: number): string {
  const f: Frame = { W: 1080, H: 170, L: 66, R: 16, T: 10, B: 40, since, until };
  const top = Math.max(1, ...p.waitsByHour.map((h) => h.p95 ?? 0));
  const ticks = valueTicks(top, SECOND_STEPS);
  const max = ticks[ticks.length - 1] as number;
  const x = xOf(f);
  const y = (v: number) => f.H - f.B - (v / max) * (f.H - f.B - f.T);
  const bar = (h: (typeof p.waitsByHour)[number], v: number | null, cls: string, shrink: number) => {
    if (v === null) return '';
    const x0 = x(h.at);
    const x1 = x(h.at + HOUR);
    const w = Math.max(1, (x1 - x0) * shrink);
    const mid = (x0 + x1) / 2;
    return `<rect x="${(mid - w / 2).toFixed(1)}" y="${y(v).toFixed(1)}" width="${w.toFixed(1)}" height="${Math.max(0.5, f.H - f.B - y(v)).toFixed(1)}" class="${cls}"><title>${esc(`${when(h.at)}–${hhmm(h.at + HOUR)} UTC: ${h.jobs} job${h.jobs === 1 ? '' : 's'} started, wait p50 ${dur(h.p50)}, p95 ${dur(h.p95)}`)}</title></rect>`;
  };
  return `<svg viewBox="0 0 ${f.W} ${f.H}" width="100%" role="img" aria-label="${esc(p.pool)}: job wait per hour, p50 and p95" class="chart">
${valueAxis(f, ticks, y, tickDur)}${timeAxis(f)}
${p.waitsByHour.map((h) => bar(h, h.p95, 'p95', 0.8) + bar(h, h.p50, 'p50', 0.5)).join('')}
<line x1="${f.L}" x2="${f.W - f.R}" y1="${f.H - f.B}" y2="${f.H - f.B}" class="base"/>
<text x="14" y="${((f.T + f.H - f.B) / 2).toFixed(0)}" class="axis" text-anchor="middle" transform="rotate(-90 14 ${((f.T + f.H - f.B) / 2).toFixed(0)})">wait</text>
</svg>`;
}

const EVENT_ROWS = 12;
const EVENT_ROWS_FOLDED = 300;
const ERROR_ROWS = 20;

/** A scale event's change and the nodes it names (`+3: a b c` → `+3`, `a b c`). */
function splitDetail(detail: string): { change: string; nodes: string } {
  const m = /^([+-]\d+):\s*(.*)$/.exec(detail);
  if (!m) return { change: '', nodes: detail };
  const names = (m[2] ?? '').split(/\s+/).filter(Boolean);
  return { change: m[1] as string, nodes: names.length > 4 ? `${names.slice(0, 4).join(' ')} … +${names.length - 4} more` : names.join(' ') };
}

function eventTable(p: PoolReport): string {
  if (!p.events.length) return '<p class="none">No scale events in this period.</p>';
  const head = '<table class="events"><thead><tr><th>Time (UTC)</th><th>Change</th><th>Nodes</th><th>Why</th></tr></thead><tbody>';
  const row = (e: HistoryEvent) => {
    const d = splitDetail(e.detail);
    return `<tr><td class="t">${esc(when(e.at))}</td><td class="c"><span class="tag ${esc(e.kind)}">${esc(e.kind)}</span> ${esc(d.change)}</td><td class="names">${esc(d.nodes)}</td><td>${e.reasons?.length ? e.reasons.map((r) => esc(r)).join('<br>') : '<span class="none">—</span>'}</td></tr>`;
  };
  const newest = [...p.events].reverse();
  const shown = newest.slice(0, EVENT_ROWS);
  const folded = newest.slice(EVENT_ROWS, EVENT_ROWS + EVENT_ROWS_FOLDED);
  const rest = newest.length - shown.length - folded.length;
  return `${head}
${shown.map(row).join('\n')}
</tbody></table>${folded.length ? `<details><summary>${folded.length} earlier event${folded.length === 1 ? '' : 's'}</summary>${head}\n${folded.map(row).join('\n')}\n</tbody></table></details>` : ''}${rest > 0 ? `<p class="more">${rest} earlier event${rest === 1 ? '' : 's'} not shown (all are in <code>--format json</code>).</p>` : ''}`;
}

/** Failed cycles, consecutive repeats of one message folded into one row. */
function errorTable(p: PoolReport): string {
  if (!p.failedCycles.length) return '<p class="ok">No failed cycles in this period.</p>';
  const groups: Array<{ first: number; last: number; n: number; detail: string }> = [];
  for (const e of p.failedCycles) {
    const g = groups[groups.length - 1];
    if (g && g.detail === e.detail) Object.assign(g, { last: e.at, n: g.n + 1 });
    else groups.push({ first: e.at, last: e.at, n: 1, detail: e.detail });
  }
  const shown = groups.slice(-ERROR_ROWS).reverse();
  const rows = shown.map((g) => `<tr><td class="t">${esc(when(g.last))}</td><td class="n">${g.n > 1 ? `×${g.n} since ${esc(when(g.first))}` : '1'}</td><td class="msg">${esc(g.detail)}</td></tr>`).join('\n');
  const more = groups.length - shown.length;
  return `<table class="errors"><thead><tr><th>Last failed (UTC)</th><th>Cycles</th><th>Error</th></tr></thead><tbody>
${rows}
</tbody></table>${more ? `<p class="more">${more} earlier error${more === 1 ? '' : 's'} not shown (all are in <code>--format json</code>).</p>` : ''}`;
}

const money = (v: number, currency?: string) => (currency ? formatMoney(v, currency) : v.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 }));

/** Cost budgets: now (per hour), this month, this period, each against its limits. */
function budgetTable(r: FleetReport): string {
  if (!r.budgets?.length) return '';
  const m = (v: number) => esc(formatMoney(v, r.currency));
  const pct = (v: number, of: number) => (of > 0 ? ` <span class="dim">(${Math.round((v / of) * 100)}%)</span>` : '');
  const over = (v: number, of: number | undefined) => (of !== undefined && v > of + 1e-9 ? ' err' : '');
  const rows = r.budgets
    .map((b) => {
      const now = `${m(b.perHourNow)}/h${b.maxPerHour !== undefined ? ` of ${m(b.maxPerHour)}/h${pct(b.perHourNow, b.maxPerHour)}` : ''}`;
      const month =
        b.maxPerMonth === undefined
          ? `${m(b.monthToDate)}`
          : `${m(b.monthToDate)} of ${m(b.maxPerMonth)}${pct(b.monthToDate, b.maxPerMonth)}${b.monthKnown ? '' : ' <span class="dim">(the history does not cover this month from its start: more was spent; ÷ 730 applies)</span>'}`;
      const rate = b.monthRate !== undefined ? `${m(b.monthRate)}/h` : '—';
      const limits = [b.periodLimitByHour !== undefined ? `${m(b.periodLimitByHour)} by the hour` : '', b.periodLimitByMonth !== undefined ? `${m(b.periodLimitByMonth)} by the month` : ''].filter(Boolean).join(', ');
      const periodMax = Math.min(b.periodLimitByHour ?? Infinity, b.periodLimitByMonth ?? Infinity);
      return `<tr><td>${esc(b.budget)}</td><td>${b.pools.map((p) => esc(p)).join(', ')}</td><td class="n${over(b.perHourNow, b.maxPerHour)}">${now}</td><td class="n${over(b.monthToDate, b.maxPerMonth)}">${month}</td><td class="n">${rate}</td><td class="n${over(b.periodSpend, Number.isFinite(periodMax) ? periodMax : undefined)}">${m(b.periodSpend)}${limits ? ` <span class="dim">(limits ${limits})</span>` : ''}</td></tr>`;
    })
    .join('\n');
  return `<h2 class="budgets">Cost budgets</h2>
<table class="summary"><thead><tr><th>Budget</th><th>Pools</th><th>Now</th><th>This month (UTC)</th><th>Allowed now by the month</th><th>This period</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function summary(r: FleetReport): string {
  const rows = r.pools
    .map(
      (p, i) =>
        `<tr><td><a href="#pool-${i}">${esc(p.pool)}</a></td><td class="n">${num(p.nodeHours)}</td><td class="n">${p.cost !== undefined ? esc(money(p.cost, r.currency)) : '—'}</td><td class="n">${p.peakNodes}</td><td class="n">${num(p.meanDemand)} / ${p.peakDemand}</td><td class="n">${dur(p.waits.p50)} / ${dur(p.waits.p95)}</td><td class="n">${p.scaleUps} / ${p.scaleDowns}</td><td class="n${p.failedCycles.length ? ' err' : ''}">${p.failedCycles.length}</td></tr>`,
    )
    .join('\n');
  return `<table class="summary"><thead><tr><th>Pool</th><th>Node-hours</th><th>Cost</th><th>Peak nodes</th><th>Jobs mean / peak</th><th>Wait p50 / p95</th><th>Scale-ups / downs</th><th>Failed cycles</th></tr></thead><tbody>
${rows}
</tbody></table>`;
}

function section(p: PoolReport, i: number, r: FleetReport): string {
  const cost = p.cost !== undefined ? ` · cost <b>${esc(money(p.cost, r.currency))}</b> <span class="dim">(${esc(r.currency ? money(p.hourlyCost ?? 0, r.currency) : String(p.hourlyCost ?? 0))} per node-hour)</span>` : ' · <span class="dim">cost: set <code>machine.hourlyCost</code> to see it</span>';
  const facts = `<p class="facts"><b>${num(p.nodeHours)}</b> node-hours${cost} · peak <b>${p.peakNodes}</b> nodes · jobs (queued + running) mean <b>${num(p.meanDemand)}</b>, peak <b>${p.peakDemand}</b> · <b>${p.scaleUps}</b> scale-ups, <b>${p.scaleDowns}</b> scale-downs${p.fallbacks ? ` · <b>${p.fallbacks}</b> capacity fallback${p.fallbacks === 1 ? '' : 's'}` : ''}${p.runsOn ? ` · runs on <b>${esc(p.runsOn.platform)}</b> (failover: ${p.runsOn.failover.map(esc).join(', ')}${p.runsOn.moves ? `; <b>${p.runsOn.moves}</b> move${p.runsOn.moves === 1 ? '' : 's'}` : ''})` : ''}${p.failedCycles.length ? ` · <b class="err">${p.failedCycles.length}</b> failed cycles` : ''}</p>`;
  if (!p.samples) return `<section id="pool-${i}"><h2>${esc(p.pool)}</h2>\n<p class="none">No samples in this period: the pool has not been reconciled.</p>\n${p.failedCycles.length ? `<h3>Failed cycles</h3>\n${errorTable(p)}` : ''}</section>`;
  const waits = p.waits.jobs
    ? `<h3>Job wait, queued → started <span class="dim">(per hour: p95 light, p50 dark; ${p.waits.jobs} starts observed, overall p50 ${dur(p.waits.p50)}, p95 ${dur(p.waits.p95)})</span></h3>\n${waitChart(p, r.since, r.until)}`
    : '<h3>Job wait, queued → started</h3>\n<p class="none">No job start observed in this period (waits are recorded by reconcile from the probes\' jobs).</p>';
  return `<section id="pool-${i}"><h2>${esc(p.pool)}</h2>
${facts}
<h3>Jobs and nodes <span class="dim">(${p.series.points.length < p.samples ? `per ${p.series.bucketMs >= 60_000 ? `${p.series.bucketMs / 60_000} min` : `${p.series.bucketMs / 1000} s`}: the busiest sample, most nodes` : 'every sample'})</span></h3>
${demandChart(p, r.since, r.until)}
${waits}
<h3>Scale events <span class="dim">(newest first)</span></h3>
${eventTable(p)}
<h3>Failed cycles</h3>
${errorTable(p)}
</section>`;
}

export function reportHtml(r: FleetReport): string {
  const hours = Math.round((r.until - r.since) / HOUR);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Parmanu fleet report</title>
<style>
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;max-width:1120px;padding:0 20px;color:#1b1f24;background:#fff}
h1{font-size:24px;margin:0 0 2px}h2{font-size:20px;margin:36px 0 4px;padding-top:12px;border-top:2px solid #d0d7de}h3{font-size:15px;margin:18px 0 4px}
.sub{color:#57606a;margin:0 0 14px}.facts{margin:4px 0 8px}.dim{color:#57606a;font-weight:normal}
.legend{margin:8px 0 4px;color:#24292f}.legend span{display:inline-block;margin-right:18px;white-space:nowrap}.legend i{display:inline-block;width:22px;height:12px;vertical-align:-1px;margin-right:6px;border-radius:2px}
.chart{display:block;max-width:100%;height:auto}
.grid{stroke:#eaeef2}.vgrid{stroke:#f3f5f7}.base{stroke:#8c959f}.axis{font-size:12px;fill:#424a53}.date{font-weight:600}
.running{fill:#7fc97f;fill-opacity:.75}.queued{fill:#f39c4a;fill-opacity:.85}
.nodes{fill:none;stroke:#1f4e9c;stroke-width:2.5;stroke-linejoin:round}.desired{fill:none;stroke:#8250df;stroke-width:1.5;stroke-dasharray:5 4}
.scale-up{stroke:#1a7f37;stroke-width:2}.scale-down{stroke:#b35900;stroke-width:2}.small{font-size:10px}.gap{fill:#f6f8fa;stroke:#d0d7de;stroke-dasharray:2 3}
.p95{fill:#b6cff5}.p50{fill:#1f4e9c}
table{border-collapse:collapse;width:100%;margin:4px 0 8px;font-size:14px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;white-space:nowrap}td.t{white-space:nowrap;color:#424a53}
td.c{white-space:nowrap}summary{cursor:pointer;color:#0969da;margin:4px 0}td.names{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:13px;max-width:260px;overflow-wrap:anywhere}td.msg{overflow-wrap:anywhere}
.tag{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;background:#eaeef2}.tag.scale-up{background:#dafbe1;color:#1a7f37}.tag.scale-down{background:#fff8c5;color:#7d4e00}
.summary td:first-child{font-weight:600}.none,.more{color:#57606a;font-style:italic}.ok{color:#1a7f37}.err{color:#cf222e}
code{font-size:13px;background:#f6f8fa;padding:1px 4px;border-radius:4px}
</style></head><body>
<h1>Parmanu fleet report</h1>
<p class="sub">${esc(when(r.since))} → ${esc(when(r.until))} UTC (${hours >= 48 ? `${num(Math.round((hours / 24) * 10) / 10)} days` : `${hours} h`}) · ${r.pools.length} pool${r.pools.length === 1 ? '' : 's'} · all times UTC</p>
${r.pools.length ? summary(r) : '<p class="none">No pools.</p>'}
${budgetTable(r)}
<p class="legend"><span><i style="background:#7fc97f"></i>running jobs</span><span><i style="background:#f39c4a"></i>queued jobs (stacked)</span><span><i style="background:#1f4e9c;height:3px;vertical-align:3px"></i>nodes</span><span><i style="background:repeating-linear-gradient(90deg,#8250df 0 5px,transparent 5px 9px);height:2px;vertical-align:4px"></i>desired</span><span><i style="background:#1a7f37;width:3px"></i>scale-up</span><span><i style="background:#b35900;width:3px"></i>scale-down</span></p>
${r.pools.map((p, i) => section(p, i, r)).join('\n')}
</body></html>
`;
}
