/**
 * The pools Parmanu knows, not only those in the policy: a pool removed from the policy still has
 * VMs and runners, and is drained and destroyed like any scale-down. Each applied pool leaves its
 * configuration (pool and platform, no secrets) in its working directory
 * (`<stateDir>/pools/<pool>/parmanu-pool.json`) and in its history record; a pool found there
 * that the policy no longer names is a removed pool.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { HistoryStore, PoolRecord } from '../history/types.js';
import { platformOfStack, type ExtraStack } from '../policy/stacks.js';
import type { PlatformConfig, Policy, PoolConfig } from '../policy/types.js';

export const POOL_FILE = 'parmanu-pool.json';

export function poolDir(stateDir: string, pool: string): string {
  return join(stateDir, 'pools', pool);
}

/** A pool and the platform it ran on, as last applied. */
export interface KnownPool {
  pool: PoolConfig;
  platform: PlatformConfig;
}

// The saved configuration is Parmanu's own output; only the fields reconcile relies on are checked.
const SavedPlatformSchema = z.object({ name: z.string(), type: z.enum(['aws', 'gcp', 'local', 'module']) }).loose();
const SavedSchema = z.object({
  pool: z.object({ name: z.string(), emitter: z.string(), platform: z.string(), labels: z.array(z.string()), machine: z.record(z.string(), z.unknown()), runner: z.record(z.string(), z.unknown()), scaling: z.record(z.string(), z.unknown()) }).loose(),
  platform: SavedPlatformSchema,
});

/** A working directory's saved configuration as JSON (undefined: none, or unreadable). */
function readSavedFile(dir: string): unknown {
  try {
    return JSON.parse(readFileSync(join(dir, POOL_FILE), 'utf8'));
  } catch {
    return undefined;
  }
}

export function savedConfig(pool: PoolConfig, platform: PlatformConfig, stack = pool.name): NonNullable<PoolRecord['config']> {
  return { pool: JSON.parse(JSON.stringify(pool)) as Record<string, unknown>, platform: JSON.parse(JSON.stringify(platform)) as Record<string, unknown>, ...(stack !== pool.name ? { stack } : {}) };
}

/** The platform a stack's working directory says it was last applied on (its saved configuration), if it says. */
export function savedPlatformName(dir: string): string | undefined {
  const saved = SavedPlatformSchema.safeParse((readSavedFile(dir) as { platform?: unknown } | undefined)?.platform);
  return saved.success ? saved.data.name : undefined;
}

/** The failover stacks' working directories (`<pool>@<platform>`, with a saved configuration) under the state directory: listed once a cycle. */
export function stackDirs(stateDir: string): string[] {
  const root = join(stateDir, 'pools');
  return existsSync(root) ? readdirSync(root).filter((d) => d.includes('@') && existsSync(join(root, d, POOL_FILE))) : [];
}

export function writePoolFile(dir: string, pool: PoolConfig, platform: PlatformConfig, stack = pool.name): void {
  writeFileSync(join(dir, POOL_FILE), JSON.stringify(savedConfig(pool, platform, stack), null, 2) + '\n', { mode: 0o600 });
}

function parseSaved(raw: unknown): KnownPool | undefined {
  const parsed = SavedSchema.safeParse(raw);
  if (!parsed.success) return undefined;
  return { pool: parsed.data.pool as unknown as PoolConfig, platform: parsed.data.platform as unknown as PlatformConfig };
}

/**
 * Pools with a working directory or a history record that the policy no longer has, with their
 * last configuration. A pool whose configuration cannot be read is listed with `problem`.
 */
export async function removedPools(policy: Policy, stateDir: string, history: HistoryStore): Promise<Array<KnownPool | { name: string; problem: string }>> {
  const inPolicy = new Set(policy.pools.map((p) => p.name));
  const names = new Set<string>();
  const root = join(stateDir, 'pools');
  if (existsSync(root)) for (const d of readdirSync(root, { withFileTypes: true })) if (d.isDirectory() && existsSync(join(root, d.name, POOL_FILE))) names.add(d.name);
  for (const n of await history.listPools()) names.add(n);
  const out: Array<KnownPool | { name: string; problem: string }> = [];
  for (const name of [...names].sort()) {
    // `<pool>@<platform>`: a failover stack, reconciled with its pool (reconcile/failover.ts).
    if (inPolicy.has(name) || name.includes('@')) continue;
    const rec = await history.getPool(name);
    const known = (rec?.config ? parseSaved(rec.config) : undefined) ?? parseSaved(readSavedFile(poolDir(stateDir, name)));
    // A record without configuration and without a working directory is an old cache entry: nothing to drain from here.
    if (!known) {
      if (existsSync(join(poolDir(stateDir, name), POOL_FILE))) out.push({ name, problem: `pool ${name} was removed from the policy, but its saved configuration (${join(poolDir(stateDir, name), POOL_FILE)}) cannot be read` });
      continue;
    }
    out.push(known);
  }
  return out;
}

/**
 * Stacks that may hold nodes on platforms that are not among the pool's own and failover
 * platforms in the policy (dropped from the list, or from the policy): they only drain and go,
 * like a removed pool's. Found in the pool's record (`failover.stacks`) and, the history being a
 * cache, in the state directory (`<stateDir>/pools/<pool>@<platform>/` with its saved
 * configuration). Their platform is the policy's, or else the one the stack saved (its record's or
 * its directory's); a stack with neither cannot be reached and is said so.
 */
export async function recordedStacks(history: Pick<HistoryStore, 'getPool'>, policy: Pick<Policy, 'platforms'>, pool: PoolConfig, rec: PoolRecord | undefined, unreachable: (stack: string, why: string) => void, stateDir?: string, dirs: readonly string[] = stateDir === undefined ? [] : stackDirs(stateDir)): Promise<ExtraStack[]> {
  // The stacks stacksOf makes itself: those of the failover list. `<pool>@<its own platform>` is
  // not one of them (the pool's own stack is `<pool>`): a failover platform made the pool's own
  // keeps its old stack, which drains into the new one.
  const listed = new Set((pool.failover ?? []).map((f) => f.platform).filter((p) => p !== pool.platform && policy.platforms[p] !== undefined));
  const inDirs = dirs.filter((d) => d.startsWith(`${pool.name}@`));
  const out: ExtraStack[] = [];
  for (const stack of new Set([...(rec?.failover?.stacks ?? []), ...inDirs])) {
    const name = platformOfStack(stack);
    if (name === undefined || listed.has(name)) continue;
    const known = policy.platforms[name];
    if (known) {
      out.push({ stack, platform: known });
      continue;
    }
    let saved = SavedPlatformSchema.safeParse((await history.getPool(stack).catch(() => undefined))?.config?.platform);
    if (!saved.success && stateDir !== undefined) saved = SavedPlatformSchema.safeParse((readSavedFile(poolDir(stateDir, stack)) as { platform?: unknown } | undefined)?.platform);
    if (saved.success) out.push({ stack, platform: saved.data as unknown as PlatformConfig });
    else unreachable(stack, `stack ${stack} may still have nodes, but platform ${name} is not in the policy and the stack's saved configuration cannot be read: put the platform back until the stack is empty`);
  }
  return out;
}
