/**
 * A node's spec: a short hash of everything that makes a node what it is — machine type, image,
 * disk, OS, and the bootstrap as rendered for the pool (runner settings as written in the policy,
 * labels, the runner kind and URL). It is recorded on the node's resources when the node is
 * created (`input.spec` on the local platform, the `parmanu:spec` tag on AWS, the `parmanu-spec`
 * label on GCP); a node whose recorded spec differs from the policy's is outdated and rolled out.
 * `version: latest` hashes as the word, so a new upstream release does not make nodes outdated,
 * and spot settings are left out (a spot node that fell back to on-demand is not outdated).
 * `runner.hooks` and `runner.config` are in the bootstrap, so changing them rolls the pool out;
 * On a `module` platform the module's source, version and inputs are in the spec too (changed
 * inputs roll the pool out; kept nodes keep their module call as recorded until then).
 * `machine.tags` are left out on purpose: retagging needs no new VM, so running nodes keep their
 * tags until they are replaced for another reason (new nodes and the pool's identity get them).
 */
import { createHash } from 'node:crypto';
import type { EmitterConfig, PlatformConfig, PoolConfig } from '../src/policy/types.js';
import { userData } from './bootstrap.js';
import { placeholderAccess } from './placeholders.js';

/** Name used in the bootstrap hashed for the spec (every node's own name is left out). */
const SPEC_NODE = 'parmanu-spec-node';

export function nodeSpec(pool: PoolConfig, emitter: EmitterConfig | undefined, platform?: PlatformConfig): string {
  const m = pool.machine;
  // A fixed source: where a node reads its secret is the platform's business, not the node's spec.
  const bootstrap = userData(pool, SPEC_NODE, placeholderAccess(emitter, pool), { kind: 'file', path: '/etc/parmanu/spec-credential' });
  // A module pool's node is also its module call: source, version and inputs (references as written).
  const module = platform?.type === 'module' ? { module: { source: platform.sourceAsWritten ?? platform.source, version: platform.version ?? null, inputs: platform.inputs } } : {};
  const basis = JSON.stringify({ type: m.type ?? null, image: m.image ?? null, diskGb: m.diskGb, os: m.os, bootstrap, ...module });
  return createHash('sha256').update(basis).digest('hex').slice(0, 12);
}
