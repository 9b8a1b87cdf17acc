/**
 * How a node's resources are named in its pool's stack, and how its power state reads on each
 * platform: shared by stacks/ (which renders them) and src/terraform (the plan guard and the state
 * reader), which may not import each other (DESIGN "Layout and dependency rule"). Constants only.
 */

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
