/**
 * cdktf's own floor, for the synth benchmark's baseline: `count` aws_instance resources in one
 * stack, synthesized to JSON, with no Parmanu code in between. Here so that stacks/ stays the only
 * folder that imports CDKTF (bench/ measures through it).
 */
import { App, TerraformStack } from 'cdktf';
import { tmpdir } from 'node:os';
import { Instance, type InstanceConfig } from '@cdktf/provider-aws/lib/instance/index.js';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';

export type { InstanceConfig };

/** Synthesizes `count` instances with `configs[i]`, or bare ones (tiny user-data) without. */
export function synthBareInstances(count: number, configs?: readonly InstanceConfig[]): void {
  const app = new App({ skipValidation: true, outdir: tmpdir() });
  const stack = new TerraformStack(app, 'floor');
  new AwsProvider(stack, 'aws', { region: 'us-east-1' });
  for (let i = 0; i < count; i++) new Instance(stack, `node_${i}`, configs?.[i] ?? { ami: 'ami-0123456789abcdef0', instanceType: 'c6i.xlarge', userData: `#cloud-config\n# node ${i}\n` });
  stack.toTerraform();
}
