/**
 * The `module` platform's policy helpers: which sources are local paths, the variable names Parmanu
 * gives every node's module itself, and the secret references among the inputs. Pure but for
 * `withModulePath`, which the loader calls with the policy file's path.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ModuleInputValue, PlatformInput } from './schema.js';
import { SECRET_REF } from './secrets.js';

/** Terraform's local module paths: `./…` or `../…` (Windows `.\` too); an absolute path is one once resolved. */
export function isLocalModuleSource(source: string): boolean {
  return /^\.\.?[/\\]/.test(source) || isAbsolute(source);
}

/** The variables Parmanu itself gives each node's module: the module declares them; inputs cannot set them. */
export const MODULE_VARIABLES = ['name', 'pool', 'user_data', 'credential'] as const;
/** Names Terraform reserves for module call arguments: no variable can have them. */
export const TERRAFORM_RESERVED = ['source', 'version', 'providers', 'count', 'for_each', 'depends_on', 'lifecycle', 'locals'] as const;
/** A provider's local name in Terraform. */
export const PROVIDER_NAME = /^[a-z][a-z0-9_-]*$/;
/** A Terraform variable name (an identifier). */
export const MODULE_INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * A module platform as the loader keeps it: a relative local `source` resolved against the policy
 * file's directory (the stack renders it relative to the pool's working directory, which Terraform
 * reads as a local module), with the source as written and that directory kept beside it: nodes
 * record the source as written (a checkout that moves — a CI job's build directory — neither
 * outdates them nor loses their module) and are rendered from the directory of the day. Other
 * platforms and sources are unchanged.
 */
export function withModulePath<T extends PlatformInput>(platform: T, policyFile: string): T & { sourceAsWritten?: string; sourceBase?: string } {
  if (platform.type !== 'module' || !/^\.\.?[/\\]/.test(platform.source)) return platform;
  const out = { ...platform, source: resolve(dirname(policyFile), platform.source) } as T & { sourceAsWritten?: string; sourceBase?: string };
  out.sourceAsWritten = platform.source;
  out.sourceBase = dirname(resolve(policyFile));
  return out;
}

/** Whether a resolved local module source is a directory (checked by the rules: the loader already read the policy files). */
export function moduleDirExists(source: string): boolean {
  try {
    return existsSync(source) && statSync(source).isDirectory();
  } catch {
    return false;
  }
}

/** Every string of an input value with its path below the input (`[]` for the value itself). */
export function inputStrings(value: ModuleInputValue, path: Array<string | number> = []): Array<{ path: Array<string | number>; value: string }> {
  if (typeof value === 'string') return [{ path, value }];
  if (Array.isArray(value)) return value.flatMap((v, i) => inputStrings(v, [...path, i]));
  if (typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => inputStrings(v, [...path, k]));
  return [];
}

/** A string that is a whole `${env:…}`/`${file:…}` reference. */
export const isInputReference = (s: string): boolean => SECRET_REF.test(s);
/** A string that holds a reference inside other text (refused: a reference is a whole value). */
export const hasPartialReference = (s: string): boolean => !SECRET_REF.test(s) && /\$\{(?:env|file):/.test(s);
