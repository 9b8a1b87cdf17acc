/**
 * A node's spec: a short hash of everything that makes a node what it is — machine type, image,
 * disk, OS, and the bootstrap as rendered for the pool (runner settings as written in the policy,
 * labels, the runner kind and URL). It is recorded on the node's resources when the node is
 * created (`input.spec` on the local platform, the `parmanu:spec` tag on AWS, the `parmanu-spec`
 * label on GCP); a node whose recorded spec differs from the policy's is outdated and rolled out.
 * `version: latest` hashes as the word, so a new upstream release does not make nodes outdated,
 * and spot settings are left out (a spot node that fell back to on-demand is not outdated).
 * `runner.hooks` and `runner.config` are in the bootstrap, so changing them rolls the pool out;
 * `machine.tags` are left out on purpose: retagging needs no new VM, so running nodes keep their
 * tags until they are replaced for another reason (new nodes and the pool's identity get them).
 */
import { createHash } from 'node:crypto';
import type { EmitterConfig, PoolConfig } from '../src/policy/types.js';
import { userData } from './bootstrap.js';
import { placeholderAccess } from './placeholders.js';

/** Name used in the bootstrap hashed for the spec (every node's own name is left out). */
const SPEC_NODE = 'parmanu-spec-node';

export function nodeSpec(pool: PoolConfig, emitter: EmitterConfig | undefined): string {
  const m = pool.machine;
  // A fixed source: where a node reads its secret is the platform's business, not the node's spec.
  const bootstrap = userData(pool, SPEC_NODE, placeholderAccess(emitter, pool), { kind: 'file', path: '/etc/parmanu/spec-credential' });
  const basis = JSON.stringify({ type: m.type ?? null, image: m.image ?? null, diskGb: m.diskGb, os: m.os, bootstrap });
  return createHash('sha256').update(basis).digest('hex').slice(0, 12);
}
