import { describe, expect, it } from 'vitest';
import { LruCache } from '../../src/emitters/http.js';

describe('LruCache', () => {
  it('keeps at most max entries, the least recently used leaving first', () => {
    const c = new LruCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3);
    expect(c.size).toBe(2);
    expect(c.has('b')).toBe(false);
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
    c.set('a', 10);
    c.set('d', 4);
    expect([c.has('a'), c.has('c'), c.has('d')]).toEqual([true, false, true]);
  });
});
