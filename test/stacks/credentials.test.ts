/**
 * Runner credentials in the rendered stacks (DESIGN "Runner credentials"): the secret reaches
 * terraform only as the ephemeral, sensitive variable `parmanu_credentials`, handed to write-only
 * arguments (AWS SSM `value_wo`, GCP Secret Manager `secret_data_wo`) or, on the local platform, to
 * a local-exec provisioner's environment; one identity per pool reads only its pool's secrets.
 * AWS and GCP providers cannot run here: the synthesized JSON is what is checked.
 */
import { describe, expect, it } from 'vitest';
import { renderPool, type TerraformJson } from '../../stacks/render.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

type Res = Record<string, Record<string, Record<string, unknown>>>;
const resources = (json: TerraformJson) => json.resource as Res;
const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'eu-central-1' };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'default' };
const local: PlatformConfig = { name: 'lab', type: 'local' };
const LOOKUP = (node: string) => `\${lookup(var.parmanu_credentials, "${node}", "")}`;

describe('the credentials variable', () => {
  it('is ephemeral, sensitive, a map, empty by default, on every platform', () => {
    for (const platform of [aws, gcp, local]) {
      const json = renderPool({ pool: testPool({ machine: { type: 't', image: 'i' } }, 'p'), platform, stateDir: '/s', nodes: [{ name: 'p-a', access: { kind: 'gitlab', url: 'https://gl.example.com' } }] });
      expect((json.variable as Record<string, unknown>).parmanu_credentials).toEqual(expect.objectContaining({ type: 'map(string)', sensitive: true, ephemeral: true, default: {} }));
    }
  });
});

describe('AWS', () => {
  const pool = testPool({ machine: { type: 'c6i.large', image: 'ami-1' } }, 'lin');
  const json = renderPool({ pool, platform: aws, stateDir: '/s', nodes: [{ name: 'lin-a', access: { kind: 'gitlab', url: 'https://gl.example.com' } }] });

  it('writes each node\'s secret to an SSM SecureString through value_wo, under the pool\'s path, tagged with its instance', () => {
    expect(resources(json).aws_ssm_parameter?.['credential_lin-a']).toMatchObject({
      name: '/parmanu/lin/lin-a',
      type: 'SecureString',
      value_wo: LOOKUP('lin-a'),
      value_wo_version: 1,
      tier: 'Intelligent-Tiering',
      tags: { 'parmanu:instance': '${aws_instance.node_lin-a.arn}', 'parmanu:node': 'lin-a' },
    });
    expect(resources(json).aws_ssm_parameter?.['credential_lin-a']?.value).toBeUndefined();
  });

  it('creates one instance profile per pool whose role reads only its pool\'s parameters, each from its own instance', () => {
    const r = resources(json);
    expect(r.aws_instance?.['node_lin-a']?.iam_instance_profile).toBe('${aws_iam_instance_profile.pool_profile.name}');
    const policy = JSON.parse(String(r.aws_iam_role_policy?.pool_read_credentials?.policy)) as { Statement: Array<Record<string, unknown>> };
    expect(policy.Statement[0]).toMatchObject({ Action: 'ssm:GetParameter', Resource: 'arn:aws:ssm:*:*:parameter/parmanu/lin/*', Condition: { StringEquals: { 'ssm:resourceTag/parmanu:instance': '$${ec2:SourceInstanceARN}' } } });
    expect(JSON.parse(String(r.aws_iam_role?.pool_role?.assume_role_policy))).toMatchObject({ Statement: [{ Principal: { Service: 'ec2.amazonaws.com' } }] });
  });

  it('uses a user-given instance profile as is', () => {
    const given = renderPool({ pool: testPool({ machine: { type: 'c', image: 'ami', instanceProfile: 'ours' } }, 'g'), platform: aws, stateDir: '/s', nodes: [{ name: 'g-1', access: { kind: 'jenkins', url: 'https://j.example.com' } }] });
    expect(resources(given).aws_iam_role).toBeUndefined();
    expect(resources(given).aws_instance?.['node_g-1']?.iam_instance_profile).toBe('ours');
  });

  it('requires IMDSv2 with a hop limit of 1, and user-data names the parameter, not a secret', () => {
    const vm = resources(json).aws_instance?.['node_lin-a'] as Record<string, unknown>;
    expect(vm.metadata_options).toEqual({ http_tokens: 'required', http_endpoint: 'enabled', http_put_response_hop_limit: 1 });
    expect(String(vm.user_data)).toContain('/parmanu/lin/lin-a');
  });
});

