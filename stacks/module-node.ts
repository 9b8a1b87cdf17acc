/**
 * The `module` platform: each node is one call of the user's Terraform module, `module.node_<name>`,
 * given `name`, `pool`, `user_data` (the node's bootstrap, cloud-init or PowerShell as on AWS and
 * GCP, raw text), `credential` (the node's runner secret from the ephemeral variable
 * `parmanu_credentials`: the module declares it `ephemeral = true, sensitive = true`, which
 * Terraform checks, and hands it only to write-only arguments) and the platform's `inputs`.
 *
 * Beside it Parmanu keeps its own record of the call, `terraform_data.node_<name>` (ignore_changes
 * all): the node's pool, spec and creation time, and the call's source, version, inputs and
 * user-data as they were when the node was created. A module call has no lifecycle, so a kept node
 * is rendered again from its record (the state's, handed back by the reconciler as `recorded`):
 * a policy change (new inputs, source or version, a new runner release in the bootstrap) reaches
 * new nodes only, and the kept ones, outdated by their spec, are rolled out (DESIGN "Node
 * lifecycle"). A secret input (a whole `${env:…}`/`${file:…}` reference) becomes a sensitive root
 * variable `parmanu_ref_<hash>` whose description is the reference: the terraform runner resolves
 * it into `TF_VAR_…` (src/terraform/modules.ts), so the value is in no rendered file.
 *
 * The bootstrap reads the node's credential from a root-only file the module puts on the VM
 * (`MODULE_CREDENTIAL_FILE`): the module knows its cloud's secret store, Parmanu does not.
 */
import { DataResource, TerraformHclModule, TerraformVariable } from 'cdktf';
import type { TerraformStack } from 'cdktf';
import { createHash } from 'node:crypto';
import { join, relative, resolve, sep } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { ModuleInputValue } from '../src/policy/schema.js';
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';
import { sha256, userData } from './bootstrap.js';
import { bootstrapOptions, CREDENTIALS_VARIABLE, type CredentialSource, type NodeInput } from './types.js';

export type ModulePlatform = Extract<PlatformConfig, { type: 'module' }>;

/** Where a module node's bootstrap reads its credential: the module writes it there (root-only) before the bootstrap runs. */
export const MODULE_CREDENTIAL_FILE = { linux: '/var/lib/parmanu/credential', windows: 'C:\\ProgramData\\Parmanu\\credential' } as const;
/** The prefix of the sensitive root variables that carry secret inputs. */
export const REF_VARIABLE_PREFIX = 'parmanu_ref_';

/** The root variable of a secret input reference (the same reference, the same variable, in every node). */
export const refVariable = (ref: string) => `${REF_VARIABLE_PREFIX}${createHash('sha256').update(ref).digest('hex').slice(0, 16)}`;

/** What a module node's record holds (flat strings: the local platform's reader reads them back). */
export interface ModuleRecord {
  pool: string;
  node: string;
  spec?: string;
  created_at?: string;
  module_source: string;
  module_version: string;
  /** The inputs as JSON (references as written, never their values). */
  inputs: string;
  /** The user-data, gzipped and base64 (what the module was given). */
  user_data_gz: string;
  bootstrap_sha256: string;
}

/** The bootstrap of a node of a module pool (cloud-init or PowerShell, by `machine.os`). */
export function moduleUserData(pool: PoolConfig, node: NodeInput): string {
  // A VM of some cloud: its instance metadata (169.254.169.254 on Azure, OpenStack and most others) is closed to jobs.
  const source: CredentialSource = { kind: 'file', path: MODULE_CREDENTIAL_FILE[pool.machine.os], vm: true };
  return userData(pool, node.name, node.access, source, bootstrapOptions(node));
}

/** A recorded source as a path: a relative local one (as the policy writes it) from the policy file's directory of today. */
function moduleDir(source: string, platform: ModulePlatform): string {
  return /^\.\.?[/\\]/.test(source) ? resolve(platform.sourceBase ?? '.', source) : source;
}

/**
 * The source as the module block names it: a local module directory relative to the pool's working
 * directory (`./…`: Terraform reads it in place, no copy), anything else as written.
 */
export function renderedSource(source: string, workDir: string): string {
  if (!source.startsWith('/')) return source;
  const rel = relative(workDir, source).split(sep).join('/');
  return rel.startsWith('../') || rel === '..' ? rel : `./${rel}`;
}

