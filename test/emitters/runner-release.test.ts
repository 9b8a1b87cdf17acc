/**
 * Runner releases resolved by the emitters (pinned runner binaries): GitHub through its API with
 * the emitter's token (actions/runner release notes' BEGIN SHA markers), GitLab from the public
 * release source without the token (the highest stable release, the download site's
 * release.sha256); parsing, refusals, and the hour-long cache. All traffic goes to 127.0.0.1.
 */
import { describe, expect, it } from 'vitest';
import { GithubEmitter } from '../../src/emitters/github.js';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { parseGithubChecksums, parseGitlabChecksums, RELEASE_RETRY_MS, RELEASE_TTL_MS } from '../../src/emitters/release.js';
import { EmitterError } from '../../src/emitters/types.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { GithubEmulator } from '../emulators/github.js';
import { GitlabEmulator } from '../emulators/gitlab.js';

type GithubConfig = Extract<EmitterConfig, { type: 'github' }>;
type GitlabConfig = Extract<EmitterConfig, { type: 'gitlab' }>;
const common = { probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3 };
const ghConfig = (url: string): GithubConfig => ({ name: 'gh', type: 'github', owner: 'acme', token: '${env:GITHUB_TOKEN}', runnerOwner: 'org', runnerGroupId: 1, apiUrl: url, ...common });
const glConfig = (url: string): GitlabConfig => ({ name: 'gl', type: 'gitlab', url, token: '${env:GITLAB_TOKEN}', groups: ['platform'], runnerOwner: { group: 'platform' }, ...common });
const fastHttp = () => new HttpClient({ timeoutMs: 400, retries: 1, concurrency: 8, backoffMs: 5 });
const hex = (c: string) => c.repeat(64);
const GH_SUMS = { 'linux-x64': hex('a'), 'linux-arm64': hex('b'), 'win-x64': hex('c'), 'osx-x64': hex('d') };
const GL_SUMS = { 'linux-amd64': hex('1'), 'linux-arm64': hex('2'), 'windows-amd64': hex('3'), 'darwin-arm64': hex('4') };

describe('GitHub runner release', () => {
  it('resolves latest through the emitter API with its token, and reads the checksums between the BEGIN/END SHA markers', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.runnerReleases.push({ version: '2.320.0', sha256: { ...GH_SUMS, 'linux-x64': hex('e') } }, { version: '2.321.0', sha256: GH_SUMS }, { version: '2.322.0-rc1', sha256: GH_SUMS, prerelease: true });
      const e = new GithubEmitter(ghConfig(emu.url), { token: emu.token }, fastHttp());
      const r = await e.runnerRelease('latest');
      expect(r).toEqual({ version: '2.321.0', sha256: { 'linux-x64': hex('a'), 'linux-arm64': hex('b'), 'win-x64': hex('c') } });
      // Authenticated: the emulator refuses a request without the token (401), and this one was answered.
      expect(emu.count('GET', /^\/repos\/actions\/runner\/releases\/latest/)).toBe(1);
      // A concrete version: its tag.
      expect((await e.runnerRelease('v2.320.0')).sha256['linux-x64']).toBe(hex('e'));
      expect(emu.count('GET', /^\/repos\/actions\/runner\/releases\/tags\/v2\.320\.0$/)).toBe(1);
    } finally {
      await emu.stop();
    }
  });

  it('caches a resolution for an hour, and a failure for five minutes', async () => {
    const emu = await new GithubEmulator().start();
    try {
      const now = { t: 1_000_000 };
      emu.runnerReleases.push({ version: '2.321.0', sha256: GH_SUMS });
      const e = new GithubEmitter(ghConfig(emu.url), { token: emu.token }, fastHttp(), () => now.t);
      await e.runnerRelease('latest');
      emu.runnerReleases.push({ version: '2.322.0', sha256: GH_SUMS });
      now.t += RELEASE_TTL_MS - 1;
      expect((await e.runnerRelease('latest')).version).toBe('2.321.0');
      expect(emu.count('GET', /releases\/latest/)).toBe(1);
      now.t += 1;
      expect((await e.runnerRelease('latest')).version).toBe('2.322.0');
      expect(emu.count('GET', /releases\/latest/)).toBe(2);
      // A failure is repeated, not asked again, for RELEASE_RETRY_MS.
      await expect(e.runnerRelease('9.9.9')).rejects.toThrow(/HTTP 404/);
      await expect(e.runnerRelease('9.9.9')).rejects.toBeInstanceOf(EmitterError);
      expect(emu.count('GET', /releases\/tags\/v9\.9\.9/)).toBe(1);
      now.t += RELEASE_RETRY_MS;
      await expect(e.runnerRelease('9.9.9')).rejects.toThrow(/HTTP 404/);
      expect(emu.count('GET', /releases\/tags\/v9\.9\.9/)).toBe(2);
    } finally {
      await emu.stop();
    }
  });

  it('refuses a release whose notes publish no checksum for an asset a node downloads', async () => {
    const emu = await new GithubEmulator().start();
    try {
      emu.runnerReleases.push({ version: '2.321.0', sha256: { 'linux-x64': hex('a'), 'win-x64': hex('c') } });
      const e = new GithubEmitter(ghConfig(emu.url), { token: emu.token }, fastHttp());
      await expect(e.runnerRelease('latest')).rejects.toThrow(/no SHA-256 for linux-arm64/);
    } finally {
      await emu.stop();
    }
  });

  it('parses only well-formed markers', () => {
    const body = (sum: string) => `- actions-runner-linux-x64-2.321.0.tar.gz <!-- BEGIN SHA linux-x64 -->${sum}<!-- END SHA linux-x64 -->`;
    expect(parseGithubChecksums(body(hex('A')), ['linux-x64'], 'x')).toEqual({ 'linux-x64': hex('a') });
    expect(() => parseGithubChecksums(body('<LINUX_X64_SHA>'), ['linux-x64'], 'x')).toThrow(/no SHA-256 for linux-x64|not a SHA-256/);
    expect(() => parseGithubChecksums(body(hex('a').slice(1)), ['linux-x64'], 'x')).toThrow(/not a SHA-256/);
    expect(() => parseGithubChecksums(body(`${hex('a')}; curl evil`), ['linux-x64'], 'x')).toThrow();
    expect(() => parseGithubChecksums('no markers at all', ['linux-x64'], 'x')).toThrow(/no SHA-256 for linux-x64/);
    // linux-x64's marker is not linux-arm64's.
    expect(() => parseGithubChecksums(body(hex('a')), ['linux-arm64'], 'x')).toThrow(/linux-arm64/);
  });
});

