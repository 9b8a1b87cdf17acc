/**
 * `runner.hooks`, `runner.config` and `machine.tags` through the loader: hook scripts are read
 * relative to the policy file with their limits, and what passes reaches the normalized pool.
 * (Malformed configs and tags are in the invalid corpus.)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  aws: { type: aws, region: us-east-1 }
  gcp: { type: gcp, project: p, region: r, zone: z }
  lab: { type: local }
`;

let n = 0;
/** A policy in its own directory (policies/x.yaml), with files beside it (paths relative to that directory). */
function policy(pools: string, files: Record<string, string | Buffer> = {}) {
  const root = join(dir, `case-${n++}`);
  mkdirSync(join(root, 'policies', 'scripts'), { recursive: true });
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
