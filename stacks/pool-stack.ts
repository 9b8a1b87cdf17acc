/**
 * One TerraformStack per pool: a backend, the platform's provider, and one VM resource per node
 * name at a stable address (`<type>.node_<name>`), never `count`/`for_each` over an index, so
 * removing a node removes exactly that node. VMs are immutable (`ignore_changes = all`): a policy
 * change reaches new nodes and never restarts a busy one.
 */
import { GcsBackend, LocalBackend, S3Backend, TerraformStack, DataResource } from 'cdktf';
import type { Construct } from 'constructs';
import { join } from 'node:path';
import { Instance, type InstanceConfig } from '@cdktf/provider-aws/lib/instance/index.js';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';
import { ComputeInstance } from '@cdktf/provider-google/lib/compute-instance/index.js';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider/index.js';
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';
import { sha256, userData } from './bootstrap.js';
import { pickStable } from './spread.js';
import type { NodeInput, PoolStackInput } from './types.js';

export const MANAGED_BY = 'parmanu';
const IMMUTABLE = { ignoreChanges: 'all' } as const;

/** The Terraform address of a node's VM in its pool's stack. */
export function nodeAddress(platform: PlatformConfig['type'], node: string): string {
  const type = platform === 'aws' ? 'aws_instance' : platform === 'gcp' ? 'google_compute_instance' : 'terraform_data';
  return `${type}.${nodeLogicalId(node)}`;
}
export const nodeLogicalId = (node: string) => `node_${node}`;

function tags(pool: PoolConfig, node: NodeInput): Record<string, string> {
  return {
    Name: node.name,
    'parmanu:pool': pool.name,
    'parmanu:node': node.name,
    'parmanu:managed-by': MANAGED_BY,
    ...(node.spec ? { 'parmanu:spec': node.spec } : {}),
    ...(node.createdAt !== undefined ? { 'parmanu:created': String(Math.floor(node.createdAt / 1000)) } : {}),
  };
}

/** GCP labels allow lowercase letters, digits, `-` and `_` only. */
function labels(pool: PoolConfig, node: NodeInput): Record<string, string> {
  return {
    'parmanu-pool': pool.name,
    'parmanu-node': node.name,
    'parmanu-managed-by': MANAGED_BY,
    ...(node.spec ? { 'parmanu-spec': node.spec } : {}),
    ...(node.createdAt !== undefined ? { 'parmanu-created': String(Math.floor(node.createdAt / 1000)) } : {}),
  };
}

/** The aws_instance of one node: plain configuration, also used by the synth benchmark's floor. */
export function awsInstanceConfig(pool: PoolConfig, node: NodeInput): InstanceConfig {
  const m = pool.machine;
  const script = userData(pool, node.name, node.credential);
  const subnet = pickStable(node.name, m.subnets ?? []);
  return {
    ami: m.image,
    instanceType: m.type,
    ...(subnet ? { subnetId: subnet } : {}),
    ...(m.securityGroups?.length ? { vpcSecurityGroupIds: m.securityGroups } : {}),
    ...(m.instanceProfile ? { iamInstanceProfile: m.instanceProfile } : {}),
    associatePublicIpAddress: m.publicIp,
    rootBlockDevice: { volumeSize: m.diskGb, volumeType: 'gp3', encrypted: true, deleteOnTermination: true },
    ...(m.spot ? { instanceMarketOptions: { marketType: 'spot', spotOptions: { instanceInterruptionBehavior: 'terminate', spotInstanceType: 'one-time' } } } : {}),
    metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled', httpPutResponseHopLimit: 2 },
    userData: m.os === 'windows' ? `<powershell>\r\n${script}\r\n</powershell>\r\n<persist>false</persist>` : script,
    tags: tags(pool, node),
    lifecycle: IMMUTABLE,
  };
}

