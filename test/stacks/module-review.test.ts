/**
 * The module platform's rendering, as the review of issue 17 found it wanting: keys of input maps
 * are literals too (Terraform's JSON syntax evaluates `${…}` in object keys), and a local module
 * is recorded as the policy writes it, so a checkout that moves (a CI job's build directory)
 * neither outdates the nodes nor loses a kept node's module.
 */
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { renderPool } from '../../stacks/render.js';
import { nodeSpec } from '../../stacks/spec.js';

type Json = Record<string, Record<string, Record<string, unknown>>>;

/** A checkout with a policy and the fixture module in it. */
function checkout(root: string, inputs = '{ size: small }'): { platform: PlatformConfig; pool: ReturnType<typeof loadPolicy>['policy'] } {
  mkdirSync(join(root, 'policies'), { recursive: true });
  cpSync(resolve('test/fixtures/modules/local-node'), join(root, 'modules', 'node'), { recursive: true });
  writeFileSync(
    join(root, 'policies', 'p.yaml'),
    ['emitters:', '  r: { type: replay, trace: t.csv }', 'platforms:', `  mod: { type: module, source: ../modules/node, inputs: ${inputs}, backend: { type: local } }`, 'pools:', '  mp: { emitter: r, platform: mod }', ''].join('\n'),
  );
  writeFileSync(join(root, 'policies', 't.csv'), 'queued_at,duration_s,labels\n');
  const r = loadPolicy([join(root, 'policies')], { cwd: root, env: {} });
  expect(r.problems.filter((p) => p.severity === 'error')).toEqual([]);
  return { platform: r.policy?.platforms.mod as PlatformConfig, pool: r.policy };
}

describe('module platform: keys and moved checkouts', () => {
  it('escapes `${` in the keys of input maps', () => {
    const root = mkdtempSync(join(tmpdir(), 'parmanu-modkeys-'));
    const { platform, pool: policy } = checkout(root, "{ tags: { '${file(\"/proc/self/environ\")}': x, '%{ if true }': y } }");
    const pool = policy?.pools[0];
    if (!pool) throw new Error('no pool');
    const json = renderPool({ pool, platform, stateDir: join(root, '.parmanu'), nodes: [{ name: 'mp-a', access: { kind: 'none' } }] }) as unknown as Json;
    const m = json.module?.['node_mp-a'] as { tags: Record<string, string> };
    expect(Object.keys(m.tags).sort()).toEqual(['$${file("/proc/self/environ")}', '%%{ if true }']);
  });

  it('records a local source as written: the same spec, and a kept node renders the module of the checkout of today', () => {
    const a = checkout(mkdtempSync(join(tmpdir(), 'parmanu-mod-a-')));
    const bRoot = mkdtempSync(join(tmpdir(), 'parmanu-mod-b-'));
    const b = checkout(bRoot);
    const poolA = a.pool?.pools[0];
    const poolB = b.pool?.pools[0];
    if (!poolA || !poolB) throw new Error('no pool');
    expect((a.platform as { source: string }).source).not.toBe((b.platform as { source: string }).source);
    expect(nodeSpec(poolA, a.pool?.emitters.r, a.platform)).toBe(nodeSpec(poolB, b.pool?.emitters.r, b.platform));
    // Made in checkout a: its record says ../modules/node.
    const made = renderPool({ pool: poolA, platform: a.platform, stateDir: join(bRoot, '.parmanu'), nodes: [{ name: 'mp-a', access: { kind: 'none' } }] }) as unknown as Json;
    const recorded = (made.resource?.terraform_data?.['node_mp-a'] as { input: Record<string, string> }).input;
    expect(recorded.module_source).toBe('../modules/node');
    // Kept in checkout b: rendered from its record, to b's module directory.
    const kept = renderPool({ pool: poolB, platform: b.platform, stateDir: join(bRoot, '.parmanu'), nodes: [{ name: 'mp-a', access: { kind: 'none' }, recorded }] }) as unknown as Json;
    const m = kept.module?.['node_mp-a'] as { source: string };
    expect(resolve(join(bRoot, '.parmanu', 'pools', 'mp'), m.source)).toBe(join(bRoot, 'modules', 'node'));
  });
});
