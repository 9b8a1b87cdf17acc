import type { EmitterConfig, PoolConfig } from '../src/policy/types.js';
import type { RunnerAccess } from './types.js';

/** What a pool's runners connect to, from the policy alone: synth and kept nodes never need a credential. */
export function placeholderAccess(emitter: EmitterConfig | undefined, pool: PoolConfig): RunnerAccess {
  switch (emitter?.type) {
    case 'gitlab':
      return { kind: 'gitlab', url: emitter.url };
    case 'github': {
      if (pool.runner.ephemeral) return { kind: 'github', mode: 'jit' };
      // The same URL as src/policy/types.ts githubRunnerUrl: stacks/ may import policy types only.
      const api = new URL(emitter.apiUrl);
      const host = api.hostname === 'api.github.com' ? 'https://github.com' : `${api.protocol}//${api.host}`;
      return { kind: 'github', mode: 'registration', url: `${host}/${emitter.runnerOwner === 'org' ? emitter.owner : `${emitter.owner}/${emitter.runnerOwner.repo}`}` };
    }
    case 'jenkins':
      return { kind: 'jenkins', url: emitter.url };
    default:
      return { kind: 'none' };
  }
}
