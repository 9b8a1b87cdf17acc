import { describe, expect, it } from 'vitest';
import { createEmitters } from '../../src/emitters/index.js';
import { SecretResolutionError } from '../../src/policy/secrets.js';
import { loadPolicy } from '../../src/policy/load.js';

describe('createEmitters', () => {
  const policy = loadPolicy(['policies']).policy;
  if (!policy) throw new Error('example policy does not load');

  it('builds one emitter per used emitter, resolving references from the environment', () => {
    const env = { GITLAB_TOKEN: 'glpat-x', GITHUB_TOKEN: 'ghp-x', JENKINS_USER: 'bot', JENKINS_TOKEN: 'tok' };
    const emitters = createEmitters(policy, { env, readFile: () => '' });
    expect([...emitters.keys()]).toEqual(['gitlab-main', 'github-acme', 'jenkins-ci']);
    expect([...emitters.values()].map((e) => e.kind)).toEqual(['gitlab', 'github', 'jenkins']);
  });

  it('names the missing reference, never a value', () => {
    expect(() => createEmitters(policy, { env: { GITLAB_TOKEN: 'glpat-secret' }, readFile: () => '' })).toThrowError(SecretResolutionError);
    try {
      createEmitters(policy, { env: { GITLAB_TOKEN: 'glpat-secret' }, readFile: () => '' });
    } catch (err) {
      expect((err as Error).message).toBe('${env:GITHUB_TOKEN}: environment variable GITHUB_TOKEN is not set');
    }
  });
});
