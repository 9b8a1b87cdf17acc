/**
 * The plan guard: before apply, the saved plan may only create the intended nodes and destroy the
 * drained (or vanished) ones. A node is every resource named for it — its VM `node_<name>`, its
 * power state `power_<name>` (AWS `aws_ec2_instance_state`) and its credential `credential_<name>`
 * (with `_version` / `_access` companions on GCP) — and the guard treats them as one. The pool's
 * identity (`pool_…`: role, instance profile, service account) may be created or updated, and
 * destroyed only by a plan that leaves the pool without nodes. A replacement or in-place update of
 * a node resource, a resource that is neither a node's nor the pool's, or more nodes touched than
 * decided aborts the pool with nothing applied. Pure.
 *
 * Module platform: a node is also its module instance, `module.node_<name>` (nested modules
 * included: the first segment names the node), beside Parmanu's record `terraform_data.node_<name>`:
 * every resource inside is that node's, created only for a node to create, destroyed only for one
 * to destroy, never updated or replaced (a module call has no standby); a resource in any other
 * module is refused.
 *
 * Standby: a node decided to start or stop (`power`) may change its power state in place and
 * nothing else — local `input.power` of its `terraform_data`, GCP `desired_status`, AWS its
 * `aws_ec2_instance_state` (created when the node had none) — checked on the plan's before and
 * after values, not only its actions. A node started with a fresh credential (`renew`) may have
 * its credential resources created, updated or replaced (a new secret version or delivery); its
 * VM never.
 */
import { CREDENTIAL_PREFIX, gcpStatus, NODE_PREFIX, POOL_RESOURCE_PREFIX as POOL_PREFIX, POWER_PREFIX, POWER_RESOURCE_TYPE } from '../policy/resources.js';
import type { ResourceChange } from './plan.js';

export { CREDENTIAL_PREFIX, NODE_PREFIX, POWER_PREFIX, POWER_RESOURCE_TYPE } from '../policy/resources.js';

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
  /** Nodes this apply starts or stops, with the power state each is to have. */
  power?: ReadonlyMap<string, 'running' | 'stopped'>;
  /** Nodes started with a fresh credential: their credential resources may be renewed. */
  renew?: ReadonlySet<string>;
}

/**
 * The node whose module instance holds a resource (module platform): the first segment of its
 * module address, `module.node_<name>` (`module.node_<name>.module.inner` too). Undefined for
 * any other module.
 */
export function nodeOfModule(moduleAddress: string): string | undefined {
  const m = /^module\.node_([^.[\]]+)(?:\.|$)/.exec(moduleAddress);
  return m?.[1];
}

/** The node a resource belongs to, by its name (`node_<n>`, `credential_<n>`, `credential_<n>_version`, `credential_<n>_access`). */
export function nodeOfResource(name: string): string | undefined {
  if (name.startsWith(NODE_PREFIX)) return name.slice(NODE_PREFIX.length) || undefined;
  if (name.startsWith(POWER_PREFIX)) return name.slice(POWER_PREFIX.length) || undefined;
  if (name.startsWith(CREDENTIAL_PREFIX)) return name.slice(CREDENTIAL_PREFIX.length).replace(/_(version|access)$/, '') || undefined;
  return undefined;
}

