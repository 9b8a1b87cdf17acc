/**
 * A pool's stacks, one per platform it runs on (DESIGN "Node identity"): `<pool>` on its own
 * platform, `<pool>@<platform>` on each platform of its `failover` list. Pure: read by reconcile
 * (reconcile/failover.ts), status and synth.
 */
import type { PlatformConfig, Policy, PoolConfig } from './types.js';

/** One stack of a pool: its id, the pool as it runs there (machine merged), and the platform. */
export interface PoolStackRef {
  stack: string;
  pool: PoolConfig;
  platform: PlatformConfig;
}

/** A stack of a pool on a platform the policy no longer lists for it (its saved configuration). */
export interface ExtraStack {
  stack: string;
  platform: PlatformConfig;
}

/** `<pool>@<platform>`: a failover platform's stack. */
export function stackName(pool: string, platform: string, primary: string): string {
  return platform === primary ? pool : `${pool}@${platform}`;
}

/** The platform a stack id names (`<pool>@<platform>`), or undefined for the pool's own stack. */
export function platformOfStack(stack: string): string | undefined {
  const at = stack.indexOf('@');
  return at < 0 ? undefined : stack.slice(at + 1);
}

/**
 * The pool's stacks, in order: its own platform, its failover list, then stacks on platforms the
 * list no longer names that may still hold nodes (`extra`, from the pool's record): those only drain.
 */
export function stacksOf(policy: Pick<Policy, 'platforms'>, pool: PoolConfig, platform: PlatformConfig, extra: readonly ExtraStack[]): PoolStackRef[] {
  const out: PoolStackRef[] = [{ stack: pool.name, pool, platform }];
  for (const f of pool.failover ?? []) {
    const p = policy.platforms[f.platform];
    if (!p || out.some((s) => s.platform.name === f.platform)) continue;
    out.push({ stack: stackName(pool.name, f.platform, pool.platform), pool: { ...pool, platform: f.platform, machine: { ...pool.machine, ...f.machine } }, platform: p });
  }
  for (const e of extra) {
    if (out.some((s) => s.stack === e.stack)) continue;
    out.push({ stack: e.stack, pool: { ...pool, platform: e.platform.name }, platform: e.platform });
  }
  return out;
}

