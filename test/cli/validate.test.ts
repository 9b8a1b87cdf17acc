/**
 * The compiled CLI as a user runs it (`npm test` builds it first): exit codes, output shape, no
 * stack traces, no secret values.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli } from '../cli.js';
import { TEST_SECRET } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-cli-'));
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = 'emitters:\n  gl:\n    type: gitlab\n    url: https://gitlab.example.com\n    token: ${env:GL_TOKEN}\n    projects: [a/b]\n    runnerOwner: instance\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: gl, platform: lab }\n';

describe('parmanu validate', () => {
  it('exits 0 on the example policies, from the repository root', () => {
    const r = runCli(['validate'], { inheritEnv: true });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/✔ 1 file valid: 3 emitters, 2 platforms, 4 pools/);
  });

  it('exits 2 with FILE:LINE:COL lines and a summary, and no stack trace', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'pools:\n  p:\n    emitter: x\n    scaling: { max: many }\n');
    const r = cli(['validate', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('bad.yaml:2:3: pools.p.platform: is required');
    expect(r.out).toContain('bad.yaml:4:21: pools.p.scaling.max: must be a number, not the string "many"');
    expect(r.out).toMatch(/✖ \d+ errors in 1 file; nothing was applied/);
    expect(r.out + r.err).not.toMatch(/\n\s+at .*\(/);
  });

  it('prints JSON with --json', () => {
    writeFileSync(join(dir, 'good.yaml'), GOOD);
    const r = cli(['validate', 'good.yaml', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ok: true, files: ['good.yaml'], problems: [] });
  });

  it('checks references with --check-env without printing their values', () => {
    writeFileSync(join(dir, 'good.yaml'), GOOD);
    const missing = cli(['validate', 'good.yaml', '--check-env']);
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('good.yaml:5:12: emitters.gl.token: ${env:GL_TOKEN}: environment variable GL_TOKEN is not set');
    const set = cli(['validate', 'good.yaml', '--check-env'], { GL_TOKEN: TEST_SECRET });
    expect(set.code).toBe(0);
    expect(set.out + set.err).not.toContain('SECRETVALUE');
  });

  it('refuses unknown flags and commands with exit 2', () => {
    const flag = cli(['validate', '--frobnicate']);
    expect(flag.code).toBe(2);
    expect(flag.err).toBe("parmanu: validate: unknown option '--frobnicate' (see --help)\n");
    const cmd = cli(['valdate']);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toMatch(/^parmanu: unknown command "valdate"/);
  });

  it('has --help for the tool and the command', () => {
    expect(cli(['--help'])).toMatchObject({ code: 0, out: expect.stringContaining('Commands:') });
    expect(cli(['validate', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('--check-env') });
  });

  it('reports a missing policy directory', () => {
    const r = cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('policies:1:1: no such file or directory');
  });
});

describe('parmanu validate: cloud state and settings of the wrong cloud', () => {
  const CLOUD = 'emitters:\n  gh: { type: github, owner: acme, token: "${env:GH}" }\nplatforms:\n  aws: { type: aws, region: us-east-1 }\npools:\n  p:\n    emitter: gh\n    platform: aws\n    machine: { type: c6i.large, image: debian-cloud/debian-12 }\n    runner: { jobsPerNode: 2 }\n';

  it('prints each problem at FILE:LINE:COL with its fix and exits 2', () => {
    writeFileSync(join(dir, 'cloud.yaml'), CLOUD);
    const r = cli(['validate', 'cloud.yaml']);
    expect(r.code).toBe(2);
    expect(r.out.split('\n')).toEqual([
      "cloud.yaml:4:3: platforms.aws: an aws platform names its backend: Terraform's state is the only record of the VMs and must outlive the machine that runs Parmanu (a CI job's files go with the job); add backend: { type: s3, bucket: BUCKET, key: parmanu, region: us-east-1 }, or write backend: { type: local } to keep it on this machine",
      'cloud.yaml:9:40: pools.p.machine.image: "debian-cloud/debian-12" is a GCP image path; on aws platform "aws" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)',
      'cloud.yaml:10:28: pools.p.runner.jobsPerNode: a GitHub runner runs one job at a time: with jobsPerNode: 2 the pool would start one node for every 2 jobs and the others would wait; remove it (1 is the default) and raise scaling.max for more jobs at once',
      '✖ 3 errors in 1 file; nothing was applied',
      '',
    ]);
  });

  it('warns about a written-out local backend only when CI is set, and exits 0', () => {
    const local = CLOUD.replace('region: us-east-1 }', 'region: us-east-1, backend: { type: local } }').replace('debian-cloud/debian-12', 'ami-0123456789abcdef0').replace('jobsPerNode: 2', 'jobsPerNode: 1');
    writeFileSync(join(dir, 'local.yaml'), local);
    expect(cli(['validate', 'local.yaml'])).toMatchObject({ code: 0, out: '✔ 1 file valid: 1 emitter, 1 platform, 1 pool\n' });
    const ci = cli(['validate', 'local.yaml'], { CI: 'true' });
    expect(ci.code).toBe(0);
    expect(ci.out).toBe(
      "local.yaml:4:49: warning: platforms.aws.backend: keeps Terraform's state on this machine, and CI is set: a CI job's files go with the job, and the next run would lose track of every VM; use backend: { type: s3, bucket: BUCKET, key: parmanu, region: us-east-1 }\n✔ 1 file valid: 1 emitter, 1 platform, 1 pool (1 warning)\n",
    );
  });

  it('stops a file at its first YAML error, with the hint to quote a reference', () => {
    writeFileSync(join(dir, 'flow.yaml'), 'emitters:\n  gh: { type: github, owner: acme, token: ${env:GH} }\n');
    const r = cli(['validate', 'flow.yaml']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('flow.yaml:2:43: YAML syntax: ${env:GH} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${env:GH}"\n✖ 1 error in 1 file; nothing was applied\n');
  });
});
