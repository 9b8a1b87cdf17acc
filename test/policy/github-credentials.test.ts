/**
 * A github emitter's `credentials:` list (issue 16): tokens and GitHub App installations as an
 * alternative to `token`/`app`, exactly one of the three forms, one credential per item, each
 * listed once; every secret in it a reference that `validate --check-env` resolves and places at
 * FILE:LINE:COL, and that the emitter receives resolved.
 */
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policyCases } from './cases.js';
import { createEmitters } from '../../src/emitters/index.js';
import { GithubEmitter } from '../../src/emitters/github.js';
import { secretFields, secretProblems } from '../../src/policy/secret-fields.js';

const { dir, load } = policyCases('parmanu-gh-credentials-');

/** The github emitter `gh` with `body` as its credential lines (from line 5), used by one pool. */
function policy(body: string[]): string {
  return [
    'emitters:',
    '  gh:',
    '    type: github',
    '    owner: acme',
    ...body,
    'platforms:',
    '  lab: { type: local }',
    'pools:',
    '  a: { emitter: gh, platform: lab, labels: [linux] }',
  ].join('\n');
}


const THREE = [
  '    credentials:',
  '      - token: ${env:GH_A}',
  '      - token: ${file:b.token}',
  '      - app:',
  '          appId: 123',
  '          installationId: 456',
  '          privateKey: ${file:app.pem}',
];

describe('github credentials', () => {
  it('takes a list of tokens and apps, each secret listed for resolution and redaction', () => {
    const r = load(policy(THREE));
    expect(r.lines).toEqual([]);
    expect(r.policy?.emitters.gh).toMatchObject({ credentials: [{ token: '${env:GH_A}' }, { token: '${file:b.token}' }, { app: { appId: 123, installationId: 456, privateKey: '${file:app.pem}' } }] });
    const fields = secretFields(r.policy as NonNullable<typeof r.policy>);
    expect(fields.map((f) => `${f.path.join('.')}=${f.ref}`)).toEqual(['credentials.0.token=${env:GH_A}', 'credentials.1.token=${file:b.token}', 'credentials.2.app.privateKey=${file:app.pem}']);
  });

  it('places an unresolvable secret of the list at its FILE:LINE:COL', () => {
    const r = load(policy(THREE));
    writeFileSync(join(dir, 'b.token'), 'emulated-pat-from-file');
    const problems = secretProblems(r, { env: {}, readFile: (p) => (p === 'b.token' ? 'emulated-pat-from-file' : (() => { throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' }); })()) });
    expect(problems.map((p) => `${p.line}:${p.col} ${p.path}`)).toEqual(['6:16 emitters.gh.credentials.0.token', '11:23 emitters.gh.credentials.2.app.privateKey']);
  });

  it('builds the emitter with every credential resolved, labelled without secrets', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs1', format: 'pem' } });
    const r = load(policy(THREE));
    const files: Record<string, string> = { 'b.token': 'emulated-pat-b-not-a-real-token', 'app.pem': privateKey };
    const emitters = createEmitters(r.policy as NonNullable<typeof r.policy>, { env: { GH_A: 'emulated-pat-a-not-a-real-token' }, readFile: (p) => files[p] as string });
    const gh = emitters.get('gh');
    expect(gh).toBeInstanceOf(GithubEmitter);
    const e = gh as GithubEmitter;
    expect(e.pool.all.map((c) => c.id)).toEqual(['token:1', 'token:2', 'app:123/456']);
    expect(e.preflight()).toEqual([]);
    expect(JSON.stringify(e.pool.all.map((c) => c.meta(Date.now())))).not.toMatch(/emulated-pat|PRIVATE KEY/);
  });

  it.each([
    ['credentials beside token', ['    token: ${env:T}', ...THREE], 'x.yaml:6:5: emitters.gh.credentials: give `credentials` or `token`, not both: put every token and app in the list'],
    ['credentials beside app', ['    app: { appId: 1, installationId: 2, privateKey: "${file:k.pem}" }', ...THREE], 'x.yaml:6:5: emitters.gh.credentials: give `credentials` or `app`, not both: put every token and app in the list'],
    ['an empty item', ['    credentials:', '      - {}'], 'x.yaml:6:9: emitters.gh.credentials.0: a credential is `{ token: ${env:NAME} }` or `{ app: { appId, installationId, privateKey } }`'],
    ['token and app in one item', ['    credentials:', '      - token: ${env:A}', '        app: { appId: 1, installationId: 2, privateKey: "${file:k.pem}" }'], 'x.yaml:7:9: emitters.gh.credentials.0.app: one credential per item: give `token` or `app`, not both (make them two items)'],
    ['the same token twice', ['    credentials:', '      - token: ${env:A}', '      - token: ${env:B}', '      - token: ${env:A}'], 'x.yaml:8:9: emitters.gh.credentials.2: the same token reference as credentials[0]: each credential is listed once'],
    ['the same installation twice', ['    credentials:', '      - app: { appId: 1, installationId: 2, privateKey: "${file:k.pem}" }', '      - app: { appId: 1, installationId: 2, privateKey: "${file:other.pem}" }'], 'x.yaml:7:9: emitters.gh.credentials.1: the same app installation as credentials[0]: each credential is listed once'],
    ['a literal token', ['    credentials:', '      - token: hunter2hunter2'], 'x.yaml:6:16: emitters.gh.credentials.0.token: must be a ${env:NAME} or ${file:path} reference, never a literal secret'],
    ['a misspelt key', ['    credentials:', '      - tokn: ${env:A}'], 'x.yaml:6:9: emitters.gh.credentials.0.tokn: unknown key; did you mean "token"?'],
    ['an app without its key', ['    credentials:', '      - app: { appId: 1, installationId: 2 }'], 'x.yaml:6:9: emitters.gh.credentials.0.app.privateKey: is required'],
    ['a bad app id', ['    credentials:', '      - app: { appId: -4, installationId: 2, privateKey: "${file:k.pem}" }'], 'x.yaml:6:23: emitters.gh.credentials.0.app.appId: must be the GitHub App\'s App ID (a positive whole number such as 123456, shown on the app\'s settings page) or its client ID (Iv1.… or Iv23…), not the number -4'],
    ['an empty list', ['    credentials: []'], 'x.yaml:5:18: emitters.gh.credentials: must have at least 1 item'],
    ['no credentials at all', [], 'x.yaml:2:3: emitters.gh: a github emitter needs `token` or `app` credentials (or a `credentials` list)'],
  ])('refuses %s at its place', (_name, body, line) => {
    const r = load(policy(body));
    expect(r.lines).toEqual([line]);
    expect(r.lines.join('\n')).not.toContain('hunter2');
  });
});
