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
 *   they reject with RunnerBusyError when the platform refuses because the runner is running a job
 *   (GitHub's 422), and with EmitterError when the platform refused otherwise or could not be
 *   reached. They never touch a runner that lacks Parmanu's ownership marker (resolve, doing
 *   nothing, when the only runner of that name is unmarked).
 * - isIdle() is authoritative and uncached: it resolves true only when the platform's strongest
 *   signal says now that the node's runner runs nothing (GitHub: no in-progress job names it, and
 *   the runner is not busy; Jenkins: the computer and every executor idle, no current executable;
 *   GitLab: no running job on the runner), or the runner no longer exists and no job names it; it
 *   rejects when that cannot be known, and the caller must then not destroy the node.
 * - ensureComment() (optional: platforms with merge/pull requests) resolves once one comment of
 *   the token's own user carrying `marker` on the target has `body`: 'created' when there was none,
 *   'updated' when its body differed, 'unchanged' otherwise. A comment or note written by anyone
 *   else is never edited, whatever it contains (the marker included); system notes are ignored.
 *   It rejects with EmitterError when the token's user cannot be learned, the comments cannot all
 *   be listed (a missing page could hide ours), or the platform refused the write or could not be
 *   reached; nothing is retried beyond the HTTP policy.
 * - runnerRelease() (optional: platforms whose runner binary a node downloads — GitHub, GitLab;
 *   Jenkins has none, `agent.jar` comes from the controller) resolves `latest` or a concrete
 *   version into the concrete version (no leading `v`) and the SHA-256 its publisher lists for
 *   every asset a node may download (RunnerRelease). GitHub asks the emitter's own API with the
 *   emitter's token (GHES: its own instance); GitLab asks the public runner release source
 *   (gitlab.com's releases API, the download site's `release.sha256`) without the emitter's token.
 *   A resolution is reused for an hour, per emitter; it rejects with EmitterError when the release
 *   cannot be found, its checksums are missing or malformed, or the source cannot be reached (and
 *   then repeats that error for five minutes without asking again). The caller decides what a
 *   failure means (reconcile: the last release it resolved for the pool, else unpinned; DESIGN
 *   "pinned runner binaries").
 * Ownership: every runner register() creates carries a marker naming its pool (GitLab
 * `maintenance_note`, GitHub label `parmanu-pool-<pool>`, Jenkins node description); probe() lists
 * only marked runners, whatever their names, with the pool the marker names.
 * Tokens never appear in messages: errors name the endpoint, not the credential.
 */
import type { EmitterKind, Job, ScheduledRun } from '../decide/types.js';
import type { RunnerCredential } from '../policy/types.js';

export interface RunnerInfo {
  /** The platform's id for the runner (GitLab runner id, GitHub runner id, Jenkins node name). */
  id: string;
  /** The node name the runner registered under. */
  name: string;
  labels: string[];
  /** The pool named by Parmanu's ownership marker (only marked runners are listed). */
  pool: string;
  online: boolean;
  /** The platform's busy view in the listing (GitHub's lags by minutes: isIdle() decides). */
  busy: boolean;
  paused: boolean;
  /**
   * false while the runner has never connected (GitLab `never_contacted`, a GitHub or Jenkins
   * runner the platform has never seen online); undefined when the platform cannot tell.
   */
  contacted?: boolean;
}

export interface ProbeMeta {
  durationMs: number;
  apiCalls: number;
  /** Requests answered 304 Not Modified (GitHub ETags: free of rate limit). */
  notModified: number;
  /** The lowest remaining rate limit the platform reported during the probe. */
  rateLimitRemaining?: number;
  /**
   * The rate-limit budget of the probe (GitHub): `used` requests that counted against the limit
   * (304s are free), `remaining`/`limit` summed over the emitter's credentials, and per credential
   * (`id` a label such as `app:<appId>/<installationId>` or `token:<n>`, never the credential):
   * what it has left, its limit, when its window resets (`resetAt`, epoch ms) and the requests the
   * probe sent with it (`calls`, 304s included). Absent until some credential's limit is known.
   */
  rateLimit?: { used: number; remaining: number; limit: number; credentials: Array<{ id: string; remaining?: number; limit?: number; resetAt?: number; calls: number }> };
}

