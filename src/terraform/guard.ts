/**
 * The plan guard: before apply, the saved plan may only create the intended nodes (new ones, or
 * kept ones that drifted away) and destroy the drained ones, all in this pool's node resource
 * type. A replacement, an in-place update, a resource outside the pool, or more changes than
 * decided aborts the pool with nothing applied. Pure.
 */
import type { ResourceChange } from './plan.js';

export interface Intent {
  pool: string;
  /** aws_instance | google_compute_instance | terraform_data */
  nodeType: string;
  /** Nodes that may be created: new ones, and kept ones missing from the infrastructure (drift). */
  mayCreate: ReadonlySet<string>;
  /** Nodes that may be destroyed: drained in an earlier cycle and idle now. */
  mayDestroy: ReadonlySet<string>;
}

export function guardPlan(changes: readonly ResourceChange[], intent: Intent): string[] {
  const violations: string[] = [];
  let count = 0;
  for (const r of changes) {
    const actions = r.change.actions;
    if (actions.every((a) => a === 'no-op' || a === 'read')) continue;
    count++;
    const node = r.type === intent.nodeType && r.mode === 'managed' && r.name.startsWith('node_') ? r.name.slice(5) : undefined;
    if (!node || !node.startsWith(`${intent.pool}-`)) {
      violations.push(`${r.address}: ${actions.join('/')} of a resource that is not a node of pool ${intent.pool}`);
      continue;
    }
    if (actions.includes('create') && actions.includes('delete')) violations.push(`${r.address}: replacement (a node is never replaced in place)`);
    else if (actions.includes('update')) violations.push(`${r.address}: in-place update (nodes are immutable)`);
    else if (actions.includes('create') && !intent.mayCreate.has(node)) violations.push(`${r.address}: create was not decided`);
    else if (actions.includes('delete') && !intent.mayDestroy.has(node)) violations.push(`${r.address}: destroy of a node that was not drained and confirmed idle`);
    else if (actions.includes('forget')) violations.push(`${r.address}: forget was not decided`);
  }
  if (count > intent.mayCreate.size + intent.mayDestroy.size) violations.push(`${count} changes, more than the ${intent.mayCreate.size + intent.mayDestroy.size} decided`);
  return violations;
}
