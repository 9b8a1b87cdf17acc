/**
 * Pinned runner binaries in the rendered stacks: a node given a release boots with that version
 * and its checksums (AWS user_data, GCP metadata, the local platform's bootstrap digest); a node
 * without one (kept nodes) renders as before; and no VM bootstrap ever asks api.github.com (60
 * unauthenticated requests per hour per address): the reconciler resolves releases, with its token.
 */
import { describe, expect, it } from 'vitest';
import { sha256, userData, type RunnerRelease } from '../../stacks/bootstrap.js';
import { renderPool, type TerraformJson } from '../../stacks/render.js';
import { nodeSpec } from '../../stacks/spec.js';
import type { CredentialSource, RunnerAccess } from '../../stacks/types.js';
import type { EmitterConfig, PlatformConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

const hex = (c: string) => c.repeat(64);
const GH: RunnerRelease = { version: '2.321.0', sha256: { 'linux-x64': hex('a'), 'linux-arm64': hex('b'), 'win-x64': hex('c') } };
const GL: RunnerRelease = { version: '17.5.0', sha256: { 'linux-amd64': hex('1'), 'linux-arm64': hex('2'), 'windows-amd64': hex('3') } };
const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'eu-central-1' };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'ci' };
const local: PlatformConfig = { name: 'lab', type: 'local' };
type Res = Record<string, Record<string, Record<string, unknown>>>;
const resources = (json: TerraformJson) => json.resource as Res;

const sources: CredentialSource[] = [
  { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/p/p-1' },
  { kind: 'gcp-secret', project: 'acme-ci', secret: 'parmanu-p-1' },
  { kind: 'file', path: '/state/credentials/p-1' },
];
const githubAccess: RunnerAccess[] = [{ kind: 'github', mode: 'jit' }, { kind: 'github', mode: 'registration', url: 'https://github.com/acme' }, { kind: 'github', mode: 'registration', url: 'https://ghe.example.com/acme' }];

describe('runner binaries in the bootstrap', () => {
  it('no VM bootstrap calls api.github.com, pinned or not, on any OS, runner mode, version or credential source', () => {
    let rendered = 0;
    for (const os of ['linux', 'windows'] as const) {
      for (const version of ['latest', '2.321.0']) {
        const pool = testPool({ labels: ['linux'], machine: { os, type: 't3.large', image: 'ami-1' }, runner: { version } });
        for (const access of githubAccess) {
          for (const source of sources) {
            for (const opts of [{}, { release: GH }]) {
              const script = userData(pool, 'p-1', access, source, opts);
              expect(script).not.toMatch(/api\.github\.com/i);
              rendered++;
            }
          }
        }
      }
    }
    expect(rendered).toBe(2 * 2 * 3 * 3 * 2);
  });

  it('an AWS and a GCP node given a release boot that version with its checksums; a node without one renders as before', () => {
    for (const platform of [aws, gcp]) {
      const pool = testPool({ labels: ['linux'], machine: { type: 'm', image: 'img' }, runner: { version: 'latest' } });
      const json = renderPool({ pool, platform, stateDir: '/state', nodes: [{ name: 'p-new', access: { kind: 'github', mode: 'jit' }, release: GH }, { name: 'p-kept', access: { kind: 'github', mode: 'jit' } }] });
      const vm = (n: string) => (platform.type === 'aws' ? String(resources(json).aws_instance?.[`node_${n}`]?.user_data) : String((resources(json).google_compute_instance?.[`node_${n}`]?.metadata as Record<string, string>)['user-data']));
      expect(vm('p-new')).toContain("V='2.321.0'");
      for (const sum of Object.values(GH.sha256)) expect(vm('p-new')).toContain(sum);
      expect(vm('p-kept')).not.toContain('2.321.0');
      expect(vm('p-kept')).not.toContain(hex('a'));
      expect(JSON.stringify(json)).not.toMatch(/api\.github\.com/);
    }
  });

  it('the local platform records the digest of the pinned bootstrap; the spec does not depend on the release', () => {
    const pool = testPool({ labels: ['linux'], runner: { version: 'latest' } });
    const access: RunnerAccess = { kind: 'gitlab', url: 'https://gitlab.example.com' };
    const json = renderPool({ pool, platform: local, stateDir: '/state', nodes: [{ name: 'p-a', access, release: GL, spec: 's' }, { name: 'p-b', access, spec: 's' }] });
    const input = (n: string) => resources(json).terraform_data?.[`node_${n}`]?.input as Record<string, string>;
    const src = (n: string): CredentialSource => ({ kind: 'file', path: `/state/pools/p/credentials/${n}` });
    expect(input('p-a').bootstrap_sha256).toBe(sha256(userData(pool, 'p-a', access, src('p-a'), { release: GL })));
    expect(input('p-b').bootstrap_sha256).toBe(sha256(userData(pool, 'p-b', access, src('p-b'))));
    expect(input('p-a').bootstrap_sha256).not.toBe(sha256(userData(pool, 'p-a', access, src('p-a'))));
    const emitter: EmitterConfig = { name: 'e', type: 'gitlab', url: 'https://gitlab.example.com', token: '${env:T}', runnerOwner: 'instance', probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3 };
    // The spec hashes the bootstrap of the version as written: whatever release is out, the same.
    expect(nodeSpec(pool, emitter)).toBe(nodeSpec(testPool({ labels: ['linux'], runner: { version: 'latest' } }), emitter));
  });
});
