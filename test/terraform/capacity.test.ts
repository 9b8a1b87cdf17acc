/**
 * Which nodes a failed apply could not get for want of capacity (src/terraform/capacity.ts), as
 * tables of terraform's output shaped like the real thing: the AWS provider's `creating EC2
 * Instance: operation error EC2: RunInstances, … api error CODE: MESSAGE` and the Google
 * provider's `Error waiting for instance to create: …`, plain (-no-color, what Parmanu runs) and
 * boxed (colored output), one error or several. The same answers come from the one-line message a
 * TerraformError carries (terraformProblem's reduction of the same output).
 */
import { describe, expect, it } from 'vitest';
import { classifyApplyErrors, nodeOfAddress, type CapacityFailure } from '../../src/terraform/capacity.js';
import { terraformProblem } from '../../src/terraform/runner.js';

/** A -no-color diagnostic as terraform prints it. */
const plain = (summary: string, address: string | undefined, detail = '') =>
  [
    '',
    `Error: ${summary}`,
    '',
    ...(address ? [`  with ${address},`, `  on cdk.tf.json line 118, in resource "${address.split('.')[0]}" "${address.split('.')[1]}":`, ' 118:       },', ''] : []),
    ...(detail ? [detail, ''] : []),
  ].join('\n');
/** The same diagnostic boxed, as colored output draws it. */
const boxed = (summary: string, address: string | undefined) =>
  ['╷', `│ \u001b[1m\u001b[31mError: \u001b[0m\u001b[0m\u001b[1m${summary}\u001b[0m`, '│ ', ...(address ? [`│   with ${address},`, `│   on cdk.tf.json line 42, in resource "x" "y":`, '│   42:       },', '│ '] : []), '╵'].join('\n');

const progress = 'aws_instance.node_lab-cd34: Creating...\naws_instance.node_lab-ab12: Creating...\naws_instance.node_lab-cd34: Creation complete after 12s [id=i-0a1b2c3d4e5f67890]\n';
const ec2 = (status: number, code: string, message: string) => `creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: ${status}, RequestID: 5c9d1b0e-8f5a-4c1e-9b7e-2f3a4b5c6d7e, api error ${code}: ${message}`;

const SPOT_NONE = ec2(500, 'InsufficientInstanceCapacity', 'There is no Spot capacity available that matches your request.');
const ZONE_NONE = ec2(500, 'InsufficientInstanceCapacity', 'We currently do not have sufficient c6i.xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity. You can currently get c6i.xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b, us-east-1c.');
const PRICE = ec2(400, 'SpotMaxPriceTooLow', 'Your Spot request price of 0.02 is lower than the minimum required Spot request fulfillment price of 0.0375.');
const COUNT = ec2(400, 'MaxSpotInstanceCountExceeded', 'Max spot instance count exceeded');
const UNSUPPORTED = ec2(400, 'Unsupported', 'Your requested instance type (c7i.xlarge) is not supported in your requested Availability Zone (us-east-1e). Please retry your request by not specifying an Availability Zone or choosing us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f.');
const ADDRESSES = ec2(400, 'InsufficientFreeAddressesInSubnet', 'There are not enough free addresses in subnet \'subnet-0a1b2c3d\' to satisfy the requested number of instances.');
const INSUFFICIENT = ec2(500, 'InsufficientCapacity', 'There is not enough capacity to fulfill your request.');
const GCP_ZONE = "Error waiting for instance to create: The zone 'projects/acme-ci/zones/europe-west1-b' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.";
const GCP_DETAILS = "Error waiting for instance to create: [ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS] The zone 'projects/acme-ci/zones/europe-west1-c' does not have enough resources available to fulfill the request.  '(resource type:compute)'.";
const GCP_CODE = 'Error creating instance: googleapi: Error 503: ZONE_RESOURCE_POOL_EXHAUSTED, resourcePoolExhausted';
const AUTH = ec2(403, 'UnauthorizedOperation', 'You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/ci/parmanu is not authorized to perform: ec2:RunInstances.');
const VCPU = ec2(400, 'VcpuLimitExceeded', 'You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to.');
const GCP_QUOTA = "Error creating instance: googleapi: Error 403: Quota 'CPUS' exceeded.  Limit: 24.0 in region europe-west1., quotaExceeded";

const fail = (node: string, kind: CapacityFailure['kind'], code: string, address = `aws_instance.node_${node}`, vm = true): CapacityFailure => ({ node, address, vm, kind, code });

