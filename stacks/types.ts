/**
 * What a pool's stack is rendered from: plain data. stacks/ turns it into Terraform and knows
 * nothing of CI platforms' APIs, history or terraform runs.
 */
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';

export type { RunnerCredential } from '../src/policy/types.js';
import type { RunnerCredential } from '../src/policy/types.js';

export interface NodeInput {
  /** `<pool>-<short id>`: the VM's name and its runner's name. */
  name: string;
  credential: RunnerCredential;
  /** The node's spec (stacks/spec.ts), recorded on its resources when it is created. */
  spec?: string;
  /** When the node was created (epoch ms), recorded on its resources so it survives a lost history. */
  createdAt?: number;
}

export interface PoolStackInput {
  pool: PoolConfig;
  platform: PlatformConfig;
  nodes: NodeInput[];
  /** Where the local backend keeps state: `<stateDir>/pools/<pool>/terraform.tfstate`. */
  stateDir: string;
}