/** The record a new node gets, from the policy. */
export function newRecord(pool: PoolConfig, platform: ModulePlatform, node: NodeInput): ModuleRecord {
  const script = moduleUserData(pool, node);
  return {
    pool: pool.name,
    node: node.name,
    ...(node.spec ? { spec: node.spec } : {}),
    ...(node.createdAt !== undefined ? { created_at: String(Math.floor(node.createdAt / 1000)) } : {}),
    // A local source as the policy writes it (relative to the policy file): where the checkout lies does not matter.
    module_source: platform.sourceAsWritten ?? platform.source,
    module_version: platform.version ?? '',
    inputs: JSON.stringify(platform.inputs),
    user_data_gz: gzipSync(script).toString('base64'),
    bootstrap_sha256: sha256(script),
  };
}

/** A kept node's record as its state holds it, when it is whole; undefined otherwise (rendered from the policy). */
export function keptRecord(recorded: Record<string, string> | undefined): ModuleRecord | undefined {
  const r = recorded;
  if (!r || r.module_source === undefined || r.inputs === undefined || r.user_data_gz === undefined || r.pool === undefined || r.node === undefined) return undefined;
  try {
    JSON.parse(r.inputs);
    gunzipSync(Buffer.from(r.user_data_gz, 'base64'));
  } catch {
    return undefined;
  }
  return { ...r, module_version: r.module_version ?? '', bootstrap_sha256: r.bootstrap_sha256 ?? '' } as ModuleRecord;
}

/** A whole `${env:…}`/`${file:…}` reference (policy/secrets.ts SECRET_REF; stacks/ may import policy types only). */
const isInputReference = (s: string) => /^\$\{(env|file):([^}]+)\}$/.test(s);

/** A literal string for Terraform JSON (`${` and `%{` escaped). Same as pool-stack's tfLiteral (no import cycle). */
const literal = (s: string) => s.replace(/\$\{/g, '$$${').replace(/%\{/g, '%%{');

/** An input value as the module block gets it: references become their sensitive variable, every other string a literal. */
function renderInput(v: ModuleInputValue, refs: Set<string>): unknown {
  if (typeof v === 'string') {
    if (isInputReference(v)) {
      refs.add(v);
      return `\${var.${refVariable(v)}}`;
    }
    return literal(v);
  }
  if (Array.isArray(v)) return v.map((x) => renderInput(x, refs));
  // Keys too: Terraform's JSON syntax evaluates `${…}` in an object's keys.
  if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [literal(k), renderInput(x, refs)]));
  return v;
}

/**
 * Renders every node of a module pool: its record and its module call, and the sensitive
 * variables of the secret inputs they name. `workDir`: the pool's Terraform working directory.
 */
export function renderModuleNodes(stack: TerraformStack, pool: PoolConfig, platform: ModulePlatform, nodes: readonly NodeInput[], workDir: string): void {
  const refs = new Set<string>();
  // The providers the module uses, configured once here (a module configures none itself).
  for (const [name, p] of Object.entries(platform.providers)) {
    stack.addOverride(`terraform.required_providers.${name}`, { source: p.source, ...(p.version ? { version: p.version } : {}) });
    stack.addOverride(`provider.${name}`, renderInput(p.config, refs));
  }
  for (const node of nodes) {
    const kept = keptRecord(node.recorded);
    const rec = kept ?? newRecord(pool, platform, node);
    const r = new DataResource(stack, `record_${node.name}`, {
      // Recorded values come from Terraform state (external input): literal, like every string rendered here.
      input: Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, literal(String(v))])),
      lifecycle: { ignoreChanges: 'all' },
    });
    r.overrideLogicalId(`node_${node.name}`);
    const inputs = JSON.parse(rec.inputs) as Record<string, ModuleInputValue>;
    const m = new TerraformHclModule(stack, `node_${node.name}`, {
      source: renderedSource(moduleDir(rec.module_source, platform), workDir),
      ...(rec.module_version ? { version: rec.module_version } : {}),
      skipAssetCreationFromLocalModules: true,
      variables: {
        ...Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, renderInput(v, refs)])),
        name: node.name,
        pool: pool.name,
        user_data: literal(gunzipSync(Buffer.from(rec.user_data_gz, 'base64')).toString('utf8')),
        // A kept node has no entry: its write-only value is never read again. Written out: cdktf's Fn.lookup drops the default.
        credential: `\${lookup(var.${CREDENTIALS_VARIABLE}, ${JSON.stringify(node.name)}, "")}`,
      },
    });
    m.overrideLogicalId(`node_${node.name}`);
  }
  for (const ref of [...refs].sort()) {
    const v = new TerraformVariable(stack, refVariable(ref), { type: 'string', sensitive: true, nullable: false, description: ref });
    v.overrideLogicalId(refVariable(ref));
  }
}

/** The stack's Terraform working directory (`<stateDir>/pools/<stack>`: src/reconcile's poolDir), where relative module sources start. */
export const poolWorkDir = (stateDir: string, stack: string) => join(stateDir, 'pools', stack);