const cases: Array<[string, string, CapacityFailure[], string[]]> = [
  ['AWS spot: no spot capacity', progress + plain(SPOT_NONE, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'spot-capacity', 'InsufficientInstanceCapacity')], []],
  ['AWS on-demand: no capacity in the zone', plain(ZONE_NONE, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'InsufficientInstanceCapacity')], []],
  ['AWS spot price under the market', plain(PRICE, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'spot-price', 'SpotMaxPriceTooLow')], []],
  ['AWS spot instance count', plain(COUNT, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'spot-count', 'MaxSpotInstanceCountExceeded')], []],
  ['AWS instance type not offered in the subnet\'s zone', plain(UNSUPPORTED, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'Unsupported')], []],
  ['AWS subnet out of addresses', plain(ADDRESSES, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'InsufficientFreeAddressesInSubnet')], []],
  ['AWS InsufficientCapacity', plain(INSUFFICIENT, 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'InsufficientCapacity')], []],
  ['older AWS provider wording', plain('Error launching source instance: InsufficientInstanceCapacity: We currently do not have sufficient m5.large capacity in the Availability Zone you requested (eu-west-1a).', 'aws_instance.node_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'InsufficientInstanceCapacity')], []],
  ['GCP stockout', plain(GCP_ZONE, 'google_compute_instance.node_gha-x1'), [fail('gha-x1', 'zone-capacity', 'ZONE_RESOURCE_POOL_EXHAUSTED', 'google_compute_instance.node_gha-x1')], []],
  ['GCP stockout with details', plain(GCP_DETAILS, 'google_compute_instance.node_gha-x1'), [fail('gha-x1', 'zone-capacity', 'ZONE_RESOURCE_POOL_EXHAUSTED', 'google_compute_instance.node_gha-x1')], []],
  ['GCP stockout by code', plain(GCP_CODE, 'google_compute_instance.node_gha-x1'), [fail('gha-x1', 'zone-capacity', 'ZONE_RESOURCE_POOL_EXHAUSTED', 'google_compute_instance.node_gha-x1')], []],
  ['a module platform\'s node', plain(SPOT_NONE, 'module.node_lab-ab12.aws_instance.this'), [fail('lab-ab12', 'spot-capacity', 'InsufficientInstanceCapacity', 'module.node_lab-ab12.aws_instance.this')], []],
  [
    'several nodes, boxed (colored output)',
    progress + [boxed(SPOT_NONE, 'aws_instance.node_lab-ab12'), boxed(PRICE, 'aws_instance.node_lab-ef56'), boxed(ZONE_NONE, 'aws_instance.node_lab-gh78')].join('\n'),
    [fail('lab-ab12', 'spot-capacity', 'InsufficientInstanceCapacity'), fail('lab-ef56', 'spot-price', 'SpotMaxPriceTooLow'), fail('lab-gh78', 'zone-capacity', 'InsufficientInstanceCapacity')],
    [],
  ],
  ['a failed start (power state), not a new VM', plain(ZONE_NONE, 'aws_ec2_instance_state.power_lab-ab12'), [fail('lab-ab12', 'zone-capacity', 'InsufficientInstanceCapacity', 'aws_ec2_instance_state.power_lab-ab12', false)], []],
  // Not capacity.
  ['auth', plain(AUTH, 'aws_instance.node_lab-ab12'), [], [AUTH]],
  ['vCPU quota', plain(VCPU, 'aws_instance.node_lab-ab12'), [], [VCPU]],
  ['GCP quota', plain(GCP_QUOTA, 'google_compute_instance.node_gha-x1'), [], [GCP_QUOTA]],
  ['a held state lock', plain('Error acquiring the state lock', undefined, 'Error message: resource temporarily unavailable\nLock Info:\n  ID:        4f2c\n  Path:      terraform.tfstate'), [], ['Error acquiring the state lock']],
  ['capacity text with no resource named', plain(SPOT_NONE, undefined), [], [SPOT_NONE]],
  ['capacity and a quota together', plain(SPOT_NONE, 'aws_instance.node_lab-ab12') + plain(VCPU, 'aws_instance.node_lab-cd34'), [fail('lab-ab12', 'spot-capacity', 'InsufficientInstanceCapacity')], [VCPU]],
  ['a warning only (no error)', '\nWarning: Argument is deprecated\n\n  with aws_instance.node_lab-ab12,\n\nuse something else\n', [], []],
];

describe('classifyApplyErrors', () => {
  it.each(cases)('%s', (_, output, capacity, other) => {
    expect(classifyApplyErrors(output)).toEqual({ capacity, other });
  });

  it.each(cases.filter(([, output]) => /Error: /.test(output)))('%s: the same from a TerraformError\'s one-line message', (_, output, capacity, other) => {
    const message = `terraform apply failed${terraformProblem(output)}`;
    const r = classifyApplyErrors(message);
    expect(r.capacity).toEqual(capacity);
    expect(r.other.length).toBe(other.length);
  });

  it('a message cut short holds errors it does not show: not only capacity', () => {
    const many = Array.from({ length: 12 }, (_, i) => plain(SPOT_NONE, `aws_instance.node_lab-n${i}`)).join('');
    const message = `terraform apply failed${terraformProblem(many, 10)}`;
    expect(message).toMatch(/more lines?\)$/);
    const r = classifyApplyErrors(message);
    expect(r.capacity.length).toBeGreaterThan(0);
    expect(r.other).toEqual(['more errors than the message holds']);
    // The whole output names all twelve.
    expect(classifyApplyErrors(many).capacity.map((f) => f.node)).toEqual(Array.from({ length: 12 }, (_, i) => `lab-n${i}`));
  });

  it('a crash or plain text is not capacity', () => {
    expect(classifyApplyErrors('panic: runtime error: invalid memory address\ngoroutine 1 [running]:')).toEqual({ capacity: [], other: ['panic: runtime error: invalid memory address'] });
  });
});

describe('nodeOfAddress', () => {
  it.each([
    ['aws_instance.node_lab-ab12', { node: 'lab-ab12', vm: true }],
    ['google_compute_instance.node_gha-x1', { node: 'gha-x1', vm: true }],
    ['terraform_data.node_p-n000', { node: 'p-n000', vm: true }],
    ['module.node_lab-ab12', { node: 'lab-ab12', vm: true }],
    ['module.node_lab-ab12.azurerm_linux_virtual_machine.vm', { node: 'lab-ab12', vm: true }],
    ['aws_ec2_instance_state.power_lab-ab12', { node: 'lab-ab12', vm: false }],
    ['aws_ssm_parameter.credential_lab-ab12', { node: 'lab-ab12', vm: false }],
    ['google_secret_manager_secret_version.credential_gha-x1_version', { node: 'gha-x1', vm: false }],
    ['aws_iam_role.pool_role', undefined],
    ['c6i.xlarge', undefined],
  ])('%s', (address, want) => {
    expect(nodeOfAddress(address)).toEqual(want);
  });
});
