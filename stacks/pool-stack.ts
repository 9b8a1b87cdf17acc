/**
 * One TerraformStack per pool: a backend, the platform's provider, and per node name, at stable
 * addresses, the node's resources — its VM (`<type>.node_<name>`) and its credential
 * (`credential_<name>`: an SSM SecureString, a Secret Manager secret with its version and access
 * binding, or on the local platform a `terraform_data` whose local-exec provisioner writes a 0600
 * file) — never `count`/`for_each` over an index, so removing a node removes exactly that node.
 * VMs are immutable (`ignore_changes = all`): a policy change reaches new nodes (rollout replaces
 * the others) and never restarts a busy one. A node's power state (standby) is the one thing that
 * changes in place, and only for a node this apply starts or stops (`powerChange`): AWS an
 * `aws_ec2_instance_state` per node of a pool with standby (`power_<name>`), GCP the instance's `desired_status`, local
 * `input.power` on the node's `terraform_data`. A start with a fresh credential (GitHub's JIT
 * configs are single-use) writes a new secret version (`generation`), never a new VM.
 *
 * Credentials (DESIGN "Runner credentials"): the secret of a new node reaches terraform only as the
 * ephemeral, sensitive input variable `parmanu_credentials` (a map: node → secret, given through
 * `TF_VAR_parmanu_credentials`), and the stack hands it to a write-only argument (`value_wo`,
 * `secret_data_wo`) or a provisioner's environment: the JSON holds only `${var…}` references, and
 * neither the state nor a saved plan holds the value. One identity per pool (an instance profile /
 * a service account, unless the policy names one) reads only that pool's secrets; on AWS only the
 * node's own (`ec2:SourceInstanceARN`). The bootstrap reads the secret at boot and every start.
 */
import { GcsBackend, LocalBackend, S3Backend, TerraformStack, TerraformVariable, DataResource } from 'cdktf';
import type { Construct } from 'constructs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { IamInstanceProfile } from '@cdktf/provider-aws/lib/iam-instance-profile/index.js';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role/index.js';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy/index.js';
import { Ec2InstanceState } from '@cdktf/provider-aws/lib/ec2-instance-state/index.js';
import { Instance, type InstanceConfig } from '@cdktf/provider-aws/lib/instance/index.js';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';
import { SsmParameter } from '@cdktf/provider-aws/lib/ssm-parameter/index.js';
import { ComputeInstance, type ComputeInstanceConfig } from '@cdktf/provider-google/lib/compute-instance/index.js';
import { GoogleProvider } from '@cdktf/provider-google/lib/provider/index.js';
import { SecretManagerSecret } from '@cdktf/provider-google/lib/secret-manager-secret/index.js';
import { SecretManagerSecretIamMember } from '@cdktf/provider-google/lib/secret-manager-secret-iam-member/index.js';
import { SecretManagerSecretVersion } from '@cdktf/provider-google/lib/secret-manager-secret-version/index.js';
import { ServiceAccount } from '@cdktf/provider-google/lib/service-account/index.js';
import { CREDENTIAL_PREFIX, gcpStatus, NODE_PREFIX, POOL_RESOURCE_PREFIX, POWER_PREFIX, spotOf } from '../src/policy/resources.js';
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';
import { sha256, shq, userData } from './bootstrap.js';
import { poolWorkDir, renderModuleNodes } from './module-node.js';
import { placeOf } from './spread.js';
import { bootstrapOptions, CREDENTIALS_VARIABLE, localCredentialFile, type CredentialSource, type NodeInput, type PoolStackInput } from './types.js';

export const MANAGED_BY = 'parmanu';
const IMMUTABLE = { ignoreChanges: 'all' } as const;

/** The Terraform address of a node's VM in its pool's stack. */
export function nodeAddress(platform: PlatformConfig['type'], node: string): string {
  const type = platform === 'aws' ? 'aws_instance' : platform === 'gcp' ? 'google_compute_instance' : 'terraform_data';
  return `${type}.${nodeLogicalId(node)}`;
}
export const nodeLogicalId = (node: string) => `${NODE_PREFIX}${node}`;
/** The logical id of a node's credential resources (every one of them is named for its node). */
export const credentialLogicalId = (node: string) => `${CREDENTIAL_PREFIX}${node}`;
/** The logical id of a node's power state resource (AWS `aws_ec2_instance_state`). */
export const powerLogicalId = (node: string) => `${POWER_PREFIX}${node}`;
/** Pool-level resources (the pool's identity) are named `pool_…`. */
export { POOL_RESOURCE_PREFIX } from '../src/policy/resources.js';

