/**
 * Building emitters from the policy: secret references are resolved here, at run time, and the
 * values go only to the clients that send them.
 */
import { readFileSync } from 'node:fs';
import { resolveSecret, type SecretEnv } from '../policy/secrets.js';
import type { EmitterConfig, Policy } from '../policy/types.js';
import { GithubEmitter } from './github.js';
import { GitlabEmitter } from './gitlab.js';
import { JenkinsEmitter } from './jenkins.js';
import { ReplayEmitter, type ReplayOptions } from './replay.js';
import type { Emitter } from './types.js';

export type { CommentResult, CommentTarget, Emitter, ProbeResult, RunnerInfo, RegisterRequest } from './types.js';
export { EmitterError, RunnerBusyError, markerLabel, markerNote, poolFromLabels, poolFromNote } from './types.js';

export const defaultSecretEnv = (): SecretEnv => ({ env: process.env, readFile: (p) => readFileSync(p, 'utf8') });

/**
 * One emitter for its config (it owns the runners that carry Parmanu's marker). Throws
 * SecretResolutionError. A replay emitter runs on `replay` (its state directory, wall clock and
 * time domain) when given, else on `clock` with its state in memory.
 */
export function createEmitter(cfg: EmitterConfig, secrets: SecretEnv = defaultSecretEnv(), clock: () => number = Date.now, replay?: ReplayOptions): Emitter {
  const secret = (ref: string) => resolveSecret(ref, secrets);
  switch (cfg.type) {
    case 'gitlab':
      return new GitlabEmitter(cfg, secret(cfg.token), undefined, clock);
    case 'github':
      return new GithubEmitter(cfg, { credentials: (cfg.credentials ?? [cfg.app ? { app: cfg.app } : { token: cfg.token }]).map((c) => (c.app ? { app: { appId: c.app.appId, installationId: c.app.installationId, privateKey: secret(c.app.privateKey) } } : { token: secret(c.token ?? '') })) }, undefined, clock);
    case 'jenkins':
      return new JenkinsEmitter(cfg, cfg.user.startsWith('${') ? secret(cfg.user) : cfg.user, secret(cfg.token), undefined, clock);
    case 'replay':
      return new ReplayEmitter(cfg, replay ?? { wall: clock });
  }
}

/**
 * Every emitter of a policy that a pool uses, each once (an emitter used by several pools is probed
 * once); with `only`, exactly those (a pool removed from the policy still needs its emitter to be
 * drained, though no pool of the policy uses it any more).
 */
export function createEmitters(policy: Policy, secrets?: SecretEnv, clock?: () => number, only?: ReadonlySet<string>, replay?: Omit<ReplayOptions, 'localPools'>): Map<string, Emitter> {
  const out = new Map<string, Emitter>();
  // A replay runner of a local pool is online while its node's credential file holds its token.
  const localPools = new Set(policy.pools.filter((p) => policy.platforms[p.platform]?.type === 'local').map((p) => p.name));
  for (const [name, cfg] of Object.entries(policy.emitters)) {
    if (only && !only.has(name)) continue;
    if (only?.has(name) || policy.pools.some((p) => p.emitter === name)) out.set(name, createEmitter(cfg, secrets, clock, replay ? { ...replay, localPools } : undefined));
  }
  return out;
}

/** Where a comment goes and with which credentials (from the CI run's environment, not the policy). */
export interface CommentEmitterOptions {
  platform: 'gitlab' | 'github';
  /** GitLab: the instance's base URL (CI_API_V4_URL without /api/v4); GitHub: the REST API base (GITHUB_API_URL). */
  url: string;
  token: string;
  /** GitHub: the bot whose comments are ours when GET /user refuses the token (the workflow's GITHUB_TOKEN). */
  botLogin?: string;
}

/**
 * An emitter used only for its ensureComment (plan --comment): built from the CI run's
 * environment, with the emitters' HTTP policy (timeouts, retries); it owns no runners.
 */
export function createCommentEmitter(o: CommentEmitterOptions): Emitter {
  const common = { name: 'comment', probeInterval: '30s', requestTimeout: '10s', retries: 3, probeIntervalMs: 30_000, requestTimeoutMs: 10_000, concurrency: 4 };
  if (o.platform === 'gitlab') return new GitlabEmitter({ ...common, type: 'gitlab', url: o.url, token: '${env:PARMANU_COMMENT_TOKEN}', runnerOwner: 'instance' }, o.token);
  return new GithubEmitter({ ...common, type: 'github', owner: '-', apiUrl: o.url, runnerOwner: 'org', runnerGroupId: 1, token: '${env:PARMANU_COMMENT_TOKEN}' }, { token: o.token, ...(o.botLogin ? { botLogin: o.botLogin } : {}) });
}
