/**
 * Issue 14's rules, as table tests with the exact line a user sees (FILE:LINE:COL: path: message):
 * state that survives CI (aws/gcp name their backend; a written-out local one warns under CI),
 * settings that quietly cost money or break nodes (jobsPerNode on GitHub, an image of the other
 * cloud, a zone outside its region, an App id that is no id, ephemeral GitLab runners), warnings
 * only about what the policy wrote, and one YAML syntax error with a hint instead of a cascade.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-fleet-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const S3 = 'backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 }';
const GCS = 'backend: { type: gcs, bucket: b, prefix: parmanu }';
/** Lines 1-9 (two pools that use every emitter and platform); `pools` start at line 10. */
function policy(o: { aws?: string; gcp?: string; gh?: string; pools?: string } = {}): string {
  return [
    'emitters:',
    '  gl: { type: gitlab, url: https://gitlab.example.com, token: "${env:GL}", projects: [a/b], runnerOwner: instance }',
    `  gh: { type: github, owner: acme, ${o.gh ?? 'token: "${env:GH}"'} }`,
    'platforms:',
    `  aws: { type: aws, region: us-east-1, ${o.aws ?? S3} }`,
    `  gcp: { type: gcp, project: p, ${o.gcp ?? `region: europe-west1, zone: europe-west1-b, ${GCS}`} }`,
    'pools:',
    '  a: { emitter: gl, platform: aws, labels: [a], machine: { type: c6i.large, image: ami-0123456789abcdef0 } }',
    '  g: { emitter: gh, platform: gcp, labels: [g], machine: { type: e2-small, image: debian-cloud/debian-12 } }',
    o.pools ?? '',
  ].join('\n');
}
const pool = (emitter: string, platform: string, machine: string, runner = '{}') => `  p:\n    emitter: ${emitter}\n    platform: ${platform}\n    machine: ${machine}\n    runner: ${runner}\n`;

let n = 0;
function load(yaml: string, env: Record<string, string> = {}) {
  const file = join(dir, `case-${n}.yaml`);
  writeFileSync(file, yaml);
  const r = loadPolicy([file], { cwd: dir, env });
  const name = `case-${n++}.yaml`;
  return { ...r, lines: r.problems.map(formatProblem).map((l) => l.replace(`${name}:`, 'x.yaml:')) };
}

describe('the policy used by these cases', () => {
  it('is valid and warns about nothing, CI or not', () => {
    for (const env of [{}, { CI: 'true' }] as Array<Record<string, string>>) {
      const r = load(policy(), env);
      expect(r.lines).toEqual([]);
      expect(r.policy?.pools.map((p) => p.name)).toEqual(['a', 'g']);
    }
  });
});

