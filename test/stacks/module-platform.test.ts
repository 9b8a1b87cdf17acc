/**
 * The module platform's stack: each node one `module "node_<name>"` call beside Parmanu's record of
 * it, the credential only as a `${var…}` reference, kept nodes rendered from their record.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlatformSchema } from '../../src/policy/schema.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { renderPool } from '../../stacks/render.js';
import { nodeSpec } from '../../stacks/spec.js';
import { refVariable } from '../../stacks/module-node.js';
import { testPool } from '../helpers.js';

const FIXTURE = resolve('test/fixtures/modules/local-node');
const platform = (extra: Record<string, unknown> = {}) => ({ name: 'mod', ...PlatformSchema.parse({ type: 'module', source: FIXTURE, inputs: { credential_dir: '/x', size: 'small' }, backend: { type: 'local' }, ...extra }) }) as PlatformConfig;
type Json = Record<string, Record<string, Record<string, unknown>>>;

describe('module platform stack', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'parmanu-modstack-'));
  const pool = testPool({ platform: 'mod' }, 'mp');
  const render = (p: PlatformConfig, nodes: Array<{ name: string; recorded?: Record<string, string> }>) =>
    renderPool({ pool, platform: p, stateDir, nodes: nodes.map((n) => ({ access: { kind: 'none' as const }, spec: 'abc', createdAt: 1_700_000_000_000, ...n })) }) as unknown as Json;

  it('renders one module call per node with name, pool, user_data, the credential as a var reference and the inputs', () => {
    const json = render(platform({ inputs: { credential_dir: '/x', size: 'large', labels: { a: '${b}' } } }), [{ name: 'mp-a' }, { name: 'mp-b' }]);
    expect(Object.keys(json.module ?? {})).toEqual(['node_mp-a', 'node_mp-b']);
    const m = json.module?.['node_mp-a'] as Record<string, unknown>;
    // Relative to the pool's working directory: Terraform reads a local module in place.
    expect(resolve(join(stateDir, 'pools', 'mp'), m.source as string)).toBe(FIXTURE);
    expect(m.source).toMatch(/^\.\.?\//);
    expect(m).toMatchObject({ name: 'mp-a', pool: 'mp', credential_dir: '/x', size: 'large', labels: { a: '$${b}' }, credential: '${lookup(var.parmanu_credentials, "mp-a", "")}' });
    expect(m.version).toBeUndefined();
    expect(String(m.user_data)).toContain('replay node');
    // The record beside it: what a kept node is rendered from.
    const rec = json.resource?.terraform_data?.['node_mp-a'] as { input: Record<string, string>; lifecycle: unknown };
    expect(rec.lifecycle).toEqual({ ignore_changes: 'all' });
    expect(rec.input).toMatchObject({ pool: 'mp', node: 'mp-a', spec: 'abc', created_at: '1700000000', inputs: JSON.stringify({ credential_dir: '/x', size: 'large', labels: { a: '$${b}' } }) });
    // Every `${` of the rendered JSON is a reference to a variable or Parmanu's own lookup: no value of a secret.
    const text = JSON.stringify(json);
    expect([...text.matchAll(/(?<!\$)\$\{([^}]*)\}/g)].map((x) => x[1])).toEqual(['lookup(var.parmanu_credentials, \\"mp-a\\", \\"\\")', 'lookup(var.parmanu_credentials, \\"mp-b\\", \\"\\")']);
  });

  it('a registry source keeps its address and version; a secret input is a sensitive variable named for its reference', () => {
    const json = render(platform({ source: 'acme/runner-node/azurerm', version: '~> 1.2', inputs: { admin_password: '${env:AZ_PASS}', other: ['${file:/run/x}'] } }), [{ name: 'mp-a' }]);
    const m = json.module?.['node_mp-a'] as Record<string, unknown>;
    expect(m).toMatchObject({ source: 'acme/runner-node/azurerm', version: '~> 1.2', admin_password: `\${var.${refVariable('${env:AZ_PASS}')}}`, other: [`\${var.${refVariable('${file:/run/x}')}}`] });
    expect(json.variable?.[refVariable('${env:AZ_PASS}')]).toEqual({ type: 'string', sensitive: true, nullable: false, description: '${env:AZ_PASS}' });
  });

  it('boots the node with the OS bootstrap reading the credential the module put on the VM, instance metadata closed to jobs', () => {
    const json = renderPool({ pool, platform: platform(), stateDir, nodes: [{ name: 'mp-a', access: { kind: 'gitlab', url: 'https://gitlab.example.com' } }] }) as unknown as Json;
    const userData = String(json.module?.['node_mp-a']?.user_data);
    expect(userData).toContain('/var/lib/parmanu/credential');
    expect(userData).toContain('169.254.169.254');
    const win = renderPool({ pool: testPool({ platform: 'mod', machine: { os: 'windows' } }, 'mp'), platform: platform(), stateDir, nodes: [{ name: 'mp-a', access: { kind: 'gitlab', url: 'https://gitlab.example.com' } }] }) as unknown as Json;
    expect(String(win.module?.['node_mp-a']?.user_data)).toContain('C:\\ProgramData\\Parmanu\\credential');
    expect(String(win.module?.['node_mp-a']?.user_data)).toContain('169.254.169.254');
  });

  it('configures the providers the module uses once, in the root module', () => {
    const json = render(platform({ providers: { azurerm: { source: 'hashicorp/azurerm', version: '~> 4.23', config: { features: {}, subscription_id: '${env:ARM_SUB}', note: 'a ${literal}' } }, openstack: { source: 'terraform-provider-openstack/openstack' } } }), [{ name: 'mp-a' }, { name: 'mp-b' }]) as unknown as { terraform: { required_providers: unknown }; provider: Record<string, unknown> };
    expect(json.terraform.required_providers).toEqual({ azurerm: { source: 'hashicorp/azurerm', version: '~> 4.23' }, openstack: { source: 'terraform-provider-openstack/openstack' } });
    expect(json.provider).toEqual({ azurerm: { features: {}, subscription_id: `\${var.${refVariable('${env:ARM_SUB}')}}`, note: 'a $${literal}' }, openstack: {} });
  });

  it('a kept node is rendered from its record: a changed policy reaches new nodes only', () => {
    const first = render(platform(), [{ name: 'mp-a' }]);
    const recorded = (first.resource?.terraform_data?.['node_mp-a'] as { input: Record<string, string> }).input;
    const changed = platform({ source: 'acme/other/azurerm', version: '2.0.0', inputs: { credential_dir: '/y', size: 'huge' } });
    const json = render(changed, [{ name: 'mp-a', recorded }, { name: 'mp-b' }]);
    expect(json.module?.['node_mp-a']).toEqual(first.module?.['node_mp-a']);
    expect(json.module?.['node_mp-b']).toMatchObject({ source: 'acme/other/azurerm', version: '2.0.0', size: 'huge', credential_dir: '/y' });
    // A record that is not whole (not a module node's) is no record: the policy's call.
    const partial = render(changed, [{ name: 'mp-a', recorded: { pool: 'mp' } }]);
    expect(partial.module?.['node_mp-a']).toMatchObject({ source: 'acme/other/azurerm' });
  });

  it('the node spec holds the module source, version and inputs', () => {
    const base = nodeSpec(pool, undefined, platform());
    expect(nodeSpec(pool, undefined, platform())).toBe(base);
    expect(nodeSpec(pool, undefined, platform({ inputs: { credential_dir: '/x', size: 'large' } }))).not.toBe(base);
    expect(nodeSpec(pool, undefined, platform({ source: 'a/b/c', version: '1.0.0' }))).not.toBe(nodeSpec(pool, undefined, platform({ source: 'a/b/c', version: '1.0.1' })));
    expect(nodeSpec(pool, undefined, platform({ source: 'a/b/c' }))).not.toBe(base);
    // Other platforms' specs are what they were.
    expect(nodeSpec(pool, undefined, { name: 'lab', type: 'local' })).toBe(nodeSpec(pool, undefined));
  });
});
