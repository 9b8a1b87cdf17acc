/**
 * Cost budgets in the policy (issue 17, item 1): `budgets`, `machine.stoppedHourlyCost` and
 * `currency`, each problem at its FILE:LINE:COL, all of them at once (cross-field rules).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-budget-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Pools start at line 6, budgets at line 10. */
const head = ['emitters:', '  r: { type: replay, trace: t.csv }', 'platforms:', '  lab: { type: local }', 'pools:', '  a: { emitter: r, platform: lab, labels: [a], machine: { hourlyCost: 0.25, stoppedHourlyCost: 0.01 } }', '  b: { emitter: r, platform: lab, labels: [b], machine: { hourlyCost: 1 } }', '  c: { emitter: r, platform: lab, labels: [c] }', 'budgets:'];

let n = 0;
function load(lines: string[], files: string[][] = []) {
  const paths = [lines, ...files].map((l, i) => {
    const f = join(dir, `case-${n}-${i}.yaml`);
    writeFileSync(f, l.join('\n') + '\n');
    return f;
  });
  const r = loadPolicy(paths, { cwd: dir, env: {} });
  const name = `case-${n++}-`;
  return { ...r, lines: r.problems.map(formatProblem).map((l) => l.split(name).join('')) };
}

describe('budgets in the policy', () => {
  it('loads budgets, stoppedHourlyCost and currency', () => {
    const r = load([...head, '  team: { pools: [a, b], maxPerHour: 5 }', '  month: { pools: [a], maxPerMonth: 1000, maxPerHour: 2 }', 'currency: EUR']);
    expect(r.lines).toEqual([]);
    expect(r.policy?.budgets).toEqual([{ name: 'team', pools: ['a', 'b'], maxPerHour: 5 }, { name: 'month', pools: ['a'], maxPerMonth: 1000, maxPerHour: 2 }]);
    expect(r.policy?.currency).toBe('EUR');
    expect(r.policy?.pools[0]?.machine.stoppedHourlyCost).toBe(0.01);
    // Without budgets or currency the policy has neither.
    const plain = load(head.slice(0, -1));
    expect(plain.policy?.budgets).toBeUndefined();
    expect(plain.policy?.currency).toBeUndefined();
  });

  it('reports every budget problem at its place', () => {
    const r = load([
      ...head,
      '  nolimit: { pools: [a] }',
      '  missing: { pools: [a, bb, c, a], maxPerHour: 5 }',
      '  everything: { pools: all, maxPerMonth: 100 }',
      '  negative: { pools: [b], maxPerHour: -1, maxPerMonth: 0 }',
      '  empty: { pools: [], maxPerHour: 1 }',
      '  typo: { pools: [b], maxPerHuor: 1 }',
      'currency: dollars',
    ]);
    expect(r.policy).toBeUndefined();
    expect(r.lines).toEqual([
      '0.yaml:10:3: budgets.nolimit: a budget sets maxPerHour, maxPerMonth or both',
      '0.yaml:11:25: budgets.missing.pools.1: no pool named "bb"; did you mean "b"?',
      '0.yaml:11:29: budgets.missing.pools.2: pool "c" has no machine.hourlyCost: a budget needs each pool\'s price per node-hour (set pools.c.machine.hourlyCost)',
      '0.yaml:11:32: warning: budgets.missing.pools.3: "a" is listed twice',
      '0.yaml:12:24: budgets.everything.pools: covers every pool, and pool "c" has no machine.hourlyCost: a budget needs each pool\'s price per node-hour',
      '0.yaml:13:39: budgets.negative.maxPerHour: must be greater than 0, not -1',
      '0.yaml:13:56: budgets.negative.maxPerMonth: must be greater than 0, not 0',
      '0.yaml:14:19: budgets.empty.pools: must have at least 1 item',
      '0.yaml:15:23: budgets.typo.maxPerHuor: unknown key; did you mean "maxPerHour"?',
      '0.yaml:16:11: currency: must be a currency symbol such as $, €, £ or ¥, or a three-letter code such as USD, EUR or CHF',
    ]);
  });

  it('a budget name follows the entity name rule; budgets are unique across files; one currency across files', () => {
    const r = load([...head, '  Team A: { pools: [a], maxPerHour: 1 }', 'currency: $'], [['budgets:', '  ok: { pools: [b], maxPerHour: 1 }', '  Team A: { pools: [b], maxPerHour: 2 }', 'currency: €']]);
    expect(r.lines).toEqual([
      '0.yaml:10:3: budgets.Team A: budget name must be lowercase letters, digits, "-" and "_", at most 63 characters',
      '1.yaml:3:3: budgets.Team A: duplicate budget name "Team A": also defined at 0.yaml:10:3; names are unique across files',
      '1.yaml:4:11: currency: "€" differs from "$" at 0.yaml:11:11: one currency for every policy file',
    ]);
  });

  it('warns when a stopped node would cost more than a running one', () => {
    const r = load([...head.slice(0, 5), '  a: { emitter: r, platform: lab, machine: { hourlyCost: 0.1, stoppedHourlyCost: 0.2 } }']);
    expect(r.lines).toEqual(['0.yaml:6:82: warning: pools.a.machine.stoppedHourlyCost: 0.2 is more than hourlyCost 0.1: a stopped node costs its disk only']);
    expect(r.policy).toBeDefined();
  });
});
