import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readStateNodes, StateError } from '../../src/terraform/state.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-state-'));
const file = (name: string, content: string) => {
  const f = join(dir, name);
  writeFileSync(f, content);
  return f;
};

describe('readStateNodes: what each platform records on a node', () => {
  it('reads the spec and creation time from AWS tags, GCP labels and terraform_data input, and the machine of older nodes', () => {
    const f = file('attrs.tfstate', JSON.stringify({
      version: 4,
      resources: [
        { mode: 'managed', type: 'aws_instance', name: 'node_p-a', instances: [{ attributes: { ami: 'ami-1', instance_type: 'c6i.large', tags: { 'parmanu:spec': 'abc', 'parmanu:created': '1700000000' } } }] },
        { mode: 'managed', type: 'google_compute_instance', name: 'node_p-b', instances: [{ attributes: { machine_type: 'e2-standard-4', boot_disk: [{ initialize_params: [{ image: 'debian-12' }] }], labels: { 'parmanu-spec': 'def' } } }] },
        { mode: 'managed', type: 'terraform_data', name: 'node_p-c', instances: [{ attributes: { input: { value: { spec: 'ghi', created_at: '1700000001' }, type: ['object', {}] } } }] },
        { mode: 'managed', type: 'aws_instance', name: 'node_p-old', instances: [{ attributes: { ami: 'ami-0', instance_type: 'c5.large', tags: null } }] },
        { mode: 'managed', type: 'aws_ssm_parameter', name: 'credential_p-a', instances: [{ attributes: {} }] },
        { mode: 'managed', type: 'google_secret_manager_secret_version', name: 'credential_p-b_version', instances: [{ attributes: {} }] },
      ],
    }));
    expect(readStateNodes(f)).toEqual([
      { name: 'p-a', type: 'aws_instance', spec: 'abc', createdAt: 1_700_000_000_000, machine: { type: 'c6i.large', image: 'ami-1' }, credential: true, generation: 1 },
      { name: 'p-b', type: 'google_compute_instance', spec: 'def', machine: { type: 'e2-standard-4', image: 'debian-12' }, credential: true, generation: 1 },
      { name: 'p-c', type: 'terraform_data', spec: 'ghi', createdAt: 1_700_000_001_000, input: { spec: 'ghi', created_at: '1700000001' } },
      { name: 'p-old', type: 'aws_instance', machine: { type: 'c5.large', image: 'ami-0' } },
    ]);
  });

  it('reads each node\'s power state (local input.power, GCP desired_status, AWS aws_ec2_instance_state) and its credential generation', () => {
    const f = file('power.tfstate', JSON.stringify({
      version: 4,
      resources: [
        { mode: 'managed', type: 'aws_instance', name: 'node_p-a', instances: [{ attributes: { id: 'i-1' } }] },
        { mode: 'managed', type: 'aws_ec2_instance_state', name: 'power_p-a', instances: [{ attributes: { instance_id: 'i-1', state: 'stopped' } }] },
        { mode: 'managed', type: 'aws_ssm_parameter', name: 'credential_p-a', instances: [{ attributes: { value_wo_version: 3 } }] },
        { mode: 'managed', type: 'aws_instance', name: 'node_p-b', instances: [{ attributes: { id: 'i-2' } }] },
        { mode: 'managed', type: 'aws_ec2_instance_state', name: 'power_p-b', instances: [{ attributes: { instance_id: 'i-2', state: 'running' } }] },
        { mode: 'managed', type: 'google_compute_instance', name: 'node_p-c', instances: [{ attributes: { desired_status: 'TERMINATED' } }] },
        { mode: 'managed', type: 'google_secret_manager_secret', name: 'credential_p-c', instances: [{ attributes: {} }] },
        { mode: 'managed', type: 'google_secret_manager_secret_version', name: 'credential_p-c_version', instances: [{ attributes: { secret_data_wo_version: 2 } }] },
        { mode: 'managed', type: 'google_compute_instance', name: 'node_p-d', instances: [{ attributes: { desired_status: null } }] },
        { mode: 'managed', type: 'terraform_data', name: 'node_p-e', instances: [{ attributes: { input: { value: { pool: 'p', power: 'stopped' }, type: ['object', {}] } } }] },
        { mode: 'managed', type: 'terraform_data', name: 'credential_p-e', instances: [{ attributes: { input: { value: { node: 'p-e' } }, triggers_replace: { value: 4, type: 'number' } } }] },
        { mode: 'managed', type: 'terraform_data', name: 'node_p-f', instances: [{ attributes: { input: { value: { pool: 'p' } }, triggers_replace: null } }] },
        { mode: 'managed', type: 'terraform_data', name: 'credential_p-f', instances: [{ attributes: { input: { value: { node: 'p-f' } }, triggers_replace: null } }] },
      ],
    }));
    expect(readStateNodes(f)).toEqual([
      { name: 'p-a', type: 'aws_instance', power: 'stopped', credential: true, generation: 3 },
      { name: 'p-b', type: 'aws_instance', power: 'running' },
      { name: 'p-c', type: 'google_compute_instance', power: 'stopped', credential: true, generation: 2 },
      { name: 'p-d', type: 'google_compute_instance' },
      { name: 'p-e', type: 'terraform_data', power: 'stopped', input: { pool: 'p', power: 'stopped' }, credential: true, generation: 4 },
      { name: 'p-f', type: 'terraform_data', input: { pool: 'p' }, credential: true, generation: 1 },
    ]);
  });
});

