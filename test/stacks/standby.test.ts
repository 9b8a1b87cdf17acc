/**
 * Standby in the rendered stacks: a node's power state is the one thing that changes in place, and
 * only for a node an apply starts or stops (`powerChange`). AWS: an `aws_ec2_instance_state` per
 * node; GCP: `desired_status`; local: `input.power` on the node's terraform_data. A start with a
 * fresh credential is a new secret version (AWS `value_wo_version`, GCP `secret_data_wo_version`)
 * or, on the local platform, a new credential delivery (`triggers_replace`), never a new VM.
 * AWS and GCP providers cannot run here: their synthesized JSON is checked; the local platform
 * goes through real terraform, and the plan guard reads its plans.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderPool, writeStack, type TerraformJson } from '../../stacks/render.js';
import type { NodeInput } from '../../stacks/types.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { guardPlan } from '../../src/terraform/guard.js';
import { PlanJsonSchema } from '../../src/terraform/plan.js';
import { readStateNodes } from '../../src/terraform/state.js';
import { testPool } from '../helpers.js';

type Res = Record<string, Record<string, Record<string, unknown>>>;
const resources = (json: TerraformJson) => json.resource as Res;
const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'eu-central-1' };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'default' };
const pool = testPool({ machine: { type: 'c6i.large', image: 'ami-1' }, scaling: { standby: 1 } }, 'sb');
const noStandby = testPool({ machine: { type: 'c6i.large', image: 'ami-1' } }, 'sb');
const gh = { kind: 'github', mode: 'jit' } as const;

describe('AWS', () => {
  const render = (nodes: NodeInput[]) => resources(renderPool({ pool, platform: aws, stateDir: '/s', nodes }));

  it('gives a node with a power state an aws_ec2_instance_state on its instance; its instance stays immutable', () => {
    const r = render([{ name: 'sb-a', access: gh, power: 'stopped', powerChange: true }, { name: 'sb-b', access: gh, power: 'running' }]);
    expect(r.aws_ec2_instance_state?.['power_sb-a']).toMatchObject({ instance_id: '${aws_instance.node_sb-a.id}', state: 'stopped' });
    // Stopped by this apply: its state is the one thing that changes.
    expect(r.aws_ec2_instance_state?.['power_sb-a']?.lifecycle).toBeUndefined();
    expect(r.aws_ec2_instance_state?.['power_sb-b']).toMatchObject({ instance_id: '${aws_instance.node_sb-b.id}', state: 'running' });
    expect(r.aws_instance?.['node_sb-a']?.lifecycle).toEqual({ ignore_changes: 'all' });
  });

  it('ignores the power state of a node this apply neither starts nor stops: an instance stopped outside Parmanu is no plan change (the guard would refuse it and hold the pool)', () => {
    const r = render([{ name: 'sb-a', access: gh, power: 'running' }, { name: 'sb-b', access: gh, power: 'stopped', powerResource: true }]);
    expect(r.aws_ec2_instance_state?.['power_sb-a']).toMatchObject({ state: 'running', lifecycle: { ignore_changes: ['state'] } });
    expect(r.aws_ec2_instance_state?.['power_sb-b']).toMatchObject({ state: 'stopped', lifecycle: { ignore_changes: ['state'] } });
  });

  it('renders no power resource in a pool without standby, except for a node whose state has one or that this apply starts or stops', () => {
    const r = resources(renderPool({ pool: noStandby, platform: aws, stateDir: '/s', nodes: [
      { name: 'sb-new', access: gh, power: 'running' },
      { name: 'sb-had', access: gh, power: 'running', powerResource: true },
      { name: 'sb-start', access: gh, power: 'running', powerChange: true, powerResource: true },
    ] }));
    expect(Object.keys(r.aws_ec2_instance_state ?? {}).sort()).toEqual(['power_sb-had', 'power_sb-start']);
    // Removing standby neither destroys nor recreates a node's power resource; it keeps ignoring drift.
    expect(r.aws_ec2_instance_state?.['power_sb-had']).toMatchObject({ state: 'running', lifecycle: { ignore_changes: ['state'] } });
    expect(r.aws_ec2_instance_state?.['power_sb-start']?.lifecycle).toBeUndefined();
    expect(r.aws_instance?.['node_sb-new']).toBeDefined();
  });

  it('renders no power resource for a node without a power state (made before power states were managed)', () => {
    expect(render([{ name: 'sb-a', access: gh }]).aws_ec2_instance_state).toBeUndefined();
  });

  it('writes a fresh credential as the next value_wo_version of the node\'s parameter', () => {
    const r = render([{ name: 'sb-a', access: gh, power: 'running', powerChange: true, generation: 3 }]);
    expect(r.aws_ssm_parameter?.['credential_sb-a']).toMatchObject({ value_wo: '${lookup(var.parmanu_credentials, "sb-a", "")}', value_wo_version: 3 });
    // The instance starts once the new value is written (it reads the credential at boot).
    expect(r.aws_ec2_instance_state?.['power_sb-a']?.depends_on).toEqual(['aws_ssm_parameter.credential_sb-a']);
    expect(render([{ name: 'sb-a', access: gh }]).aws_ssm_parameter?.['credential_sb-a']?.value_wo_version).toBe(1);
  });
});

describe('GCP', () => {
  const render = (nodes: NodeInput[]) => resources(renderPool({ pool: testPool({ machine: { type: 'e2-standard-4', image: 'debian-12' } }, 'sb'), platform: gcp, stateDir: '/s', nodes }));

  it('sets desired_status; a node started or stopped ignores every argument but desired_status, the others ignore all', () => {
    const r = render([{ name: 'sb-a', access: gh, power: 'stopped', powerChange: true }, { name: 'sb-b', access: gh, power: 'running' }, { name: 'sb-c', access: gh }]);
    const a = r.google_compute_instance?.['node_sb-a'] as Record<string, unknown>;
    expect(a.desired_status).toBe('TERMINATED');
    const ignored = (a.lifecycle as { ignore_changes: string[] }).ignore_changes;
    expect(ignored).not.toContain('desired_status');
    // Every argument the instance is configured with, except its power, is ignored.
    expect([...ignored].sort()).toEqual(Object.keys(a).filter((k) => !['desired_status', 'lifecycle', 'depends_on', '//'].includes(k)).sort());
    expect(ignored).toEqual(expect.arrayContaining(['machine_type', 'boot_disk', 'metadata', 'zone', 'name', 'scheduling', 'service_account', 'network_interface', 'labels']));
    expect(r.google_compute_instance?.['node_sb-b']).toMatchObject({ desired_status: 'RUNNING', lifecycle: { ignore_changes: 'all' } });
    expect(r.google_compute_instance?.['node_sb-c']?.desired_status).toBeUndefined();
  });

  it('writes a fresh credential as a new secret version (secret_data_wo_version)', () => {
    const r = render([{ name: 'sb-a', access: gh, power: 'running', powerChange: true, generation: 2 }]);
    expect(r.google_secret_manager_secret_version?.['credential_sb-a_version']).toMatchObject({ secret_data_wo: '${lookup(var.parmanu_credentials, "sb-a", "")}', secret_data_wo_version: 2 });
    // The instance starts once the new version is written (it reads the credential at boot).
    expect(r.google_compute_instance?.['node_sb-a']?.depends_on).toEqual(['google_secret_manager_secret_version.credential_sb-a_version']);
  });
});

describe('local, with real terraform', () => {
  const TF = process.env.PARMANU_TERRAFORM ?? 'terraform';
  const root = mkdtempSync(join(tmpdir(), 'parmanu-standby-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const stateDir = join(root, 'state');
  const work = join(root, 'work');
  const local: PlatformConfig = { name: 'lab', type: 'local' };
  const p = testPool({}, 'sb');
  const tf = (args: string[], creds: Record<string, string> = {}) => execFileSync(TF, args, { cwd: work, encoding: 'utf8', env: { ...process.env, TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1', TF_VAR_parmanu_credentials: JSON.stringify(creds) } });
  const plan = (nodes: NodeInput[], creds: Record<string, string> = {}) => {
    writeStack(work, renderPool({ pool: p, platform: local, stateDir, nodes }));
    tf(['plan', '-no-color', '-out=plan.bin'], creds);
    return PlanJsonSchema.parse(JSON.parse(tf(['show', '-json', 'plan.bin']))).resource_changes.filter((c) => !c.change.actions.every((a) => a === 'no-op'));
  };
  const stateFile = join(stateDir, 'pools', 'sb', 'terraform.tfstate');
  const credFile = join(stateDir, 'pools', 'sb', 'credentials', 'sb-a');
  const node = (name: string): NodeInput => {
    const s = readStateNodes(stateFile).find((n) => n.name === name);
    return { name, access: gh, ...(s?.power ? { power: s.power } : {}), ...(s?.generation ? { generation: s.generation } : {}) };
  };

  it('stops a node by changing only input.power, starts it with a new credential delivery, never replacing its VM', () => {
    writeStack(work, renderPool({ pool: p, platform: local, stateDir, nodes: [{ name: 'sb-a', access: gh, power: 'running' }, { name: 'sb-b', access: gh, power: 'running' }] }));
    tf(['init', '-no-color']);
    tf(['plan', '-no-color', '-out=plan.bin'], { 'sb-a': 'jit-one', 'sb-b': 'jit-b' });
    tf(['apply', '-no-color', 'plan.bin'], { 'sb-a': 'jit-one', 'sb-b': 'jit-b' });
    expect(readFileSync(credFile, 'utf8')).toBe('jit-one');
    const before = readStateNodes(stateFile).find((n) => n.name === 'sb-a');
    expect(before).toMatchObject({ power: 'running', generation: 1, credential: true });

    // Stop: exactly one in-place update of the VM, input.power, which the guard allows for a decided stop only.
    const recorded = before?.input as Record<string, string>;
    const stop = plan([{ ...node('sb-a'), power: 'stopped', powerChange: true, recorded }, node('sb-b')]);
    expect(stop.map((c) => [c.address, c.change.actions])).toEqual([['terraform_data.node_sb-a', ['update']]]);
    const kept = { pool: 'sb', nodeType: 'terraform_data', mayCreate: new Set<string>(), mayDestroy: new Set<string>(), kept: new Set(['sb-a', 'sb-b']) };
    expect(guardPlan(stop, { ...kept, power: new Map([['sb-a', 'stopped']]) })).toEqual([]);
    expect(guardPlan(stop, kept)).toEqual([expect.stringMatching(/node_sb-a: in-place update \(nodes are immutable\)/), expect.stringMatching(/1 nodes changed, more than the 0 decided/)]);
    tf(['apply', '-no-color', 'plan.bin']);
    expect(readStateNodes(stateFile).find((n) => n.name === 'sb-a')).toMatchObject({ power: 'stopped', generation: 1 });
    // Kept as it is afterwards: nothing to do.
    expect(plan([node('sb-a'), node('sb-b')])).toEqual([]);

    // Start with a fresh credential: the VM's power, and the credential delivery replaced (the old file removed, the new one written).
    const start = plan([{ ...node('sb-a'), power: 'running', powerChange: true, recorded: readStateNodes(stateFile).find((n) => n.name === 'sb-a')?.input as Record<string, string>, generation: 2 }, node('sb-b')], { 'sb-a': 'jit-two' });
    expect(start.map((c) => [c.address, c.change.actions]).sort()).toEqual([['terraform_data.credential_sb-a', ['delete', 'create']], ['terraform_data.node_sb-a', ['update']]]);
    expect(guardPlan(start, { ...kept, power: new Map([['sb-a', 'running']]), renew: new Set(['sb-a']) })).toEqual([]);
    expect(guardPlan(start, { ...kept, power: new Map([['sb-a', 'running']]) })).toEqual([expect.stringMatching(/credential_sb-a: replacement/)]);
    tf(['apply', '-no-color', 'plan.bin'], { 'sb-a': 'jit-two' });
    expect(readFileSync(credFile, 'utf8')).toBe('jit-two');
    expect(statSync(credFile).mode & 0o777).toBe(0o600);
    expect(readStateNodes(stateFile).find((n) => n.name === 'sb-a')).toMatchObject({ power: 'running', generation: 2 });
    expect(readFileSync(stateFile, 'utf8')).not.toContain('jit-two');
    expect(plan([node('sb-a'), node('sb-b')])).toEqual([]);
  });
});
