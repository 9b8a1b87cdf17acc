/** Quoting and helpers shared by the Linux and Windows bootstraps. */
import { createHash } from 'node:crypto';
import type { PoolConfig } from '../../src/policy/types.js';

/** A POSIX shell single-quoted string: nothing inside is expanded (`$(…)`, backticks, `$VAR`, newlines). */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * A PowerShell single-quoted string: nothing inside is expanded (`$x`, `$(…)`, backticks). Inside
 * single quotes PowerShell treats the typographic quotes ‘ ’ ‚ ‛ as quote characters too, so
 * every one of them is doubled like `'`.
 */
export function psq(s: string): string {
  return `'${s.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** A YAML double-quoted scalar (JSON strings are valid YAML). */
export const yq = (s: string): string => JSON.stringify(s);

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * The labels a GitHub runner configured with a registration token is given: the pool's, plus
 * Parmanu's ownership marker `parmanu-pool-<pool>` (src/emitters/types.ts markerLabel; jobs match
 * labels as a subset, so the extra label takes nothing away).
 */
export function runnerLabels(pool: PoolConfig): string[] {
  return [...pool.labels, `parmanu-pool-${pool.name}`];
}

/**
 * A runner release the node downloads and verifies: its concrete version and its published SHA-256
 * per asset, keyed by the asset's OS-architecture part of the file name — GitLab runner
 * `linux-amd64`, `linux-arm64`, `windows-amd64` (`gitlab-runner-<key>`); GitHub actions runner
 * `linux-x64`, `linux-arm64`, `win-x64` (`actions-runner-<key>-<version>`). Jenkins has none:
 * `agent.jar` comes from the controller over TLS.
 */
export interface RunnerRelease {
  version: string;
  sha256: Record<string, string>;
}

export interface BootstrapOptions {
  /**
   * The release the runner binary is pinned to (resolved by the reconciler, `latest` included).
   * Absent: `runner.version` as written, without a checksum.
   */
  release?: RunnerRelease;
}

/** The concrete version to download (no leading `v`), or undefined for `latest` with no release given. */
export function concreteVersion(pool: PoolConfig, opts: BootstrapOptions): string | undefined {
  if (opts.release) return opts.release.version.replace(/^v/, '');
  return pool.runner.version === 'latest' ? undefined : pool.runner.version.replace(/^v/, '');
}
