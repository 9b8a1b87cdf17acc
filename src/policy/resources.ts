/**
 * How a node's resources are named in its pool's stack, and how its power state reads on each
 * platform: shared by stacks/ (which renders them) and src/terraform (the plan guard and the state
 * reader), which may not import each other (DESIGN "Layout and dependency rule"). Constants only,
 * and the pool's spot settings as stacks/ renders them and the capacity fallback reads them.
 */
import type { PoolConfig } from './types.js';

/** A node's VM: `<type>.node_<name>`. */
export const NODE_PREFIX = 'node_';
/** A node's credential resources: `credential_<name>` (GCP adds `_version` and `_access`). */
export const CREDENTIAL_PREFIX = 'credential_';
/** A node's power state as a resource of its own (AWS): `aws_ec2_instance_state.power_<name>`. */
export const POWER_PREFIX = 'power_';
/** The pool's own resources (its identity). */
export const POOL_RESOURCE_PREFIX = 'pool_';
/** The resource type of a node's power state on AWS (local and GCP keep it on the VM). */
export const POWER_RESOURCE_TYPE = 'aws_ec2_instance_state';

export type Power = 'running' | 'stopped';

/** A GCP instance's `desired_status` for a power state. */
export const gcpStatus = (power: Power): 'RUNNING' | 'TERMINATED' => (power === 'stopped' ? 'TERMINATED' : 'RUNNING');
/**
 * The power state a GCP instance's `desired_status` (RUNNING, SUSPENDED, TERMINATED) means:
 * SUSPENDED and TERMINATED are stopped. Any other value (an instance status on the way, such as
 * STAGING or STOPPING, should one ever be read here) is running: only a settled stop is standby.
 */
export const powerOfGcpStatus = (status: string): Power => (['TERMINATED', 'SUSPENDED'].includes(status) ? 'stopped' : 'running');

/** A pool's spot settings (`machine.spot`), normalized. */
export interface SpotSettings {
  /** `on-demand`: a node whose apply failed for spot capacity, price or count is re-rendered on-demand; `none`: spot only. */
  fallback: 'on-demand' | 'none';
  /** AWS `spotOptions.maxPrice`. */
  maxPrice?: number;
}

/** The pool's spot settings; undefined when it runs on-demand. `true` is spot only (no on-demand fallback), as it always was. */
export function spotOf(machine: Pick<PoolConfig['machine'], 'spot'>): SpotSettings | undefined {
  const s = machine.spot;
  if (s === false || s === undefined) return undefined;
  if (s === true) return { fallback: 'none' };
  return { fallback: s.fallback, ...(s.maxPrice !== undefined ? { maxPrice: s.maxPrice } : {}) };
}