export interface ProbeResult {
  emitter: string;
  at: number;
  ok: boolean;
  partial: boolean;
  reason?: string;
  /** Queued, running and upcoming jobs. */
  jobs: Job[];
  /** Runners that carry Parmanu's ownership marker (any pool, including pools no longer in the policy). */
  runners: RunnerInfo[];
  /**
   * Scheduled pipelines due soon with the jobs their previous runs had (GitLab pipeline schedules;
   * decide/prewarm.ts pre-warms their pools). Absent: none due, or the platform has none.
   */
  scheduled?: ScheduledRun[];
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

/** The merge request or pull request a comment goes on. */
export interface CommentTarget {
  /** GitLab: the project's numeric id or full path; GitHub: `owner/repo` (or a repository of the emitter's owner). */
  project: string;
  /** GitLab: the merge request iid; GitHub: the pull request number. */
  number: number;
}

export interface CommentResult {
  action: 'created' | 'updated' | 'unchanged';
  /** The platform's id of the comment (note). */
  id: number;
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
  /**
   * Renovate's ensureComment: one sticky comment per target, found by `marker` among the comments
   * of the token's own user, created once, then edited in place. `body` must contain `marker`.
   */
  ensureComment?(target: CommentTarget, marker: string, body: string): Promise<CommentResult>;
  /** The release `version` (`latest` or concrete) names, with its published checksums; cached an hour. */
  runnerRelease?(version: string): Promise<RunnerRelease>;
}

/**
 * A runner release a node downloads and verifies: the concrete version (no leading `v`) and the
 * published SHA-256 per asset — GitHub `linux-x64`, `linux-arm64`, `win-x64`; GitLab `linux-amd64`,
 * `linux-arm64`, `windows-amd64` (stacks/bootstrap's RunnerRelease).
 */
export interface RunnerRelease {
  version: string;
  sha256: Record<string, string>;
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

/** The platform refused to remove or pause a runner because it is running a job (GitHub 422). */
export class RunnerBusyError extends EmitterError {
  constructor(message: string, status?: number) {
    super(message, status);
    this.name = 'RunnerBusyError';
  }
}

/**
 * Standby (DESIGN "Events, standby and services"): what a node's runner does across a stop and a
 * start. true — GitHub (a drain removes the registration, JIT configs are single-use) and replay
 * (its runner is its token): the registration is removed when the node stops, so the name is free
 * again, and a start registers anew with a fresh credential that reaches the VM through the secret
 * store. false — GitLab (the paused runner is unpaused; its root-only token stays on the VM's disk)
 * and Jenkins (the paused agent is taken back online and reconnects with the same derived secret).
 */
export function freshRunnerOnStart(kind: EmitterKind): boolean {
  return kind === 'github' || kind === 'replay';
}

/** Parmanu's ownership marker, per platform. */
export const MARKER_PREFIX = 'parmanu-pool';
/** GitLab `maintenance_note` / Jenkins node description text: `parmanu-pool=<pool>` on its own line. */
export const markerNote = (pool: string) => `${MARKER_PREFIX}=${pool}`;
/** The extra GitHub runner label (jobs match labels as a subset: it takes nothing away). */
export const markerLabel = (pool: string) => `${MARKER_PREFIX}-${pool}`;
/** The pool a GitLab maintenance note or Jenkins description names, if it carries the marker. */
export function poolFromNote(text: string | null | undefined): string | undefined {
  const m = /(?:^|\n)parmanu-pool=([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?:\n|$)/.exec(text ?? '');
  return m?.[1];
}
/** The pool a GitHub runner's labels name, if one of them is the marker. */
export function poolFromLabels(labels: readonly string[]): string | undefined {
  const l = labels.find((x) => x.startsWith(`${MARKER_PREFIX}-`) && x.length > MARKER_PREFIX.length + 1);
  return l?.slice(MARKER_PREFIX.length + 1);
}
