/**
 * What the policy rule tests share: each case a policy file of its own in a temporary directory
 * (removed after the file's tests), loaded as `validate` would, its problems as `validate` prints
 * them with the file named `x.yaml`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/types.js';

export function policyCases(prefix: string, options: { dropUnused?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  return {
    dir,
    load(yaml: string) {
      const name = `case-${n++}.yaml`;
      const file = join(dir, name);
      writeFileSync(file, yaml);
      const r = loadPolicy([file], { cwd: dir, env: {} });
      // (The policy's unused emitters and platforms are warned about: not what a case is about, when dropped.)
      const lines = r.problems.map(formatProblem).map((l) => l.replace(`${name}:`, 'x.yaml:')).filter((l) => !options.dropUnused || !/no pool uses this/.test(l));
      return { ...r, lines };
    },
  };
}