describe('errors, each at its place with a fix', () => {
  it.each([
    [
      'an aws platform without a backend',
      policy({ aws: 'credentials: { profile: ci }' }),
      "x.yaml:5:3: platforms.aws: an aws platform names its backend: Terraform's state is the only record of the VMs and must outlive the machine that runs Parmanu (a CI job's files go with the job); add backend: { type: s3, bucket: BUCKET, key: parmanu, region: us-east-1 }, or write backend: { type: local } to keep it on this machine",
    ],
    [
      'a gcp platform without a backend',
      policy({ gcp: 'region: europe-west1, zone: europe-west1-b' }),
      "x.yaml:6:3: platforms.gcp: a gcp platform names its backend: Terraform's state is the only record of the VMs and must outlive the machine that runs Parmanu (a CI job's files go with the job); add backend: { type: gcs, bucket: BUCKET, prefix: parmanu }, or write backend: { type: local } to keep it on this machine",
    ],
    [
      'a gcp zone outside its region',
      policy({ gcp: `region: europe-west1, zone: us-central1-a, ${GCS}` }),
      'x.yaml:6:61: platforms.gcp.zone: zone "us-central1-a" is not in region "europe-west1": a zone is its region, "-" and a letter (e.g. europe-west1-b); fix the zone or the region',
    ],
    [
      'a gcp zone that is its region',
      policy({ gcp: `region: europe-west1, zone: europe-west1, ${GCS}` }),
      'x.yaml:6:61: platforms.gcp.zone: zone "europe-west1" is not in region "europe-west1": a zone is its region, "-" and a letter (e.g. europe-west1-b); fix the zone or the region',
    ],
    [
      "a pool's gcp zones outside the platform's region",
      policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, zones: [europe-west1-c, europe-west4-a] }') }),
      'x.yaml:13:87: pools.p.machine.zones.1: zone "europe-west4-a" is not in region "europe-west1" of platform "gcp": a zone is its region, "-" and a letter (e.g. europe-west1-b)',
    ],
    [
      'a github pool with jobsPerNode 3',
      policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12 }', '{ jobsPerNode: 3 }') }),
      'x.yaml:14:28: pools.p.runner.jobsPerNode: a GitHub runner runs one job at a time: with jobsPerNode: 3 the pool would start one node for every 3 jobs and the others would wait; remove it (1 is the default) and raise scaling.max for more jobs at once',
    ],
    [
      'an AMI id on gcp',
      policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: ami-0123456789abcdef0 }') }),
      'x.yaml:13:39: pools.p.machine.image: "ami-0123456789abcdef0" is an AWS AMI id; on gcp platform "gcp" machine.image is a Compute Engine image such as projects/debian-cloud/global/images/family/debian-12',
    ],
    [
      'a GCP image path on aws',
      policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: projects/debian-cloud/global/images/family/debian-12 }') }),
      'x.yaml:13:40: pools.p.machine.image: "projects/debian-cloud/global/images/family/debian-12" is a GCP image path; on aws platform "aws" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)',
    ],
    [
      'a GCP project/image on aws',
      policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: debian-cloud/debian-12 }') }),
      'x.yaml:13:40: pools.p.machine.image: "debian-cloud/debian-12" is a GCP image path; on aws platform "aws" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)',
    ],
    [
      'a GCP image family on aws',
      policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: family/debian-12 }') }),
      'x.yaml:13:40: pools.p.machine.image: "family/debian-12" is a GCP image path; on aws platform "aws" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)',
    ],
    [
      'a GCP image URL on aws',
      policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20250101" }') }),
      'x.yaml:13:40: pools.p.machine.image: "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/debian-12-bookworm-v20250101" is a GCP image path; on aws platform "aws" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)',
    ],
    [
      'an appId that is a word',
      policy({ gh: 'app: { appId: abc, installationId: 42, privateKey: "${file:k.pem}" }' }),
      'x.yaml:3:50: emitters.gh.app.appId: must be the GitHub App\'s App ID (a positive whole number such as 123456, shown on the app\'s settings page) or its client ID (Iv1.… or Iv23…), not "abc"',
    ],
    [
      'an appId that is a negative number',
      policy({ gh: 'app: { appId: -7, installationId: 42, privateKey: "${file:k.pem}" }' }),
      'x.yaml:3:50: emitters.gh.app.appId: must be the GitHub App\'s App ID (a positive whole number such as 123456, shown on the app\'s settings page) or its client ID (Iv1.… or Iv23…), not the number -7',
    ],
    [
      'an appId that is a fraction',
      policy({ gh: 'app: { appId: 12.5, installationId: 42, privateKey: "${file:k.pem}" }' }),
      'x.yaml:3:50: emitters.gh.app.appId: must be the GitHub App\'s App ID (a positive whole number such as 123456, shown on the app\'s settings page) or its client ID (Iv1.… or Iv23…), not the number 12.5',
    ],
    [
      'an appId that is an unresolved reference (it is not a secret and is never resolved)',
      policy({ gh: 'app: { appId: "${env:APP_ID}", installationId: 42, privateKey: "${file:k.pem}" }' }),
      'x.yaml:3:50: emitters.gh.app.appId: must be the GitHub App\'s App ID (a positive whole number such as 123456, shown on the app\'s settings page) or its client ID (Iv1.… or Iv23…), not "${env:APP_ID}"',
    ],
    [
      'an installationId that is a word',
      policy({ gh: 'app: { appId: 123456, installationId: acme, privateKey: "${file:k.pem}" }' }),
      "x.yaml:3:74: emitters.gh.app.installationId: must be the installation's id, a positive whole number (the end of the installation's settings URL, …/installations/12345678), not \"acme\"",
    ],
    [
      'ephemeral on a gitlab pool',
      policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0 }', '{ executor: docker, ephemeral: true }') }),
      "x.yaml:14:44: pools.p.runner.ephemeral: is not enforced on gitlab: the node's gitlab-runner keeps taking jobs until Parmanu replaces the node, so one node can run several jobs; remove it, and use runner.executor: docker (a fresh container per job) and scaling.maxLifetime to replace nodes regularly",
    ],
  ])('%s', (_name, yaml, line) => {
    const r = load(yaml);
    expect(r.lines).toEqual([line]);
    expect(r.policy).toBeUndefined();
  });
});