/**
 * A literal string for Terraform JSON, where every string is a template: `${…}` and `%{…}` in a
 * script (shell parameter expansions, curl's `%{url_effective}`) or in policy content (hooks,
 * runner.config, tags) would otherwise be evaluated by terraform on the reconciler's host
 * (`${file(…)}`!). Terraform's escapes are `$${` and `%%{`.
 */
export function tfLiteral(s: string): string {
  return s.replace(/\$\{/g, '$$${').replace(/%\{/g, '%%{');
}

const snakeCase = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** SSM parameter name of a node's credential. */
export const ssmParameterName = (pool: string, node: string) => `/parmanu/${pool}/${node}`;
/** Secret Manager secret id of a node's credential. */
export const gcpSecretId = (node: string) => `parmanu-${node}`;
export { localCredentialFile } from './types.js';

/**
 * The IAM role and instance profile of a pool's stack (AWS): `parmanu-<pool>` for the pool's own
 * platform; a failover platform's stack (`<pool>@<platform>`, maybe in the same account) gets its
 * own, `parmanu-<pool>@<platform>` (IAM allows `@`), shortened with a hash past IAM's 64.
 */
export function identityName(pool: string, stack: string): string {
  const name = `parmanu-${stack}`;
  if (stack === pool || name.length <= 64) return name;
  return `${name.slice(0, 55)}-${createHash('sha256').update(stack).digest('hex').slice(0, 8)}`;
}

/** A GCP service account id (6–30 characters: [a-z][a-z0-9-]*[a-z0-9]) for the pool. */
export function gcpAccountId(pool: string): string {
  const id = `parmanu-${pool}`;
  if (id.length <= 30) return id;
  return `pm-${pool.slice(0, 18).replace(/-+$/, '')}-${createHash('sha256').update(pool).digest('hex').slice(0, 8)}`;
}

/** A node's AWS tags: the policy's `machine.tags`, then Parmanu's own (validation keeps them apart). */
function tags(pool: PoolConfig, node: NodeInput): Record<string, string> {
  return {
    ...pool.machine.tags,
    Name: node.name,
    'parmanu:pool': pool.name,
    'parmanu:node': node.name,
    'parmanu:managed-by': MANAGED_BY,
    ...(node.spec ? { 'parmanu:spec': node.spec } : {}),
    ...(node.createdAt !== undefined ? { 'parmanu:created': String(Math.floor(node.createdAt / 1000)) } : {}),
  };
}

/** GCP labels allow lowercase letters, digits, `-` and `_` only. The policy's `machine.tags` first, then Parmanu's own. */
function labels(pool: PoolConfig, node: NodeInput): Record<string, string> {
  return {
    ...pool.machine.tags,
    'parmanu-pool': pool.name,
    'parmanu-node': node.name,
    'parmanu-managed-by': MANAGED_BY,
    ...(node.spec ? { 'parmanu-spec': node.spec } : {}),
    ...(node.createdAt !== undefined ? { 'parmanu-created': String(Math.floor(node.createdAt / 1000)) } : {}),
  };
}

/** The AWS tags of the pool's own resources (its IAM role and instance profile). */
function poolTags(pool: PoolConfig): Record<string, string> {
  return { ...pool.machine.tags, 'parmanu:pool': pool.name, 'parmanu:managed-by': MANAGED_BY };
}

/** Where an AWS node reads its credential. */
export function awsSource(pool: PoolConfig, platform: { region: string }, node: string): CredentialSource {
  return { kind: 'aws-ssm', region: platform.region, parameter: ssmParameterName(pool.name, node) };
}

/** The aws_instance of one node: plain configuration, also used by the synth benchmark's floor. */
export function awsInstanceConfig(pool: PoolConfig, node: NodeInput, region = 'us-east-1', instanceProfile?: string): InstanceConfig {
  const m = pool.machine;
  const script = userData(pool, node.name, node.access, awsSource(pool, { region }, node.name), bootstrapOptions(node));
  const profile = m.instanceProfile ?? instanceProfile;
  const subnet = placeOf(node.name, m.subnets ?? [], node.placement);
  const spot = spotOf(m);
  return {
    ami: m.image,
    instanceType: m.type,
    ...(subnet ? { subnetId: subnet } : {}),
    ...(m.securityGroups?.length ? { vpcSecurityGroupIds: m.securityGroups } : {}),
    ...(profile ? { iamInstanceProfile: profile } : {}),
    associatePublicIpAddress: m.publicIp,
    rootBlockDevice: { volumeSize: m.diskGb, volumeType: 'gp3', encrypted: true, deleteOnTermination: true },
    volumeTags: tags(pool, node),
    ...(marketOf(pool, node) === 'spot' ? { instanceMarketOptions: { marketType: 'spot', spotOptions: { instanceInterruptionBehavior: 'terminate', spotInstanceType: 'one-time', ...(spot?.maxPrice !== undefined ? { maxPrice: String(spot.maxPrice) } : {}) } } } : {}),
    // IMDSv2 only, and one hop: a job in a container cannot reach the metadata service (the
    // bootstrap's firewall rules close it to the runner's job user and Docker too).
    metadataOptions: { httpTokens: 'required', httpEndpoint: 'enabled', httpPutResponseHopLimit: 1 },
    userData: tfLiteral(m.os === 'windows' ? `<powershell>\r\n${script}\r\n</powershell>\r\n<persist>false</persist>` : script),
    tags: tags(pool, node),
    lifecycle: IMMUTABLE,
  };
}

/** The market a node is rendered on: its own (a capacity fallback's), else the pool's. */
export function marketOf(pool: PoolConfig, node: NodeInput): 'spot' | 'on-demand' {
  return node.market ?? (spotOf(pool.machine) ? 'spot' : 'on-demand');
}

/** The local platform's stand-in for a subnet or zone: from `machine.subnets`, else `machine.zones`. */
const localPlace = (pool: PoolConfig, node: NodeInput) => placeOf(node.name, pool.machine.subnets ?? pool.machine.zones ?? [], node.placement);

export class PoolStack extends TerraformStack {
  constructor(scope: Construct, readonly input: PoolStackInput) {
    super(scope, input.stack ?? input.pool.name);
    const { pool, platform } = input;
    const stack = input.stack ?? pool.name;
    this.backend(stack, platform, input.stateDir);
    // New nodes' secrets: ephemeral and sensitive, never in the JSON, the state or a saved plan.
    // cdktf 0.21 has no `ephemeral` option: an override adds it.
    const credentials = new TerraformVariable(this, CREDENTIALS_VARIABLE, { type: 'map(string)', sensitive: true, default: {}, description: 'Runner credentials of the nodes created by this apply (node name → secret); supplied through TF_VAR_parmanu_credentials.' });
    credentials.overrideLogicalId(CREDENTIALS_VARIABLE);
    this.addOverride(`variable.${CREDENTIALS_VARIABLE}.ephemeral`, true);
    // lookup with a default: a kept node has no entry (its write-only value is never read again).
    // Written out: cdktf's Fn.lookup drops the default.
    const secretOf = (node: string) => `\${lookup(var.${CREDENTIALS_VARIABLE}, ${JSON.stringify(node)}, "")}`;
    if (platform.type === 'aws') {
      new AwsProvider(this, 'aws', {
        region: platform.region,
        ...(platform.credentials && 'profile' in platform.credentials ? { profile: platform.credentials.profile } : {}),
        ...(platform.credentials && 'roleArn' in platform.credentials ? { assumeRole: [{ roleArn: platform.credentials.roleArn }] } : {}),
      });
      this.addOverride('terraform.required_providers.aws.source', 'hashicorp/aws');
      const profile = pool.machine.instanceProfile ? undefined : this.awsIdentity(pool, stack);
      for (const node of input.nodes) this.awsNode(pool, platform, node, secretOf(node.name), profile);
    } else if (platform.type === 'gcp') {
      new GoogleProvider(this, 'google', { project: platform.project, region: platform.region, zone: platform.zone });
      this.addOverride('terraform.required_providers.google.source', 'hashicorp/google');
      const email = pool.machine.serviceAccount ?? this.gcpIdentity(pool, stack);
      for (const node of input.nodes) this.gcpNode(pool, platform, node, secretOf(node.name), email);
    } else if (platform.type === 'module') {
      // Each node one call of the user's module, beside Parmanu's record of it (stacks/module-node.ts).
      renderModuleNodes(this, pool, platform, input.nodes, input.workDir ?? poolWorkDir(input.stateDir, input.stack ?? pool.name));
    } else {
      for (const node of input.nodes) {
        const file = localCredentialFile(input.stateDir, pool.name, node.name);
        const source: CredentialSource = { kind: 'file', path: file };
        const power = node.power ?? 'running';
        // A node started or stopped by this apply gets the input its state records with only the
        // power changed, and nothing ignored: the plan shows exactly that one change.
        const changing = node.powerChange === true && node.recorded !== undefined;
        const r = new DataResource(this, nodeLogicalId(node.name), {
          // The recorded values come from Terraform state (external input): literal, like every string rendered here.
          input: changing
            ? { ...Object.fromEntries(Object.entries(node.recorded ?? {}).map(([k, v]) => [k, tfLiteral(v)])), power }
            : {
                pool: pool.name,
                node: node.name,
                // Which of the pool's platforms the node runs on (failover: one stack per platform).
                platform: platform.name,
                bootstrap_sha256: sha256(userData(pool, node.name, node.access, source, bootstrapOptions(node))),
                ...(node.spec ? { spec: node.spec } : {}),
                ...(node.createdAt !== undefined ? { created_at: String(Math.floor(node.createdAt / 1000)) } : {}),
                // What a cloud would place the node on (no cloud here: recorded, so its state shows a fallback).
                ...(spotOf(pool.machine) || node.market ? { market: marketOf(pool, node) } : {}),
                ...(localPlace(pool, node) !== undefined ? { placement: tfLiteral(localPlace(pool, node) ?? '') } : {}),
                power,
              },
          ...(changing ? {} : { lifecycle: IMMUTABLE }),
        });
        // A drill or test of failover: while the platform's fault file exists, every plan and
        // apply that has a node fails, as a cloud outage would (the path is checked by the schema).
        // (A condition must refer to some object: the path is a local.)
        if (platform.type === 'local' && platform.faultFile !== undefined) {
          this.addOverride('locals.parmanu_fault_file', platform.faultFile);
          r.addOverride('lifecycle.precondition', [{ condition: '${!fileexists(local.parmanu_fault_file)}', error_message: `platform ${platform.name} is down: its faultFile exists (a drill)` }]);
        }
        r.overrideLogicalId(nodeLogicalId(node.name));
        // A replay node whose runner has a token gets one too: the file is how the replay sees the node up.
        if (node.credential === false || (node.access.kind === 'none' && !node.access.file && node.credential !== true)) continue;
        // Terraform itself delivers the credential: the ephemeral value reaches only the
        // provisioner's environment, which writes it to a 0600 file (never TypeScript, never argv).
        // A fresh credential for a node started from standby is a new delivery: its generation
        // replaces this resource (the old file removed, the new one written), never the VM.
        const generation = node.generation ?? 1;
        const c = new DataResource(this, credentialLogicalId(node.name), { input: { node: node.name, file: tfLiteral(file) }, lifecycle: { ignoreChanges: ['input'] } });
        c.overrideLogicalId(credentialLogicalId(node.name));
        if (generation > 1) c.addOverride('triggers_replace', generation);
        // Like AWS and GCP, a start or stop waits for the node's credential: a start whose fresh
        // credential cannot be delivered is no start (the node stays stopped in the state).
        if (changing) r.addOverride('depends_on', [`terraform_data.${credentialLogicalId(node.name)}`]);
        c.addOverride('provisioner', [
          { 'local-exec': { command: tfLiteral(`umask 077 && mkdir -p ${shq(join(input.stateDir, 'pools', pool.name, 'credentials'))} && printf '%s' "$PARMANU_CREDENTIAL" > ${shq(file)}`), interpreter: ['/bin/sh', '-c'], environment: { PARMANU_CREDENTIAL: secretOf(node.name) } } },
          { 'local-exec': { when: 'destroy', command: tfLiteral(`rm -f ${shq(file)}`), interpreter: ['/bin/sh', '-c'] } },
        ]);
      }
    }
  }

  /** The pool's instance profile: a role EC2 assumes, allowed to read only this pool's parameters, each only from the instance it names. */
  private awsIdentity(pool: PoolConfig, stack: string): string {
    const name = identityName(pool.name, stack);
    const role = new IamRole(this, `${POOL_RESOURCE_PREFIX}role`, {
      name,
      assumeRolePolicy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { Service: 'ec2.amazonaws.com' }, Action: 'sts:AssumeRole' }] }),
      tags: poolTags(pool),
    });
    role.overrideLogicalId(`${POOL_RESOURCE_PREFIX}role`);
    const policy = new IamRolePolicy(this, `${POOL_RESOURCE_PREFIX}read_credentials`, {
      name: 'parmanu-read-own-credential',
      role: role.id,
      policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'OwnNodeCredentialOnly',
            Effect: 'Allow',
            Action: 'ssm:GetParameter',
            Resource: `arn:aws:ssm:*:*:parameter/parmanu/${pool.name}/*`,
            // The parameter is tagged with its node's instance ARN; a request made with the
            // instance's role credentials carries ec2:SourceInstanceARN.
            Condition: { StringEquals: { 'ssm:resourceTag/parmanu:instance': '$${ec2:SourceInstanceARN}' } },
          },
          { Sid: 'DecryptThroughSsm', Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*', Condition: { StringLike: { 'kms:ViaService': 'ssm.*.amazonaws.com' } } },
        ],
      }),
    });
    policy.overrideLogicalId(`${POOL_RESOURCE_PREFIX}read_credentials`);
    const profile = new IamInstanceProfile(this, `${POOL_RESOURCE_PREFIX}profile`, { name, role: role.name, tags: poolTags(pool) });
    profile.overrideLogicalId(`${POOL_RESOURCE_PREFIX}profile`);
    return profile.name;
  }

  /** The pool's service account: granted access to each of the pool's secrets, one binding per secret. */
  private gcpIdentity(pool: PoolConfig, stack: string): string {
    const sa = new ServiceAccount(this, `${POOL_RESOURCE_PREFIX}service_account`, { accountId: gcpAccountId(stack === pool.name ? pool.name : `${pool.name}-${createHash('sha256').update(stack).digest('hex').slice(0, 6)}`), displayName: `Parmanu pool ${pool.name}`, description: 'Reads only the runner credentials of its pool\'s nodes.' });
    sa.overrideLogicalId(`${POOL_RESOURCE_PREFIX}service_account`);
    return sa.email;
  }

  private backend(stack: string, platform: PlatformConfig, stateDir: string): void {
    const b = platform.backend ?? { type: 'local' as const };
    if (b.type === 's3') {
      new S3Backend(this, { bucket: b.bucket, key: `${b.key}/${stack}.tfstate`, region: b.region, encrypt: b.encrypt, ...(b.kmsKeyId ? { kmsKeyId: b.kmsKeyId } : {}) });
      this.addOverride('terraform.backend.s3.use_lockfile', true);
    } else if (b.type === 'gcs') {
      new GcsBackend(this, { bucket: b.bucket, prefix: `${b.prefix}/${stack}` });
    } else {
      new LocalBackend(this, { path: b.path ?? join(stateDir, 'pools', stack, 'terraform.tfstate') });
    }
  }

  private awsNode(pool: PoolConfig, platform: Extract<PlatformConfig, { type: 'aws' }>, node: NodeInput, secret: string, profile: string | undefined): void {
    const vm = new Instance(this, nodeLogicalId(node.name), awsInstanceConfig(pool, node, platform.region, profile));
    vm.overrideLogicalId(nodeLogicalId(node.name));
    // The power state: its own resource, the one thing of a node that changes in place. A start
    // waits for the node's credential: a fresh one is written before the VM boots and reads it.
    // Only in a pool with standby, or for a node that has one in its state (removing standby
    // neither destroys nor recreates anything), or that this apply starts or stops. Its `state` is
    // ignored unless this apply starts or stops the node: an instance stopped outside Parmanu (AWS
    // maintenance, by hand, a job's `poweroff`) is no plan change, which the guard would refuse
    // and hold the whole pool for.
    const power = (after: SsmParameter | undefined) => {
      if (node.power === undefined || (pool.scaling.standby === 0 && node.powerChange !== true && node.powerResource !== true)) return;
      const st = new Ec2InstanceState(this, powerLogicalId(node.name), {
        instanceId: vm.id,
        state: node.power,
        ...(after ? { dependsOn: [after] } : {}),
        ...(node.powerChange === true ? {} : { lifecycle: { ignoreChanges: ['state'] } }),
      });
      st.overrideLogicalId(powerLogicalId(node.name));
    };
    if (node.access.kind === 'none' || node.credential === false) return power(undefined);
    const p = new SsmParameter(this, credentialLogicalId(node.name), {
      name: ssmParameterName(pool.name, node.name),
      type: 'SecureString',
      // A GitHub JIT config is longer than a Standard parameter's 4 KB: Intelligent-Tiering picks
      // Advanced when a value needs it, Standard otherwise.
      tier: 'Intelligent-Tiering',
      // Write-only: sent to AWS, never kept in the state or a plan. Its version changes only when a
      // node started from standby gets a fresh credential (an in-place update of the parameter).
      valueWo: secret,
      valueWoVersion: node.generation ?? 1,
      tags: { ...tags(pool, node), 'parmanu:instance': vm.arn },
      lifecycle: { ignoreChanges: ['tags', 'tags_all'] },
    });
    p.overrideLogicalId(credentialLogicalId(node.name));
    power(p);
  }

  private gcpNode(pool: PoolConfig, platform: Extract<PlatformConfig, { type: 'gcp' }>, node: NodeInput, secret: string, email: string): void {
    const m = pool.machine;
    const script = userData(pool, node.name, node.access, { kind: 'gcp-secret', project: platform.project, secret: gcpSecretId(node.name) }, bootstrapOptions(node));
    const zone = placeOf(node.name, m.zones ?? [], node.placement) ?? platform.zone;
    const config: ComputeInstanceConfig = {
      name: node.name,
      machineType: m.type ?? '',
      zone,
      bootDisk: { autoDelete: true, initializeParams: { image: m.image ?? '', size: m.diskGb, type: 'pd-balanced', labels: labels(pool, node) } },
      networkInterface: [{ network: platform.network, ...(platform.subnetwork ? { subnetwork: platform.subnetwork } : {}), ...(m.publicIp ? { accessConfig: [{}] } : {}) }],
      scheduling: marketOf(pool, node) === 'spot' ? { provisioningModel: 'SPOT', preemptible: true, automaticRestart: false, instanceTerminationAction: 'DELETE' } : { provisioningModel: 'STANDARD', automaticRestart: true },
      serviceAccount: { email, scopes: ['cloud-platform'] },
      labels: labels(pool, node),
      metadata: m.os === 'windows' ? { 'windows-startup-script-ps1': tfLiteral(script) } : { 'user-data': tfLiteral(script) },
      ...(node.power !== undefined ? { desiredStatus: gcpStatus(node.power) } : {}),
    };
    // Started or stopped by this apply: every argument but desired_status is ignored.
    const lifecycle = node.powerChange ? { ignoreChanges: Object.keys(config).filter((k) => k !== 'desiredStatus').map(snakeCase) } : IMMUTABLE;
    const vm = new ComputeInstance(this, nodeLogicalId(node.name), { ...config, lifecycle });
    vm.overrideLogicalId(nodeLogicalId(node.name));
    if (node.access.kind === 'none' || node.credential === false) return;
    const s = new SecretManagerSecret(this, credentialLogicalId(node.name), {
      secretId: gcpSecretId(node.name),
      replication: { auto: {} },
      labels: labels(pool, node),
      lifecycle: { ignoreChanges: ['labels'] },
    });
    s.overrideLogicalId(credentialLogicalId(node.name));
    // Write-only: sent to Secret Manager, never kept in the state or a plan.
    // A fresh credential at a start from standby is a new version (the old one is destroyed).
    const v = new SecretManagerSecretVersion(this, `${credentialLogicalId(node.name)}_version`, { secret: s.id, secretDataWo: secret, secretDataWoVersion: node.generation ?? 1 });
    v.overrideLogicalId(`${credentialLogicalId(node.name)}_version`);
    // GCP cannot narrow a binding to one VM: the pool's service account reads each of its secrets.
    const b = new SecretManagerSecretIamMember(this, `${credentialLogicalId(node.name)}_access`, { secretId: s.secretId, project: platform.project, role: 'roles/secretmanager.secretAccessor', member: `serviceAccount:${email}` });
    b.overrideLogicalId(`${credentialLogicalId(node.name)}_access`);
    // The VM boots (or starts from standby) once its credential's version is written: a fresh
    // credential is in place before the node reads it.
    vm.addOverride('depends_on', [`google_secret_manager_secret_version.${credentialLogicalId(node.name)}_version`]);
  }
}
