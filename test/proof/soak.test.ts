/**
 * A short soak in CI: the same run as `npm run soak`, fewer cycles. Every kind of fault is
 * injected at least once (the fault bag draws each kind before any repeats), every invariant must
 * hold after every cycle, and the fleet must converge soon after the faults stop.
 */
import { describe, expect, it } from 'vitest';
import { soak } from '../../bench/soak.js';

describe('soak', () => {
  it('24 cycles, seed 3: all nine kinds of fault, no invariant broken, converged within 3 cycles', { timeout: 300_000 }, async () => {
    const r = await soak(24, 3);
    expect(Object.keys(r.faultsByKind).sort()).toEqual(['github-429', 'github-500', 'gitlab-500', 'gitlab-garbage', 'jenkins-timeout', 'race', 'redis-restart', 'sigkill', 'terraform-apply']);
    expect(r.faults).toBeGreaterThanOrEqual(9);
    expect(r).toMatchObject({ busyRunnersDeleted: 0, maxExceeded: 0, leakedVMs: 0, orphanRunners: 0, tokensInOutput: 0 });
    expect(r.convergedWithinCycles).not.toBeNull();
    expect(r.convergedWithinCycles).toBeLessThanOrEqual(3);
  });
});
