/**
 * The soak's acceptance run, exactly as the README gives it: `npm run soak -- --cycles 40 --seed 7
 * --json`, through the compiled development tools (dist/bench/cli.js). Faults land inside the
 * cycle (a job before the apply, a VM vanishing after the state was read, a partial apply, a
 * SIGKILL after a pause, a lease taken over mid-cycle) and between cycles; a pool is removed and
 * every image bumped mid-soak. No invariant may break, no pool may be stuck, and the fleet must
 * converge within three cycles of the faults stopping and the last job ending.
 */
import { describe, expect, it } from 'vitest';
import { cliAsync } from '../cli.js';

const FIELDS = [
  'busyRunnersDeleted',
  'convergedWithinCycles',
  'cycles',
  'faults',
  'faultsByKind',
  'faultsHit',
  'incidents',
  'leakedVMs',
  'maxExceeded',
  'orphanRunners',
  'outdatedLeft',
  'poolErrors',
  'removedPoolLeftovers',
  'stuckPools',
  'tokensInOutput',
  'unmarkedRunnersTouched',
  'vanishedRecreatedWithoutCredential',
  'wallS',
];
/** The faults inside the cycle: each must have found its moment at least once. */
const INSIDE = ['job-lands', 'lease-race', 'partial-apply', 'sigkill', 'vanish-inside'];

describe('soak', () => {
  it('--cycles 40 --seed 7: faults inside the cycle, every invariant held, no pool stuck, converged within 3 cycles', { timeout: 300_000 }, async () => {
    const r = await cliAsync(['soak', '--cycles', '40', '--seed', '7', '--json'], { inheritEnv: true, dev: true, timeoutMs: 280_000 });
    const out = JSON.parse(r.out) as Record<string, unknown> & { faultsHit: Record<string, number>; faults: number; convergedWithinCycles: number | null; incidents: string[] };
    expect(out.incidents, r.err).toEqual([]);
    expect(r.code, r.err).toBe(0);
    expect(Object.keys(out).sort()).toEqual(FIELDS);
    for (const k of INSIDE) expect(out.faultsHit[k], k).toBeGreaterThanOrEqual(1);
    expect(out.faults).toBeGreaterThanOrEqual(15);
    expect(out).toMatchObject({
      cycles: 40,
      busyRunnersDeleted: 0,
      maxExceeded: 0,
      leakedVMs: 0,
      orphanRunners: 0,
      tokensInOutput: 0,
      vanishedRecreatedWithoutCredential: 0,
      outdatedLeft: 0,
      removedPoolLeftovers: 0,
      unmarkedRunnersTouched: 0,
      stuckPools: 0,
    });
    expect(out.convergedWithinCycles).not.toBeNull();
    expect(out.convergedWithinCycles).toBeLessThanOrEqual(3);
  });
});
