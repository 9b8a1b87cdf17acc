import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
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