describe('readStateNodes', () => {
  it('reads node resources of every platform and ignores the rest', () => {
    const f = file('ok.tfstate', JSON.stringify({
      version: 4,
      terraform_version: '1.11.4',
      resources: [
        { mode: 'managed', type: 'aws_instance', name: 'node_p-a', instances: [{ attributes: { id: 'i-1' } }] },
        { mode: 'managed', type: 'google_compute_instance', name: 'node_p-b', instances: [{ attributes: {} }] },
        { mode: 'managed', type: 'terraform_data', name: 'node_p-c', instances: [{}] },
        { mode: 'managed', type: 'aws_security_group', name: 'node_sg', instances: [{}] },
        { mode: 'managed', type: 'aws_instance', name: 'bastion', instances: [{}] },
        { mode: 'data', type: 'aws_instance', name: 'node_x', instances: [{}] },
        { mode: 'managed', type: 'aws_instance', name: 'node_gone', instances: [] },
      ],
    }));
    expect(readStateNodes(f)).toEqual([
      { name: 'p-a', type: 'aws_instance' },
      { name: 'p-b', type: 'google_compute_instance' },
      { name: 'p-c', type: 'terraform_data' },
    ]);
  });

  it('treats a missing file as no nodes', () => {
    expect(readStateNodes(join(dir, 'absent.tfstate'))).toEqual([]);
  });

  it.each([
    ['garbage', 'not json', /not JSON/],
    ['old', JSON.stringify({ version: 3, modules: [] }), /only Terraform state format version 4/],
    ['shape', JSON.stringify({ version: 4, resources: [{ mode: 1 }] }), /not a Terraform state file/],
  ])('refuses %s state with a reason', (name, content, message) => {
    const f = file(`${name}.tfstate`, content);
    expect(() => readStateNodes(f)).toThrowError(StateError);
    expect(() => readStateNodes(f)).toThrowError(message);
  });
});

describe('Terraform.pullState', () => {
  it('lists node resources of the current state through terraform state pull, with their spec and creation time', async () => {
    const { Terraform } = await import('../../src/terraform/runner.js');
    const { renderPool, writeStack } = await import('../../stacks/render.js');
    const { testPool } = await import('../helpers.js');
    const work = mkdtempSync(join(tmpdir(), 'parmanu-show-'));
    writeStack(work, renderPool({ pool: testPool({}, 'sn'), platform: { name: 'lab', type: 'local' }, stateDir: work, nodes: ['sn-a', 'sn-b'].map((name) => ({ name, access: { kind: 'none' as const }, spec: `spec-${name}`, createdAt: 1_700_000_000_000 })) }));
    const tf = new Terraform();
    await tf.init(work, 'x');
    expect(await tf.pullState(work)).toEqual([]);
    await tf.plan(work, 'p.bin');
    await tf.apply(work, 'p.bin');
    expect((await tf.pullState(work)).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: 'sn-a', type: 'terraform_data', spec: 'spec-sn-a', createdAt: 1_700_000_000_000, power: 'running', input: expect.objectContaining({ pool: 'sn', node: 'sn-a', power: 'running' }) },
      { name: 'sn-b', type: 'terraform_data', spec: 'spec-sn-b', createdAt: 1_700_000_000_000, power: 'running', input: expect.objectContaining({ pool: 'sn', node: 'sn-b', power: 'running' }) },
    ]);
  });
});
