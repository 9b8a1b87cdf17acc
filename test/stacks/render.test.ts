import { parse as parseYaml } from 'yaml';
import { Testing } from 'cdktf';
import { statSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { linuxFiles, linuxUserData, windowsScript } from '../../stacks/bootstrap.js';
import { nodeAddress, PoolStack } from '../../stacks/pool-stack.js';
import { renderPool, writeStack, type TerraformJson } from '../../stacks/render.js';
import { pickStable } from '../../stacks/spread.js';
import { accessOf, secretOf, type CredentialSource, type RunnerAccess, type RunnerCredential } from '../../stacks/types.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

const gitlab: RunnerCredential = { kind: 'gitlab', url: 'https://gitlab.example.com', token: 'glrt-TESTTOKEN0000000000' };
const gitlabAccess: RunnerAccess = { kind: 'gitlab', url: 'https://gitlab.example.com' };
const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'eu-central-1', credentials: { roleArn: 'arn:aws:iam::123456789012:role/ci' }, backend: { type: 's3', bucket: 'state', key: 'parmanu', region: 'eu-central-1', encrypt: true } };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'ci', subnetwork: 'runners', backend: { type: 'gcs', bucket: 'state', prefix: 'parmanu' } };
const local: PlatformConfig = { name: 'lab', type: 'local' };

type Res = Record<string, Record<string, Record<string, unknown>>>;
const resources = (json: TerraformJson) => json.resource as Res;

