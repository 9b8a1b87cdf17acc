import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, cliAsync } from '../cli.js';
import { createCommentEmitter } from '../../src/emitters/index.js';
import { commentContext, postStickyComment } from '../../src/gitops/comment.js';
import { COMMENT_MARKER, diffPolicies, planMarkdown } from '../../src/gitops/diff.js';
import { normalize } from '../../src/policy/load.js';
import { PoolSchema } from '../../src/policy/schema.js';
import type { Policy } from '../../src/policy/types.js';
import { GithubEmulator } from '../emulators/github.js';
import { GitlabEmulator } from '../emulators/gitlab.js';

const policy = (pools: Record<string, Record<string, unknown>>): Policy => normalize({ emitters: new Map(), platforms: new Map(), pools: new Map(Object.entries(pools).map(([n, p]) => [n, PoolSchema.parse({ emitter: 'e', platform: 'lab', ...p })])) });

describe('diffPolicies', () => {
  const base = policy({ keep: { labels: ['a'] }, change: { labels: ['b'], scaling: { max: 5, spare: 0 } }, gone: { labels: ['c'] } });
  const head = policy({ keep: { labels: ['a'] }, change: { labels: ['b'], scaling: { max: 10, spare: 2 } }, fresh: { labels: ['d'] } });
  const latest = (p: string) => (p === 'change' ? { nodes: ['change-1', 'change-2'], at: 1000, queued: 4, running: 2 } : p === 'gone' ? { nodes: ['gone-1'], at: 1000, queued: 0, running: 0 } : undefined);

  it('lists added, removed, changed (old → new) and unchanged pools, and what they would do now', () => {
    const d = diffPolicies(base, head, latest);
    expect(d.pools.map((p) => [p.pool, p.change])).toEqual([['keep', 'unchanged'], ['change', 'changed'], ['fresh', 'added'], ['gone', 'removed']]);
    expect(d.pools[1]?.settings).toEqual([
      { path: 'scaling.max', old: 5, new: 10 },
      { path: 'scaling.spare', old: 0, new: 2 },
    ]);
    expect(d.pools[1]?.now).toEqual({ nodes: 2, queued: 4, running: 2, desired: 8, create: 6, destroy: 0, replace: 0, at: 1000 });
    expect(d.pools[3]?.now).toMatchObject({ desired: 0, destroy: 1 });
    expect(d.report).toEqual({ create: 6, update: 1, delete: 1 });
  });

  it('reports recent jobs that no pool of the new policy would take, marking those the change leaves behind', () => {
    const withEmitter = (pools: Record<string, Record<string, unknown>>) => ({ ...policy(pools), emitters: { e: { name: 'e', type: 'gitlab' } } }) as unknown as Policy;
    const recent = new Map([['e', { kind: 'gitlab' as const, sets: [{ labels: ['a'], jobs: 2 }, { labels: ['gpu'], jobs: 1 }, { labels: ['b'], jobs: 4 }] }]]);
    const d = diffPolicies(withEmitter({ pa: { labels: ['a'] }, pb: { labels: ['b'] } }), withEmitter({ pa: { labels: ['a'] } }), () => undefined, recent);
    expect(d.unmatched).toEqual([
      { emitter: 'e', labels: 'gpu', jobs: 1, new: false },
      { emitter: 'e', labels: 'b', jobs: 4, new: true },
    ]);
    expect(planMarkdown(d)).toContain('**Jobs no pool would take** (from the latest probe): `gpu` ×1 (e); `b` ×4 (e) ⚠ newly left behind by this change.');
  });

  it('renders markdown with the marker, a table, the setting changes and unchanged pools in one line', () => {
    const md = planMarkdown(diffPolicies(base, head, latest));
    expect(md.startsWith(`${COMMENT_MARKER}\n### Parmanu plan`)).toBe(true);
    expect(md).toContain('| `change` | changed | 2 | 8 | 6 | 0 | 0 |');
    expect(md).toContain('| `scaling.max` | 5 | 10 |');
    expect(md).toContain('1 pool unchanged: `keep`.');
    expect(md).toContain('Terraform: 6 to add, 1 pool changed, 1 to destroy.');
  });
});

