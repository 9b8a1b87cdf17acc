/**
 * `machine.tags`, `runner.hooks` and `runner.config` in what the stacks render: tags and labels on
 * every resource Parmanu creates (Parmanu's own keys last), the node spec (hooks and config change
 * it, tags do not), the Windows bootstrap's handling, and the AWS user-data budget.
 */
import { describe, expect, it } from 'vitest';
import { awsInstanceConfig } from '../../stacks/pool-stack.js';
import { renderPool, type TerraformJson } from '../../stacks/render.js';
import { nodeSpec } from '../../stacks/spec.js';
import { linuxUserData, userData, windowsScript } from '../../stacks/bootstrap.js';
import type { CredentialSource, RunnerAccess } from '../../stacks/types.js';
import { AWS_EXTRA_BYTES } from '../../src/policy/schema.js';
import type { EmitterConfig, PlatformConfig, PoolConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

type Res = Record<string, Record<string, Record<string, unknown>>>;
const resources = (json: TerraformJson) => json.resource as Res;
const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'eu-central-1' };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'default' };
const gitlab: RunnerAccess = { kind: 'gitlab', url: 'https://gitlab.example.com' };
const jit: RunnerAccess = { kind: 'github', mode: 'jit' };
const registration: RunnerAccess = { kind: 'github', mode: 'registration', url: 'https://github.com/acme' };
const jenkins: RunnerAccess = { kind: 'jenkins', url: 'https://jenkins.example.com' };
const awsSrc: CredentialSource = { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/p/p-1' };

/** A pool with hooks (as the loader reads them) and a runner.config. */
function withRunner(pool: PoolConfig, runner: Partial<PoolConfig['runner']>): PoolConfig {
  return { ...pool, runner: { ...pool.runner, ...runner } };
}
const hook = (path: string, script: string) => ({ path, sha256: 'x', script });

describe('machine.tags', () => {
  const tags = { team: 'ci', 'cost-center': '42' };
  const pool = testPool({ machine: { type: 'c6i.large', image: 'ami-1', tags } }, 'p');

  it('on aws: the instance, its volumes, the credential parameter, the IAM role and profile; Parmanu\'s keys kept', () => {
    const json = renderPool({ pool, platform: aws, stateDir: '/state', nodes: [{ name: 'p-1', access: gitlab, spec: 'abc' }] });
    const r = resources(json);
    const vm = r.aws_instance?.['node_p-1'] as Record<string, Record<string, string>>;
    for (const t of [vm.tags, vm.volume_tags, r.aws_ssm_parameter?.['credential_p-1']?.tags as Record<string, string>]) {
      expect(t).toMatchObject({ ...tags, Name: 'p-1', 'parmanu:pool': 'p', 'parmanu:node': 'p-1', 'parmanu:managed-by': 'parmanu', 'parmanu:spec': 'abc' });
    }
    for (const t of [r.aws_iam_role?.pool_role?.tags, r.aws_iam_instance_profile?.pool_profile?.tags]) expect(t).toEqual({ ...tags, 'parmanu:pool': 'p', 'parmanu:managed-by': 'parmanu' });
  });

  it('on gcp: instance, boot disk and secret labels', () => {
    const json = renderPool({ pool, platform: gcp, stateDir: '/state', nodes: [{ name: 'p-1', access: gitlab }] });
    const r = resources(json);
    const vm = r.google_compute_instance?.['node_p-1'] as Record<string, unknown>;
    const want = { ...tags, 'parmanu-pool': 'p', 'parmanu-node': 'p-1', 'parmanu-managed-by': 'parmanu' };
    expect(vm.labels).toEqual(want);
    expect((vm.boot_disk as { initialize_params: { labels: unknown } }).initialize_params.labels).toEqual(want);
    expect(r.google_secret_manager_secret?.['credential_p-1']?.labels).toEqual(want);
  });

  it('a key the policy could not set still cannot win over Parmanu\'s own', () => {
    const sneaky = testPool({ machine: { type: 't', image: 'i', tags: { Name: 'x', 'parmanu:pool': 'other', 'parmanu-pool': 'other' } } }, 'p');
    const vm = awsInstanceConfig(sneaky, { name: 'p-1', access: gitlab });
    expect(vm.tags).toMatchObject({ Name: 'p-1', 'parmanu:pool': 'p' });
    const json = renderPool({ pool: sneaky, platform: gcp, stateDir: '/state', nodes: [{ name: 'p-1', access: gitlab }] });
    expect(resources(json).google_compute_instance?.['node_p-1']?.labels).toMatchObject({ 'parmanu-pool': 'p' });
  });

  it('are not part of the node spec (a tag change replaces no VM); hooks and runner.config are', () => {
    const emitter = { name: 'e', type: 'gitlab', url: 'https://gitlab.example.com' } as unknown as EmitterConfig;
    const base = testPool({ machine: { type: 't', image: 'i' } }, 'p');
    const spec = nodeSpec(base, emitter);
    expect(nodeSpec(testPool({ machine: { type: 't', image: 'i', tags } }, 'p'), emitter)).toBe(spec);
    expect(nodeSpec(withRunner(base, { hooks: { before: hook('b.sh', 'echo 1\n') } }), emitter)).not.toBe(spec);
    expect(nodeSpec(withRunner(base, { hooks: { before: hook('b.sh', 'echo 2\n') } }), emitter)).not.toBe(nodeSpec(withRunner(base, { hooks: { before: hook('b.sh', 'echo 1\n') } }), emitter));
    expect(nodeSpec(withRunner(base, { config: '[runners.docker]\n  privileged = true\n' }), emitter)).not.toBe(spec);
  });
});

describe('AWS user-data budget', () => {
  it(`hooks and runner.config at the ${AWS_EXTRA_BYTES}-byte limit keep every AWS user-data within 16 KiB`, () => {
    // The worst case validation lets through: the longest pool name, a pinned release, the budget
    // spent on a hook full of characters that quoting doubles.
    const name = 'a'.repeat(40);
    const node = `${name}-abcdef123456`;
    const quotes = '"\'\\'.repeat(Math.floor((AWS_EXTRA_BYTES - 10) / 6));
    expect(JSON.stringify(quotes).length).toBeLessThanOrEqual(AWS_EXTRA_BYTES);
    const release = { version: '17.6.0', sha256: { 'linux-amd64': 'a'.repeat(64), 'linux-arm64': 'b'.repeat(64), 'windows-amd64': 'c'.repeat(64), 'linux-x64': 'd'.repeat(64), 'win-x64': 'e'.repeat(64) } };
    for (const os of ['linux', 'windows'] as const) {
      for (const [access, executor] of [[gitlab, 'docker'], [jit, 'shell'], [registration, 'shell'], [jenkins, 'shell']] as const) {
        const pool = withRunner(testPool({ machine: { type: 't', image: 'i', os }, runner: { executor, ephemeral: access === registration } }, name), { hooks: { before: hook('scripts/before.sh', quotes) } });
        const vm = awsInstanceConfig(pool, { name: node, access, release });
        expect(Buffer.byteLength(String(vm.userData)), `${os} ${access.kind}`).toBeLessThanOrEqual(16384);
      }
    }
  });
});

describe('Windows bootstrap: hooks and runner.config', () => {
  const base = testPool({ machine: { os: 'windows' } }, 'p');
  const pool = withRunner(base, { hooks: { before: hook('scripts/before.ps1', "Write-Output 'it''s before'\r\n"), after: hook('after.ps1', 'exit 3\n') } });

  it('writes each hook into the root-only directory and runs it; a failure or a non-zero exit throws', () => {
    const s = windowsScript(pool, 'p-1', gitlab, awsSrc);
    const lines = s.split('\r\n');
    const acl = lines.findIndex((l) => l.startsWith("icacls 'C:\\ProgramData\\Parmanu'"));
    const before = lines.findIndex((l) => l.includes("[IO.File]::WriteAllText('C:\\ProgramData\\Parmanu\\hooks\\before.ps1', 'Write-Output ''it''''s before''"));
    const runBefore = lines.indexOf("try { & 'C:\\ProgramData\\Parmanu\\hooks\\before.ps1' } catch { throw ('the before hook (runner.hooks.before: scripts/before.ps1) failed: ' + $_) }");
    const register = lines.findIndex((l) => l.includes('gitlab-runner.exe register'));
    const start = lines.indexOf('.\\gitlab-runner.exe start');
    const runAfter = lines.indexOf("try { & 'C:\\ProgramData\\Parmanu\\hooks\\after.ps1' } catch { throw ('the after hook (runner.hooks.after: after.ps1) failed: ' + $_) }");
    expect(acl).toBeGreaterThanOrEqual(0);
    expect(before).toBeGreaterThan(acl);
    expect(runBefore).toBeGreaterThan(before);
    expect(register).toBeGreaterThan(runBefore);
    expect(runAfter).toBeGreaterThan(start);
    expect(lines[runAfter + 1]).toBe("if ($LASTEXITCODE -ne 0) { throw ('the after hook (runner.hooks.after: after.ps1) failed with exit code ' + $LASTEXITCODE) }");
    expect(lines[runBefore - 1]).toBe('$global:LASTEXITCODE = 0');
  });

  it('runs the after hook last for every runner kind', () => {
    for (const access of [gitlab, jit, registration, jenkins]) {
      const lines = windowsScript(pool, 'p-1', access, awsSrc).split('\r\n');
      expect(lines.at(-1), access.kind).toMatch(/^if \(\$LASTEXITCODE -ne 0\) \{ throw \('the after hook/);
    }
  });

  it('passes runner.config: a register template, the runner\'s .env, JVM options before -jar', () => {
    const gl = windowsScript(withRunner(base, { config: "[runners.custom_build_dir]\n  enabled = true\nenvironment = ['A=it''s']\n" }), 'p-1', gitlab, awsSrc);
    expect(gl).toContain("[IO.File]::WriteAllText('C:\\ProgramData\\Parmanu\\gitlab-runner-template.toml', '[[runners]]\n[runners.custom_build_dir]\n  enabled = true\nenvironment = [''A=it''''s'']\n\n')");
    expect(gl).toMatch(/gitlab-runner\.exe register --non-interactive --template-config 'C:\\ProgramData\\Parmanu\\gitlab-runner-template\.toml' --url/);
    const gh = windowsScript(withRunner(base, { config: { HTTPS_PROXY: 'http://proxy:3128', NOTE: "it's" } }), 'p-1', jit, awsSrc);
    expect(gh).toContain("[IO.File]::WriteAllText('C:\\actions-runner\\.env', 'HTTPS_PROXY=http://proxy:3128\nNOTE=it''s\n')");
    expect(gh.indexOf('.env')).toBeLessThan(gh.indexOf('Start-Process'));
    const jk = windowsScript(withRunner(base, { config: ['-Xmx2g', '-XX:+UseG1GC'] }), 'p-1', jenkins, awsSrc);
    expect(jk).toContain("New-ScheduledTaskAction -Execute java -Argument ('-Xmx2g -XX:+UseG1GC ' + '-jar C:\\jenkins-agent\\agent.jar");
    expect(windowsScript(base, 'p-1', gitlab, awsSrc)).not.toContain('template-config');
  });

  it('userData on Linux carries the same settings', () => {
    const linux = withRunner(testPool({}, 'p'), { config: ['-Xmx2g'] });
    expect(userData(linux, 'p-1', jenkins, awsSrc)).toBe(linuxUserData(linux, 'p-1', jenkins, awsSrc));
    expect(linuxUserData(linux, 'p-1', jenkins, awsSrc)).toContain("exec java '-Xmx2g' -jar /usr/local/lib/parmanu/agent.jar");
  });
});
