/**
 * The terraform runner with a module platform's stack (real terraform, the local test module):
 * new module calls are installed before a plan or a state pull, a secret input reaches the module
 * through `TF_VAR_…` only, and a module whose `credential` is not ephemeral is refused by Terraform.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PlatformSchema } from '../../src/policy/schema.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { Terraform } from '../../src/terraform/runner.js';
import { renderPool, writeStack } from '../../stacks/render.js';
import { testPool } from '../helpers.js';

// The one provider there is offline, configured in the root module as a real cloud's would be.
const providers = { terraform: { source: 'terraform.io/builtin/terraform' } };
const platform = (source: string, inputs: Record<string, unknown>) => ({ name: 'mod', ...PlatformSchema.parse({ type: 'module', source: resolve(source), inputs, providers, backend: { type: 'local' } }) }) as PlatformConfig;

describe('Terraform with module calls', () => {
  const tf = new Terraform({ bin: process.env.PARMANU_TERRAFORM ?? 'terraform' });
  const setup = (source: string, inputs: Record<string, unknown>, nodes: string[]) => {
    const stateDir = mkdtempSync(join(tmpdir(), 'parmanu-modrun-'));
    const dir = join(stateDir, 'pools', 'mp');
    const write = (names: string[]) => writeStack(dir, renderPool({ pool: testPool({ platform: 'mod' }, 'mp'), platform: platform(source, inputs), stateDir, nodes: names.map((name) => ({ name, access: { kind: 'none' as const } })) }));
    write(nodes);
    return { dir, write };
  };

  it('installs each new module call, and hands a secret input over as TF_VAR only', { timeout: 120_000 }, async () => {
    const ref = 'PARMANU_TEST_MODULE_SIZE';
    process.env[ref] = 'size-from-the-environment';
    try {
      const { dir, write } = setup('test/fixtures/modules/local-node', { credential_dir: '/nonexistent-unused', size: `\${env:${ref}}` }, []);
      await tf.init(dir, 'x');
      expect(await tf.pullState(dir)).toEqual([]);
      // A node added after init: its module call is installed before the plan reads it.
      write(['mp-a']);
      expect(await tf.pullState(dir)).toEqual([]);
      expect(await tf.plan(dir, 'p.bin', { TF_VAR_parmanu_credentials: '{}' })).toBe(true);
      await tf.apply(dir, 'p.bin', { env: { TF_VAR_parmanu_credentials: '{}' } });
      const state = readFileSync(join(dir, 'terraform.tfstate'), 'utf8');
      expect(state).toContain('size-from-the-environment');
      expect(readFileSync(join(dir, 'cdk.tf.json'), 'utf8')).not.toContain('size-from-the-environment');
      expect((await tf.pullState(dir)).map((n) => n.name)).toEqual(['mp-a']);
      write(['mp-a', 'mp-b']);
      expect(await tf.plan(dir, 'p.bin')).toBe(true);
      // A reference that does not resolve names itself, never a value.
      delete process.env[ref];
      await expect(tf.plan(dir, 'p.bin')).rejects.toThrow(`module input \${env:${ref}}: environment variable ${ref} is not set`);
    } finally {
      delete process.env[ref];
    }
  });

  it('refuses a module whose credential variable is not ephemeral', { timeout: 60_000 }, async () => {
    const { dir } = setup('test/fixtures/modules/not-ephemeral', {}, ['mp-a']);
    await tf.init(dir, 'x');
    await expect(tf.plan(dir, 'p.bin', { TF_VAR_parmanu_credentials: JSON.stringify({ 'mp-a': 'not-a-real-token' }) })).rejects.toThrow(/plan failed: Ephemeral value not allowed .*not declared as accepting a ephemeral values/);
  });
});
