/**
 * The Emitter interface: one per CI platform. An emitter reads the platform's job queue and the
 * runners Parmanu owns, and manages the runner registration of each node Parmanu creates.
 *
 * Error contract (as Karpenter's cloudprovider does it, every method says what failure means):
 * - probe() never rejects for anything the platform or the network does: the result carries
 *   ok=false (nothing usable) or partial=true (some pages missing) with the reason, and the pools
 *   of that emitter hold. It rejects only on a programming error.
 * - register() rejects with EmitterError when no credential could be issued; nothing is created
 *   for the node then. It may leave a registration behind when the platform answered after the
 *   timeout: reconcile removes runners without a VM after a grace period.
 * - pause() and deregister() resolve when the runner is gone or already paused/absent (idempotent);
 *   they reject with EmitterError when the platform refused or could not be reached.
 * - isIdle() is authoritative and uncached: it resolves true only when the platform says now that
 *   the node's runner runs nothing (or the runner no longer exists); it rejects when that cannot be
 *   known, and the caller must then not destroy the node.
 * Tokens never appear in messages: errors name the endpoint, not the credential.
 */
import type { EmitterKind, Job } from '../decide/types.js';
import type { RunnerCredential } from '../policy/types.js';

export interface RunnerInfo {
  /** The platform's id for the runner (GitLab runner id, GitHub runner id, Jenkins node name). */
  id: string;
  /** The node name the runner registered under. */
  name: string;
  labels: string[];
  online: boolean;
  busy: boolean;
  paused: boolean;
}

export interface ProbeMeta {
  durationMs: number;
  apiCalls: number;
  /** Requests answered 304 Not Modified (GitHub ETags: free of rate limit). */
  notModified: number;
  /** The lowest remaining rate limit the platform reported during the probe. */
  rateLimitRemaining?: number;
}

export interface ProbeResult {
  emitter: string;
  at: number;
  ok: boolean;
  partial: boolean;
  reason?: string;
  /** Queued, running and upcoming jobs. */
  jobs: Job[];
  /** Runners Parmanu owns (names under one of the emitter's pools). */
  runners: RunnerInfo[];
  meta: ProbeMeta;
}

export interface RegisterRequest {
  node: string;
  pool: string;
  labels: string[];
  jobsPerNode: number;
  ephemeral: boolean;
  acceptUntagged: boolean;
}

export interface Emitter {
  readonly name: string;
  readonly kind: EmitterKind;
  probe(): Promise<ProbeResult>;
  register(req: RegisterRequest): Promise<RunnerCredential>;
  pause(node: string): Promise<void>;
  /** Takes a paused runner back into service. Absent where a drain removes the registration (GitHub). */
  resume?(node: string): Promise<void>;
  deregister(node: string): Promise<void>;
  isIdle(node: string): Promise<boolean>;
  /**
   * Problems of configuration that no later probe can mend (a replay trace that does not parse),
   * checked once before a command does anything. Empty when there are none. Network emitters do
   * not implement it: an unreachable platform is a failed probe, and its pools hold.
   */
  preflight?(): string[];
}

export class EmitterError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'EmitterError';
  }
}

/** Whether a runner name belongs to one of the pools (`<pool>-<id>`). */
export function ownedBy(pools: readonly string[]): (name: string) => string | undefined {
  const sorted = [...pools].sort((a, b) => b.length - a.length);
  return (name) => sorted.find((p) => name.startsWith(`${p}-`) && name.length > p.length + 1);
}
