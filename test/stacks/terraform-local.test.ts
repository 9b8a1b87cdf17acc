/**
 * The local stack through real terraform: init, plan, apply, then a node removed from the set
 * destroys exactly that node, then destroy. No provider downloads: terraform_data is built in.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderPool, writeStack } from '../../stacks/render.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { testPool } from '../helpers.js';

const TF = process.env.PARMANU_TERRAFORM ?? 'terraform';
const root = mkdtempSync(join(tmpdir(), 'parmanu-tf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const tf = (dir: string, args: string[]) =>
  execFileSync(TF, args, { cwd: dir, encoding: 'utf8', env: { ...process.env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1' } });

describe('local stack with real terraform', () => {
  const pool = testPool({}, 'e2e');
  const stateDir = join(root, 'state');
  const work = join(root, 'work');
  const render = (names: string[]) => writeStack(work, renderPool({ pool, platform: { name: 'lab', type: 'local' }, stateDir, nodes: names.map((name) => ({ name, credential: { kind: 'none' } })) }));

  it('creates, removes exactly one named node, and destroys', () => {
    render(['e2e-aaa', 'e2e-bbb', 'e2e-ccc']);
    tf(work, ['init', '-no-color']);
    tf(work, ['plan', '-no-color', '-out=plan.bin']);
    const plan = JSON.parse(tf(work, ['show', '-json', 'plan.bin'])) as { resource_changes: Array<{ address: string; change: { actions: string[] } }> };
    expect(plan.resource_changes.map((c) => [c.address, c.change.actions])).toEqual([
      ['terraform_data.node_e2e-aaa', ['create']],
      ['terraform_data.node_e2e-bbb', ['create']],
      ['terraform_data.node_e2e-ccc', ['create']],
    ]);
    tf(work, ['apply', '-no-color', 'plan.bin']);
    const stateFile = join(stateDir, 'pools', 'e2e', 'terraform.tfstate');
    expect(readStateNodes(stateFile).map((n) => n.name)).toEqual(['e2e-aaa', 'e2e-bbb', 'e2e-ccc']);

    // The middle node goes: exactly that address is destroyed, the others are untouched.
    render(['e2e-aaa', 'e2e-ccc']);
    tf(work, ['plan', '-no-color', '-out=plan2.bin']);
    const plan2 = JSON.parse(tf(work, ['show', '-json', 'plan2.bin'])) as { resource_changes: Array<{ address: string; change: { actions: string[] } }> };
    expect(plan2.resource_changes.filter((c) => c.change.actions[0] !== 'no-op').map((c) => [c.address, c.change.actions])).toEqual([['terraform_data.node_e2e-bbb', ['delete']]]);
    tf(work, ['apply', '-no-color', 'plan2.bin']);
    expect(readStateNodes(stateFile).map((n) => n.name)).toEqual(['e2e-aaa', 'e2e-ccc']);

    tf(work, ['destroy', '-no-color', '-auto-approve']);
    expect(readStateNodes(stateFile)).toEqual([]);
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).version).toBe(4);
  });
});
