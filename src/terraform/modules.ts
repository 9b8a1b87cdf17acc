/**
 * What a module platform's stack needs of the terraform runner, read from the rendered stack
 * (`cdk.tf.json`, Parmanu's own output, validated with zod):
 *  - its module calls, hashed: every new `module "node_<name>"` call must be installed (`terraform
 *    get`) before a plan or a state pull can read the configuration;
 *  - the sensitive variables of secret inputs (`parmanu_ref_<hash>`, described by the reference
 *    `${env:NAME}`/`${file:path}` they stand for), resolved into `TF_VAR_…` for this call only:
 *    the value is in no file Parmanu writes.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { SecretEnv } from '../policy/secrets.js';

/** Prefix of the reference variables (stacks/module-node.ts REF_VARIABLE_PREFIX; src/ may not import stacks' constructs). */
const REF_PREFIX = 'parmanu_ref_';

const StackSchema = z
  .object({
    module: z.record(z.string(), z.object({ source: z.string(), version: z.string().optional() }).loose()).optional(),
    variable: z.record(z.string(), z.object({ description: z.string().optional() }).loose()).optional(),
  })
  .loose();

function readStack(dir: string): z.output<typeof StackSchema> | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, 'cdk.tf.json'), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = StackSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A hash of the stack's module calls (name, source, version); undefined when it has none. */
export function moduleCallsHash(dir: string): string | undefined {
  const calls = Object.entries(readStack(dir)?.module ?? {}).map(([k, m]) => [k, m.source, m.version ?? ''] as const);
  if (!calls.length) return undefined;
  return createHash('sha256').update(JSON.stringify(calls.sort((a, b) => a[0].localeCompare(b[0])))).digest('hex');
}

export class ModuleInputError extends Error {}

/**
 * A reference's value, read as policy/secrets.ts resolveSecret reads one (terraform/ may not import
 * it): `${env:NAME}` from the environment, `${file:path}` the file without its last newline. The
 * error names the reference, never a value.
 */
function resolveReference(ref: string, deps: SecretEnv): string {
  const m = /^\$\{(env|file):([^}]+)\}$/.exec(ref);
  if (!m) throw new ModuleInputError(`module input ${ref}: not a \${env:…} or \${file:…} reference`);
  const name = (m[2] as string).trim();
  if (m[1] === 'env') {
    const v = deps.env[name];
    if (v === undefined || v === '') throw new ModuleInputError(`module input ${ref}: environment variable ${name} is ${v === undefined ? 'not set' : 'set but empty'}`);
    return v;
  }
  let v: string;
  try {
    v = deps.readFile(name).replace(/\r?\n$/, '');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModuleInputError(`module input ${ref}: ${code === 'ENOENT' ? 'file does not exist' : code === 'EACCES' ? 'file is not readable' : 'file cannot be read'}`);
  }
  if (v === '') throw new ModuleInputError(`module input ${ref}: file is empty`);
  return v;
}

/** `TF_VAR_…` for each secret input the stack names, resolved now; a reference that does not resolve is an error naming it (never a value). */
export function referenceEnv(dir: string, deps: SecretEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(readStack(dir)?.variable ?? {})) {
    if (!name.startsWith(REF_PREFIX) || v.description === undefined) continue;
    out[`TF_VAR_${name}`] = resolveReference(v.description, deps);
  }
  return out;
}
