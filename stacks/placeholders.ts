import { githubRunnerUrl, type EmitterConfig, type PoolConfig } from '../src/policy/types.js';
import type { RunnerAccess } from './types.js';

/** What a pool's runners connect to, from the policy alone: synth and kept nodes never need a credential. */
export function placeholderAccess(emitter: EmitterConfig | undefined, pool: PoolConfig): RunnerAccess {
  switch (emitter?.type) {
    case 'gitlab':
      return { kind: 'gitlab', url: emitter.url };
    case 'github':
      return pool.runner.ephemeral ? { kind: 'github', mode: 'jit' } : { kind: 'github', mode: 'registration', url: githubRunnerUrl(emitter) };
    case 'jenkins':
      return { kind: 'jenkins', url: emitter.url };
    default:
      return { kind: 'none' };
  }
}
