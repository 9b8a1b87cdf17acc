/**
 * The soak's acceptance run, exactly as the README gives it: `npm run soak -- --cycles 40 --seed 7
 * --json`, through the compiled development tools (dist/bench/cli.js). Every kind of fault is
 * injected at least once (the fault bag draws each kind before any repeats), no invariant may break, and the fleet must converge within
 * three cycles of the faults stopping.
 */
import { describe, expect, it } from 'vitest';
import { cliAsync } from '../cli.js';

const KINDS = ['github-429', 'github-500', 'gitlab-500', 'gitlab-garbage', 'jenkins-timeout', 'race', 'redis-restart', 'sigkill', 'terraform-apply'];

describe('soak', () => {
  it('--cycles 40 --seed 7: ≥ 10 faults of all nine kinds, no invariant broken, converged within 3 cycles', { timeout: 400_000 }, async () => {
    const r = await cliAsync(['soak', '--cycles', '40', '--seed', '7', '--json'], { inheritEnv: true, dev: true, timeoutMs: 380_000 });
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as Record<string, unknown> & { faultsByKind: Record<string, number>; faults: number; convergedWithinCycles: number | null };
    expect(Object.keys(out).sort()).toEqual(['busyRunnersDeleted', 'convergedWithinCycles', 'cycles', 'faults', 'faultsByKind', 'leakedVMs', 'maxExceeded', 'orphanRunners', 'poolErrors', 'tokensInOutput']);
    expect(Object.keys(out.faultsByKind).sort()).toEqual(KINDS);
    expect(out.faults).toBeGreaterThanOrEqual(10);
    expect(out).toMatchObject({ cycles: 40, busyRunnersDeleted: 0, maxExceeded: 0, leakedVMs: 0, orphanRunners: 0, tokensInOutput: 0 });
    expect(out.convergedWithinCycles).not.toBeNull();
    expect(out.convergedWithinCycles).toBeLessThanOrEqual(3);
  });
});
