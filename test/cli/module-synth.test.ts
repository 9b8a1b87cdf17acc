/**
 * `parmanu synth` and `validate` of a module pool (the compiled CLI): one `module "node_<name>"`
 * block per node, whose only `${…}` are references to Terraform variables.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli, root } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-module-synth-'));
const cli = (args: string[]) => runCli(args, { cwd: dir, env: { PARMANU_STATE_DIR: join(dir, 'state') } });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parmanu synth of a module pool', () => {
  it('renders each node as a module call given name, pool, user_data, the credential and the inputs, secrets as variable references only', () => {
    cpSync(join(root, 'test', 'fixtures', 'modules', 'local-node'), join(dir, 'policies', 'modules', 'local-node'), { recursive: true });
    writeFileSync(
      join(dir, 'policies', 'fleet.yaml'),
      [
        'emitters:',
        '  gl: { type: gitlab, url: https://gitlab.example.com, token: "${env:GITLAB_TOKEN}", projects: [a/b], runnerOwner: instance }',
        'platforms:',
        '  lab: { type: module, source: ./modules/local-node, inputs: { credential_dir: /var/lib/lab, size: large, labels: { team: "${ci}" }, admin: "${env:LAB_ADMIN}" }, backend: { type: local } }',
        'pools:',
        '  mp: { emitter: gl, platform: lab, labels: [linux] }',
      ].join('\n'),
    );
    expect(cli(['validate', 'policies'])).toMatchObject({ code: 0 });
    const r = cli(['synth', '--policy', 'policies', '--nodes', '2', '--out', 'out', '--json']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const text = readFileSync(join(dir, 'out', 'mp', 'cdk.tf.json'), 'utf8');
    const json = JSON.parse(text) as { module: Record<string, Record<string, unknown>>; variable: Record<string, Record<string, unknown>> };
    expect(Object.keys(json.module)).toEqual(['node_mp-synth000', 'node_mp-synth001']);
    const m = json.module['node_mp-synth000'] as Record<string, unknown>;
    // A local source relative to the directory the JSON is in: Terraform reads the module in place.
    expect(resolve(join(dir, 'out', 'mp'), m.source as string)).toBe(join(dir, 'policies', 'modules', 'local-node'));
    expect(m).toMatchObject({ name: 'mp-synth000', pool: 'mp', credential_dir: '/var/lib/lab', size: 'large', labels: { team: '$${ci}' }, credential: '${lookup(var.parmanu_credentials, "mp-synth000", "")}' });
    expect(String(m.user_data)).toContain('gitlab-runner');
    expect(String(m.user_data)).toContain('/var/lib/parmanu/credential');
    // A VM of some cloud: its instance metadata is closed to the runner's jobs, as on AWS and GCP.
    expect(String(m.user_data)).toContain('169.254.169.254');
    expect(json.variable.parmanu_credentials).toMatchObject({ ephemeral: true, sensitive: true });
    // Every interpolation of the module blocks is a variable reference: the credential's lookup and the secret input's variable.
    const refs = [...JSON.stringify(json.module).matchAll(/(?<!\$)\$\{([^}]*)\}/g)].map((x) => x[1] as string);
    expect(refs.length).toBe(4);
    for (const ref of refs) expect(ref).toMatch(/^(?:lookup\(var\.parmanu_credentials, \\"mp-synth00[01]\\", \\"\\"\)|var\.parmanu_ref_[0-9a-f]{16})$/);
    // The reference itself is only the variable's description (a literal in Terraform JSON), never its value.
    expect(json.variable[String(m.admin).slice('${var.'.length, -1)]).toEqual({ type: 'string', sensitive: true, nullable: false, description: '${env:LAB_ADMIN}' });
  });
});
