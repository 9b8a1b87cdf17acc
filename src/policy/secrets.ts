/**
 * Secret references. A policy never holds a credential: it holds `${env:NAME}` or `${file:path}`,
 * resolved at run time. Values are never printed; errors name the reference, not the value.
 */
export const SECRET_REF = /^\$\{(env|file):([^}]+)\}$/;

export interface SecretRef {
  kind: 'env' | 'file';
  name: string;
  /** The reference as written, safe to print. */
  text: string;
}

export function parseSecretRef(text: string): SecretRef | undefined {
  const m = SECRET_REF.exec(text);
  if (!m) return undefined;
  return { kind: m[1] as 'env' | 'file', name: (m[2] as string).trim(), text };
}

/** Patterns of literal credentials that must never be committed in a policy. */
export const LITERAL_CREDENTIALS: ReadonlyArray<{ pattern: RegExp; what: string }> = [
  { pattern: /glpat-[A-Za-z0-9_-]{8,}/, what: 'a GitLab personal access token (glpat-…)' },
  { pattern: /glrt-[A-Za-z0-9_-]{8,}/, what: 'a GitLab runner token (glrt-…)' },
  { pattern: /gldt-[A-Za-z0-9_-]{8,}/, what: 'a GitLab deploy token (gldt-…)' },
  { pattern: /ghp_[A-Za-z0-9]{20,}/, what: 'a GitHub personal access token (ghp_…)' },
  { pattern: /github_pat_[A-Za-z0-9_]{20,}/, what: 'a GitHub fine-grained token (github_pat_…)' },
  { pattern: /gh[sour]_[A-Za-z0-9]{20,}/, what: 'a GitHub app or OAuth token (ghs_/gho_/ghu_/ghr_…)' },
  { pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/, what: 'an AWS access key id (AKIA…)' },
  { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, what: 'a private key' },
];

export function findLiteralCredential(text: string): string | undefined {
  for (const { pattern, what } of LITERAL_CREDENTIALS) if (pattern.test(text)) return what;
  return undefined;
}

export interface SecretEnv {
  env: Readonly<Record<string, string | undefined>>;
  /** Reads a file; throws when it cannot. Injected so that resolution is testable and policy/ does no I/O of its own. */
  readFile: (path: string) => string;
}

export class SecretResolutionError extends Error {
  constructor(readonly ref: string, reason: string) {
    super(`${ref}: ${reason}`);
    this.name = 'SecretResolutionError';
  }
}

/** Resolves a reference to its value. The error names the reference, never a value. */
export function resolveSecret(text: string, deps: SecretEnv): string {
  const ref = parseSecretRef(text);
  if (!ref) throw new SecretResolutionError('(literal)', 'not a ${env:…} or ${file:…} reference');
  if (ref.kind === 'env') {
    const v = deps.env[ref.name];
    if (v === undefined) throw new SecretResolutionError(ref.text, `environment variable ${ref.name} is not set`);
    if (v === '') throw new SecretResolutionError(ref.text, `environment variable ${ref.name} is set but empty`);
    return v;
  }
  let content: string;
  try {
    content = deps.readFile(ref.name);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecretResolutionError(ref.text, code === 'ENOENT' ? 'file does not exist' : code === 'EACCES' ? 'file is not readable' : code === 'EISDIR' ? 'is a directory, not a file' : 'file cannot be read');
  }
  const value = content.replace(/\r?\n$/, '');
  if (value === '') throw new SecretResolutionError(ref.text, 'file is empty');
  return value;
}

/** Replaces every known secret value in `text` by `***`: the last line of defence for logs and errors. */
export function redact(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('***');
  return out;
}
