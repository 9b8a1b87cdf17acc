/**
 * The `module` platform's policy (issue #17 item 5): its source, version and inputs, the machine
 * settings it refuses, standby refused, each problem at its place.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { secretFields } from '../../src/policy/secret-fields.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-module-rules-'));
mkdirSync(join(dir, 'modules', 'node'), { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The platform is on line 4, the pool on line 6. */
function policy(platform: string, pool = '{ emitter: gl, platform: mod, labels: [a] }'): string {
  return [
    'emitters:',
    '  gl: { type: gitlab, url: https://gitlab.example.com, token: "${env:GL}", projects: [a/b], runnerOwner: instance }',
    'platforms:',
    `  mod: ${platform}`,
    'pools:',
    `  a: ${pool}`,
  ].join('\n');
}

let n = 0;
function load(yaml: string) {
  const name = `case-${n++}.yaml`;
  writeFileSync(join(dir, name), yaml);
  const r = loadPolicy([join(dir, name)], { cwd: dir, env: {} });
  return { ...r, lines: r.problems.map(formatProblem).map((l) => l.replace(`${name}:`, 'x.yaml:')) };
}
const ok = '{ type: module, source: ./modules/node, backend: { type: local }';

describe('module platform policy', () => {
  it('loads a local module with inputs (its source resolved against the policy file) and a registry module with a version', () => {
    const r = load(policy(`${ok}, inputs: { size: large, count_x: 2, spot: true, tags: { team: ci }, zones: [a, b], password: "\${env:AZ_PASS}" } }`));
    expect(r.lines).toEqual([]);
    expect(r.policy?.platforms.mod).toMatchObject({ type: 'module', source: join(dir, 'modules', 'node'), inputs: { size: 'large', count_x: 2, spot: true, tags: { team: 'ci' }, zones: ['a', 'b'] } });
    // The secret input is a reference the checks resolve like any other.
    expect(secretFields(r.policy as NonNullable<typeof r.policy>)).toContainEqual({ section: 'platforms', name: 'mod', path: ['inputs', 'password'], ref: '${env:AZ_PASS}' });
    const reg = load(policy('{ type: module, source: acme/runner-node/azurerm, version: "~> 1.2", providers: { azurerm: { source: hashicorp/azurerm, version: "~> 4.23", config: { features: {}, client_secret: "${env:ARM_SECRET}" } } }, backend: { type: local } }'));
    expect(reg.lines).toEqual([]);
    expect(reg.policy?.platforms.mod).toMatchObject({ source: 'acme/runner-node/azurerm', version: '~> 1.2', inputs: {} });
    expect(secretFields(reg.policy as NonNullable<typeof reg.policy>)).toContainEqual({ section: 'platforms', name: 'mod', path: ['providers', 'azurerm', 'config', 'client_secret'], ref: '${env:ARM_SECRET}' });
  });

  it.each<[string, string, string | undefined, RegExp]>([
    ['a version with a local path', `${ok}, version: 1.0.0 }`, undefined, /x\.yaml:4:\d+: platforms\.mod\.version: a local module \(source .*\) has no version/],
    ['a local source that is no directory', '{ type: module, source: ./nowhere, backend: { type: local } }', undefined, /platforms\.mod\.source: .*nowhere is not a directory/],
    ['no backend', '{ type: module, source: ./modules/node }', undefined, /a module platform names its backend/],
    ['a reserved input name', `${ok}, inputs: { credential: x } }`, undefined, /platforms\.mod\.inputs\.credential: "credential" is given to every node's module by Parmanu itself/],
    ['user_data as input', `${ok}, inputs: { user_data: x } }`, undefined, /inputs\.user_data: "user_data" is given/],
    ['a Terraform meta-argument as input', `${ok}, inputs: { count: 2 } }`, undefined, /inputs\.count: "count" is a Terraform meta-argument/],
    ['an input name that is no identifier', `${ok}, inputs: { "2x": 1 } }`, undefined, /inputs\.2x: a module variable name is letters/],
    ['a reference inside a string', `${ok}, inputs: { url: "https://\${env:HOST}/x" } }`, undefined, /inputs\.url: a \$\{env:NAME\} or \$\{file:path\} reference is a whole value/],
    ['a nested partial reference', `${ok}, inputs: { m: { l: [ok, "a\${file:/x}"] } } }`, undefined, /inputs\.m\.l\.1: a \$\{env:NAME\}/],
    ['a literal token in an input', `${ok}, inputs: { token: glrt-abcdefghijklmnop } }`, undefined, /x\.yaml:4:\d+: platforms\.mod\.inputs\.token: looks like a GitLab runner token/],
    ['a provider name that is none', `${ok}, providers: { Azure: { source: hashicorp/azurerm } } }`, undefined, /platforms\.mod\.providers\.Azure: a provider's local name is lowercase/],
    ['a partial reference in a provider', `${ok}, providers: { azurerm: { source: hashicorp/azurerm, config: { subscription_id: "sub-\${env:X}" } } } }`, undefined, /platforms\.mod\.providers\.azurerm\.config\.subscription_id: a \$\{env:NAME\}/],
    ['a provider without its source', `${ok}, providers: { azurerm: { config: {} } } }`, undefined, /platforms\.mod\.providers\.azurerm\.source/],
    ['a null input', `${ok}, inputs: { x: null } }`, undefined, /inputs\.x: must be a string, number, boolean, list or map/],
    ['machine type and image', ok + ' }', '{ emitter: gl, platform: mod, labels: [a], machine: { type: big, image: img } }', /x\.yaml:6:\d+: pools\.a\.machine\.type: machine\.type, machine\.image have no meaning on module platform "mod": .*put VM settings in platforms\.mod\.inputs/],
    ['aws settings', ok + ' }', '{ emitter: gl, platform: mod, labels: [a], machine: { subnets: [s], instanceProfile: p } }', /machine\.subnets, machine\.instanceProfile have no meaning on module platform/],
    ['spot', ok + ' }', '{ emitter: gl, platform: mod, labels: [a], machine: { spot: true } }', /machine\.spot has no meaning on module platform/],
    ['a disk size written', ok + ' }', '{ emitter: gl, platform: mod, labels: [a], machine: { diskGb: 80 } }', /machine\.diskGb has no meaning on module platform/],
    ['standby', ok + ' }', '{ emitter: gl, platform: mod, labels: [a], scaling: { standby: 1 } }', /pools\.a\.scaling\.standby: is not supported on module platform "mod": a module call has no lifecycle/],
  ])('refuses %s', (_n, platform, pool, want) => {
    const r = load(policy(platform, pool));
    expect(r.policy).toBeUndefined();
    expect(r.lines.filter((l) => !/warning/.test(l))).toEqual([expect.stringMatching(want)]);
  });

  it('takes the settings a module pool does use: os (the bootstrap), hourlyCost', () => {
    const r = load(policy(ok + ' }', '{ emitter: gl, platform: mod, labels: [a], machine: { os: windows, hourlyCost: 0.2 } }'));
    expect(r.lines.filter((l) => !/warning/.test(l))).toEqual([]);
    expect(r.policy).toBeDefined();
  });
});
