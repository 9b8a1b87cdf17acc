/**
 * What a pool's stack is rendered from: plain data. stacks/ turns it into Terraform and knows
 * nothing of CI platforms' APIs, history or terraform runs.
 */
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';

/** What a node's runner needs to register, as the emitter issued it (or a placeholder in synth). */
export type RunnerCredential =
  | { kind: 'gitlab'; url: string; token: string }
  | { kind: 'github'; jitConfig: string }
  | { kind: 'github'; url: string; registrationToken: string }
  | { kind: 'jenkins'; url: string; secret: string }
  /** replay: no runner registry, nothing to start. */
  | { kind: 'none' };

export interface NodeInput {
  /** `<pool>-<short id>`: the VM's name and its runner's name. */
  name: string;
  credential: RunnerCredential;
}

export interface PoolStackInput {
  pool: PoolConfig;
  platform: PlatformConfig;
  nodes: NodeInput[];
  /** Where the local backend keeps state: `<stateDir>/pools/<pool>/terraform.tfstate`. */
  stateDir: string;
}
