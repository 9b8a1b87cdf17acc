/**
 * Runner releases: `latest` (or a concrete version) resolved by the reconciler into a concrete
 * version and the SHA-256 its publisher lists for each binary, so that a node downloads a pinned
 * runner and verifies it (stacks/bootstrap: `sha256sum -c`, `Get-FileHash`) and no booting VM asks
 * a rate-limited API which release is the latest.
 *
 * Sources (public material, parsed here):
 * - GitHub actions runner: the release body of github.com/actions/runner (releaseNote.md), whose
 *   checksum list wraps each SHA-256 in `<!-- BEGIN SHA linux-x64 -->…<!-- END SHA linux-x64 -->`.
 * - GitLab runner: the download site's `release.sha256` (`<sha256>  binaries/gitlab-runner-linux-amd64`,
 *   one file a line, as `sha256sum` writes it; older releases separate with a tab).
 */
import { EmitterError, type RunnerRelease } from './types.js';

/** How long a resolution is reused by an emitter. */
export const RELEASE_TTL_MS = 60 * 60_000;
/** How long a failed resolution is not asked again (the error is repeated meanwhile). */
export const RELEASE_RETRY_MS = 5 * 60_000;

/** The assets a node can download, per runner kind (the keys of RunnerRelease.sha256). */
export const GITHUB_ASSETS = ['linux-x64', 'linux-arm64', 'win-x64'] as const;
export const GITLAB_ASSETS = ['linux-amd64', 'linux-arm64', 'windows-amd64'] as const;

const VERSION = /^v?(\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?)$/;
const HEX = /^[0-9a-f]{64}$/;

/** The version without its `v`, or an EmitterError when it is not one (it ends up in user-data). */
export function releaseVersion(tag: string, what: string): string {
  const m = VERSION.exec(tag.trim());
  if (!m?.[1]) throw new EmitterError(`${what}: ${JSON.stringify(tag.slice(0, 40))} is not a release version`);
  return m[1];
}

/**
 * The checksums an actions/runner release body publishes for `assets`, from its
 * `<!-- BEGIN SHA <asset> -->…<!-- END SHA <asset> -->` markers. Every asset must be there.
 */
export function parseGithubChecksums(body: string, assets: readonly string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const asset of assets) {
    const esc = asset.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`<!--\\s*BEGIN SHA ${esc}\\s*-->\\s*([^<\\s]*)\\s*<!--\\s*END SHA ${esc}\\s*-->`).exec(body);
    if (!m) throw new EmitterError(`${what}: the release notes publish no SHA-256 for ${asset} (no BEGIN/END SHA markers)`);
    const sum = (m[1] ?? '').toLowerCase();
    if (!HEX.test(sum)) throw new EmitterError(`${what}: the SHA-256 published for ${asset} is not a SHA-256`);
    out[asset] = sum;
  }
  return out;
}

/**
 * The checksums of a GitLab runner `release.sha256` for `assets` (`binaries/gitlab-runner-<asset>`,
 * `.exe` on Windows). Every asset must be listed.
 */
export function parseGitlabChecksums(text: string, assets: readonly string[], what: string): Record<string, string> {
  const byFile = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$/.exec(line.trim());
    if (m?.[1] && m[2]) byFile.set(m[2].replace(/^\.\//, ''), m[1].toLowerCase());
  }
  const out: Record<string, string> = {};
  for (const asset of assets) {
    const file = `binaries/gitlab-runner-${asset}${asset.startsWith('windows-') ? '.exe' : ''}`;
    const sum = byFile.get(file);
    if (!sum) throw new EmitterError(`${what}: no SHA-256 listed for ${file}`);
    out[asset] = sum;
  }
  return out;
}

/**
 * One emitter's resolutions by requested version: reused for RELEASE_TTL_MS; a failure is
 * remembered for RELEASE_RETRY_MS (the same error, no new request), so a platform that is down
 * is not asked every cycle.
 */
export class ReleaseCache {
  private readonly entries = new Map<string, { at: number; release?: RunnerRelease; error?: EmitterError }>();
  /** Requests made (for tests and metrics). */
  lookups = 0;

  constructor(private readonly clock: () => number) {}

  async get(version: string, resolve: (version: string) => Promise<RunnerRelease>): Promise<RunnerRelease> {
    const now = this.clock();
    const hit = this.entries.get(version);
    if (hit?.release && now - hit.at < RELEASE_TTL_MS) return hit.release;
    if (hit?.error && now - hit.at < RELEASE_RETRY_MS) throw hit.error;
    this.lookups++;
    try {
      const release = await resolve(version);
      this.entries.set(version, { at: now, release });
      return release;
    } catch (err) {
      const error = err instanceof EmitterError ? err : new EmitterError(String((err as Error).message ?? err));
      this.entries.set(version, { at: now, error });
      throw error;
    }
  }
}
