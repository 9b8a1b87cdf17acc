import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadPolicy } from '../policy/load.js';
import { secretProblems } from '../policy/secret-fields.js';
import { formatProblem, type Problem } from '../policy/types.js';
import { parse } from './args.js';
import type { Io } from './errors.js';

const HELP = `Usage: parmanu validate [PATH…] [--check-env] [--json]

Loads every *.yaml/*.yml policy under each PATH (default: policies/) and checks it:
schema, references between emitters, platforms and pools, cron and timezones, and that
no literal credential is committed. Prints FILE:LINE:COL: path: message per problem.

Options:
  --check-env   also check that every \${env:…} and \${file:…} reference resolves
                (values are never printed)
  --json        print {"ok", "files", "problems": [{file,line,col,path,message,severity}]}
  -h, --help    this help

Exit: 0 valid (warnings allowed), 2 invalid.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parse('validate', argv, { 'check-env': { type: 'boolean' }, json: { type: 'boolean' } }, true);
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const paths = (positionals.length ? positionals : ['policies']).map((p) => resolve(io.cwd, p));
  const result = loadPolicy(paths, { cwd: io.cwd, env: io.env });
  const problems: Problem[] = [...result.problems];

  if (values['check-env']) problems.push(...secretProblems(result, { env: io.env, readFile: (p) => readFileSync(resolve(io.cwd, p), 'utf8') }));

  const errors = problems.filter((p) => p.severity === 'error').length;
  const warnings = problems.length - errors;
  if (values.json) {
    io.out(JSON.stringify({ ok: errors === 0, files: result.files, problems }));
    return errors ? 2 : 0;
  }
  for (const p of problems) io.out(formatProblem(p));
  const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
  if (errors) {
    const files = new Set(problems.filter((p) => p.severity === 'error').map((p) => p.file)).size;
    io.out(`✖ ${plural(errors, 'error')}${warnings ? `, ${plural(warnings, 'warning')}` : ''} in ${plural(files, 'file')}; nothing was applied`);
    return 2;
  }
  const pol = result.policy;
  const counts = pol ? `${plural(Object.keys(pol.emitters).length, 'emitter')}, ${plural(Object.keys(pol.platforms).length, 'platform')}, ${plural(pol.pools.length, 'pool')}` : '';
  io.out(`✔ ${plural(result.files.length, 'file')} valid: ${counts}${warnings ? ` (${plural(warnings, 'warning')})` : ''}`);
  return 0;
}
