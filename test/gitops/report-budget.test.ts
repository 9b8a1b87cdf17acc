/** The report's cost budgets: JSON numbers (period spend from the pools' cost, the period's limits) and the HTML table, escaped. */
import { describe, expect, it } from 'vitest';
import type { BudgetState } from '../../src/decide/budget.js';
import { buildReport, reportHtml } from '../../src/gitops/report.js';
import type { Sample } from '../../src/history/types.js';

const H = 3_600_000;
const T = Date.parse('2025-01-10T00:00:00Z');
const samples = (nodes: number): Sample[] => Array.from({ length: 11 }, (_, i) => ({ at: T + i * 0.1 * H, queued: 0, running: 0, arrivals: 0, nodes, desired: nodes }));
const state = (extra: Partial<BudgetState> = {}): BudgetState => ({ budget: 'team', pools: ['a', '<b>'], maxPerHour: 5, maxPerMonth: 730, perHourNow: 6, monthToDate: 812.345, monthKnown: true, monthRate: 0.5, monthStart: Date.UTC(2025, 0, 1), monthEnd: Date.UTC(2025, 1, 1), ...extra });

describe('report: cost budgets', () => {
  it('carries each budget with the period\'s spend and limits, and shows them escaped, over a limit marked', () => {
    const r = buildReport([{ pool: 'a', samples: samples(4), hourlyCost: 0.5 }, { pool: '<b>', samples: samples(2), hourlyCost: 1 }, { pool: 'c', samples: samples(9), hourlyCost: 9 }], [], T, T + H, { budgets: [state()], currency: '€' });
    expect(r.currency).toBe('€');
    // 1 h: a 4 × 0.5, <b> 2 × 1; c is not in the budget.
    expect(r.budgets).toEqual([{ ...state(), monthToDate: 812.35, periodSpend: 4, periodLimitByHour: 5, periodLimitByMonth: 1 }]);
    const html = reportHtml(r);
    expect(html).toContain('<h2 class="budgets">Cost budgets</h2>');
    expect(html).toContain('<td>a, &lt;b&gt;</td>');
    expect(html).not.toContain('<b>,');
    // Now over maxPerHour, and the period over the month's share: marked.
    expect(html).toContain('<td class="n err">€6.00/h of €5.00/h <span class="dim">(120%)</span></td>');
    expect(html).toContain('<td class="n err">€812.35 of €730.00 <span class="dim">(111%)</span></td>');
    expect(html).toContain('<td class="n err">€4.00 <span class="dim">(limits €5.00 by the hour, €1.00 by the month)</span></td>');
    // A month the history does not cover from its start says so.
    expect(reportHtml(buildReport([], [], T, T + H, { budgets: [state({ monthKnown: false })] }))).toContain('the history does not cover this month from its start');
    // Without budgets: no table, no key in JSON.
    const none = buildReport([{ pool: 'a', samples: samples(1), hourlyCost: 0.5 }], [], T, T + H);
    expect(none.budgets).toBeUndefined();
    expect(reportHtml(none)).not.toContain('Cost budgets');
  });
});
