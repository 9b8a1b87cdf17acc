/**
 * Decision quality on whole traces: Parmanu's defaults must beat the reactive baseline on both
 * mean wait and node-minutes, on the real bitcoin trace and on generated shapes. Deterministic
 * (seeded traces, no clock), so these are regression tests of decide's behaviour, not timings.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateTrace } from '../../src/sim/generate.js';
import { defaultPools, simulate } from '../../src/sim/simulate.js';
import { parseTrace, type TraceJob } from '../../src/policy/trace.js';

const BITCOIN = resolve(import.meta.dirname, '..', '..', '..', 'shared', 'traces', 'bitcoin-core-gha.csv');
const params = { bootMs: 90_000, probeMs: 30_000 };

function run(trace: TraceJob[]) {
  const r = simulate(trace, defaultPools(trace), params);
  expect(r.invariants).toEqual({ busyDestroys: 0, busyStops: 0, maxExceeded: 0 });
  return r.results;
}

describe('decision quality', () => {
  // The trace lives in the workspace's shared/ folder beside the repository (CI has it).
  it.skipIf(!existsSync(BITCOIN))('beats reactive on wait and node-minutes on the bitcoin trace', () => {
    const r = run(parseTrace(readFileSync(BITCOIN, 'utf8')).jobs);
    expect(r.parmanu.waitMeanS).toBeLessThan(r.reactive.waitMeanS);
    expect(r.parmanu.nodeMinutes).toBeLessThan(r.reactive.nodeMinutes);
    expect(r.parmanu.jobs).toBe(16376);
  });

  it.each([
    ['office-hours', 28, 11],
    ['nightly', 21, 12],
  ] as const)('beats reactive on wait and node-minutes on a generated %s trace', (shape, days, seed) => {
    const r = run(generateTrace(shape, days, seed));
    expect(r.parmanu.waitMeanS).toBeLessThan(r.reactive.waitMeanS);
    expect(r.parmanu.nodeMinutes).toBeLessThan(r.reactive.nodeMinutes);
  });

  it('on long quiet gaps costs a fraction of reactive, which pays for a spare around the clock', () => {
    const r = run(generateTrace('quiet-gaps', 56, 13));
    expect(r.parmanu.nodeMinutes).toBeLessThan(r.reactive.nodeMinutes / 3);
    // Without a standing spare every burst waits about one probe and one boot.
    expect(r.parmanu.waitMeanS).toBeLessThan(params.bootMs / 1000 + params.probeMs / 1000 + 5);
  });
});
