import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli, root } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-synth-'));
const cli = (args: string[]) => runCli(args, { cwd: dir, env: { PARMANU_STATE_DIR: join(dir, 'state') } });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parmanu synth', () => {
  it('renders every pool of the example fleet with N nodes and the credential plumbing, no credential', () => {
    const r = cli(['synth', '--policy', join(root, 'policies'), '--nodes', '2', '--out', 'out', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { pools: Array<{ pool: string; nodes: number; file: string }> };
    expect(out.pools.map((p) => [p.pool, p.nodes])).toEqual([['linux-docker', 2], ['gha-linux', 2], ['gha-windows', 2], ['jenkins-build', 2]]);
    for (const p of out.pools) {
      expect(p.file).toBe(join(dir, 'out', p.pool, 'cdk.tf.json'));
      expect(statSync(p.file).mode & 0o777).toBe(0o600);
    }
    const gl = readFileSync(join(dir, 'out', 'linux-docker', 'cdk.tf.json'), 'utf8');
    expect(gl).toContain('"node_linux-docker-synth001"');
    // The same plumbing as reconcile: the secret store fed by the ephemeral variable, nothing else.
    expect(gl).toContain('"credential_linux-docker-synth001"');
    expect(gl).toContain('lookup(var.parmanu_credentials, \\"linux-docker-synth001\\", \\"\\")');
    expect(readFileSync(join(dir, 'out', 'gha-linux', 'cdk.tf.json'), 'utf8')).toContain('secret_data_wo');
    for (const p of out.pools) expect(readFileSync(p.file, 'utf8')).not.toMatch(/PLACEHOLDER|glrt-|ghs_|jitconfig":/);
  });

  it('boots a GitHub pool that does not write runner.ephemeral as a just-in-time runner, and one that writes false with a registration token', () => {
    writeFileSync(
      join(dir, 'gh.yaml'),
      [
        'emitters:',
        '  gh: { type: github, owner: acme, token: "${env:GITHUB_TOKEN}" }',
        'platforms:',
        '  gcp: { type: gcp, project: p, region: europe-west1, zone: europe-west1-b, backend: { type: gcs, bucket: b, prefix: parmanu } }',
        'pools:',
        '  gh-default: { emitter: gh, platform: gcp, labels: [a], machine: { type: e2-small, image: debian-cloud/debian-12 } }',
        '  gh-registered: { emitter: gh, platform: gcp, labels: [b], machine: { type: e2-small, image: debian-cloud/debian-12 }, runner: { ephemeral: false } }',
        '',
      ].join('\n'),
    );
    const r = cli(['synth', '--policy', 'gh.yaml', '--nodes', '1', '--out', 'gh-out']);
    expect(r.code).toBe(0);
    const jit = readFileSync(join(dir, 'gh-out', 'gh-default', 'cdk.tf.json'), 'utf8');
    const registered = readFileSync(join(dir, 'gh-out', 'gh-registered', 'cdk.tf.json'), 'utf8');
    // JIT: the credential becomes ACTIONS_RUNNER_INPUT_JITCONFIG of run.sh; nothing is configured with a token.
    expect(jit).toContain('ACTIONS_RUNNER_INPUT_JITCONFIG=');
    expect(jit).not.toMatch(/ACTIONS_RUNNER_INPUT_TOKEN|config\.sh --unattended/);
    // Registration token: config.sh configures a long-lived runner (no --ephemeral).
    expect(registered).toMatch(/ACTIONS_RUNNER_INPUT_TOKEN=.*config\.sh --unattended/);
    expect(registered).not.toMatch(/ACTIONS_RUNNER_INPUT_JITCONFIG|--ephemeral/);
  });

  it('renders the current node set from local state (none yet) into the state dir by default', () => {
    const r = cli(['synth', '--policy', join(root, 'examples/demo'), '--pool', 'demo-arm']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`demo-arm: 0 nodes → ${join(dir, 'state', 'synth', 'demo-arm', 'cdk.tf.json')}\n`);
  });

  it.each([
    [['synth', '--policy', join(root, 'examples/demo'), '--pool', 'nope'], /no pool named "nope" \(pools: demo-linux, demo-arm\)/],
    [['synth', '--policy', join(root, 'examples/demo'), '--nodes', 'many'], /--nodes must be a whole number/],
    [['synth', '--policy', 'missing'], /missing:1:1: no such file or directory/],
  ])('refuses bad input %j with exit 2', (args, message) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
  });
});
