/**
 * Issue 17's proof for cost budgets, through the real CLI with real terraform on the `local`
 * platform and a replayed queue: a burst that would make 10 nodes stops at what the budget allows
 * (the other pool's cost taken first), `reconcile --json` says why, `report --json` shows the
 * spend against each budget; after the history is lost (its directory deleted) the month's spend
 * is unknown and maxPerMonth ÷ 730 applies per hour.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-budget-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const state = join(dir, 'state');
const cli = (args: string[]) => runCli(args, { cwd: dir, env: { PARMANU_STATE_DIR: state } });

interface Pool { pool: string; desired: number; create: string[]; reasons: string[] }
const reconcile = (at: number, ...extra: string[]): Pool[] => {
  const r = cli(['reconcile', '--policy', 'policy.yaml', '--json', '--now', new Date(at).toISOString(), ...extra]);
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { pools: Pool[] }).pools;
};
const nodesInState = (pool: string) => {
  const s = JSON.parse(readFileSync(join(state, 'pools', pool, 'terraform.tfstate'), 'utf8')) as { resources: Array<{ type: string; name: string }> };
  return s.resources.filter((r) => r.type === 'terraform_data' && r.name.startsWith('node_')).length;
};
interface Budget { budget: string; pools: string[]; maxPerHour?: number; maxPerMonth?: number; perHourNow: number; monthToDate: number; monthKnown: boolean; monthRate?: number; periodSpend: number }
const report = () => {
  const r = cli(['report', '--policy', 'policy.yaml', '--format', 'json']);
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as { currency: string; budgets: Budget[]; pools: Array<{ pool: string; cost: number }> };
};

const MIN = 60_000;
// The first hour of a month: a history begun now covers the month from its start.
const Q = Date.parse('2025-01-01T00:20:00Z');
const HOURS_LEFT = (Date.parse('2025-02-01T00:00:00Z') - (Q + MIN)) / 3_600_000;

describe('cost budgets through the CLI', () => {
  it('a budget caps a burst, says so, reports its spend; a lost history falls back to maxPerMonth ÷ 730', { timeout: 180_000 }, () => {
    const long = (labels: string, n: number) => Array.from({ length: n }, () => `2025-01-01T00:20:00Z,14400,${labels}`).join('\n');
    writeFileSync(join(dir, 'trace.csv'), `queued_at,duration_s,labels\n${long('burst', 10)}\n${long('other', 2)}\n`);
    // The replay maps this wall-clock time to the trace's first job: the report's clock is trace time.
    writeFileSync(
      join(dir, 'policy.yaml'),
      [
        'currency: $',
        'emitters:',
        `  r: { type: replay, trace: trace.csv, start: "${new Date().toISOString()}" }`,
        'platforms:',
        '  lab: { type: local }',
        'pools:',
        '  burst: { emitter: r, platform: lab, labels: [burst], machine: { hourlyCost: 0.5 }, scaling: { predict: false, max: 20, maxStep: 20 } }',
        '  other: { emitter: r, platform: lab, labels: [other], machine: { hourlyCost: 1 }, scaling: { predict: false } }',
        'budgets:',
        '  team: { pools: [burst, other], maxPerHour: 4 }',
        '  month: { pools: [burst], maxPerMonth: 2190 }',
        '',
      ].join('\n'),
    );

    // The other pool first: 2 nodes at 1/h.
    expect(reconcile(Q, '--pool', 'other')[0]?.create).toHaveLength(2);
    // The burst would make 10 nodes: team allows (4 - 2) / 0.5 = 4; the month (known: the history
    // began in its first hour) 2190 over the hours left ≈ 2.94/h, 5 nodes. The tightest wins.
    const burst = reconcile(Q + MIN).find((p) => p.pool === 'burst') as Pool;
    expect(burst.desired).toBe(4);
    expect(burst.create).toHaveLength(4);
    expect(burst.reasons).toContain('budget team: $2.00/h of $4.00/h used by other pools → at most 4 nodes ($0.50/h each)');
    expect(nodesInState('burst')).toBe(4);
    // An hour later the queue is the same: still 4, and an hour of spend is recorded.
    const later = reconcile(Q + 61 * MIN).find((p) => p.pool === 'burst') as Pool;
    expect(later.desired).toBe(4);
    expect(later.create).toEqual([]);
    expect(nodesInState('burst')).toBe(4);

    const r = report();
    expect(r.currency).toBe('$');
    const team = r.budgets.find((b) => b.budget === 'team') as Budget;
    const month = r.budgets.find((b) => b.budget === 'month') as Budget;
    // Now: 4 × 0.5 + 2 × 1 per hour, all of the team's 4/h.
    expect(team).toMatchObject({ pools: ['burst', 'other'], maxPerHour: 4, perHourNow: 4, monthKnown: true });
    // This month: burst 4 nodes × 1 h × 0.5, other 2 nodes × 61 min × 1.
    expect(month.monthToDate).toBeCloseTo(2, 2);
    expect(team.monthToDate).toBeCloseTo(2 + (2 * 61) / 60, 2);
    expect(month).toMatchObject({ maxPerMonth: 2190, monthKnown: true });
    expect(month.monthRate).toBeGreaterThan((2190 - 2) / HOURS_LEFT - 0.01);
    expect(month.monthRate).toBeLessThan((2190 - 2) / (HOURS_LEFT - 1) + 0.01);
    // The period's spend from the samples, as the pools' cost.
    expect(team.periodSpend).toBeCloseTo((r.pools.find((p) => p.pool === 'burst')?.cost ?? NaN) + (r.pools.find((p) => p.pool === 'other')?.cost ?? NaN), 2);

    // The history is lost: the month's spend is unknown, so the month allows 2190 ÷ 730 = 3/h
    // (6 nodes) until the next month; the team budget no longer sees the other pool (its record
    // is gone until its next cycle), so the month is the tighter: 2 more nodes for the 10 jobs.
    rmSync(join(state, 'history'), { recursive: true, force: true });
    const lost = reconcile(Q + 121 * MIN, '--pool', 'burst')[0] as Pool;
    expect(lost.reasons).toContain('budget month: this month\'s spend is unknown (the history does not cover it from its start): $2,190.00 ÷ 730 = $3.00/h until next month, $0.00/h used by other pools → at most 6 nodes ($0.50/h each)');
    expect(lost.desired).toBe(6);
    expect(lost.create).toHaveLength(2);
    expect(nodesInState('burst')).toBe(6);
    const after = report().budgets.find((b) => b.budget === 'month') as Budget;
    expect(after).toMatchObject({ monthKnown: false, monthRate: 3, monthToDate: 0 });

    // A merge request that raises the team's budget and the burst's price: the plan comment shows
    // the cost change and that the month (still unknown: ÷ 730) holds the burst at 6 nodes.
    writeFileSync(join(dir, 'raised.yaml'), readFileSync(join(dir, 'policy.yaml'), 'utf8').replace('maxPerHour: 4', 'maxPerHour: 6').replace('hourlyCost: 0.5', 'hourlyCost: 0.4'));
    const plan = cli(['plan', '--policy', 'raised.yaml', '--base', 'policy.yaml']);
    expect(plan.code, plan.err).toBe(0);
    // The price falls to 0.4: the month's 3/h allows 7 nodes, one more, for less an hour.
    expect(plan.out).toContain(String.raw`| ${'`burst`'} | changed | 6 | 7 | 1 | 0 | 0 | \+1 node ≈ \-\$0\.20/h |`);
    expect(plan.out).toContain(String.raw`Budget ${'`month`'}: \$3\.00/h now → \$2\.80/h of \$3\.00/h by the month. It holds ${'`burst`'}: budget month\: this month's spend is unknown`);
    expect(plan.out).toContain(String.raw`Budget ${'`team`'}: \$3\.00/h now → \$2\.80/h of \$6\.00/h.`);
  });
});
