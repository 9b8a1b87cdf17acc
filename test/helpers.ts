import { normalize } from '../src/policy/load.js';
import { PoolSchema } from '../src/policy/schema.js';
import type { PoolConfig } from '../src/policy/types.js';

/** A normalized pool from policy-shaped input (durations as strings), with the schema's defaults. */
export function testPool(input: Record<string, unknown> = {}, name = 'p'): PoolConfig {
  const parsed = PoolSchema.parse({ emitter: 'e', platform: 'lab', ...input });
  const pool = normalize({ emitters: new Map(), platforms: new Map(), pools: new Map([[name, parsed]]) }).pools[0];
  if (!pool) throw new Error('no pool');
  return pool;
}

export const T0 = Date.parse('2025-01-06T12:00:00Z'); // a Monday
export const MIN = 60_000;