describe('GCP', () => {
  const pool = testPool({ machine: { type: 'e2-small', image: 'debian-12' } }, 'gha');
  const json = renderPool({ pool, platform: gcp, stateDir: '/s', nodes: [{ name: 'gha-a', access: { kind: 'github', mode: 'jit' } }] });

  it('writes each node\'s secret to Secret Manager through secret_data_wo, readable by the pool\'s service account only', () => {
    const r = resources(json);
    expect(r.google_secret_manager_secret?.['credential_gha-a']).toMatchObject({ secret_id: 'parmanu-gha-a', replication: { auto: {} } });
    expect(r.google_secret_manager_secret_version?.['credential_gha-a_version']).toMatchObject({ secret: '${google_secret_manager_secret.credential_gha-a.id}', secret_data_wo: LOOKUP('gha-a'), secret_data_wo_version: 1 });
    expect(r.google_secret_manager_secret_version?.['credential_gha-a_version']?.secret_data).toBeUndefined();
    expect(r.google_secret_manager_secret_iam_member?.['credential_gha-a_access']).toMatchObject({ role: 'roles/secretmanager.secretAccessor', member: 'serviceAccount:${google_service_account.pool_service_account.email}' });
    expect(r.google_service_account?.pool_service_account).toMatchObject({ account_id: 'parmanu-gha' });
    expect(r.google_compute_instance?.['node_gha-a']?.service_account).toEqual({ email: '${google_service_account.pool_service_account.email}', scopes: ['cloud-platform'] });
  });

  it('keeps service account ids within GCP\'s 30 characters for long pool names', () => {
    const long = renderPool({ pool: testPool({ machine: { type: 'e2', image: 'i' } }, 'a-very-long-pool-name-for-many-runners'), platform: gcp, stateDir: '/s', nodes: [] });
    const id = String(resources(long).google_service_account?.pool_service_account?.account_id);
    expect(id.length).toBeLessThanOrEqual(30);
    expect(id).toMatch(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/);
  });
});

describe('local', () => {
  it('delivers the credential with a local-exec provisioner from the ephemeral variable into a 0600 file beside the state', () => {
    const json = renderPool({ pool: testPool({}, 'demo'), platform: local, stateDir: '/var/parmanu', nodes: [{ name: 'demo-1', access: { kind: 'gitlab', url: 'https://gl.example.com' } }] });
    const c = resources(json).terraform_data?.['credential_demo-1'] as Record<string, unknown>;
    const [create, destroy] = c.provisioner as Array<{ 'local-exec': Record<string, unknown> }>;
    expect(create?.['local-exec']).toMatchObject({ environment: { PARMANU_CREDENTIAL: LOOKUP('demo-1') } });
    expect(String(create?.['local-exec']?.command)).toMatch(/^umask 077 && .*> '\/var\/parmanu\/pools\/demo\/credentials\/demo-1'$/);
    expect(destroy?.['local-exec']).toMatchObject({ when: 'destroy' });
  });
});

describe('kept nodes without credential resources in their state', () => {
  it('are rendered without them (never given a new, empty credential), on every platform', () => {
    for (const platform of [aws, gcp, local]) {
      const json = renderPool({ pool: testPool({ machine: { type: 't', image: 'i' } }, 'k'), platform, stateDir: '/s', nodes: [{ name: 'k-old', access: { kind: 'gitlab', url: 'https://gl.example.com' }, credential: false }, { name: 'k-new', access: { kind: 'gitlab', url: 'https://gl.example.com' } }] });
      const names = Object.values(resources(json)).flatMap((byName) => Object.keys(byName));
      expect(names.filter((n) => n.includes('k-old'))).toEqual(['node_k-old']);
      expect(names.some((n) => n.startsWith('credential_k-new'))).toBe(true);
    }
  });
});

describe('the registration URL a kept GitHub node is rendered with', () => {
  it('is the one the emitter registers runners against (stacks/ keeps its own copy: it may import policy types only)', async () => {
    const { placeholderAccess } = await import('../../stacks/placeholders.js');
    const { githubRunnerUrl } = await import('../../src/policy/types.js');
    const pool = testPool({ runner: { ephemeral: false } }, 'gh');
    for (const cfg of [
      { apiUrl: 'https://api.github.com', runnerOwner: 'org' as const },
      { apiUrl: 'https://ghe.example.com/api/v3', runnerOwner: { repo: 'web' } },
    ]) {
      const emitter = { name: 'gh', type: 'github' as const, owner: 'acme', token: '${env:T}', runnerGroupId: 1, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 4, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...cfg };
      expect(placeholderAccess(emitter as never, pool)).toEqual({ kind: 'github', mode: 'registration', url: githubRunnerUrl(emitter as never) });
    }
  });
});