describe('diffPolicies: rollout and removed pools', () => {
  const base = policy({ web: { labels: ['a'], machine: { image: 'img-1' } } });
  const head = policy({ web: { labels: ['a'], machine: { image: 'img-2' } } });
  const latest = (p: string) => (p === 'web' ? { nodes: ['web-1', 'web-2', 'web-3'], at: 1000, queued: 0, running: 3 } : p === 'old' ? { nodes: ['old-1'], at: 1000, queued: 0, running: 0 } : undefined);
  const specChanged = (a: { machine: { image?: string } }, b: { machine: { image?: string } }) => a.machine.image !== b.machine.image;

  it('says how many nodes a change of image will replace', () => {
    const d = diffPolicies(base, head, latest, new Map(), { specChanged });
    expect(d.pools[0]?.now?.replace).toBe(3);
    const md = planMarkdown(d);
    expect(md).toContain('| `web` | changed | 3 | 3 | 0 | 0 | 3 |');
    expect(md).toContain('Rollout: `web` replaces 3 nodes');
    expect(d.report).toEqual({ create: 3, update: 1, delete: 3 });
  });

  it('shows a pool Parmanu still manages but the policy no longer names as removed, without --base', () => {
    const d = diffPolicies(undefined, head, latest, new Map(), { known: ['old'] });
    expect(d.pools.find((p) => p.pool === 'old')).toMatchObject({ change: 'removed', now: { nodes: 1, desired: 0, destroy: 1 } });
  });

  it('counts what a new pool starts with', () => {
    const d = diffPolicies(base, policy({ ...{ web: { labels: ['a'], machine: { image: 'img-1' } } }, fresh: { labels: ['x'], scaling: { min: 2 } } }), latest);
    expect(d.pools.find((p) => p.pool === 'fresh')?.now).toMatchObject({ desired: 2, create: 2 });
    expect(d.report.create).toBe(2);
  });
});