export function guardPlan(changes: readonly ResourceChange[], intent: Intent): string[] {
  const violations: string[] = [];
  const touched = new Set<string>();
  for (const r of changes) {
    const actions = r.change.actions;
    if (actions.every((a) => a === 'no-op' || a === 'read')) continue;
    if (r.module_address !== undefined) {
      // Everything inside a node's module instance is that node: created with it, destroyed with it, never changed.
      const node = nodeOfModule(r.module_address);
      if (r.mode !== 'managed' || !node || !node.startsWith(`${intent.pool}-`)) {
        violations.push(`${r.address}: ${actions.join('/')} of a resource that is not in a node module of pool ${intent.pool}`);
        continue;
      }
      touched.add(node);
      if (actions.includes('create') && actions.includes('delete')) violations.push(`${r.address}: replacement (a node is never replaced in place)`);
      else if (actions.includes('update')) violations.push(`${r.address}: in-place update (nodes are immutable)`);
      else if (actions.includes('create') && !intent.mayCreate.has(node)) violations.push(`${r.address}: create was not decided`);
      else if (actions.includes('delete') && !intent.mayDestroy.has(node)) violations.push(`${r.address}: destroy of a node that was not drained and confirmed idle`);
      else if (actions.includes('forget')) violations.push(`${r.address}: forget was not decided`);
      continue;
    }
    if (r.mode === 'managed' && r.name.startsWith(POOL_PREFIX)) {
      if (actions.includes('delete') && !intent.poolEmptied) violations.push(`${r.address}: ${actions.join('/')} of the pool's identity while the pool keeps nodes`);
      continue;
    }
    const node = r.mode === 'managed' ? nodeOfResource(r.name) : undefined;
    const isVm = r.name.startsWith(NODE_PREFIX);
    const isPower = r.name.startsWith(POWER_PREFIX);
    if (!node || !node.startsWith(`${intent.pool}-`) || (isVm && r.type !== intent.nodeType) || (isPower && r.type !== POWER_RESOURCE_TYPE)) {
      violations.push(`${r.address}: ${actions.join('/')} of a resource that is not a node of pool ${intent.pool}`);
      continue;
    }
    touched.add(node);
    const want = intent.power?.get(node);
    const renewed = !isVm && !isPower && intent.renew?.has(node) === true;
    if (actions.includes('create') && actions.includes('delete')) {
      // A node made this cycle whose create failed after its VM existed (AWS: an instance launched,
      // then terminated for capacity) is tainted: made again, with its capacity fallback, it is still a create.
      const taintedNew = intent.mayCreate.has(node) && r.action_reason === 'replace_because_tainted';
      if (!renewed && !taintedNew) violations.push(`${r.address}: replacement (a node is never replaced in place)`);
    } else if (actions.includes('update')) {
      if (renewed) continue;
      if (want === undefined || (!isVm && !isPower)) violations.push(`${r.address}: in-place update (nodes are immutable)`);
      else {
        const problem = powerOnly(r, want);
        if (problem) violations.push(`${r.address}: in-place update ${problem} (a start or stop changes only the node's power state)`);
      }
    } else if (actions.includes('create') && !intent.mayCreate.has(node)) {
      if (renewed) continue;
      if (isPower && want !== undefined) {
        const problem = powerOnly(r, want);
        if (problem) violations.push(`${r.address}: create ${problem}`);
      } else violations.push(`${r.address}: create was not decided`);
    }
    else if (actions.includes('delete') && !intent.mayDestroy.has(node) && !(intent.kept && !isVm && !intent.kept.has(node) && !intent.mayCreate.has(node))) violations.push(`${r.address}: destroy of a node that was not drained and confirmed idle`);
    else if (actions.includes('forget')) violations.push(`${r.address}: forget was not decided`);
  }
  const leftovers = intent.kept ? [...touched].filter((n) => !intent.kept?.has(n) && !intent.mayCreate.has(n) && !intent.mayDestroy.has(n)).length : 0;
  const powered = [...(intent.power?.keys() ?? [])].filter((n) => !intent.mayCreate.has(n) && !intent.mayDestroy.has(n)).length;
  const decided = intent.mayCreate.size + intent.mayDestroy.size + leftovers + powered;
  if (touched.size > decided) violations.push(`${touched.size} nodes changed, more than the ${decided} decided`);
  return violations;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * `before` and `after` agree on every value the plan knows: a value terraform computes only at
 * apply (`after_unknown`: GCP's `current_status`, a nested computed attribute) is omitted from
 * `after` (an unknown list element is null) and never counts as a change.
 */
function sameKnown(before: unknown, after: unknown, unknown: unknown): boolean {
  if (unknown === true) return true;
  if (Array.isArray(unknown) && Array.isArray(after) && Array.isArray(before)) {
    return before.length === after.length && after.every((a, i) => sameKnown(before[i], a, unknown[i]));
  }
  if (isRecord(unknown) && isRecord(after) && isRecord(before)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].every((k) => sameKnown(before[k], after[k], unknown[k]));
  }
  return same(before, after);
}

/**
 * Why a change of a node resource is more than setting its power state to `want` (undefined when
 * it is exactly that), from the plan's before and after values: local `input.power` with the rest
 * of `input` and `triggers_replace` unchanged; GCP `desired_status` with every other known value
 * unchanged; AWS the `aws_ec2_instance_state`'s `state`. An AWS instance never changes.
 */
function powerOnly(r: ResourceChange, want: 'running' | 'stopped'): string | undefined {
  const before = r.change.before ?? null;
  const after = r.change.after;
  const unknown = isRecord(r.change.after_unknown) ? r.change.after_unknown : {};
  if (!isRecord(after)) return 'with no planned values';
  const b = isRecord(before) ? before : {};
  if (r.type === POWER_RESOURCE_TYPE) {
    if (after.state !== want) return `to state ${JSON.stringify(after.state)}, not ${want}`;
    return Object.keys(after).every((k) => k === 'state' || k === 'force' || !(k in b) || sameKnown(b[k], after[k], unknown[k])) ? undefined : 'of more than its state';
  }
  if (r.type === 'terraform_data') {
    const bi = isRecord(b.input) ? b.input : {};
    const ai = isRecord(after.input) ? after.input : {};
    if (ai.power !== want) return `to power ${JSON.stringify(ai.power)}, not ${want}`;
    const keys = new Set([...Object.keys(bi), ...Object.keys(ai)]);
    keys.delete('power');
    const changed = [...keys].filter((k) => !same(bi[k], ai[k]));
    if (!same(b.triggers_replace, after.triggers_replace)) changed.push('triggers_replace');
    return changed.length ? `of ${changed.map((k) => (k === 'triggers_replace' ? k : `input.${k}`)).join(', ')}` : undefined;
  }
  if (r.type === 'google_compute_instance') {
    const status = gcpStatus(want);
    if (after.desired_status !== status) return `to desired_status ${JSON.stringify(after.desired_status)}, not ${status}`;
    const changed = Object.keys(after).filter((k) => k !== 'desired_status' && !sameKnown(b[k], after[k], unknown[k]));
    return changed.length ? `of ${changed.join(', ')}` : undefined;
  }
  return 'of a VM whose power state is a resource of its own';
}
