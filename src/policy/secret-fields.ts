import type { LoadResult } from './load.js';
import { resolveSecret, SecretResolutionError, type SecretEnv } from './secrets.js';
import { locate } from './source.js';
import { inputStrings, isInputReference } from './module.js';
import type { Policy, Problem } from './types.js';

export interface SecretField {
  section: 'emitters' | 'platforms';
  name: string;
  path: Array<string | number>;
  ref: string;
}

/** Every secret reference in a policy, with where it sits, for `validate --check-env` and redaction. */
export function secretFields(policy: Policy): SecretField[] {
  const out: SecretField[] = [];
  for (const e of Object.values(policy.emitters)) {
    const add = (path: Array<string | number>, v: string | undefined) => {
      if (v && v.startsWith('${')) out.push({ section: 'emitters', name: e.name, path, ref: v });
    };
    if (e.type === 'gitlab') {
      add(['token'], e.token);
      add(['webhook', 'secret'], e.webhook?.secret);
    }
    if (e.type === 'github') {
      add(['token'], e.token);
      add(['webhook', 'secret'], e.webhook?.secret);
      add(['app', 'privateKey'], e.app?.privateKey);
      (e.credentials ?? []).forEach((c, i) => {
        add(['credentials', i, 'token'], c.token);
        add(['credentials', i, 'app', 'privateKey'], c.app?.privateKey);
      });
    }
    if (e.type === 'jenkins') {
      add(['user'], e.user);
      add(['token'], e.token);
    }
  }
  // A module platform's secret inputs (whole references anywhere in an input's value).
  for (const p of Object.values(policy.platforms)) {
    if (p.type !== 'module') continue;
    for (const [name, value] of Object.entries(p.inputs)) {
      for (const str of inputStrings(value)) if (isInputReference(str.value)) out.push({ section: 'platforms', name: p.name, path: ['inputs', name, ...str.path], ref: str.value });
    }
    for (const [name, provider] of Object.entries(p.providers)) {
      for (const str of inputStrings(provider.config)) if (isInputReference(str.value)) out.push({ section: 'platforms', name: p.name, path: ['providers', name, 'config', ...str.path], ref: str.value });
    }
  }
  return out;
}

/**
 * A problem at the reference's FILE:LINE:COL for every secret reference that does not resolve
 * (`validate --check-env`, and every command that is about to use the secrets). `emitters`
 * limits the check to the emitters a command will build. Values are never put in a message.
 */
export function secretProblems(loaded: Pick<LoadResult, 'policy' | 'origins'>, deps: SecretEnv, emitters?: ReadonlySet<string>): Problem[] {
  if (!loaded.policy) return [];
  const problems: Problem[] = [];
  for (const f of secretFields(loaded.policy)) {
    if (emitters && f.section === 'emitters' && !emitters.has(f.name)) continue;
    try {
      resolveSecret(f.ref, deps);
    } catch (err) {
      if (!(err instanceof SecretResolutionError)) throw err;
      const origin = loaded.origins.get(`${f.section}/${f.name}`);
      const full = [f.section, f.name, ...f.path];
      const pos = origin ? locate(origin.src, full) : { line: 1, col: 1 };
      problems.push({ file: origin?.src.file ?? '(policy)', line: pos.line, col: pos.col, path: full.join('.'), message: err.message, severity: 'error' });
    }
  }
  return problems;
}