export class PoolStack extends TerraformStack {
  constructor(scope: Construct, readonly input: PoolStackInput) {
    super(scope, input.pool.name);
    const { pool, platform } = input;
    this.backend(pool, platform, input.stateDir);
    if (platform.type === 'aws') {
      new AwsProvider(this, 'aws', {
        region: platform.region,
        ...(platform.credentials && 'profile' in platform.credentials ? { profile: platform.credentials.profile } : {}),
        ...(platform.credentials && 'roleArn' in platform.credentials ? { assumeRole: [{ roleArn: platform.credentials.roleArn }] } : {}),
      });
      this.addOverride('terraform.required_providers.aws.source', 'hashicorp/aws');
      for (const node of input.nodes) this.awsNode(pool, node);
    } else if (platform.type === 'gcp') {
      new GoogleProvider(this, 'google', { project: platform.project, region: platform.region, zone: platform.zone });
      this.addOverride('terraform.required_providers.google.source', 'hashicorp/google');
      for (const node of input.nodes) this.gcpNode(pool, platform, node);
    } else {
      for (const node of input.nodes) {
        const r = new DataResource(this, nodeLogicalId(node.name), {
          input: {
            pool: pool.name,
            node: node.name,
            bootstrap_sha256: sha256(userData(pool, node.name, node.credential)),
            ...(node.spec ? { spec: node.spec } : {}),
            ...(node.createdAt !== undefined ? { created_at: String(Math.floor(node.createdAt / 1000)) } : {}),
          },
          lifecycle: IMMUTABLE,
        });
        r.overrideLogicalId(nodeLogicalId(node.name));
      }
    }
  }

  private backend(pool: PoolConfig, platform: PlatformConfig, stateDir: string): void {
    const b = platform.backend ?? { type: 'local' as const };
    if (b.type === 's3') {
      new S3Backend(this, { bucket: b.bucket, key: `${b.key}/${pool.name}.tfstate`, region: b.region, encrypt: b.encrypt, ...(b.kmsKeyId ? { kmsKeyId: b.kmsKeyId } : {}) });
      this.addOverride('terraform.backend.s3.use_lockfile', true);
    } else if (b.type === 'gcs') {
      new GcsBackend(this, { bucket: b.bucket, prefix: `${b.prefix}/${pool.name}` });
    } else {
      new LocalBackend(this, { path: b.path ?? join(stateDir, 'pools', pool.name, 'terraform.tfstate') });
    }
  }

  private awsNode(pool: PoolConfig, node: NodeInput): void {
    new Instance(this, nodeLogicalId(node.name), awsInstanceConfig(pool, node)).overrideLogicalId(nodeLogicalId(node.name));
  }

  private gcpNode(pool: PoolConfig, platform: Extract<PlatformConfig, { type: 'gcp' }>, node: NodeInput): void {
    const m = pool.machine;
    const script = userData(pool, node.name, node.credential);
    const zone = pickStable(node.name, m.zones ?? []) ?? platform.zone;
    const vm = new ComputeInstance(this, nodeLogicalId(node.name), {
      name: node.name,
      machineType: m.type ?? '',
      zone,
      bootDisk: { autoDelete: true, initializeParams: { image: m.image ?? '', size: m.diskGb, type: 'pd-balanced' } },
      networkInterface: [{ network: platform.network, ...(platform.subnetwork ? { subnetwork: platform.subnetwork } : {}), ...(m.publicIp ? { accessConfig: [{}] } : {}) }],
      scheduling: m.spot ? { provisioningModel: 'SPOT', preemptible: true, automaticRestart: false, instanceTerminationAction: 'DELETE' } : { provisioningModel: 'STANDARD', automaticRestart: true },
      ...(m.serviceAccount ? { serviceAccount: { email: m.serviceAccount, scopes: ['cloud-platform'] } } : {}),
      labels: labels(pool, node),
      metadata: m.os === 'windows' ? { 'windows-startup-script-ps1': script } : { 'user-data': script },
      lifecycle: IMMUTABLE,
    });
    vm.overrideLogicalId(nodeLogicalId(node.name));
  }
}
