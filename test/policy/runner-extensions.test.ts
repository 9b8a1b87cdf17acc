/**
 * `runner.hooks`, `runner.config` and `machine.tags` through the loader: hook scripts are read
 * relative to the policy file with their limits, and what passes reaches the normalized pool.
 * (Malformed configs and tags are in the invalid corpus.)
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffPolicies } from '../../src/gitops/diff.js';
import { loadPolicy } from '../../src/policy/load.js';
import { AWS_EXTRA_BYTES, HOOK_MAX_BYTES } from '../../src/policy/schema.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-ext-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EMITTERS = `emitters:
  gl: { type: gitlab, url: https://gitlab.example.com, token: "\${env:GITLAB_TOKEN}", projects: [a/b], runnerOwner: { group: a } }
  gh: { type: github, owner: acme, token: "\${env:GITHUB_TOKEN}" }
  jk: { type: jenkins, url: https://j.example.com, user: bob, token: "\${env:JENKINS_TOKEN}" }
platforms:
  aws: { type: aws, region: us-east-1, backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 } }
  gcp: { type: gcp, project: p, region: europe-west1, zone: europe-west1-b, backend: { type: gcs, bucket: b, prefix: parmanu } }
  lab: { type: local }
`;

let n = 0;
/**
 * A policy in its own directory (policies/x.yaml), with files beside it (paths relative to that
 * directory); the directory is a repository (it holds `.git`) unless `repo` is false.
 */
function policy(pools: string, files: Record<string, string | Buffer> = {}, repo = true) {
  const root = join(dir, `case-${n++}`);
  mkdirSync(join(root, 'policies', 'scripts'), { recursive: true });
  if (repo) mkdirSync(join(root, '.git'), { recursive: true });
  for (const [p, c] of Object.entries(files)) writeFileSync(join(root, p), c);
  const file = join(root, 'policies', 'x.yaml');
  writeFileSync(file, `${EMITTERS}pools:\n${pools}`);
  return loadPolicy([file], { cwd: root });
}
const errors = (r: ReturnType<typeof loadPolicy>) => r.problems.filter((p) => p.severity === 'error').map(formatProblem);