describe('sticky plan comment (the emitters\' ensureComment)', () => {
  const post = (body: string, env: Record<string, string>) => {
    const ctx = commentContext(env);
    return postStickyComment(createCommentEmitter(ctx), ctx, body);
  };
  const mallory = { id: 66, username: 'mallory', name: 'Mallory' };

  it('is created once on a GitLab merge request, then updated, then left alone; notes by anyone else are never edited', async () => {
    const emu = await new GitlabEmulator().start();
    try {
      const g = emu.addGroup('platform');
      const p = emu.addProject('fleet', g);
      const env = { CI_API_V4_URL: `${emu.url}/api/v4`, CI_PROJECT_ID: String(p.id), CI_MERGE_REQUEST_IID: '7', PARMANU_COMMENT_TOKEN: emu.token };
      // Someone else's note carrying the marker comes first; a system note mentioning it too.
      emu.notes.set(`${p.id}/7`, [
        { id: 1, body: `${COMMENT_MARKER}\nI wrote this, edit me`, author: mallory, system: false },
        { id: 2, body: `${COMMENT_MARKER} mentioned`, author: { ...emu.user }, system: true },
      ]);
      expect(await post(`${COMMENT_MARKER}\nfirst`, env)).toMatchObject({ platform: 'gitlab', action: 'created' });
      expect(await post(`${COMMENT_MARKER}\nsecond`, env)).toMatchObject({ platform: 'gitlab', action: 'updated' });
      expect(await post(`${COMMENT_MARKER}\nsecond`, env)).toMatchObject({ platform: 'gitlab', action: 'unchanged' });
      const notes = emu.notes.get(`${p.id}/7`) ?? [];
      expect(notes.map((n) => [n.author.username, n.body])).toEqual([
        ['mallory', `${COMMENT_MARKER}\nI wrote this, edit me`],
        ['parmanu-bot', `${COMMENT_MARKER} mentioned`],
        ['parmanu-bot', `${COMMENT_MARKER}\nsecond`],
      ]);
      expect(emu.log.filter((l) => l.startsWith('PUT '))).toEqual([`PUT /api/v4/projects/${p.id}/merge_requests/7/notes/${notes[2]?.id}`]);
      expect(emu.unexpected).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('is created once on a GitHub pull request, then updated; comments by anyone else are never edited', async () => {
    const emu = await new GithubEmulator().start();
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-ev-'));
    try {
      emu.repos.push('fleet');
      writeFileSync(join(dir, 'event.json'), JSON.stringify({ pull_request: { number: 12 } }));
      emu.comments.push({ id: 1, issue: 12, body: `${COMMENT_MARKER}\nedit me`, user: { login: 'mallory', id: 66, type: 'User' } });
      const env = { GITHUB_API_URL: emu.url, GITHUB_REPOSITORY: 'acme/fleet', GITHUB_EVENT_PATH: join(dir, 'event.json'), PARMANU_COMMENT_TOKEN: emu.token };
      expect(await post(`${COMMENT_MARKER}\nfirst`, env)).toMatchObject({ platform: 'github', action: 'created' });
      expect(await post(`${COMMENT_MARKER}\nsecond`, env)).toMatchObject({ platform: 'github', action: 'updated' });
      expect(await post(`${COMMENT_MARKER}\nsecond`, env)).toMatchObject({ platform: 'github', action: 'unchanged' });
      expect(emu.comments.map((c) => [c.user.login, c.issue, c.body])).toEqual([
        ['mallory', 12, `${COMMENT_MARKER}\nedit me`],
        ['parmanu-bot', 12, `${COMMENT_MARKER}\nsecond`],
      ]);
      expect(emu.unexpected).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await emu.stop();
    }
  });

  it('with the workflow\'s GITHUB_TOKEN (GET /user refused), the comments of github-actions[bot] are ours, and only those', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.repos.push('fleet');
      emu.installationToken = true;
      // A user's comment with the marker, then one of another bot.
      emu.comments.push({ id: 1, issue: 3, body: `${COMMENT_MARKER}\nuser`, user: { login: 'mallory', id: 66, type: 'User' } });
      emu.comments.push({ id: 2, issue: 3, body: `${COMMENT_MARKER}\nother bot`, user: { login: 'renovate[bot]', id: 29139614, type: 'Bot' } });
      const env = { GITHUB_API_URL: emu.url, GITHUB_REPOSITORY: 'acme/fleet', GITHUB_REF: 'refs/pull/3/merge', GITHUB_TOKEN: emu.token };
      expect(await post(`${COMMENT_MARKER}\nfirst`, env)).toMatchObject({ action: 'created' });
      expect(await post(`${COMMENT_MARKER}\nsecond`, env)).toMatchObject({ action: 'updated' });
      expect(emu.comments.map((c) => [c.user.login, c.body])).toEqual([
        ['mallory', `${COMMENT_MARKER}\nuser`],
        ['renovate[bot]', `${COMMENT_MARKER}\nother bot`],
        ['github-actions[bot]', `${COMMENT_MARKER}\nsecond`],
      ]);
      // A personal token that GET /user refuses is not taken for the bot.
      await expect(post('x', { ...env, PARMANU_COMMENT_TOKEN: emu.token })).rejects.toThrow(/GitHub pull request #3: GET \/user: HTTP 403/);
    } finally {
      await emu.stop();
    }
  });

  it('says what it needs outside a merge or pull request', () => {
    expect(() => commentContext({})).toThrow(/needs a merge request pipeline/);
    expect(() => commentContext({ GITHUB_REPOSITORY: 'acme/fleet', GITHUB_TOKEN: 't', PARMANU_PR_NUMBER: 'x' })).toThrow(/PARMANU_PR_NUMBER must be a pull request number/);
  });
});

describe('parmanu plan', () => {
  const repo = mkdtempSync(join(tmpdir(), 'parmanu-plan-'));
  const pol = (max: number) => `emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab, scaling: { max: ${max} } }\n`;
  beforeAll(() => {
    mkdirSync(join(repo, 'policies'));
    writeFileSync(join(repo, 'policies', 'fleet.yaml'), pol(5));
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repo, stdio: 'ignore', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-qm', 'base');
    writeFileSync(join(repo, 'policies', 'fleet.yaml'), pol(9));
  });
  afterAll(() => rmSync(repo, { recursive: true, force: true }));

  it('compares the working tree with a git ref, prints JSON and writes the terraform report', () => {
    const r = cli(['plan', '--base', 'main', '--format', 'json', '--report', 'tf-report.json'], { cwd: repo });
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as { pools: Array<{ pool: string; change: string; settings: unknown[] }> };
    expect(out.pools).toEqual([{ pool: 'p', change: 'changed', settings: [{ path: 'scaling.max', old: 5, new: 9 }] }]);
    expect((out as unknown as { unmatched: unknown[] }).unmatched).toEqual([]);
    expect(JSON.parse(readFileSync(join(repo, 'tf-report.json'), 'utf8'))).toEqual({ create: 0, update: 1, delete: 0 });
  });

  it('refuses an unknown base with exit 2', () => {
    const r = cli(['plan', '--base', 'no-such-ref'], { cwd: repo });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--base no-such-ref is neither a directory nor a git ref/);
  });
});

describe('diffPolicies: new pools are counted', () => {
  const base = policy({ web: { labels: ['a'] } });
  it('a new pool with min 1 shows 0 → 1 and counts in "to add"', () => {
    const d = diffPolicies(base, policy({ web: { labels: ['a'] }, fresh: { labels: ['x'], scaling: { min: 1 } } }), () => undefined);
    expect(d.pools.find((p) => p.pool === 'fresh')?.now).toMatchObject({ nodes: 0, desired: 1, create: 1 });
    const md = planMarkdown(d);
    expect(md).toContain('| `fresh` | added | 0 | 1 | 1 | 0 | 0 |');
    expect(md).toContain('Terraform: 1 to add, 0 pools changed, 0 to destroy.');
    // The unchanged pool without history is not shown: no footnote about — either.
    expect(md).not.toContain('—');
  });

  it('a new pool is sized at the time of the plan: a schedule open now raises its floor, within maxStep', () => {
    const at = Date.parse('2026-11-02T09:00:00Z'); // a Monday
    const head = policy({ fresh: { labels: ['x'], scaling: { min: 1, maxStep: 3, schedules: [{ cron: '0 8 * * 1-5', duration: '10h', min: 5, timezone: 'UTC' }] } } });
    expect(diffPolicies(undefined, head, () => undefined, new Map(), { now: at }).pools[0]?.now).toMatchObject({ desired: 5, create: 3 });
    expect(diffPolicies(undefined, head, () => undefined, new Map(), { now: at + 12 * 3_600_000 }).pools[0]?.now).toMatchObject({ desired: 1, create: 1 });
    expect(diffPolicies(undefined, head, () => undefined, new Map(), { now: at }).report.create).toBe(3);
  });
});

describe('plan --base REF wherever the policy is', () => {
  const repo = mkdtempSync(join(tmpdir(), 'parmanu-plan-sub-'));
  const pool = (name: string, extra = '') => `  ${name}: { emitter: r, platform: lab${extra} }\n`;
  const head = 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n';
  const env = () => ({ PARMANU_STATE_DIR: join(repo, 'state') });
  beforeAll(() => {
    mkdirSync(join(repo, 'sub', 'dir', 'policies'), { recursive: true });
    writeFileSync(join(repo, 'sub', 'dir', 'policies', 'fleet.yaml'), head + pool('p', ', scaling: { max: 5 }'));
    // Two policy files side by side: --policy names one of them.
    mkdirSync(join(repo, 'files'));
    writeFileSync(join(repo, 'files', 'a.yaml'), head + pool('p', ', scaling: { max: 5 }'));
    writeFileSync(join(repo, 'files', 'b.yaml'), 'pools:\n' + pool('z'));
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repo, stdio: 'ignore', env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
    git('init', '-q', '-b', 'main');
    git('add', '.');
    git('commit', '-qm', 'base');
    writeFileSync(join(repo, 'sub', 'dir', 'policies', 'fleet.yaml'), head + pool('p', ', scaling: { max: 9 }') + pool('q', ', scaling: { min: 1 }'));
    writeFileSync(join(repo, 'files', 'a.yaml'), head + pool('p', ', scaling: { max: 9 }') + pool('q', ', scaling: { min: 1 }'));
    mkdirSync(join(repo, 'new-policies'));
    writeFileSync(join(repo, 'new-policies', 'fleet.yaml'), head + pool('n', ', scaling: { min: 2 }'));
  });
  afterAll(() => rmSync(repo, { recursive: true, force: true }));
  type Out = { pools: Array<{ pool: string; change: string; settings: unknown[]; now?: { create: number } }>; report: { create: number; update: number } };
  const expectChange = (r: { code: number | null; out: string; err: string }) => {
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out) as Out;
    expect(out.pools.map((p) => [p.pool, p.change])).toEqual([['p', 'changed'], ['q', 'added']]);
    expect(out.pools[0]?.settings).toEqual([{ path: 'scaling.max', old: 5, new: 9 }]);
    expect(out.report).toEqual({ create: 1, update: 1, delete: 0 });
  };

  it('a policy directory below the repository root, from the root', () => {
    expectChange(cli(['plan', '--policy', 'sub/dir/policies', '--base', 'HEAD', '--format', 'json'], { cwd: repo, env: env() }));
  });
  it('from a subdirectory of the repository (cwd is not the root)', () => {
    expectChange(cli(['plan', '--policy', 'dir/policies', '--base', 'HEAD', '--format', 'json'], { cwd: join(repo, 'sub'), env: env() }));
    expectChange(cli(['plan', '--policy', '.', '--base', 'main', '--format', 'json'], { cwd: join(repo, 'sub', 'dir', 'policies'), env: env() }));
  });
  it('a policy file', () => {
    expectChange(cli(['plan', '--policy', 'sub/dir/policies/fleet.yaml', '--base', 'HEAD', '--format', 'json'], { cwd: repo, env: env() }));
    // Only that file at the ref, not its neighbours.
    expectChange(cli(['plan', '--policy', 'files/a.yaml', '--base', 'HEAD', '--format', 'json'], { cwd: repo, env: env() }));
  });
  it('policies the ref does not have: every pool is new and counted', () => {
    const r = cli(['plan', '--policy', 'new-policies', '--base', 'HEAD'], { cwd: repo, env: env() });
    expect(r.code, r.err).toBe(0);
    expect(r.err.trim()).toBe('plan: HEAD has no new-policies: every pool counts as added');
    expect(r.out).toContain('| `n` | added | 0 | 2 | 2 | 0 | 0 |');
    expect(r.out).toContain('Terraform: 2 to add, 0 pools changed, 0 to destroy.');
  });
});

