/** Stable placement: a node's subnet or zone depends on its name only, never on its index, so
 * removing one node never moves another. FNV-1a. */
export function pickStable<T>(name: string, choices: readonly T[]): T | undefined {
  if (choices.length === 0) return undefined;
  return choices[stableIndex(name, choices.length)];
}

/** The index pickStable picks among `n` choices (0 when there are none). */
export function stableIndex(name: string, n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return n > 0 ? h % n : 0;
}

/**
 * A node's subnet (aws) or zone (gcp, local: either list): the one its `placement` names (a capacity
 * fallback moved it there), else the stable pick by name; undefined when the list is empty.
 */
export function placeOf<T>(name: string, choices: readonly T[], placement: number | undefined): T | undefined {
  if (choices.length === 0) return undefined;
  return placement === undefined ? pickStable(name, choices) : choices[placement % choices.length];
}
