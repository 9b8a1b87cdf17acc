/**
 * Turns zod issues into readable problems with positions. Unknown keys get a did-you-mean from
 * the keys the schema knows at that place; unions and enums list what is allowed.
 */
import type { z } from 'zod';
import { locate, type SourceFile } from './source.js';
import { suggestion } from './suggest.js';
import type { Problem } from './types.js';

type Seg = string | number;
interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  valueType?: z.ZodType;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  values?: unknown[];
  entries?: Record<string, unknown>;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

function unwrap(s: z.ZodType): z.ZodType {
  let cur = s;
  for (;;) {
    const d = defOf(cur);
    if ((d.type === 'optional' || d.type === 'default' || d.type === 'prefault' || d.type === 'nullable') && d.innerType) cur = d.innerType;
    else if (d.type === 'pipe' && d.in) cur = d.in;
    else return cur;
  }
}

function pickOption(s: z.ZodType, data: unknown): z.ZodType | undefined {
  const d = defOf(s);
  const options = d.options ?? [];
  if (d.discriminator && data && typeof data === 'object') {
    const want = (data as Record<string, unknown>)[d.discriminator];
    for (const o of options) {
      const shape = defOf(unwrap(o)).shape;
      const lit = shape?.[d.discriminator];
      if (lit && defOf(unwrap(lit)).values?.includes(want)) return o;
    }
    return undefined;
  }
  // A plain union: the object option that shares the most keys with the data.
  let best: z.ZodType | undefined;
  let bestScore = -1;
  for (const o of options) {
    const shape = defOf(unwrap(o)).shape;
    if (!shape || !data || typeof data !== 'object') continue;
    const score = Object.keys(data).filter((k) => k in shape).length;
    if (score > bestScore) {
      bestScore = score;
      best = o;
    }
  }
  return best;
}

/** The schema at `path` in `root`, following the data through unions. */
export function schemaAt(root: z.ZodType, path: readonly Seg[], data: unknown): z.ZodType | undefined {
  let s: z.ZodType | undefined = root;
  let cur = data;
  for (let i = 0; i <= path.length; i++) {
    if (!s) return undefined;
    s = unwrap(s);
    if (defOf(s).type === 'union') s = pickOption(s, cur);
    if (!s) return undefined;
    s = unwrap(s);
    if (i === path.length) return s;
    const seg = path[i] as Seg;
    const d = defOf(s);
    if (d.type === 'object') s = d.shape?.[String(seg)];
    else if (d.type === 'record') s = d.valueType;
    else if (d.type === 'array') s = d.element;
    else return undefined;
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[String(seg)] : undefined;
  }
  return s;
}

function valueAt(data: unknown, path: readonly Seg[]): unknown {
  let cur = data;
  for (const seg of path) {
    if (!cur || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[String(seg)];
  }
  return cur;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string "${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  return `${typeof v === 'number' ? 'the number' : 'the value'} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  number: 'a number',
  int: 'a whole number',
  string: 'a string',
  boolean: 'true or false',
  object: 'a mapping',
  array: 'a list',
  record: 'a mapping',
};

type Issue = z.core.$ZodIssue;

export function issueToProblems(issue: Issue, src: SourceFile, root: z.ZodType, prefix: readonly Seg[] = []): Problem[] {
  const path = [...prefix, ...issue.path] as Seg[];
  const data = src.data;
  const mk = (p: readonly Seg[], message: string, key = false): Problem => {
    const pos = locate(src, p, key);
    return { file: src.file, line: pos.line, col: pos.col, path: p.join('.'), message, severity: 'error' };
  };
  const value = valueAt(data, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const here = schemaAt(root, path, data);
      const known = here ? Object.keys(defOf(here).shape ?? {}) : [];
      return issue.keys.map((k) =>
        mk([...path, k], `unknown key${suggestion(k, known)}${known.length && !suggestion(k, known) ? ` (allowed: ${known.join(', ')})` : ''}`, true),
      );
    }
    case 'invalid_type': {
      if (value === undefined) return [mk(path, 'is required')];
      const exp = EXPECTED[issue.expected] ?? issue.expected;
      return [mk(path, `must be ${exp}, not ${kindOf(value)}`)];
    }
    case 'invalid_union': {
      const u = issue as Issue & { discriminator?: string; options?: unknown[] };
      if (u.discriminator) {
        const opts = (u.options ?? []).map(String);
        const got = value;
        if (got === undefined) return [mk(path, `is required: one of ${opts.join(' | ')}`)];
        return [mk(path, `must be one of ${opts.join(' | ')}, not ${kindOf(got)}${typeof got === 'string' ? suggestion(got, opts) : ''}`)];
      }
      // A union that says what it takes (`{ error: … }` in the schema) says it; others show their description.
      if (value !== undefined && issue.message && !/^Invalid input/.test(issue.message)) return [mk(path, issue.message)];
      const unionDesc = schemaDescription(root, path, data) ?? 'is not one of the allowed forms';
      return [mk(path, value === undefined ? `is required: ${unionDesc}` : `invalid value: ${unionDesc}`)];
    }
    case 'invalid_value': {
      const opts = issue.values.map((v) => String(v));
      if (value === undefined) return [mk(path, `is required: one of ${opts.join(' | ')}`)];
      return [mk(path, `must be ${opts.length === 1 ? `"${opts[0]}"` : `one of ${opts.join(' | ')}`}, not ${kindOf(value)}${typeof value === 'string' ? suggestion(value, opts) : ''}`)];
    }
    case 'too_small': {
      const m = issue as Issue & { minimum: number | bigint; origin: string; inclusive?: boolean };
      if (m.origin === 'string') return [mk(path, issue.message.startsWith('Too small') ? 'must not be empty' : issue.message)];
      if (m.origin === 'array') return [mk(path, `must have at least ${m.minimum} item${Number(m.minimum) === 1 ? '' : 's'}`)];
      return [mk(path, `must be ${m.inclusive === false ? 'greater than' : 'at least'} ${m.minimum}, not ${String(value)}`)];
    }
    case 'too_big': {
      const m = issue as Issue & { maximum: number | bigint; origin: string; inclusive?: boolean };
      if (m.origin === 'string') return [mk(path, `is too long (at most ${m.maximum} characters)`)];
      if (m.origin === 'array') return [mk(path, `must have at most ${m.maximum} items`)];
      return [mk(path, `must be ${m.inclusive === false ? 'less than' : 'at most'} ${m.maximum}, not ${String(value)}`)];
    }
    default:
      return [mk(path, issue.message)];
  }
}

function schemaDescription(root: z.ZodType, path: readonly Seg[], data: unknown): string | undefined {
  // The description may sit on a wrapper (optional/default) rather than on the union itself.
  let s: z.ZodType | undefined = root;
  for (let i = 0; i < path.length && s; i++) {
    s = unwrap(s);
    if (defOf(s).type === 'union') s = pickOption(s, valueAt(data, path.slice(0, i)));
    if (!s) return undefined;
    s = unwrap(s);
    const d = defOf(s);
    const seg = path[i] as Seg;
    s = d.type === 'object' ? d.shape?.[String(seg)] : d.type === 'record' ? d.valueType : d.type === 'array' ? d.element : undefined;
  }
  let cur = s;
  while (cur) {
    const desc = (cur as { description?: string }).description;
    if (desc) return desc;
    const d = defOf(cur);
    cur = d.innerType ?? d.in;
  }
  return undefined;
}