describe('plan --comment through the CLI', () => {
  it('outside CI: fails before printing anything, exit 2 with one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-plan-nc-'));
    try {
      writeFileSync(join(dir, 'fleet.yaml'), 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab }\n');
      for (const env of [{}, { GITHUB_REPOSITORY: 'acme/fleet', GITHUB_TOKEN: 'x' }, { CI_MERGE_REQUEST_IID: '7', CI_API_V4_URL: 'http://127.0.0.1:9/api/v4', CI_PROJECT_ID: '1' }] as Array<Record<string, string>>) {
        const r = cli(['plan', '--policy', 'fleet.yaml', '--comment'], { cwd: dir, env: { ...env, PARMANU_STATE_DIR: join(dir, 'state') } });
        expect(r.code).toBe(2);
        expect(r.out).toBe('');
        expect(r.err.trim().split('\n')).toHaveLength(1);
        expect(r.err).toMatch(/^parmanu: plan: --comment (needs|on GitHub needs|on GitLab needs)/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints a platform error without its control characters, exit 1', async () => {
    const emu = await new GitlabEmulator().start();
    const repo = mkdtempSync(join(tmpdir(), 'parmanu-plan-c-'));
    try {
      const p = emu.addProject('fleet', emu.addGroup('platform'));
      emu.faults.push({ method: 'GET', path: /\/merge_requests\/7\/notes$/, status: 403, body: { message: '403 Forbidden \u001b]0;pwned\u0007\u001b[2J\u009b31m' } });
      writeFileSync(join(repo, 'fleet.yaml'), 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab }\n');
      const env = { CI_API_V4_URL: `${emu.url}/api/v4`, CI_PROJECT_ID: String(p.id), CI_MERGE_REQUEST_IID: '7', PARMANU_COMMENT_TOKEN: emu.token, PARMANU_STATE_DIR: join(repo, 'state') };
      const r = await cliAsync(['plan', '--policy', 'fleet.yaml', '--comment'], { cwd: repo, env, timeoutMs: 60_000 });
      expect(r.code, r.err).toBe(1);
      expect(r.err).toMatch(/plan: GitLab merge request !7: GET \/api\/v4\/projects\/\d+\/merge_requests\/7\/notes: HTTP 403 Forbidden/);
      // eslint-disable-next-line no-control-regex
      expect(r.err + r.out).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    } finally {
      rmSync(repo, { recursive: true, force: true });
      await emu.stop();
    }
  });
});