describe('AWS stack', () => {
  const pool = testPool({ labels: ['linux', 'docker'], machine: { type: 'c6i.xlarge', image: 'ami-0abc', diskGb: 80, spot: true, subnets: ['subnet-a', 'subnet-b', 'subnet-c'], securityGroups: ['sg-1'], instanceProfile: 'runner' }, runner: { jobsPerNode: 2, executor: 'docker' } }, 'linux-docker');
  const json = renderPool({ pool, platform: aws, stateDir: '/state', nodes: ['linux-docker-aaa111', 'linux-docker-bbb222'].map((name) => ({ name, access: gitlabAccess })) });

  it('declares one aws_instance per node name at a stable address', () => {
    expect(Object.keys(resources(json).aws_instance ?? {})).toEqual(['node_linux-docker-aaa111', 'node_linux-docker-bbb222']);
    expect(nodeAddress('aws', 'linux-docker-aaa111')).toBe('aws_instance.node_linux-docker-aaa111');
  });

  it('sets the instance fields', () => {
    const vm = resources(json).aws_instance?.['node_linux-docker-aaa111'] as Record<string, unknown>;
    expect(vm).toMatchObject({
      ami: 'ami-0abc',
      instance_type: 'c6i.xlarge',
      subnet_id: pickStable('linux-docker-aaa111', ['subnet-a', 'subnet-b', 'subnet-c']),
      vpc_security_group_ids: ['sg-1'],
      iam_instance_profile: 'runner',
      associate_public_ip_address: true,
      root_block_device: { volume_size: 80, volume_type: 'gp3', encrypted: true, delete_on_termination: true },
      instance_market_options: { market_type: 'spot', spot_options: { instance_interruption_behavior: 'terminate', spot_instance_type: 'one-time' } },
      metadata_options: { http_tokens: 'required', http_endpoint: 'enabled', http_put_response_hop_limit: 1 },
      tags: { Name: 'linux-docker-aaa111', 'parmanu:pool': 'linux-docker', 'parmanu:node': 'linux-docker-aaa111', 'parmanu:managed-by': 'parmanu' },
      lifecycle: { ignore_changes: 'all' },
    });
    expect(vm.count).toBeUndefined();
    expect(vm.for_each).toBeUndefined();
    expect(String(vm.user_data)).toMatch(/^#cloud-config\n/);
  });

  it('uses a fully qualified provider source, the role, and an S3 backend with use_lockfile', () => {
    const tf = json.terraform as Record<string, Record<string, Record<string, unknown>>>;
    expect(tf.required_providers?.aws).toMatchObject({ source: 'hashicorp/aws' });
    expect(tf.backend?.s3).toEqual({ bucket: 'state', key: 'parmanu/linux-docker.tfstate', region: 'eu-central-1', encrypt: true, use_lockfile: true });
    expect((json.provider as Record<string, unknown[]>).aws?.[0]).toEqual({ region: 'eu-central-1', assume_role: [{ role_arn: 'arn:aws:iam::123456789012:role/ci' }] });
  });

  it('spreads nodes over subnets by name, so removing one node moves no other', () => {
    const names = Array.from({ length: 30 }, (_, i) => `linux-docker-n${i}`);
    const all = renderPool({ pool, platform: aws, stateDir: '/s', nodes: names.map((name) => ({ name, access: gitlabAccess })) });
    const fewer = renderPool({ pool, platform: aws, stateDir: '/s', nodes: names.filter((_, i) => i !== 3).map((name) => ({ name, access: gitlabAccess })) });
    const subnets = new Set<unknown>();
    for (const n of names.filter((_, i) => i !== 3)) {
      const a = resources(all).aws_instance?.[`node_${n}`];
      expect(resources(fewer).aws_instance?.[`node_${n}`]).toEqual(a);
      subnets.add(a?.subnet_id);
    }
    expect(subnets.size).toBe(3);
  });

  it('wraps Windows user-data for EC2Launch', () => {
    const win = testPool({ machine: { type: 'm6i.large', image: 'ami-win', os: 'windows' } }, 'win');
    const j = renderPool({ pool: win, platform: aws, stateDir: '/s', nodes: [{ name: 'win-1', access: gitlabAccess }] });
    expect(String(resources(j).aws_instance?.['node_win-1']?.user_data)).toMatch(/^<powershell>\r\n[\s\S]*gitlab-runner\.exe register[\s\S]*<\/powershell>\r\n<persist>false<\/persist>$/);
  });

  it('works with cdktf\'s own Testing helpers', () => {
    const app = Testing.app();
    const stack = new PoolStack(app, { pool, platform: { ...aws, backend: undefined }, stateDir: '/s', nodes: [{ name: 'linux-docker-x', access: gitlabAccess }] });
    const synthesized = Testing.synth(stack);
    expect(Testing.toHaveResourceWithProperties(synthesized, 'aws_instance', { instance_type: 'c6i.xlarge' })).toBe(true);
  });
});

describe('GCP stack', () => {
  const pool = testPool({ labels: ['self-hosted', 'linux'], machine: { type: 'e2-standard-4', image: 'projects/debian-cloud/global/images/family/debian-12', diskGb: 60, spot: true, zones: ['europe-west1-b', 'europe-west1-c'], serviceAccount: 'runner@acme-ci.iam.gserviceaccount.com', publicIp: false } }, 'gha');
  const json = renderPool({ pool, platform: gcp, stateDir: '/s', nodes: [{ name: 'gha-abc', access: { kind: 'github', mode: 'jit' } }] });

  it('sets the instance fields', () => {
    expect(resources(json).google_compute_instance?.['node_gha-abc']).toMatchObject({
      name: 'gha-abc',
      machine_type: 'e2-standard-4',
      zone: pickStable('gha-abc', ['europe-west1-b', 'europe-west1-c']),
      boot_disk: { auto_delete: true, initialize_params: { image: 'projects/debian-cloud/global/images/family/debian-12', size: 60, type: 'pd-balanced' } },
      network_interface: [{ network: 'ci', subnetwork: 'runners' }],
      scheduling: { provisioning_model: 'SPOT', preemptible: true, automatic_restart: false, instance_termination_action: 'DELETE' },
      service_account: { email: 'runner@acme-ci.iam.gserviceaccount.com', scopes: ['cloud-platform'] },
      labels: { 'parmanu-pool': 'gha', 'parmanu-node': 'gha-abc', 'parmanu-managed-by': 'parmanu' },
      lifecycle: { ignore_changes: 'all' },
    });
    const md = resources(json).google_compute_instance?.['node_gha-abc']?.metadata as Record<string, string>;
    expect(md['user-data']).toMatch(/^#cloud-config\n/);
  });

  it('uses hashicorp/google, the project, and a GCS backend per pool; no credentials in the stack', () => {
    const tf = json.terraform as Record<string, Record<string, Record<string, unknown>>>;
    expect(tf.required_providers?.google).toMatchObject({ source: 'hashicorp/google' });
    expect(tf.backend?.gcs).toEqual({ bucket: 'state', prefix: 'parmanu/gha' });
    expect((json.provider as Record<string, unknown[]>).google?.[0]).toEqual({ project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b' });
    expect(JSON.stringify(json)).not.toMatch(/credentials_file|GOOGLE_APPLICATION_CREDENTIALS/);
  });

  it('gives on-demand nodes a public IP by default and standard scheduling', () => {
    const p = testPool({ machine: { type: 'e2-small', image: 'img' } }, 'od');
    const vm = resources(renderPool({ pool: p, platform: gcp, stateDir: '/s', nodes: [{ name: 'od-1', access: { kind: 'none' } }] })).google_compute_instance?.['node_od-1'];
    expect(vm).toMatchObject({ zone: 'europe-west1-b', network_interface: [{ access_config: [{}] }], scheduling: { provisioning_model: 'STANDARD', automatic_restart: true } });
  });

  it('puts Windows scripts under windows-startup-script-ps1', () => {
    const win = testPool({ machine: { type: 'n2-standard-8', image: 'windows-2022', os: 'windows' } }, 'win');
    const vm = resources(renderPool({ pool: win, platform: gcp, stateDir: '/s', nodes: [{ name: 'win-1', access: { kind: 'jenkins', url: 'https://ci.example.com' } }] })).google_compute_instance?.['node_win-1'];
    expect(Object.keys(vm?.metadata as object)).toEqual(['windows-startup-script-ps1']);
  });
});

describe('local stack', () => {
  it('declares one terraform_data per node with a local backend under the state dir and no provider', () => {
    const pool = testPool({}, 'demo');
    const json = renderPool({ pool, platform: local, stateDir: '/var/parmanu', nodes: [{ name: 'demo-1', access: { kind: 'none' } }] });
    expect(resources(json).terraform_data?.['node_demo-1']?.input).toMatchObject({ pool: 'demo', node: 'demo-1', bootstrap_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect((json.terraform as Record<string, unknown>).backend).toEqual({ local: { path: '/var/parmanu/pools/demo/terraform.tfstate' } });
    expect(json.provider).toBeUndefined();
  });

  it('writes the stack with mode 0600 in a 0700 directory', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'parmanu-w-')), 'pool');
    const file = writeStack(dir, { resource: {} });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });
});

describe('bootstrap user-data', () => {
  const pool = testPool({ labels: ['linux', 'big'], runner: { jobsPerNode: 3, version: '17.5.0' } }, 'p');
  const ssm: CredentialSource = { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/p/p-node1' };
  const secretManager: CredentialSource = { kind: 'gcp-secret', project: 'acme-ci', secret: 'parmanu-p-p-node1' };
  const creds: RunnerCredential[] = [
    gitlab,
    { kind: 'github', jitConfig: 'eyJqaXQiOiJjb25maWcifQ==' },
    { kind: 'github', url: 'https://github.com/acme', registrationToken: 'AREGTOKEN' },
    { kind: 'jenkins', url: 'https://jenkins.example.com/', secret: "s3cr'et" },
    { kind: 'none' },
  ];
  const label = (c: RunnerCredential) => c.kind + ('jitConfig' in c ? ' (jit)' : 'registrationToken' in c ? ' (registration)' : '');

  it.each(creds.map((c) => [label(c), c] as const))('%s: cloud-init parses as YAML and holds no credential', (_n, cred) => {
    for (const source of [ssm, secretManager, { kind: 'file', path: '/var/lib/parmanu/p-node1' } as CredentialSource]) {
      const text = linuxUserData(pool, 'p-node1', accessOf(cred), cred.kind === 'none' ? { kind: 'none' } : source);
      expect(text.startsWith('#cloud-config\n')).toBe(true);
      const doc = parseYaml(text) as { write_files: Array<{ path: string; permissions: string; content: string }>; runcmd: unknown[] };
      expect(doc.runcmd).toEqual([['/usr/local/sbin/parmanu-bootstrap']]);
      const script = doc.write_files.find((f) => f.path === '/usr/local/sbin/parmanu-bootstrap');
      expect(script?.permissions).toBe('0700');
      expect(script?.content).toMatch(/^#!\/bin\/bash\n# .*\nset -euo pipefail\n/);
      expect(text).not.toMatch(/set -x/);
      const secret = secretOf(cred);
      if (secret) expect(text).not.toContain(secret);
      for (const f of doc.write_files) if (f.path.startsWith('/usr/local/sbin/')) expect(f.permissions).toBe('0700');
    }
  });

  it('Windows scripts hold no credential either', () => {
    for (const cred of creds) {
      const s = windowsScript(pool, 'p-1', accessOf(cred), cred.kind === 'none' ? { kind: 'none' } : ssm);
      const secret = secretOf(cred);
      if (secret) expect(s).not.toContain(secret);
    }
  });

  it('reads the credential from the node\'s source', () => {
    expect(linuxUserData(pool, 'p-1', accessOf(gitlab), ssm)).toContain(String.raw`aws ssm get-parameter --region \"$REGION\" --name \"$PARAMETER\" --with-decryption`);
    expect(linuxUserData(pool, 'p-1', accessOf(gitlab), secretManager)).toContain('secretmanager.googleapis.com/v1/projects/$PROJECT/secrets/$SECRET/versions/latest:access');
    expect(windowsScript(pool, 'p-1', accessOf(gitlab), ssm)).toContain("Get-SSMParameterValue -Region 'eu-central-1' -Name '/parmanu/p/p-node1' -WithDecryption $true");
    expect(() => linuxUserData(pool, 'p-1', accessOf(gitlab), { kind: 'none' })).toThrow(/needs a credential source/);
  });

  it('registers a GitLab runner with name, concurrency and version, the token in its environment', () => {
    const s = linuxFiles(pool, 'p-node1', accessOf(gitlab), ssm);
    const start = s.find((f) => f.path === '/usr/local/sbin/parmanu-start')?.content;
    expect(s.find((f) => f.path === '/usr/local/sbin/parmanu-bootstrap')?.content).toContain(`VERSION='v17.5.0'\nmkdir -p "$R/usr/local/bin"\ncurl -fsSL --retry 5 -o "$R/usr/local/bin/gitlab-runner.new" "https://gitlab-runner-downloads.s3.amazonaws.com/$VERSION/binaries/gitlab-runner-$ASSET"`);
    expect(start).toContain(`CI_SERVER_TOKEN="$(<"$R/run/parmanu/credential")" gitlab-runner register --non-interactive --config "$CONFIG.new" --url 'https://gitlab.example.com' --name 'p-node1' --executor shell --limit 3`);
    expect(start).toContain(`sed -i 's/^concurrent = .*/concurrent = 3/' "$CONFIG.new"`);
  });

  it('uses a pre-installed runner when asked', () => {
    const pre = testPool({ runner: { install: 'preinstalled' } }, 'p');
    expect(linuxUserData(pre, 'p-1', accessOf(gitlab), ssm)).not.toContain('gitlab-runner-downloads');
    expect(linuxUserData(pre, 'p-1', accessOf(gitlab), ssm)).toContain('runner.install: preinstalled');
  });

  it('starts GitHub runners with the JIT config in their environment or configures them with labels', () => {
    const jit = linuxFiles(pool, 'p-1', { kind: 'github', mode: 'jit' }, ssm);
    expect(jit.find((f) => f.path === '/etc/systemd/system/parmanu-runner.service')?.content).toContain('EnvironmentFile=/run/parmanu/runner.env\nExecStart=/opt/actions-runner/run.sh\n');
    expect(jit.find((f) => f.path === '/usr/local/sbin/parmanu-start')?.content).toContain(`printf 'ACTIONS_RUNNER_INPUT_JITCONFIG=%s\\n' "$(<"$R/run/parmanu/credential")"`);
    expect(linuxUserData(pool, 'p-1', accessOf(creds[2] as RunnerCredential), ssm)).toContain(
      String.raw`ACTIONS_RUNNER_INPUT_TOKEN=\"$(<\"$R/run/parmanu/credential\")\" runuser -u runner -- ./config.sh --unattended --replace --url 'https://github.com/acme' --name 'p-1' --labels 'linux,big,parmanu-pool-p'`,
    );
  });

  it('starts a Jenkins inbound agent over WebSocket with the secret from a file', () => {
    const files = linuxFiles(pool, 'p-1', accessOf(creds[3] as RunnerCredential), ssm);
    expect(files.find((f) => f.path === '/usr/local/lib/parmanu/jenkins-agent')?.content).toContain(
      `exec java -jar /usr/local/lib/parmanu/agent.jar -url 'https://jenkins.example.com/' -secret "@$CREDENTIALS_DIRECTORY/jenkins-secret" -name 'p-1' -webSocket -workDir /var/lib/jenkins-agent`,
    );
    expect(files.find((f) => f.path === '/etc/systemd/system/parmanu-agent.service')?.content).toContain('LoadCredential=jenkins-secret:/run/parmanu/credential');
    expect(files.find((f) => f.path === '/usr/local/sbin/parmanu-bootstrap')?.content).toContain("'https://jenkins.example.com/jnlpJars/agent.jar'");
  });

  it('quotes values for PowerShell', () => {
    const s = windowsScript(pool, "p-1'x", accessOf(creds[3] as RunnerCredential), ssm);
    expect(s).toContain("' + 'p-1''x' + '");
    expect(windowsScript(pool, 'p-1', accessOf(gitlab), ssm)).toContain("$env:CI_SERVER_TOKEN = [IO.File]::ReadAllText('C:\\ProgramData\\Parmanu\\credential')");
  });
});
