/**
 * The plan guard: before apply, the saved plan may only create the intended nodes and destroy the
 * drained (or vanished) ones. A node is every resource named for it — its VM `node_<name>` and its
 * credential `credential_<name>` (with `_version` / `_access` companions on GCP) — and the guard
 * treats them as one. The pool's identity (`pool_…`: role, instance profile, service account) may
 * be created or updated, and destroyed only by a plan that leaves the pool without nodes. A
 * replacement or in-place update of a node resource, a resource that is neither a node's nor the
 * pool's, or more nodes touched than decided aborts the pool with nothing applied. Pure.
 */
import type { ResourceChange } from './plan.js';

export interface Intent {
  pool: string;
  /** aws_instance | google_compute_instance | terraform_data: the type of a node's VM. */
  nodeType: string;
  /** Nodes that may be created (all their resources): the new ones. */
  mayCreate: ReadonlySet<string>;
  /** Nodes that may be destroyed (all their resources): drained and confirmed idle, or vanished. */
  mayDestroy: ReadonlySet<string>;
  /** The plan leaves the pool without nodes: its identity may go too. */
  poolEmptied?: boolean;
  /**
   * Nodes whose VM is in the state and stays. With it, resources of a node that is neither kept
   * nor decided (a credential left behind by a VM that vanished) may be destroyed: no VM uses them.
   */
  kept?: ReadonlySet<string>;
}

const NODE_PREFIX = 'node_';
const CREDENTIAL_PREFIX = 'credential_';
const POOL_PREFIX = 'pool_';

/** The node a resource belongs to, by its name (`node_<n>`, `credential_<n>`, `credential_<n>_version`, `credential_<n>_access`). */
export function nodeOfResource(name: string): string | undefined {
  if (name.startsWith(NODE_PREFIX)) return name.slice(NODE_PREFIX.length) || undefined;
  if (name.startsWith(CREDENTIAL_PREFIX)) return name.slice(CREDENTIAL_PREFIX.length).replace(/_(version|access)$/, '') || undefined;
  return undefined;
}

export function guardPlan(changes: readonly ResourceChange[], intent: Intent): string[] {
  const violations: string[] = [];
  const touched = new Set<string>();
  for (const r of changes) {
    const actions = r.change.actions;
    if (actions.every((a) => a === 'no-op' || a === 'read')) continue;
    if (r.mode === 'managed' && r.name.startsWith(POOL_PREFIX)) {
      if (actions.includes('delete') && !intent.poolEmptied) violations.push(`${r.address}: ${actions.join('/')} of the pool's identity while the pool keeps nodes`);
      continue;
    }
    const node = r.mode === 'managed' ? nodeOfResource(r.name) : undefined;
    const isVm = r.name.startsWith(NODE_PREFIX);
    if (!node || !node.startsWith(`${intent.pool}-`) || (isVm && r.type !== intent.nodeType)) {
      violations.push(`${r.address}: ${actions.join('/')} of a resource that is not a node of pool ${intent.pool}`);
      continue;
    }
    touched.add(node);
    if (actions.includes('create') && actions.includes('delete')) violations.push(`${r.address}: replacement (a node is never replaced in place)`);
    else if (actions.includes('update')) violations.push(`${r.address}: in-place update (nodes are immutable)`);
    else if (actions.includes('create') && !intent.mayCreate.has(node)) violations.push(`${r.address}: create was not decided`);
    else if (actions.includes('delete') && !intent.mayDestroy.has(node) && !(intent.kept && !isVm && !intent.kept.has(node) && !intent.mayCreate.has(node))) violations.push(`${r.address}: destroy of a node that was not drained and confirmed idle`);
    else if (actions.includes('forget')) violations.push(`${r.address}: forget was not decided`);
  }
  const leftovers = intent.kept ? [...touched].filter((n) => !intent.kept?.has(n) && !intent.mayCreate.has(n) && !intent.mayDestroy.has(n)).length : 0;
  const decided = intent.mayCreate.size + intent.mayDestroy.size + leftovers;
  if (touched.size > decided) violations.push(`${touched.size} nodes changed, more than the ${decided} decided`);
  return violations;
}
