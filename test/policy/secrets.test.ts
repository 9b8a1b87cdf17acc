import { describe, expect, it } from 'vitest';
import { findLiteralCredential, parseSecretRef, redact, resolveSecret, SecretResolutionError } from '../../src/policy/secrets.js';
import { formatDuration, parseDuration } from '../../src/policy/duration.js';

describe('secret references', () => {
  it.each([
    ['${env:GITLAB_TOKEN}', { kind: 'env', name: 'GITLAB_TOKEN' }],
    ['${file:/run/secrets/t}', { kind: 'file', name: '/run/secrets/t' }],
    ['${vault:x}', undefined],
    ['plain', undefined],
    ['${env:A} trailing', undefined],
  ])('parses %s', (text, want) => {
    const r = parseSecretRef(text);
    expect(r ? { kind: r.kind, name: r.name } : undefined).toEqual(want);
  });

  const deps = {
    env: { SET: 'abc123', EMPTY: '' },
    readFile: (p: string) => {
      if (p === 'ok') return 'file-secret\n';
      if (p === 'empty') return '\n';
      throw Object.assign(new Error('nope'), { code: p === 'denied' ? 'EACCES' : 'ENOENT' });
    },
  };
  it.each([
    ['${env:SET}', 'abc123'],
    ['${file:ok}', 'file-secret'],
  ])('resolves %s', (ref, value) => expect(resolveSecret(ref, deps)).toBe(value));

  it.each([
    ['${env:MISSING}', 'environment variable MISSING is not set'],
    ['${env:EMPTY}', 'environment variable EMPTY is set but empty'],
    ['${file:gone}', 'file does not exist'],
    ['${file:denied}', 'file is not readable'],
    ['${file:empty}', 'file is empty'],
  ])('fails to resolve %s with a reason and no value', (ref, reason) => {
    expect(() => resolveSecret(ref, deps)).toThrowError(SecretResolutionError);
    expect(() => resolveSecret(ref, deps)).toThrowError(`${ref}: ${reason}`);
  });

  it.each([
    ['gl' + 'pat-AbCdEfGhIjKlMnOpQrSt', /GitLab personal/],
    ['token is glrt-AbCdEfGhIjKlMnOpQrSt', /GitLab runner/],
    ['gh' + 'p_abcdefghijklmnopqrstuvwxyz0123456789', /GitHub personal/],
    ['AKIAABCDEFGHIJKLMNOP', /AWS/],
    ['-----BEGIN RSA PRIVATE KEY-----', /private key/],
    ['${env:GITHUB_TOKEN}', undefined],
    ['gl' + 'pat-short', undefined],
    ['ami-0123456789abcdef0', undefined],
  ])('flags literal credential %s', (text, what) => {
    const r = findLiteralCredential(text);
    if (what) expect(r).toMatch(what);
    else expect(r).toBeUndefined();
  });

  it('redacts known values', () => {
    expect(redact('Authorization: Bearer abc123xyz, again abc123xyz', ['abc123xyz'])).toBe('Authorization: Bearer ***, again ***');
  });
});

describe('durations', () => {
  it.each([
    ['30s', 30_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['2d', 172_800_000],
    ['0s', 0],
    ['10', undefined],
    ['10 m', undefined],
    ['1.5h', undefined],
    ['-5m', undefined],
    ['', undefined],
  ])('parses %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each([
    [90_000, '1m30s'],
    [0, '0s'],
    [3_600_000, '1h'],
    [86_400_500, '1d500ms'],
  ])('formats %d', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
