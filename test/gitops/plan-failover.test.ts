/**
 * The plan comment says where each pool with failover platforms runs (issue 17, item 3): on which
 * platform now, and the move a change makes — an `evacuate: true` mark, the mark removed, a
 * platform failing in the history — with decide/failover.ts's reason. Names are escaped.
 */
import { describe, expect, it } from 'vitest';
import { diffPolicies, planMarkdown } from '../../src/gitops/diff.js';
import { normalize } from '../../src/policy/load.js';
import { PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';

const policy = (evacuate: string[] = [], pool: Record<string, unknown> = {}): Policy =>
  normalize({
    emitters: new Map(),
    platforms: new Map(['lab-a', 'lab-b', 'lab-c'].map((n) => [n, PlatformSchema.parse({ type: 'local', ...(evacuate.includes(n) ? { evacuate: true } : {}) })])),
    pools: new Map([
      ['web', PoolSchema.parse({ emitter: 'e', platform: 'lab-a', failover: ['lab-b', 'lab-c'], scaling: { predict: false }, ...pool })],
      ['solo', PoolSchema.parse({ emitter: 'e', platform: 'lab-a', scaling: { predict: false } })],
    ]),
  });
const AT = Date.parse('2025-01-10T12:00:00Z');
const obs = (extra: Record<string, unknown> = {}) => ({ nodes: ['web-1', 'web-2'], at: AT, queued: 0, running: 2, ...extra });

describe('plan: where pools run (failover)', () => {
  it('an evacuate mark moves a pool, and says why; a pool on one platform says nothing', () => {
    const d = diffPolicies(policy(), policy(['lab-a']), (p) => (p === 'web' ? obs() : undefined));
    expect(d.pools.find((p) => p.pool === 'web')?.runsOn).toEqual({ now: 'lab-a', after: 'lab-b', failover: ['lab-b', 'lab-c'], why: ['platform lab-a is evacuated (evacuate: true): new nodes go to lab-b'] });
    expect(d.pools.find((p) => p.pool === 'solo')?.runsOn).toBeUndefined();
    const md = planMarkdown(d);
    expect(md).toContain('**Where pools run**: `web` moves from `lab-a` to `lab-b` (platform lab\\-a is evacuated \\(evacuate\\: true\\)\\: new nodes go to lab\\-b: new nodes there, the old ones drain once those serve).');
    // The move alone shows the pool in the table, though none of its settings changed: every node is replaced.
    expect(md).toContain('| `web` | unchanged | 2 | 2 | 0 | 0 | 2 |');
    expect(md).toContain('Terraform: 2 to add, 0 pools changed, 2 to destroy.');
    expect(md).not.toContain('Rollout:');
  });

  it('the mark removed: back to the pool\'s own platform, from where the last cycle put it', () => {
    const d = diffPolicies(policy(['lab-a']), policy(), (p) => (p === 'web' ? obs({ active: 'lab-b' }) : undefined));
    expect(d.pools.find((p) => p.pool === 'web')?.runsOn).toMatchObject({ now: 'lab-b', after: 'lab-a' });
    expect(planMarkdown(d)).toContain('`web` moves from `lab-b` to `lab-a` (back to lab\\-a: new nodes there');
  });

  it('no move: where it runs and its failover list; a failing platform from the history keeps it on the failover', () => {
    const same = diffPolicies(policy(), policy([], { scaling: { predict: false, max: 5 } }), (p) => (p === 'web' ? obs() : undefined));
    expect(planMarkdown(same)).toContain('**Where pools run**: `web` on `lab-a` (failover: `lab-b`, `lab-c`).');
    const failing = diffPolicies(policy(), policy(), (p) => (p === 'web' ? obs({ active: 'lab-b', health: { 'lab-a': { failures: 3, lastFailureAt: AT - 60_000, lastError: 'Error: boom' } } }) : undefined));
    expect(failing.pools.find((p) => p.pool === 'web')?.runsOn).toMatchObject({ now: 'lab-b', after: 'lab-b' });
    expect(planMarkdown(failing)).toContain('`web` on `lab-b`');
  });

  it('warns when a pool\'s own platform changes under the nodes of its own stack (reconcile refuses it), not once they moved off', () => {
    const swapped = policy([], { platform: 'lab-b', failover: ['lab-a'] });
    const d = diffPolicies(policy(), swapped, (p) => (p === 'web' ? obs({ ownNodes: 2 }) : undefined));
    expect(d.pools.find((p) => p.pool === 'web')?.platformChange).toEqual({ from: 'lab-a', to: 'lab-b', nodes: 2 });
    expect(planMarkdown(d)).toContain('⚠ `web`: its own platform changes from `lab-a` to `lab-b` under its 2 nodes, which reconcile refuses');
    // Evacuated first: the nodes are on the failover stack, the pool's own is empty.
    const moved = diffPolicies(policy(['lab-a']), swapped, (p) => (p === 'web' ? obs({ ownNodes: 0 }) : undefined));
    expect(moved.pools.find((p) => p.pool === 'web')?.platformChange).toBeUndefined();
  });
});
