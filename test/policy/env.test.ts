import { describe, expect, it } from 'vitest';
import { inCi } from '../../src/policy/env.js';

describe('inCi', () => {
  it.each(['true', '1', 'yes', 'gitlab', 'TRUE'])('says CI is set for CI=%j', (ci) => {
    expect(inCi({ CI: ci })).toBe(true);
  });

  it.each([undefined, '', ' ', 'false', 'False', 'FALSE', ' false ', '0', ' 0', 'no', 'OFF'])('says CI is not set for CI=%j', (ci) => {
    expect(inCi({ CI: ci })).toBe(false);
  });

  it('reads CI only', () => {
    expect(inCi({ GITLAB_CI: 'true', GITHUB_ACTIONS: 'true' })).toBe(false);
  });
});
