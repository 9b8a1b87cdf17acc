/**
 * What the reconcile end-to-end files share: a real redis-server started before a file's tests and
 * stopped after them, and temporary directories removed after them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { startRedis, type RedisServer } from '../redis-server.js';

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
