/** How a probe's partial failures fold into its result: a table of settled units → ok/partial/failed. */
import { describe, expect, it } from 'vitest';
import { ProbeProblems } from '../../src/emitters/http.js';

const ok = <T>(value: T): PromiseSettledResult<T> => ({ status: 'fulfilled', value });
const no = (reason: string): PromiseSettledResult<never> => ({ status: 'rejected', reason: new Error(reason) });

describe('ProbeProblems', () => {
  it.each<[string, Array<PromiseSettledResult<number>>, string[], { ok: boolean; partial: boolean; reason?: string; values: number[] }]>([
    ['nothing to list', [], [], { ok: true, partial: false, values: [] }],
    ['every unit answered', [ok(1), ok(2)], [], { ok: true, partial: false, values: [1, 2] }],
    ['one of two failed: partial, with its reason', [ok(1), no('HTTP 500')], [], { ok: true, partial: true, reason: 'HTTP 500', values: [1] }],
    ['all failed: the probe failed, with the first reason', [no('HTTP 401'), no('HTTP 500')], [], { ok: false, partial: false, reason: 'HTTP 401', values: [] }],
    ['a short list alone makes it partial', [ok(1)], ['GET /x: 1 of 2 items came back'], { ok: true, partial: true, reason: 'GET /x: 1 of 2 items came back', values: [1] }],
    ['reasons are distinct and at most three', [ok(1), no('a'), no('a'), no('b'), no('c'), no('d')], [], { ok: true, partial: true, reason: 'a; b; c', values: [1] }],
  ])('%s', (_name, results, added, want) => {
    const p = new ProbeProblems((e) => (e as Error).message);
    for (const a of added) p.add(a);
    const { values, failed } = p.settle(results);
    expect(values).toEqual(want.values);
    const body = p.allFailed(results.length, failed, 'project') ?? p.ok([], []);
    expect(body).toMatchObject({ ok: want.ok, partial: want.partial });
    expect(body.reason).toBe(want.reason);
  });

  it('names the unit when every unit failed without a reason recorded', () => {
    expect(new ProbeProblems(() => '').allFailed(2, 2, 'repository')).toMatchObject({ ok: false, reason: 'every repository failed' });
  });
});
