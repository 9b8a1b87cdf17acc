import type { EmitterConfig, PoolConfig } from '../src/policy/types.js';
import type { RunnerCredential } from './types.js';

/** Placeholder credentials: synth never asks a CI platform for real ones. */
export function placeholderCredential(emitter: EmitterConfig | undefined, pool: PoolConfig): RunnerCredential {
  switch (emitter?.type) {
    case 'gitlab':
      return { kind: 'gitlab', url: emitter.url, token: 'PARMANU_PLACEHOLDER_GITLAB_RUNNER_TOKEN' };
    case 'github':
      return pool.runner.ephemeral
        ? { kind: 'github', jitConfig: 'PARMANU_PLACEHOLDER_GITHUB_JITCONFIG' }
        : { kind: 'github', url: `https://github.com/${emitter.runnerOwner === 'org' ? emitter.owner : `${emitter.owner}/${emitter.runnerOwner.repo}`}`, registrationToken: 'PARMANU_PLACEHOLDER_GITHUB_REGISTRATION_TOKEN' };
    case 'jenkins':
      return { kind: 'jenkins', url: emitter.url, secret: 'PARMANU_PLACEHOLDER_JENKINS_AGENT_SECRET' };
    default:
      return { kind: 'none' };
  }
}