describe('runner.hooks', () => {
  const hooked = (os = 'linux', platform = 'gcp') => `  p:\n    emitter: gl\n    platform: ${platform}\n    machine: { type: t, image: i, os: ${os} }\n    runner:\n      hooks: { before: scripts/before.sh, after: ../shared/after.sh }\n`;

  it('reads each script relative to the policy file into the pool, with its SHA-256', () => {
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const r = policy(hooked(), { 'policies/scripts/before.sh': '#!/bin/sh\necho before\n', 'shared/after.sh': 'echo after\n' });
    expect(errors(r)).toEqual([]);
    const hooks = r.policy?.pools[0]?.runner.hooks;
    expect(hooks?.before).toEqual({ path: 'scripts/before.sh', script: '#!/bin/sh\necho before\n', sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(hooks?.after?.script).toBe('echo after\n');
  });

  it.each([
    ['a missing file', {}, /runner\.hooks\.before: scripts\/before\.sh: no such file/],
    ['a directory', { dir: 'policies/scripts/before.sh' }, /scripts\/before\.sh is not a file/],
    ['a file over the limit', { 'policies/scripts/before.sh': '#'.repeat(HOOK_MAX_BYTES + 1) }, new RegExp(`is ${HOOK_MAX_BYTES + 1} bytes; a hook is at most ${HOOK_MAX_BYTES} bytes`)],
    ['invalid UTF-8', { 'policies/scripts/before.sh': Buffer.from([0x65, 0x63, 0x68, 0x6f, 0xff, 0x0a]) }, /is not valid UTF-8 text/],
    ['a NUL byte', { 'policies/scripts/before.sh': Buffer.from('echo a\0b\n') }, /contains a control character \(U\+0000\): a hook is text/],
    ['an escape sequence', { 'policies/scripts/before.sh': 'echo \u001b[2J\n' }, /contains a control character \(U\+001B\)/],
    ['CRLF line endings on linux', { 'policies/scripts/before.sh': 'echo a\r\necho b\r\n' }, /contains a carriage return \(CRLF line endings/],
    ['an empty script', { 'policies/scripts/before.sh': '  \n' }, /scripts\/before\.sh is empty/],
  ] as Array<[string, Record<string, string | Buffer>, RegExp]>)('refuses %s, pointing at the hook', (_n, files, message) => {
    const root = join(dir, `case-${n}`);
    mkdirSync(join(root, 'shared'), { recursive: true });
    if ('dir' in files) {
      mkdirSync(join(root, files.dir as string), { recursive: true });
      delete files.dir;
    }
    const r = policy(hooked(), { 'shared/after.sh': 'echo after\n', ...files });
    expect(r.policy).toBeUndefined();
    const e = errors(r);
    expect(e.some((l) => message.test(l)), e.join('\n')).toBe(true);
    expect(e.find((l) => message.test(l))).toMatch(/^policies\/x\.yaml:15:24: pools\.p\.runner\.hooks\.before: /);
  });

  it('takes a hook from a sibling folder of the policies inside the repository, and symlinks that stay in it', () => {
    const root = join(dir, `case-${n}`);
    mkdirSync(join(root, 'shared', 'real'), { recursive: true });
    writeFileSync(join(root, 'shared', 'real', 'before.sh'), 'echo linked\n');
    mkdirSync(join(root, 'policies', 'scripts'), { recursive: true });
    symlinkSync('../../shared/real/before.sh', join(root, 'policies', 'scripts', 'before.sh'));
    const r = policy(hooked(), { 'shared/after.sh': 'echo after\n' });
    expect(errors(r)).toEqual([]);
    expect(r.policy?.pools[0]?.runner.hooks?.before?.script).toBe('echo linked\n');
    expect(r.policy?.pools[0]?.runner.hooks?.after?.script).toBe('echo after\n');
  });

  describe('refuses a hook outside the policy\'s repository, naming the rule and never the file', () => {
    const outsideDir = mkdtempSync(join(tmpdir(), 'parmanu-outside-'));
    afterAll(() => rmSync(outsideDir, { recursive: true, force: true }));
    const secret = join(outsideDir, 'credentials');
    writeFileSync(secret, 'aws_secret_access_key = TOPSECRET\n');
    const refused = (r: ReturnType<typeof loadPolicy>, which: 'before' | 'after', how: string) => {
      expect(r.policy).toBeUndefined();
      const e = errors(r);
      expect(e.join('\n')).not.toContain('TOPSECRET');
      expect(e.find((l) => l.includes(`hooks.${which}:`)), e.join('\n')).toMatch(new RegExp(`^policies/x\\.yaml:15:\\d+: pools\\.p\\.runner\\.hooks\\.${which}: \\S+ ${how} outside the policy's repository: a hook is a file of the repository the policy is in`));
    };

    const only = (hooks: string) => `  p:\n    emitter: gl\n    platform: gcp\n    machine: { type: t, image: i }\n    runner:\n      hooks: ${hooks}\n`;

    it('through ..', () => {
      // To a file of the machine (whether it exists or not is not said).
      const up = `${'../'.repeat(12)}${secret.slice(1)}`;
      refused(policy(only(`{ before: scripts/before.sh, after: "${up}" }`), { 'policies/scripts/before.sh': 'echo ok\n' }), 'after', 'leads');
      refused(policy(only('{ before: ../../../root/.aws/credentials }')), 'before', 'leads');
      // Beside the repository, in a folder that exists.
      mkdirSync(join(dir, 'beside'), { recursive: true });
      writeFileSync(join(dir, 'beside', 'x.sh'), 'echo TOPSECRET\n');
      refused(policy(only('{ after: ../../beside/x.sh }')), 'after', 'leads');
    });

    it('through a committed symlink (to a file, or to a directory)', () => {
      const root = join(dir, `case-${n}`);
      mkdirSync(join(root, 'policies', 'scripts'), { recursive: true });
      symlinkSync(secret, join(root, 'policies', 'scripts', 'before.sh'));
      symlinkSync(outsideDir, join(root, 'policies', 'elsewhere'));
      const r = policy(only('{ before: scripts/before.sh, after: elsewhere/credentials }'));
      refused(r, 'before', 'leads through a symlink');
      refused(r, 'after', 'leads through a symlink');
    });

    it('without a .git above it, the policy file\'s directory is the repository', () => {
      mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
      const r = policy(hooked(), { 'policies/scripts/before.sh': 'echo ok\n', 'shared/after.sh': 'echo after\n' }, false);
      refused(r, 'after', 'leads');
      expect(errors(r)).toHaveLength(1);
    });
  });

  it('takes CRLF in a Windows hook, but never "</powershell>" (it would end the user-data block)', () => {
    const files = { 'policies/scripts/before.sh': 'Write-Output a\r\n', 'shared/after.sh': 'Write-Output "</PowerShell>"\n' };
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const r = policy(hooked('windows'), files);
    expect(errors(r)).toEqual([expect.stringMatching(/pools\.p\.runner\.hooks\.after: \.\.\/shared\/after\.sh contains "<\/powershell": it would end/)]);
  });

  it(`on aws, hooks and runner.config take at most ${AWS_EXTRA_BYTES} bytes of user-data`, () => {
    const big = `echo ${'x'.repeat(AWS_EXTRA_BYTES - 200)}\n`;
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const fits = policy(hooked('linux', 'aws'), { 'policies/scripts/before.sh': big, 'shared/after.sh': 'echo after\n' });
    expect(errors(fits)).toEqual([]);
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const over = policy(hooked('linux', 'aws'), { 'policies/scripts/before.sh': big, 'shared/after.sh': `echo ${'y'.repeat(300)}\n` });
    expect(errors(over)).toEqual([expect.stringMatching(/^policies\/x\.yaml:14:5: pools\.p\.runner: runner\.hooks and runner\.config take \d+ bytes of user-data; on aws they may take 6144/)]);
    // The same on gcp (metadata values take 256 KiB).
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    expect(errors(policy(hooked('linux', 'gcp'), { 'policies/scripts/before.sh': big, 'shared/after.sh': `echo ${'y'.repeat(300)}\n` }))).toEqual([]);
  });

  it('plan shows a changed hook by its digest, not its text', () => {
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const a = policy(hooked(), { 'policies/scripts/before.sh': 'echo one\n', 'shared/after.sh': 'echo after\n' }).policy;
    mkdirSync(join(dir, `case-${n}`, 'shared'), { recursive: true });
    const b = policy(hooked(), { 'policies/scripts/before.sh': 'echo two\n', 'shared/after.sh': 'echo after\n' }).policy;
    if (!a || !b) throw new Error('invalid');
    const d = diffPolicies(a, b, () => undefined);
    expect(d.pools[0]?.settings.map((s) => s.path)).toEqual(['runner.hooks.before.sha256']);
  });
});

describe('runner.config and machine.tags that pass', () => {
  it('keeps each runner kind\'s form and the tags as given', () => {
    const r = policy(
      [
        '  g:\n    emitter: gl\n    platform: aws\n    machine: { type: t, image: i, tags: { team: ci, "cost center": "eng/42", "k8s.io/x": "a+b=c@d" } }\n    runner:\n      executor: docker\n      config: |\n        environment = ["FOO=bar"]\n        [runners.docker]\n          privileged = true\n          volumes = ["/cache", "/var/run/docker.sock:/var/run/docker.sock"]\n        [runners.cache]\n          Type = "s3"\n        [runners.cache.s3]\n          BucketName = "ci-cache"\n',
        '  h:\n    emitter: gh\n    platform: gcp\n    machine: { type: t, image: i, tags: { team: ci, cost_center: "42", empty: "" } }\n    runner:\n      config: { HTTPS_PROXY: "http://proxy:3128", RUNNER_ALLOW_RUNASROOT: "1", _X: "a \'b\' $c" }\n',
        '  j:\n    emitter: jk\n    platform: lab\n    runner: { config: [-Xmx2g, "-XX:+UseG1GC", -Dhudson.slaves.ChannelPinger.pingIntervalSeconds=30] }\n',
      ].join(''),
    );
    expect(errors(r)).toEqual([]);
    const [g, h, j] = r.policy?.pools ?? [];
    expect(g?.runner.config).toContain('[runners.docker]\n  privileged = true\n');
    expect(g?.machine.tags).toEqual({ team: 'ci', 'cost center': 'eng/42', 'k8s.io/x': 'a+b=c@d' });
    expect(h?.runner.config).toEqual({ HTTPS_PROXY: 'http://proxy:3128', RUNNER_ALLOW_RUNASROOT: '1', _X: "a 'b' $c" });
    expect(j?.runner.config).toEqual(['-Xmx2g', '-XX:+UseG1GC', '-Dhudson.slaves.ChannelPinger.pingIntervalSeconds=30']);
  });

  it('warns where the setting does nothing', () => {
    const r = policy('  j:\n    emitter: jk\n    platform: lab\n    machine: { tags: { team: ci } }\n');
    expect(r.problems.map(formatProblem)).toContainEqual(expect.stringMatching(/warning: pools\.j\.machine\.tags: the local platform creates no cloud resources/));
  });
});

describe('runner.ephemeral when the policy does not write it', () => {
  const pool = (name: string, emitter: string, runner = '') => `  ${name}:\n    emitter: ${emitter}\n    platform: gcp\n    labels: [${name}]\n    machine: { type: t, image: i }\n${runner ? `    runner: ${runner}\n` : ''}`;
  const ephemeral = (r: ReturnType<typeof loadPolicy>) => Object.fromEntries((r.policy?.pools ?? []).map((p) => [p.name, p.runner.ephemeral]));

  it('is true on github (just-in-time runners), false on gitlab and jenkins, and what is written wins', () => {
    const r = policy(
      [
        pool('gh-default', 'gh'),
        pool('gh-other-settings', 'gh', '{ version: latest }'),
        pool('gh-false', 'gh', '{ ephemeral: false }'),
        pool('gh-true', 'gh', '{ ephemeral: true }'),
        pool('gl-default', 'gl'),
        pool('jk-default', 'jk'),
        pool('jk-true', 'jk', '{ ephemeral: true }'),
      ].join(''),
    );
    // The defaults say nothing: no problem of any pool (unused emitters and platforms aside).
    expect(errors(r)).toEqual([]);
    expect(r.problems.filter((p) => p.path.startsWith('pools.')).map(formatProblem)).toEqual([]);
    expect(ephemeral(r)).toEqual({ 'gh-default': true, 'gh-other-settings': true, 'gh-false': false, 'gh-true': true, 'gl-default': false, 'jk-default': false, 'jk-true': true });
  });

  it('is false on a Windows github pool (the registered service the firewall keeps from metadata), unless written', () => {
    const winPool = (name: string, runner = '') => pool(name, 'gh', runner).replace('{ type: t, image: i }', '{ type: t, image: i, os: windows }');
    const r = policy([winPool('gh-win'), winPool('gh-win-true', '{ ephemeral: true }'), pool('gh-linux', 'gh')].join(''));
    expect(errors(r)).toEqual([]);
    expect(ephemeral(r)).toEqual({ 'gh-win': false, 'gh-win-true': true, 'gh-linux': true });
  });

  it('follows the kind of the emitter the pool names, in whichever file that emitter is', () => {
    const root = join(dir, `case-${n++}`);
    mkdirSync(join(root, 'policies'), { recursive: true });
    const [emitters, rest] = EMITTERS.split('platforms:\n');
    writeFileSync(join(root, 'policies', 'b-pools.yaml'), `pools:\n${pool('late', 'gh')}${pool('gitlab', 'gl')}`);
    writeFileSync(join(root, 'policies', 'a-emitters.yaml'), emitters ?? '');
    writeFileSync(join(root, 'policies', 'c-platforms.yaml'), `platforms:\n${rest ?? ''}`);
    const r = loadPolicy([join(root, 'policies')], { cwd: root });
    expect(errors(r)).toEqual([]);
    expect(r.problems.filter((p) => p.path.startsWith('pools.')).map(formatProblem)).toEqual([]);
    expect(ephemeral(r)).toEqual({ late: true, gitlab: false });
  });

  it('is true for a default github pool in the plan diff too: writing ephemeral: true changes nothing, writing false does', () => {
    const a = policy(pool('p', 'gh')).policy;
    const b = policy(pool('p', 'gh', '{ ephemeral: true }')).policy;
    const c = policy(pool('p', 'gh', '{ ephemeral: false }')).policy;
    if (!a || !b || !c) throw new Error('invalid');
    expect(diffPolicies(a, b, () => undefined).pools.flatMap((p) => p.settings)).toEqual([]);
    expect(diffPolicies(a, c, () => undefined).pools[0]?.settings.map((s) => s.path)).toEqual(['runner.ephemeral']);
  });
});

describe('runner.version', () => {
  it.each(['latest', '17.5.0', 'v2.321.0', '17.5.0-rc1', 'v17.5.0-rc.1'])('takes %s', (version) => {
    const r = policy(`  p:\n    emitter: gl\n    platform: lab\n    runner: { version: "${version}" }\n`);
    expect(errors(r)).toEqual([]);
    expect(r.policy?.pools[0]?.runner.version).toBe(version);
  });
  // Refusals (17.5, v2.321, 17.5.0.1) are in the invalid corpus.
});

describe('Windows pools whose jobs run as the runner service account (SYSTEM)', () => {
  const win = (emitter: string, platform: string, runner: string, os = 'windows') => `  p:\n    emitter: ${emitter}\n    platform: ${platform}\n    machine: { type: t, image: i, os: ${os} }\n    runner: ${runner}\n`;
  const warnings = (r: ReturnType<typeof loadPolicy>) => r.problems.filter((p) => p.severity === 'warning' && /SYSTEM/.test(p.message)).map(formatProblem);

  it.each([
    ['a gitlab shell runner on aws', win('gl', 'aws', '{ executor: shell }'), /a gitlab runner \(shell executor\) runs its jobs as its service account \(SYSTEM\), which can read the runner's credential: use runner\.executor: docker, or accept it$/],
    ['a gitlab runner of the default executor on gcp', win('gl', 'gcp', '{ jobsPerNode: 2 }'), /a gitlab runner \(shell executor, the default\) .*: use runner\.executor: docker, or accept it$/],
    ['a github JIT runner on gcp', win('gh', 'gcp', '{ ephemeral: true }'), /an ephemeral \(JIT\) github runner runs its jobs as its service account \(SYSTEM\), which can read the runner's credential and reach the gcp instance metadata/],
    ['a jenkins agent on aws', win('jk', 'aws', '{ jobsPerNode: 2 }'), /a jenkins agent .* reach the aws instance metadata .*: use ephemeral nodes \(runner\.ephemeral: true, one job each\), or accept it$/],
  ])('warns about %s, on machine.os, and the policy stays valid', (_n, pools, message) => {
    const r = policy(pools);
    expect(errors(r)).toEqual([]);
    expect(r.policy).toBeDefined();
    const w = warnings(r);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatch(/^policies\/x\.yaml:13:39: warning: pools\.p\.machine\.os: on Windows /);
    expect(w[0]).toMatch(message);
  });

  it.each([
    ['a gitlab docker runner', win('gl', 'aws', '{ executor: docker }')],
    ['a github runner registered by token (not ephemeral)', win('gh', 'gcp', '{ ephemeral: false }')],
    ['a github pool that leaves ephemeral to its Windows default', win('gh', 'gcp', '{ jobsPerNode: 1 }')],
    ['a Windows pool on the local platform', win('jk', 'lab', '{ jobsPerNode: 1 }').replace('{ type: t, image: i, os: windows }', '{ os: windows }')],
    ['a linux jenkins pool', win('jk', 'aws', '{ jobsPerNode: 1 }', 'linux')],
  ])('says nothing about %s', (_n, pools) => {
    const r = policy(pools);
    expect(errors(r)).toEqual([]);
    expect(warnings(r)).toEqual([]);
  });
});
