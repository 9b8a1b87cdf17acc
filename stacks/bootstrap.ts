/**
 * Runner bootstrap user-data, per runner kind and OS (Linux: stacks/bootstrap/linux.ts, cloud-init;
 * Windows: stacks/bootstrap/windows.ts, PowerShell). The bootstrap knows the runner's public side
 * (`RunnerAccess`) and where the node reads its secret (`CredentialSource`), never the secret: it
 * reads it at boot and at every later start (DESIGN "Runner credentials").
 * GitLab: install (or use a pre-installed) gitlab-runner, `register --non-interactive` with the
 * node's authentication token and name, `concurrent` = jobsPerNode, run as a service.
 * GitHub: the actions runner started with the node's just-in-time config (one job), or configured
 * with a registration token as a service. Jenkins: `agent.jar -url -secret @file -name -webSocket
 * -workDir` as a service.
 */
import type { PoolConfig } from '../src/policy/types.js';
import type { CredentialSource, RunnerAccess } from './types.js';
import type { BootstrapOptions } from './bootstrap/common.js';
import { linuxUserData } from './bootstrap/linux.js';
import { windowsScript } from './bootstrap/windows.js';

export { psq, runnerLabels, sha256, shq, type BootstrapOptions, type RunnerRelease } from './bootstrap/common.js';
export { linuxFiles, linuxUserData, type WrittenFile } from './bootstrap/linux.js';
export { windowsScript } from './bootstrap/windows.js';

/** The user-data a node boots with, for its OS. */
export function userData(pool: PoolConfig, node: string, access: RunnerAccess, source: CredentialSource, opts: BootstrapOptions = {}): string {
  return pool.machine.os === 'windows' ? windowsScript(pool, node, access, source, opts) : linuxUserData(pool, node, access, source, opts);
}