describe('GitLab runner release', () => {
  async function setup(now?: { t: number }) {
    const emu = await new GitlabEmulator().start();
    const e = new GitlabEmitter(glConfig(emu.url), emu.token, fastHttp(), now ? () => now.t : Date.now, emu.runnerSource());
    return { emu, e };
  }

  it('resolves latest to the highest stable release (not the newest patch of an older line), checksums from release.sha256, without the token', async () => {
    const { emu, e } = await setup();
    try {
      emu.runnerReleases.push({ version: '17.4.0', sha256: GL_SUMS }, { version: '17.5.0', sha256: GL_SUMS }, { version: '17.4.1', sha256: { ...GL_SUMS, 'linux-amd64': hex('9') } });
      const r = await e.runnerRelease('latest');
      expect(r).toEqual({ version: '17.5.0', sha256: { 'linux-amd64': hex('1'), 'linux-arm64': hex('2'), 'windows-amd64': hex('3') } });
      expect((await e.runnerRelease('17.4.1')).sha256['linux-amd64']).toBe(hex('9'));
      expect(emu.count('GET', /^\/gitlab-runner-downloads\/v17\.5\.0\/release\.sha256$/)).toBe(1);
      // The public source never gets the emitter's token (a self-managed instance's token stays home).
      expect(emu.tokenLeaks).toEqual([]);
    } finally {
      await emu.stop();
    }
  });

  it('caches a resolution for an hour', async () => {
    const now = { t: 5_000_000 };
    const { emu, e } = await setup(now);
    try {
      emu.runnerReleases.push({ version: '17.5.0', sha256: GL_SUMS });
      await e.runnerRelease('latest');
      emu.runnerReleases.push({ version: '17.6.0', sha256: GL_SUMS });
      now.t += RELEASE_TTL_MS / 2;
      expect((await e.runnerRelease('latest')).version).toBe('17.5.0');
      now.t += RELEASE_TTL_MS;
      expect((await e.runnerRelease('latest')).version).toBe('17.6.0');
      expect(emu.count('GET', /gitlab-runner\/releases/)).toBe(2);
    } finally {
      await emu.stop();
    }
  });

  it('refuses a release whose release.sha256 is missing or lacks a binary', async () => {
    const { emu, e } = await setup();
    try {
      await expect(e.runnerRelease('17.9.9')).rejects.toThrow(/HTTP 404/);
      emu.runnerReleases.push({ version: '17.5.0', sha256: { 'linux-amd64': hex('1'), 'windows-amd64': hex('3') } });
      await expect(e.runnerRelease('latest')).rejects.toThrow(/no SHA-256 listed for binaries\/gitlab-runner-linux-arm64/);
    } finally {
      await emu.stop();
    }
  });

  it('parses release.sha256 as sha256sum writes it (two spaces, or a tab in older releases)', () => {
    const text = [`${hex('A')}  binaries/gitlab-runner-linux-amd64`, `${hex('b')}\tbinaries/gitlab-runner-windows-amd64.exe`, `${hex('c')} *binaries/gitlab-runner-linux-arm64`, `${hex('d')}  binaries/gitlab-runner-linux-amd64-fips`].join('\n');
    expect(parseGitlabChecksums(text, ['linux-amd64', 'linux-arm64', 'windows-amd64'], 'x')).toEqual({ 'linux-amd64': hex('a'), 'linux-arm64': hex('c'), 'windows-amd64': hex('b') });
    expect(() => parseGitlabChecksums(`${hex('a')}  binaries/gitlab-runner-linux-amd64.bak`, ['linux-amd64'], 'x')).toThrow(/no SHA-256 listed/);
    expect(() => parseGitlabChecksums('<html>not a checksum file</html>', ['linux-amd64'], 'x')).toThrow(/no SHA-256 listed/);
  });
});
