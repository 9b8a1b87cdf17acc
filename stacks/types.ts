/**
 * What a pool's stack is rendered from: plain data. stacks/ turns it into Terraform and knows
 * nothing of CI platforms' APIs, history or terraform runs.
 *
 * A node's runner credential never reaches the stack: its public parts (`RunnerAccess`: runner
 * kind, URL) go into the bootstrap; its secret goes to the platform's secret store through a
 * write-only argument fed by an ephemeral variable (DESIGN "Runner credentials"), and the
 * bootstrap reads it from there (`CredentialSource`) at boot and at every start.
 */
import type { PlatformConfig, PoolConfig } from '../src/policy/types.js';

export type { RunnerCredential } from '../src/policy/types.js';
import type { RunnerCredential } from '../src/policy/types.js';
import type { BootstrapOptions, RunnerRelease } from './bootstrap/common.js';

/** What a node's runner needs besides its secret. */
export type RunnerAccess =
  | { kind: 'gitlab'; url: string }
  /** GitHub just-in-time runner: the secret is the encoded JIT config (single use, one job). */
  | { kind: 'github'; mode: 'jit' }
  /** GitHub runner configured with a registration token (long-lived or `--ephemeral`). */
  | { kind: 'github'; mode: 'registration'; url: string }
  | { kind: 'jenkins'; url: string }
  /** replay: nothing to start; `file`: its runner's token goes to the node's credential file (local platform: how the replay sees the node up). */
  | { kind: 'none'; file?: boolean };

/** Where a node's bootstrap reads its runner credential's secret. */
export type CredentialSource =
  /** AWS SSM Parameter Store SecureString, read with the pool's instance profile. */
  | { kind: 'aws-ssm'; region: string; parameter: string }
  /** GCP Secret Manager secret (its latest version), read with the pool's service account. */
  | { kind: 'gcp-secret'; project: string; secret: string }
  /**
   * The local platform: the 0600 file terraform's local-exec provisioner wrote beside the state.
   * `vm`: a root-only file on a cloud VM (module platform: the module puts it there), whose
   * instance metadata is closed to jobs as on AWS and GCP.
   */
  | { kind: 'file'; path: string; vm?: boolean }
  | { kind: 'none' };

/** The public parts of a credential (what may appear in user-data). */
export function accessOf(cred: RunnerCredential): RunnerAccess {
  switch (cred.kind) {
    case 'gitlab':
      return { kind: 'gitlab', url: cred.url };
    case 'github':
      return 'jitConfig' in cred ? { kind: 'github', mode: 'jit' } : { kind: 'github', mode: 'registration', url: cred.url };
    case 'jenkins':
      return { kind: 'jenkins', url: cred.url };
    case 'none':
      return cred.token !== undefined ? { kind: 'none', file: true } : { kind: 'none' };
  }
}

/** The secret part of a credential: what goes to the secret store, nowhere else. */
export function secretOf(cred: RunnerCredential): string | undefined {
  switch (cred.kind) {
    case 'gitlab':
      return cred.token;
    case 'github':
      return 'jitConfig' in cred ? cred.jitConfig : cred.registrationToken;
    case 'jenkins':
      return cred.secret;
    case 'none':
      return cred.token;
  }
}

export interface NodeInput {
  /** `<pool>-<short id>`: the VM's name and its runner's name. */
  name: string;
  access: RunnerAccess;
  /** The node's spec (stacks/spec.ts), recorded on its resources when it is created. */
  spec?: string;
  /** When the node was created (epoch ms), recorded on its resources so it survives a lost history. */
  createdAt?: number;
  /**
   * The runner release a new node downloads and verifies, resolved by the reconciler (`latest`
   * included) before the stack is rendered: data, no look-up happens here. Kept nodes have none:
   * their VMs ignore every change, they keep what they booted with; and the node spec never hashes
   * it, so a new upstream release makes no node outdated.
   */
  release?: RunnerRelease;
  /**
   * Render the node's credential resources (default true). A kept node renders them only when its
   * state has them: a node made before credentials had resources, or one whose apply failed between
   * its VM and its credential, is never given a new (empty) credential.
   */
  credential?: boolean;
  /**
   * The VM's power state (standby: `stopped`). Undefined: running, and on AWS no power resource is
   * rendered (a node made before power states were managed has none; new nodes of a pool with
   * standby get one).
   */
  power?: 'running' | 'stopped';
  /**
   * AWS: the node's state holds its power resource (`power_<name>`): it is rendered even when the
   * pool has no standby (any more). Otherwise a node gets one only in a pool with standby.
   */
  powerResource?: boolean;
  /**
   * This apply starts or stops the node: its power state is the one thing its lifecycle lets change
   * in place (local: `input.power` with the input recorded in its state, `recorded`; GCP:
   * `desired_status`; AWS: its `aws_ec2_instance_state`). Every other node ignores every change.
   */
  powerChange?: boolean;
  /** Local platform, with `powerChange`: the node's `input` as its state records it (only `power` changes). */
  recorded?: Record<string, string>;
  /**
   * The credential's generation: 1 when the node was created, one more at every start from standby
   * with a fresh credential (GitHub: a new JIT config). AWS `value_wo_version`, GCP
   * `secret_data_wo_version` (a new secret version), local `triggers_replace` of its credential
   * delivery (a new delivery resource; never a replacement of the VM). Default 1.
   */
  generation?: number;
  /**
   * Where a new node is placed, when a capacity fallback moved it (src/reconcile/fallback.ts):
   * `market` overrides `machine.spot` (on-demand: AWS renders no `instanceMarketOptions`, GCP
   * `STANDARD`), `placement` is the index into `machine.subnets` (aws) or `machine.zones` (gcp)
   * instead of the stable pick by name. Neither is part of the node spec: a node that fell back is
   * not outdated.
   */
  market?: 'spot' | 'on-demand';
  placement?: number;
}

/** The bootstrap options of a node: its pinned runner release, if it has one. */
export function bootstrapOptions(node: NodeInput): BootstrapOptions {
  return node.release ? { release: node.release } : {};
}

export interface PoolStackInput {
  pool: PoolConfig;
  platform: PlatformConfig;
  nodes: NodeInput[];
  /** Where the local backend keeps state: `<stateDir>/pools/<pool>/terraform.tfstate`. */
  stateDir: string;
  /**
   * The directory the stack's JSON is written to and Terraform runs in (default
   * `<stateDir>/pools/<stack>`): a module platform's local module source is rendered relative to it.
   */
  workDir?: string;
  /**
   * The stack's id (DESIGN "Node identity"): the pool's name on its own platform (the default), or
   * `<pool>@<platform>` on a failover platform: the stack's name, its state's key (`<key>/<stack>.tfstate`,
   * `<prefix>/<stack>`, `<stateDir>/pools/<stack>/`) and its cloud identity's name. Nodes, runner
   * credentials and their files keep the pool's name.
   */
  stack?: string;
}

/** The local platform's credential file of a node, beside the pool's state. */
export function localCredentialFile(stateDir: string, pool: string, node: string): string {
  return `${stateDir.replace(/\/+$/, '')}/pools/${pool}/credentials/${node}`;
}

/** The ephemeral input variable that carries new nodes' credentials (a map: node name → secret). */
export const CREDENTIALS_VARIABLE = 'parmanu_credentials';
