/** What Parmanu reads of its environment beyond secrets. */

/**
 * Whether `CI` says this runs in a CI job (GitLab CI, GitHub Actions, Jenkins and most other CI
 * systems set it): set, non-empty, and not `false`, `0`, `no` or `off` (any case, surrounding
 * spaces ignored), so that `CI=false` or `CI=0` means "not in CI".
 */
export function inCi(env: Readonly<Record<string, string | undefined>>): boolean {
  const v = env.CI?.trim().toLowerCase();
  return v !== undefined && !['', 'false', '0', 'no', 'off'].includes(v);
}
