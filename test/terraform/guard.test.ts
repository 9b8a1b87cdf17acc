import { describe, expect, it } from 'vitest';
import { guardPlan, type Intent } from '../../src/terraform/guard.js';
import type { ResourceChange } from '../../src/terraform/plan.js';

const ch = (type: string, name: string, actions: ResourceChange['change']['actions']): ResourceChange => ({ address: `${type}.${name}`, mode: 'managed', type, name, change: { actions } });
const intent: Intent = { pool: 'p', nodeType: 'aws_instance', mayCreate: new Set(['p-new', 'p-kept']), mayDestroy: new Set(['p-old']) };
const ssm = (name: string, actions: ResourceChange['change']['actions']) => ch('aws_ssm_parameter', name, actions);

describe('guardPlan', () => {
  it.each<[string, ResourceChange[], RegExp[]]>([
    ['intended creates and destroys pass', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-x', ['no-op'])], []],
    ['any node decided new may be created', [ch('aws_instance', 'node_p-kept', ['create'])], []],
    ['a destroy that was not drained', [ch('aws_instance', 'node_p-busy', ['delete'])], [/node_p-busy: destroy of a node that was not drained/]],
    ['a create that was not decided', [ch('aws_instance', 'node_p-extra', ['create'])], [/node_p-extra: create was not decided/]],
    ['a replacement', [ch('aws_instance', 'node_p-new', ['delete', 'create'])], [/replacement/]],
    ['a node decided new whose failed create left it tainted is made again', [{ ...ch('aws_instance', 'node_p-new', ['delete', 'create']), action_reason: 'replace_because_tainted' }], []],
    ['a kept node tainted is still never replaced', [{ ...ch('aws_instance', 'node_p-x', ['delete', 'create']), action_reason: 'replace_because_tainted' }], [/node_p-x: replacement/]],
    ['an in-place update', [ch('aws_instance', 'node_p-new', ['update'])], [/in-place update/]],
    ['a resource of another pool', [ch('aws_instance', 'node_q-1', ['delete'])], [/not a node of pool p/]],
    ['a resource that is not a node', [ch('aws_security_group', 'sg', ['delete'])], [/not a node of pool p/]],
    ['more nodes changed than decided', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-kept', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-old2', ['delete'])], [/node_p-old2/, /4 nodes changed, more than the 3 decided/]],
    ['a node is all its resources: its credential is created and destroyed with it', [ch('aws_instance', 'node_p-new', ['create']), ssm('credential_p-new', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ssm('credential_p-old', ['delete'])], []],
    ['GCP credential companions belong to their node', [ch('google_secret_manager_secret_version', 'credential_p-new_version', ['create']), ch('google_secret_manager_secret_iam_member', 'credential_p-new_access', ['create'])], []],
    ['a credential of a node not decided', [ssm('credential_p-busy', ['delete'])], [/credential_p-busy: destroy of a node that was not drained/]],
    ['a credential replaced in place', [ssm('credential_p-new', ['delete', 'create'])], [/replacement/]],
    ['the pool identity may be created or updated', [ch('aws_iam_role', 'pool_role', ['create']), ch('aws_iam_role_policy', 'pool_read_credentials', ['update'])], []],
    ['the pool identity is not destroyed while the pool keeps nodes', [ch('aws_iam_instance_profile', 'pool_profile', ['delete'])], [/pool_profile: delete of the pool's identity while the pool keeps nodes/]],
    ['a VM resource of another type named like a node', [ch('aws_security_group', 'node_p-new', ['create'])], [/not a node of pool p/]],
  ])('%s', (_n, changes, want) => {
    const v = guardPlan(changes, intent);
    expect(v).toHaveLength(want.length);
    want.forEach((re, i) => expect(v[i]).toMatch(re));
  });
});

describe('guardPlan: an emptied pool', () => {
  it('lets the pool identity go with its last node', () => {
    expect(guardPlan([ch('aws_iam_instance_profile', 'pool_profile', ['delete']), ch('aws_instance', 'node_p-old', ['delete'])], { ...intent, poolEmptied: true })).toEqual([]);
  });
});

describe('guardPlan: resources a vanished VM left behind', () => {
  const withKept: Intent = { ...intent, kept: new Set(['p-kept', 'p-busy']) };
  it('may destroy the credential of a node whose VM is gone', () => {
    expect(guardPlan([ch('aws_ssm_parameter', 'credential_p-gone', ['delete'])], withKept)).toEqual([]);
  });
  it('never the credential of a kept node, nor a VM that was not decided', () => {
    expect(guardPlan([ch('aws_ssm_parameter', 'credential_p-busy', ['delete'])], withKept)).toEqual([expect.stringMatching(/credential_p-busy: destroy of a node that was not drained/)]);
    expect(guardPlan([ch('aws_instance', 'node_p-gone', ['delete'])], withKept)[0]).toMatch(/node_p-gone: destroy of a node that was not drained/);
  });
});

describe('guardPlan: standby (a start or stop changes only the node\'s power state)', () => {
  const upd = (type: string, name: string, before: unknown, after: unknown, actions: ResourceChange['change']['actions'] = ['update'], unknown?: unknown): ResourceChange => ({ address: `${type}.${name}`, mode: 'managed', type, name, change: { actions, before, after, ...(unknown !== undefined ? { after_unknown: unknown } : {}) } });
  const local: Intent = { pool: 'p', nodeType: 'terraform_data', mayCreate: new Set(), mayDestroy: new Set(), kept: new Set(['p-a', 'p-b']), power: new Map([['p-a', 'stopped']]) };
  const input = (power: string, extra: Record<string, string> = {}) => ({ id: 'x', input: { pool: 'p', node: 'p-a', spec: 's', power, ...extra }, triggers_replace: null });
  it.each<[string, ResourceChange[], Intent, RegExp[]]>([
    ['local: input.power of a node decided to stop', [upd('terraform_data', 'node_p-a', input('running'), input('stopped'))], local, []],
    ['local: a node never stopped before gets input.power', [upd('terraform_data', 'node_p-a', { input: { pool: 'p', node: 'p-a' }, triggers_replace: null }, { input: { pool: 'p', node: 'p-a', power: 'stopped' }, triggers_replace: null })], local, []],
    ['local: the power of a node not decided', [upd('terraform_data', 'node_p-b', input('running'), input('stopped'))], local, [/node_p-b: in-place update \(nodes are immutable\)/]],
    ['local: the wrong power state', [upd('terraform_data', 'node_p-a', input('stopped'), input('running'))], local, [/to power "running", not stopped/]],
    ['local: more of the input than its power', [upd('terraform_data', 'node_p-a', input('running'), input('stopped', { spec: 'other' }))], local, [/of input\.spec/]],
    ['local: a key added beside the power', [upd('terraform_data', 'node_p-a', input('running'), input('stopped', { extra: 'x' }))], local, [/of input\.extra/]],
    ['local: triggers_replace of the VM', [upd('terraform_data', 'node_p-a', input('running'), { ...input('stopped'), triggers_replace: 2 })], local, [/of triggers_replace/]],
    ['local: a stopped VM is never replaced', [upd('terraform_data', 'node_p-a', input('running'), input('stopped'), ['delete', 'create'])], local, [/replacement/]],
    ['no planned values', [upd('terraform_data', 'node_p-a', input('running'), undefined)], local, [/with no planned values/]],
  ])('%s', (_n, changes, i, want) => {
    const v = guardPlan(changes, i);
    expect(v).toHaveLength(want.length);
    want.forEach((re, k) => expect(v[k]).toMatch(re));
  });

  const gcp: Intent = { pool: 'p', nodeType: 'google_compute_instance', mayCreate: new Set(), mayDestroy: new Set(), power: new Map([['p-a', 'running']]), renew: new Set(['p-a']) };
  const vm = (status: string | null, extra: Record<string, unknown> = {}) => ({ name: 'p-a', machine_type: 'e2-standard-4', desired_status: status, labels: { a: 'b' }, ...extra });
  it.each<[string, ResourceChange[], Intent, RegExp[]]>([
    ['GCP: desired_status RUNNING, and a new secret version', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED'), vm('RUNNING')), upd('google_secret_manager_secret_version', 'credential_p-a_version', { secret_data_wo_version: 1 }, { secret_data_wo_version: 2 }, ['delete', 'create'])], gcp, []],
    ['GCP: desired_status and the machine type', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED'), vm('RUNNING', { machine_type: 'e2-standard-8' }))], gcp, [/of machine_type/]],
    ['GCP: TERMINATED for a start', [upd('google_compute_instance', 'node_p-a', vm('RUNNING'), vm('TERMINATED'))], gcp, [/to desired_status "TERMINATED", not RUNNING/]],
    ['GCP: a credential renewed without a start with a fresh credential', [upd('google_secret_manager_secret_version', 'credential_p-a_version', {}, {}, ['delete', 'create'])], { ...gcp, renew: new Set() }, [/replacement/]],
    // Values computed at apply are unknown in the plan: omitted from `after`, flagged in `after_unknown`.
    ['GCP: current_status unknown until the start is applied', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED', { current_status: 'TERMINATED' }), vm('RUNNING'), ['update'], { current_status: true })], gcp, []],
    ['GCP: a nested computed value unknown', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED', { network_interface: [{ name: 'nic0', network_ip: '10.0.0.2' }] }), vm('RUNNING', { network_interface: [{ name: 'nic0' }] }), ['update'], { network_interface: [{ network_ip: true }] })], gcp, []],
    ['GCP: a known nested change beside an unknown value', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED', { network_interface: [{ name: 'nic0', network_ip: '10.0.0.2' }] }), vm('RUNNING', { network_interface: [{ name: 'nic1' }] }), ['update'], { network_interface: [{ network_ip: true }] })], gcp, [/of network_interface/]],
    ['GCP: a value omitted from after that is not unknown', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED', { network_interface: [{ name: 'nic0', network_ip: '10.0.0.2' }] }), vm('RUNNING', { network_interface: [{ name: 'nic0' }] }), ['update'], {})], gcp, [/of network_interface/]],
    ['GCP: a VM replaced although its credential may be renewed', [upd('google_compute_instance', 'node_p-a', vm('TERMINATED'), vm('RUNNING'), ['delete', 'create'])], gcp, [/replacement/]],
  ])('%s', (_n, changes, i, want) => {
    const v = guardPlan(changes, i);
    expect(v).toHaveLength(want.length);
    want.forEach((re, k) => expect(v[k]).toMatch(re));
  });

  const aws: Intent = { pool: 'p', nodeType: 'aws_instance', mayCreate: new Set(['p-new']), mayDestroy: new Set(), power: new Map([['p-a', 'stopped'], ['p-b', 'running']]), renew: new Set(['p-b']) };
  const st = (state: string) => ({ instance_id: 'i-1', state, force: false });
  it.each<[string, ResourceChange[], Intent, RegExp[]]>([
    ['AWS: the power resource of a new node is created with it', [ch('aws_instance', 'node_p-new', ['create']), upd('aws_ec2_instance_state', 'power_p-new', null, st('running'), ['create'])], aws, []],
    ['AWS: stop and start through the power resource, the started one with a new parameter version', [upd('aws_ec2_instance_state', 'power_p-a', st('running'), st('stopped')), upd('aws_ec2_instance_state', 'power_p-b', st('stopped'), st('running')), upd('aws_ssm_parameter', 'credential_p-b', { value_wo_version: 1 }, { value_wo_version: 2 })], aws, []],
    ['AWS: a node made before power resources gets one when it stops', [upd('aws_ec2_instance_state', 'power_p-a', null, st('stopped'), ['create'])], aws, []],
    ['AWS: the power resource to the wrong state', [upd('aws_ec2_instance_state', 'power_p-a', st('running'), st('running'))], aws, [/to state "running", not stopped/]],
    ['AWS: a power resource that moves to another instance', [upd('aws_ec2_instance_state', 'power_p-a', st('running'), { ...st('stopped'), instance_id: 'i-9' })], aws, [/of more than its state/]],
    ['AWS: the instance itself never changes', [upd('aws_instance', 'node_p-a', {}, {})], aws, [/power state is a resource of its own/]],
    ['AWS: the parameter of a node stopped (no fresh credential)', [upd('aws_ssm_parameter', 'credential_p-a', { value_wo_version: 1 }, { value_wo_version: 2 })], aws, [/credential_p-a: in-place update \(nodes are immutable\)/]],
    ['AWS: the power of a node not decided', [upd('aws_ec2_instance_state', 'power_p-c', st('running'), st('stopped'))], aws, [/power_p-c: in-place update \(nodes are immutable\)/]],
    // Why a power resource ignores its state unless the apply starts or stops its node: an
    // instance stopped outside Parmanu would otherwise be planned back to running, and refused.
    ['AWS: a kept node\'s power drift back to running', [upd('aws_ec2_instance_state', 'power_p-c', st('stopped'), st('running'))], aws, [/power_p-c: in-place update \(nodes are immutable\)/]],
    ['a power resource of another type', [upd('aws_instance', 'power_p-a', st('running'), st('stopped'))], aws, [/not a node of pool p/]],
  ])('%s', (_n, changes, i, want) => {
    const v = guardPlan(changes, i);
    expect(v).toHaveLength(want.length);
    want.forEach((re, k) => expect(v[k]).toMatch(re));
  });

  it('a stopped node is destroyed with its power resource like any drained node', () => {
    expect(guardPlan([ch('aws_instance', 'node_p-old', ['delete']), ch('aws_ec2_instance_state', 'power_p-old', ['delete']), ssm('credential_p-old', ['delete'])], intent)).toEqual([]);
  });
});
