/**
 * What the reconcile end-to-end files share: a real redis-server started before a file's tests and
 * stopped after them, temporary directories removed after them, and the cycle's dependencies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { Emitter } from '../../src/emitters/types.js';
import type { HistoryStore } from '../../src/history/types.js';
import type { Policy } from '../../src/policy/types.js';
import type { ReconcileDeps } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { EmitterSchema, type EmitterInput } from '../../src/policy/schema.js';
import { GitlabEmulator, type GlProject } from '../emulators/gitlab.js';
import { startRedis, type RedisServer } from '../redis-server.js';
import { capture } from '../secret-scan.js';

export interface Suite {
  /** The Redis URL (valid inside the file's tests). */
  readonly url: string;
  /** A new temporary directory, removed after the file's tests. */
  tempDir(prefix: string): string;
}

export function useRedisSuite(): Suite {
  let redis: RedisServer | undefined;
  const roots: string[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });
  return {
    get url() {
      if (!redis) throw new Error('the suite\'s redis-server is not started yet (use it inside a test)');
      return redis.url;
    },
    tempDir(prefix) {
      const root = mkdtempSync(join(tmpdir(), prefix));
      roots.push(root);
      return root;
    },
  };
}

/**
 * The cycle's dependencies as the reconcile end-to-end files give them: the one emitter `ci`, real
 * terraform, the test's clock, ids n000, n001, … and every log event captured for the secret scan.
 */
export function reconcileDeps(policy: Policy, emitter: Emitter, history: HistoryStore, stateDir: string, now: { t: number }, extra: Partial<ReconcileDeps> = {}): ReconcileDeps {
  let id = 0;
  return {
    policy,
    emitters: new Map([['ci', emitter]]),
    history,
    terraform: new Terraform({ bin: process.env.PARMANU_TERRAFORM ?? 'terraform' }),
    stateDir,
    clock: () => now.t,
    owner: 'test',
    newId: () => `n${(id++).toString().padStart(3, '0')}`,
    log: (e) => capture('a reconcile log event', JSON.stringify(e)),
    ...extra,
  };
}

/**
 * The GitLab emulator as the end-to-end files start it: group `platform` with its project `api`,
 * and the emitter of that group (its token a reference, `${env:T}`; runners made in the group).
 */
export async function gitlabGroup(): Promise<{ emu: GitlabEmulator; project: GlProject; emitter: EmitterInput }> {
  const emu = await new GitlabEmulator().start();
  const project = emu.addProject('api', emu.addGroup('platform'));
  return { emu, project, emitter: EmitterSchema.parse({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } }) };
}
