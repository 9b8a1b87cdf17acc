import type { Policy } from './types.js';

export interface SecretField {
  section: 'emitters' | 'platforms';
  name: string;
  path: string[];
  ref: string;
}

/** Every secret reference in a policy, with where it sits, for `validate --check-env` and redaction. */
export function secretFields(policy: Policy): SecretField[] {
  const out: SecretField[] = [];
  for (const e of Object.values(policy.emitters)) {
    const add = (path: string[], v: string | undefined) => {
      if (v && v.startsWith('${')) out.push({ section: 'emitters', name: e.name, path, ref: v });
    };
    if (e.type === 'gitlab') add(['token'], e.token);
    if (e.type === 'github') {
      add(['token'], e.token);
      add(['app', 'privateKey'], e.app?.privateKey);
    }
    if (e.type === 'jenkins') {
      add(['user'], e.user);
      add(['token'], e.token);
    }
  }
  return out;
}
