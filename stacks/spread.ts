/** Stable placement: a node's subnet or zone depends on its name only, never on its index, so
 * removing one node never moves another. FNV-1a. */
export function pickStable<T>(name: string, choices: readonly T[]): T | undefined {
  if (choices.length === 0) return undefined;
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return choices[h % choices.length];
}
