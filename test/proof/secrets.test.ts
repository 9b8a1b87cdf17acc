/**
 * Secret scan of every user-facing output, end to end: the compiled CLI against the GitLab emulator
 * with its token in the environment. Each command's stdout and stderr, its JSON, the report, and
 * the merge-request comment are scanned for the emulator's credentials (the API token and the
 * runner tokens it issued), which do exist on disk in the synthesized stacks (mode 0600), so the
 * scan is looking for strings that are really there to leak.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../cli.js';
import { issuedSecrets } from '../emulators/base.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { scanStateDir, expectNoSecrets, leaks, SecretLeak } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-secrets-'));
let emu: GitlabEmulator;
let project: GlProject;

const policy = (url: string, max: number) => `emitters:
  gl:
    type: gitlab
    url: ${url}
    token: \${env:GL_TOKEN}
    groups: [platform]
    runnerOwner: { group: platform }
    requestTimeout: 2s
    retries: 1
platforms:
  lab: { type: local }
pools:
  linux:
    emitter: gl
    platform: lab
    labels: [linux]
    scaling: { max: ${max}, predict: false }
`;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { GL_TOKEN: emu.token, PARMANU_STATE_DIR: join(dir, 'state'), ...extra };
}
const run = (args: string[], extra: Record<string, string> = {}) => cliAsync(args, { cwd: dir, env: env(extra), timeoutMs: 120_000 });

/** Every file under `d`, recursively. */
function files(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(d, e.name)) : [join(d, e.name)]));
}

beforeAll(async () => {
  emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  project = emu.addProject('api', group);
  emu.addJob(project, 'pending', ['linux']);
  emu.addJob(project, 'pending', ['linux']);
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'fleet.yaml'), policy(emu.url, 5));
  mkdirSync(join(dir, 'base'));
  writeFileSync(join(dir, 'base', 'fleet.yaml'), policy(emu.url, 3));
});
afterAll(async () => {
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the secret scan', () => {
  it('finds an issued credential anywhere in a text, and names it only by its first characters', () => {
    issuedSecrets.add('emulated-probe-secret-000000');
    expect(leaks('nothing here')).toEqual([]);
    expect(leaks('Authorization: emulated-probe-secret-000000.')).toEqual(['emulat…(28 chars)']);
    expect(() => expectNoSecrets('stdout', 'x emulated-probe-secret-000000 x')).toThrow(SecretLeak);
    issuedSecrets.delete('emulated-probe-secret-000000');
  });
});

describe('no credential reaches stdout, stderr, JSON, reports or comments', { timeout: 180_000 }, () => {
  it('validate --check-env --json', async () => {
    const r = await run(['validate', '--check-env', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ ok: true });
  });

  it('reconcile --json registers runners; their tokens are only in the 0600 credential files terraform wrote', async () => {
    const r = await run(['reconcile', '--json']);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as { pools: Array<{ pool: string; create: string[] }> };
    expect(out.pools[0]).toMatchObject({ pool: 'linux', create: [expect.any(String), expect.any(String)] });
    expect(emu.runners).toHaveLength(2);
    // The runner tokens were issued (so the scan looks for strings the CLI really held)…
    expect([...issuedSecrets].filter((s) => s.startsWith('glrt-')).length).toBeGreaterThanOrEqual(2);
    // …and no file holds one (stacks, state, saved plans, history) but the local platform's
    // credential files, which terraform's provisioner wrote 0600 from the ephemeral variable.
    const written = files(join(dir, 'state'));
    expect(written.some((f) => f.endsWith('cdk.tf.json'))).toBe(true);
    const scanned = await scanStateDir(join(dir, 'state'));
    expect(scanned).toMatchObject({ credentialFiles: 2 });
    expect(scanned.plans).toBeGreaterThan(0);
    for (const f of written.filter((x) => x.endsWith('cdk.tf.json'))) expect(statSync(f).mode & 0o777).toBe(0o600);
  });

  it('reconcile --verbose (progress and debug logs)', async () => {
    emu.addJob(project, 'pending', ['linux']);
    const r = await run(['reconcile', '--verbose']);
    expect(r.code, r.err).toBe(0);
    expect(r.err.length + r.out.length).toBeGreaterThan(0);
  });

  it('status --json and report --format json', async () => {
    const s = await run(['status', '--json']);
    expect(s.code, s.err).toBe(0);
    expect((JSON.parse(s.out) as { pools: Array<{ nodes: unknown[] }> }).pools[0]?.nodes.length).toBeGreaterThanOrEqual(2);
    const rep = await run(['report', '--format', 'json']);
    expect(rep.code, rep.err).toBe(0);
    const html = await run(['report', '--out', 'report.html']);
    expect(html.code, html.err).toBe(0);
    expectNoSecrets('report.html', readFileSync(join(dir, 'report.html'), 'utf8'));
  });

  it('plan --comment posts a sticky merge-request comment without credentials', async () => {
    const ci = { CI_API_V4_URL: `${emu.url}/api/v4`, CI_PROJECT_ID: String(project.id), CI_MERGE_REQUEST_IID: '7', PARMANU_COMMENT_TOKEN: emu.token };
    const r = await run(['plan', '--base', 'base', '--format', 'json', '--comment', '--report', 'tf-report.json'], ci);
    expect(r.code, r.err).toBe(0);
    const notes = emu.notes.get(`${project.id}/7`) ?? [];
    expect(notes).toHaveLength(1);
    expect(notes[0]?.body).toContain('scaling.max');
    for (const n of notes) expectNoSecrets('the plan comment', n.body);
    expectNoSecrets('tf-report.json', readFileSync(join(dir, 'tf-report.json'), 'utf8'));
  });

  it('a rejected token fails the probe with a message that does not echo it', async () => {
    const wrong = 'emulated-wrong-token-0000000000';
    issuedSecrets.add(wrong);
    try {
      const r = await run(['reconcile', '--json'], { GL_TOKEN: wrong });
      expect(r.code).toBe(1);
      const out = JSON.parse(r.out) as { ok: boolean; pools: Array<{ reasons: string[]; create: string[]; destroy: string[] }> };
      expect(out.ok).toBe(false);
      expect(out.pools[0]).toMatchObject({ create: [], destroy: [] });
      expect(out.pools[0]?.reasons.join('\n')).toMatch(/probe failed .*401.*check the token.*holding/);
      expect(r.out + r.err).not.toMatch(/\n\s+at .*\(/);
    } finally {
      issuedSecrets.delete(wrong);
    }
  });
});
