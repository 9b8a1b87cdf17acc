/** The normalized policy: what every other module consumes. Durations are milliseconds. */
import type { BackendInput, BudgetInput, EmitterInput, PlatformInput, PoolInput } from './schema.js';
import { forTerminal } from './text.js';

export type EmitterConfig = EmitterInput & { name: string; concurrency: number; probeIntervalMs: number; requestTimeoutMs: number };
/**
 * A platform as the loader keeps it. A module platform's local `source` is resolved against its
 * policy file's directory (`sourceBase`), with the source as written kept (`sourceAsWritten`).
 */
export type PlatformConfig = PlatformInput & { name: string; sourceAsWritten?: string; sourceBase?: string };
export type Backend = BackendInput;

export interface Schedule {
  cron: string;
  durationMs: number;
  min: number;
  timezone: string;
}

export interface Scaling {
  min: number;
  max: number;
  spare: number;
  maxStep: number;
  scaleDownAfterMs: number;
  minLifetimeMs: number;
  bootTimeoutMs: number;
  predict: boolean;
  /** Nodes drained or destroyed per cycle at most; undefined: no limit. */
  disruptionBudget: number | undefined;
  /** Outdated nodes drained at once at most: a count, or a fraction of the pool's nodes (rounded up). */
  rollout: { maxUnavailable: { count: number } | { percent: number } };
  /** Nodes older than this are replaced like outdated ones; undefined: never. */
  maxLifetimeMs: number | undefined;
  schedules: Schedule[];
  /** Stopped nodes kept ready to start: a count, or `auto` (sized by decide from history). */
  standby: number | 'auto';
  /** Pre-warming before scheduled pipelines (decide/prewarm.ts); undefined: the defaults (on, lead from the boot time, grace 10 min). */
  prewarm?: { schedules: boolean; leadMs: number | undefined; graceMs: number };
}

/** A hook script of `runner.hooks`, read from the policy repository when the policy is loaded. */
export interface HookScript {
  /** As written in the policy (relative to its file). */
  path: string;
  /** SHA-256 of the text (what `plan` shows instead of the script). */
  sha256: string;
  script: string;
}

/** `runner.hooks` with each script read. */
export interface RunnerHooks {
  before?: HookScript;
  after?: HookScript;
}

/**
 * The runner settings: the policy's, with the hook scripts read (absent: no hooks) and `ephemeral`
 * decided (the policy's, or the default of the pool's emitter kind: see `defaultEphemeral`).
 */
export type RunnerSettings = Omit<PoolInput['runner'], 'hooks' | 'ephemeral'> & { ephemeral: boolean; hooks?: RunnerHooks };

export interface PoolConfig {
  name: string;
  emitter: string;
  platform: string;
  labels: string[];
  acceptUntagged: boolean;
  machine: PoolInput['machine'];
  runner: RunnerSettings;
  scaling: Scaling;
  /**
   * Platforms the pool fails over to, in order, each with the machine settings it writes for it
   * (merged over `machine`); empty: none. DESIGN "Node identity": the primary's stack is `<pool>`,
   * a failover platform's `<pool>@<platform>`.
   */
  failover?: Array<{ platform: string; machine?: Partial<PoolInput['machine']> }>;
  /** Consecutive failed Terraform runs on a platform after which the pool fails over (default 3). */
  failoverAfter?: number;
  /** How long a failed platform is left alone before new nodes are tried there again (default 10 min). */
  failbackAfterMs?: number;
}

export interface Policy {
  emitters: Record<string, EmitterConfig>;
  platforms: Record<string, PlatformConfig>;
  /** In policy order: files in path order, then keys in file order. Order breaks ties in job matching. */
  pools: PoolConfig[];
  /** Cost budgets (`budgets:`), in policy order; absent or empty: none. */
  budgets?: BudgetConfig[];
  /** The currency of costs and budgets (`currency:`), a symbol or a three-letter code; absent: plain numbers. */
  currency?: string;
}

/** A cost budget: `pools` names pools of the policy (or `all`); at least one of the limits is set. */
export type BudgetConfig = BudgetInput & { name: string };

/** A problem found while loading, with the place it points at. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  /** Dotted path of the field, e.g. `pools.linux.scaling.max`; empty for file-level problems. */
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

/** The web URL a GitHub runner registers against (GitHub Enterprise Server: the host of apiUrl). */
export function githubRunnerUrl(cfg: Extract<EmitterConfig, { type: 'github' }>): string {
  const api = new URL(cfg.apiUrl);
  const host = api.hostname === 'api.github.com' ? 'https://github.com' : `${api.protocol}//${api.host}`;
  return cfg.runnerOwner === 'org' ? `${host}/${cfg.owner}` : `${host}/${cfg.owner}/${cfg.runnerOwner.repo}`;
}

export function formatProblem(p: Problem): string {
  const where = `${p.file}:${p.line}:${p.col}`;
  const kind = p.severity === 'warning' ? 'warning: ' : '';
  // Paths and messages may quote the policy's own strings: printed without control characters.
  return forTerminal(p.path ? `${where}: ${kind}${p.path}: ${p.message}` : `${where}: ${kind}${p.message}`);
}

/**
 * What a node's runner needs to register, as the emitter issued it (or a placeholder in synth).
 * Shared by emitters (which issue it) and stacks (which write it into user-data).
 */
export type RunnerCredential =
  | { kind: 'gitlab'; url: string; token: string }
  | { kind: 'github'; jitConfig: string }
  | { kind: 'github'; url: string; registrationToken: string }
  | { kind: 'jenkins'; url: string; secret: string }
  /** replay: nothing to start; `token` (local platform) is written to the node's credential file, which tells the replay that the node is up. */
  | { kind: 'none'; token?: string };
