import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { policyJsonSchema } from '../../src/policy/schema.js';

describe('policies/schema.json', () => {
  it('is the JSON Schema generated from the zod schema (run `npm run build && npm run schema` after a change)', () => {
    const committed = JSON.parse(readFileSync('policies/schema.json', 'utf8')) as unknown;
    expect(committed).toEqual(policyJsonSchema());
  });

  it('describes every field', () => {
    const missing: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      for (const [k, v] of Object.entries((n.properties as Record<string, unknown>) ?? {})) {
        const child = v as Record<string, unknown>;
        const described = typeof child.description === 'string' || ((child.anyOf ?? child.oneOf) as unknown[] | undefined)?.every((o) => typeof (o as Record<string, unknown>).description === 'string');
        if (!described) missing.push(`${path}.${k}`);
        walk(child, `${path}.${k}`);
      }
      for (const key of ['additionalProperties', 'items']) if (n[key]) walk(n[key], `${path}.*`);
      for (const key of ['anyOf', 'oneOf']) for (const o of (n[key] as unknown[]) ?? []) walk(o, path);
    };
    walk(policyJsonSchema(), '');
    expect(missing).toEqual([]);
  });
});
