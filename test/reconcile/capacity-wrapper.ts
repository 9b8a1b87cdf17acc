/**
 * A terraform that runs out of capacity, for the local platform (which cannot): a wrapper script
 * (PARMANU_TERRAFORM-style) that on the applies its control file names runs the real apply, takes
 * the chosen new node back out of the state (what a failed RunInstances leaves: the rest of the
 * apply done, that VM not) and prints an AWS-shaped capacity error naming the node's resource, as
 * terraform does; on a `plan` fault it takes a node's VM out of the state first (a spot VM
 * interrupted behind Parmanu's back); otherwise it is terraform.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const REAL = process.env.PARMANU_TERRAFORM ?? 'terraform';

/** One scripted failure: on the next `apply` (or `plan`), what to do. */
export interface Fault {
  on: 'apply' | 'plan';
  /** apply: the error printed for the new node taken back out of the state. */
  kind?: 'spot-capacity' | 'zone-capacity' | 'quota';
  /** apply: only a new node rendered on this market (`input.market`). */
  market?: 'spot' | 'on-demand';
  /** plan: the node whose VM vanished (taken out of the state before the plan refreshes). */
  node?: string;
  /** apply: take the node's credential out of the state too (AWS: its SSM parameter depends on the VM, so nothing of the node is created). */
  credential?: boolean;
}

/** The wrapper: a CommonJS script run by this node binary, its control file beside it. */
export function wrapper(dir: string, faults: Fault[]): { bin: string; left: () => Fault[] } {
  const control = join(dir, 'faults.json');
  writeFileSync(control, JSON.stringify(faults));
  const bin = join(dir, 'terraform-wrapper.cjs');
  writeFileSync(
    bin,
    `#!${process.execPath}
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const REAL = ${JSON.stringify(REAL)};
const CONTROL = ${JSON.stringify(control)};
const args = process.argv.slice(2);
const real = () => { const r = spawnSync(REAL, args, { stdio: 'inherit' }); return r.status === null ? 1 : r.status; };
const faults = JSON.parse(fs.readFileSync(CONTROL, 'utf8'));
const f = faults[0];
const ERRORS = {
  'spot-capacity': 'api error InsufficientInstanceCapacity: There is no Spot capacity available that matches your request.',
  'zone-capacity': 'api error InsufficientInstanceCapacity: We currently do not have sufficient c6i.xlarge capacity in the Availability Zone you requested (us-east-1a). Our system will be working on provisioning additional capacity.',
  quota: 'api error VcpuLimitExceeded: You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket that the specified instance type belongs to.',
};
if (!f || f.on !== args[0] || (args[0] === 'apply' && args[args.length - 1] !== 'parmanu.tfplan')) process.exit(real());
fs.writeFileSync(CONTROL, JSON.stringify(faults.slice(1)));
if (f.on === 'plan') {
  execFileSync(REAL, ['state', 'rm', 'terraform_data.node_' + f.node], { stdio: 'ignore' });
  process.exit(real());
}
const plan = JSON.parse(execFileSync(REAL, ['show', '-json', 'parmanu.tfplan'], { encoding: 'utf8' }));
const node = (plan.resource_changes || []).find((r) => r.type === 'terraform_data' && r.name.startsWith('node_') && r.change.actions.join() === 'create' && (!f.market || (r.change.after.input || {}).market === f.market));
if (!node) { console.error('wrapper: no new node to fail'); process.exit(3); }
const status = real();
if (status !== 0) process.exit(status);
execFileSync(REAL, ['state', 'rm', 'terraform_data.' + node.name], { stdio: 'ignore' });
if (f.credential) execFileSync(REAL, ['state', 'rm', 'terraform_data.' + node.name.replace(/^node_/, 'credential_')], { stdio: 'ignore' });
process.stderr.write([
  '',
  'Error: creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 500, RequestID: 5c9d1b0e-8f5a-4c1e-9b7e-2f3a4b5c6d7e, ' + ERRORS[f.kind],
  '',
  '  with terraform_data.' + node.name + ',',
  '  on cdk.tf.json line 1, in resource "terraform_data" "' + node.name + '":',
  '   1: {',
  '',
].join('\\n'));
process.exit(1);
`,
  );
  chmodSync(bin, 0o755);
  return { bin, left: () => JSON.parse(readFileSync(control, 'utf8')) as Fault[] };
}
