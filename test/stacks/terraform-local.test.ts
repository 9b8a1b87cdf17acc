/**
 * The local stack through real terraform: init, plan, apply, then a node removed from the set
 * destroys exactly that node, then destroy. No provider downloads: terraform_data is built in.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { userData } from '../../stacks/bootstrap.js';
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
  const render = (names: string[]) => writeStack(work, renderPool({ pool, platform: { name: 'lab', type: 'local' }, stateDir, nodes: names.map((name) => ({ name, access: { kind: 'none' as const } })) }));

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

  it('delivers a new node\'s credential from the ephemeral variable into a 0600 file, and keeps it out of the plan and the state', () => {
    const dir = join(root, 'cred');
    const sd = join(root, 'cred-state');
    const secret = 'glrt-DELIVERED-ONLY-TO-THE-FILE-42';
    writeStack(dir, renderPool({ pool, platform: { name: 'lab', type: 'local' }, stateDir: sd, nodes: [{ name: 'e2e-cred', access: { kind: 'gitlab', url: 'https://gl.example.com' } }] }));
    const env = { ...process.env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1', TF_VAR_parmanu_credentials: JSON.stringify({ 'e2e-cred': secret }) };
    const run = (args: string[]) => execFileSync(TF, args, { cwd: dir, encoding: 'utf8', env });
    run(['init', '-no-color']);
    run(['plan', '-no-color', '-out=plan.bin']);
    run(['apply', '-no-color', 'plan.bin']);
    const file = join(sd, 'pools', 'e2e', 'credentials', 'e2e-cred');
    expect(readFileSync(file, 'utf8')).toBe(secret);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(sd, 'pools', 'e2e', 'terraform.tfstate'), 'utf8')).not.toContain(secret);
    expect(readFileSync(join(dir, 'plan.bin')).toString('latin1')).not.toContain(secret);
    expect(execFileSync('unzip', ['-p', join(dir, 'plan.bin')], { encoding: 'latin1' })).not.toContain(secret);
    // A later plan without the variable (a kept node) changes nothing, and the destroy removes the file.
    const again = execFileSync(TF, ['plan', '-no-color', '-detailed-exitcode'], { cwd: dir, encoding: 'utf8', env: { ...env, TF_VAR_parmanu_credentials: '{}' } });
    expect(again).toMatch(/No changes/);
    run(['destroy', '-no-color', '-auto-approve']);
    expect(existsSync(file)).toBe(false);
  });

  it('keeps AWS user-data and GCP metadata literal: terraform stores exactly the script, no ${…} or %{…} evaluated', () => {
    const dir = join(root, 'literal');
    const cloudPool = testPool({ labels: ['linux'], machine: { type: 'c6i.large', image: 'ami-1' }, runner: { executor: 'docker' } }, 'lit');
    const access = { kind: 'gitlab' as const, url: 'https://gl.example.com' };
    const awsJson = renderPool({ pool: cloudPool, platform: { name: 'aws', type: 'aws', region: 'eu-central-1' }, stateDir: dir, nodes: [{ name: 'lit-a', access }] }) as { resource: Record<string, Record<string, Record<string, unknown>>> };
    const gcpJson = renderPool({ pool: { ...cloudPool, machine: { ...cloudPool.machine, type: 'e2-small', image: 'debian-12' } }, platform: { name: 'gcp', type: 'gcp', project: 'p', region: 'europe-west1', zone: 'europe-west1-b', network: 'default' }, stateDir: dir, nodes: [{ name: 'lit-a', access }] }) as { resource: Record<string, Record<string, Record<string, unknown>>> };
    const awsData = String(awsJson.resource.aws_instance?.['node_lit-a']?.user_data);
    const gcpData = String((gcpJson.resource.google_compute_instance?.['node_lit-a']?.metadata as Record<string, string>)['user-data']);
    // What the VM must receive: the bootstrap as rendered, with its shell expansions intact.
    const awsWant = userData(cloudPool, 'lit-a', access, { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/lit/lit-a' });
    expect(awsWant).toMatch(/\$\{/);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'main.tf.json'), JSON.stringify({ resource: { terraform_data: { aws: { input: awsData }, gcp: { input: gcpData } } } }));
    tf(dir, ['init', '-no-color']);
    tf(dir, ['apply', '-no-color', '-auto-approve']);
    const state = JSON.parse(tf(dir, ['state', 'pull'])) as { resources: Array<{ name: string; instances: Array<{ attributes: { input: { value: string } } }> }> };
    const stored = (name: string) => state.resources.find((r) => r.name === name)?.instances[0]?.attributes.input.value;
    expect(stored('aws')).toBe(awsWant);
    expect(stored('gcp')).toMatch(/^#cloud-config\n/);
    expect(stored('gcp')).toContain('${PARMANU_ROOT:-}');
  });
});