describe('passes what is right', () => {
  it.each([
    ['an App ID as a number', policy({ gh: 'app: { appId: 123456, installationId: 12345678, privateKey: "${file:k.pem}" }' })],
    ['an App ID in quotes', policy({ gh: 'app: { appId: "123456", installationId: "12345678", privateKey: "${file:k.pem}" }' })],
    ['a client ID (Iv23…)', policy({ gh: 'app: { appId: Iv23lifdQJYtcYZ2hOGs, installationId: 12345678, privateKey: "${file:k.pem}" }' })],
    ['a client ID (Iv1.…)', policy({ gh: 'app: { appId: Iv1.8a61f9b3a7aba766, installationId: 12345678, privateKey: "${file:k.pem}" }' })],
    ['a GCP image family path on gcp', policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: projects/debian-cloud/global/images/family/debian-12 }') })],
    ['an SSM parameter on aws', policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: "resolve:ssm:/aws/service/debian/release/12/latest/amd64" }') })],
    ['zones of the region', policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, zones: [europe-west1-b, europe-west1-c] }') })],
    ['jobsPerNode 1 written out on github', policy({ pools: pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12 }', '{ jobsPerNode: 1, ephemeral: true }') })],
    ['ephemeral: false on gitlab', policy({ pools: pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0 }', '{ ephemeral: false, jobsPerNode: 4 }') })],
    ['no backend on the local platform, under CI', policy({ pools: '  l: { emitter: gl, platform: lab, labels: [l] }' }).replace('pools:\n', '  lab: { type: local }\npools:\n')],
  ])('%s', (_name, yaml) => {
    const r = load(yaml, { CI: 'true' });
    expect(r.lines).toEqual([]);
    expect(r.policy).toBeDefined();
  });
});

describe('a local backend on a cloud platform', () => {
  const yaml = policy({ aws: 'backend: { type: local }' });

  it('is allowed when written out', () => {
    const r = load(yaml);
    expect(r.lines).toEqual([]);
    expect(r.policy?.platforms.aws?.backend).toEqual({ type: 'local' });
  });

  it('warns, at the backend, when CI is set', () => {
    const r = load(yaml, { CI: 'true' });
    expect(r.lines).toEqual([
      "x.yaml:5:49: warning: platforms.aws.backend: keeps Terraform's state on this machine, and CI is set: a CI job's files go with the job, and the next run would lose track of every VM; use backend: { type: s3, bucket: BUCKET, key: parmanu, region: us-east-1 }",
    ]);
    expect(r.policy).toBeDefined();
  });

  it('does not warn when CI is empty', () => {
    expect(load(yaml, { CI: '' }).lines).toEqual([]);
  });

  it.each(['false', '0', 'FALSE', ' false ', ' '])('does not warn when CI is %j (set, but saying no)', (ci) => {
    expect(load(yaml, { CI: ci }).lines).toEqual([]);
  });

  it.each(['1', 'yes', 'gitlab'])('warns when CI is %j', (ci) => {
    expect(load(yaml, { CI: ci }).lines).toEqual([expect.stringMatching(/^x\.yaml:5:49: warning: platforms\.aws\.backend: keeps Terraform's state on this machine, and CI is set/)]);
  });
});

describe('warnings name only what the policy wrote', () => {
  it.each([
    ['zones on aws', pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0, zones: [us-east-1a] }'), 'x.yaml:13:63: warning: pools.p.machine.zones: zones is a gcp setting; ignored on aws platform "aws"'],
    ['serviceAccount on aws', pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0, serviceAccount: ci@p.iam.gserviceaccount.com }'), 'x.yaml:13:63: warning: pools.p.machine.serviceAccount: serviceAccount is a gcp setting; ignored on aws platform "aws"'],
    ['both on aws', pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0, zones: [a], serviceAccount: s }'), 'x.yaml:13:63: warning: pools.p.machine.zones: zones and serviceAccount are gcp settings; ignored on aws platform "aws"'],
    ['subnets on gcp', pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, subnets: [subnet-1] }'), 'x.yaml:13:63: warning: pools.p.machine.subnets: subnets is an aws setting; ignored on gcp platform "gcp"'],
    ['instanceProfile and securityGroups on gcp', pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, instanceProfile: ci, securityGroups: [sg-1] }'), 'x.yaml:13:84: warning: pools.p.machine.securityGroups: securityGroups and instanceProfile are aws settings; ignored on gcp platform "gcp"'],
  ])('%s', (_name, pools, line) => {
    const r = load(policy({ pools }));
    expect(r.lines).toEqual([line]);
  });

  it('calls a default a default', () => {
    const windows = pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0, os: windows }');
    expect(load(policy({ pools: windows })).lines).toEqual([
      "x.yaml:13:67: warning: pools.p.machine.os: on Windows a gitlab runner (shell executor, the default) runs its jobs as its service account (SYSTEM), which can read the runner's credential: use runner.executor: docker, or accept it",
    ]);
    const written = pool('gl', 'aws', '{ type: c6i.large, image: ami-0123456789abcdef0, os: windows }', '{ executor: shell }');
    expect(load(policy({ pools: written })).lines).toEqual([
      "x.yaml:13:67: warning: pools.p.machine.os: on Windows a gitlab runner (shell executor) runs its jobs as its service account (SYSTEM), which can read the runner's credential: use runner.executor: docker, or accept it",
    ]);
    // On Windows a github pool defaults to the registered runner service (kept from metadata by the
    // firewall): nothing to warn about unless the policy asks for JIT runners.
    const github = pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, os: windows }');
    expect(load(policy({ pools: github })).lines).toEqual([]);
    const githubWritten = pool('gh', 'gcp', '{ type: e2-small, image: debian-cloud/debian-12, os: windows }', '{ ephemeral: true }');
    expect(load(policy({ pools: githubWritten })).lines).toEqual([
      "x.yaml:13:67: warning: pools.p.machine.os: on Windows an ephemeral (JIT) github runner runs its jobs as its service account (SYSTEM), which can read the runner's credential and reach the gcp instance metadata (the node's cloud identity): remove runner.ephemeral (Windows github pools default to a registered runner service, which the firewall keeps from the metadata server; its user can read its own credentials), or give the nodes no cloud access a job may not have, or accept it",
    ]);
  });
});

describe('a YAML syntax error', () => {
  it.each([
    ['a reference in a flow mapping', 'pools: { a: { token: ${env:X} } }\n', 'x.yaml:1:22: YAML syntax: ${env:X} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${env:X}"'],
    [
      'a reference in a flow mapping of a whole policy',
      policy({ gh: 'token: ${env:GITHUB_TOKEN}' }),
      'x.yaml:3:43: YAML syntax: ${env:GITHUB_TOKEN} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${env:GITHUB_TOKEN}"',
    ],
    ['a reference in a flow list', 'a:\n  b: [${file:/run/k.pem}, c]\n', 'x.yaml:2:7: YAML syntax: ${file:/run/k.pem} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${file:/run/k.pem}"'],
    ['a reference in a flow mapping over several lines', 'pools:\n  a: {\n    token: ${env:X}\n  }\n', 'x.yaml:3:12: YAML syntax: ${env:X} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${env:X}"'],
    ['an unclosed flow mapping, a quoted reference in it', 'a: { b: "${env:X}", c: d\n', 'x.yaml:2:1: YAML syntax: Flow map in block collection must be sufficiently indented and end with a }'],
  ])('stops the file at its first error: %s', (_name, yaml, line) => {
    expect(load(yaml).lines).toEqual([line]);
  });

  it('leaves the other files of the policy checked', () => {
    const sub = mkdtempSync(join(dir, 'two-'));
    writeFileSync(join(sub, 'a.yaml'), 'pools: { a: { token: ${env:X} } }\n');
    writeFileSync(join(sub, 'b.yaml'), 'platforms:\n  aws: { type: aws, region: us-east-1 }\n');
    const r = loadPolicy([sub], { cwd: sub, env: {} });
    expect(r.problems.map(formatProblem)).toEqual([
      'a.yaml:1:22: YAML syntax: ${env:X} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${env:X}"',
      expect.stringMatching(/^b\.yaml:2:3: platforms\.aws: an aws platform names its backend: /),
      'b.yaml:2:3: warning: platforms.aws: no pool uses this platform',
    ]);
  });

  it('is no error unquoted in a block mapping', () => {
    const r = load('emitters:\n  gh:\n    type: github\n    owner: acme\n    token: ${env:GH}\n');
    expect(r.lines).toEqual(['x.yaml:2:3: warning: emitters.gh: no pool uses this emitter']);
  });
});
