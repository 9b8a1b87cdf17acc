import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { withReference } from '../../src/policy/reference.js';

describe('README policy reference', () => {
  it('is generated from the schema (run `npm run build && npm run docs` after a change)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(readme).toBe(withReference(readme));
  });
});
