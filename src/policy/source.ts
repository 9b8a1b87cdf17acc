/**
 * One policy file read as YAML with exact positions. Reading is bounded: files over 1 MiB, binary
 * files, empty files and alias-heavy documents are refused with a problem, never an exception.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import type { Problem } from './types.js';

export const MAX_POLICY_BYTES = 1024 * 1024;
export const MAX_ALIASES = 100;

export interface SourceFile {
  file: string;
  doc: Document.Parsed | undefined;
  lines: LineCounter;
  /** The document as plain data, or undefined when it could not be read. */
  data: unknown;
}

type PathSeg = string | number;

export function readSource(path: string, problems: Problem[], file = path): SourceFile {
  const lines = new LineCounter();
  const at = (line: number, col: number, message: string) =>
    problems.push({ file, line, col, path: '', message, severity: 'error' });
  let buf: Buffer;
  try {
    const st = statSync(path);
    if (st.isDirectory()) {
      at(1, 1, 'is a directory, not a policy file');
      return { file, doc: undefined, lines, data: undefined };
    }
    if (st.size > MAX_POLICY_BYTES) {
      at(1, 1, `file is ${st.size} bytes; a policy file is at most ${MAX_POLICY_BYTES} bytes (1 MiB)`);
      return { file, doc: undefined, lines, data: undefined };
    }
    buf = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file or directory' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? 'unknown error'})`;
    at(1, 1, why);
    return { file, doc: undefined, lines, data: undefined };
  }
  if (buf.includes(0)) {
    at(1, 1, 'binary content (NUL byte); a policy file is UTF-8 YAML text');
    return { file, doc: undefined, lines, data: undefined };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    at(1, 1, 'not valid UTF-8; a policy file is UTF-8 YAML text');
    return { file, doc: undefined, lines, data: undefined };
  }
  if (text.trim() === '' || text.split('\n').every((l) => /^\s*(#.*)?$/.test(l))) {
    at(1, 1, 'empty policy file (only blank lines and comments); remove it or add emitters, platforms or pools');
    return { file, doc: undefined, lines, data: undefined };
  }

  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, merge: true, prettyErrors: true, strict: true });
  if (doc.errors.length > 0) {
    // The first error only: what follows a syntax error is read out of step and would bury it.
    const e = doc.errors.reduce((a, b) => (b.pos[0] < a.pos[0] ? b : a));
    const ref = unquotedReference(text, e.pos[0]);
    if (ref) {
      const pos = lines.linePos(ref.offset);
      at(pos.line, pos.col, `YAML syntax: ${ref.text} inside { … } or [ … ] is read as YAML (its braces open a mapping); quote it: "${ref.text}"`);
    } else {
      const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
      const token = /^[^\s:#,{}[\]]+/.exec(text.slice(e.pos[0]))?.[0];
      at(pos.line, pos.col, yamlMessage(e.code, e.message, token));
    }
    return { file, doc: undefined, lines, data: undefined };
  }
  let aliases = 0;
  let aliasProblem = false;
  visit(doc, {
    Alias(_, node) {
      aliases += 1;
      if (aliases > MAX_ALIASES && !aliasProblem) {
        aliasProblem = true;
        const pos = lines.linePos(node.range?.[0] ?? 0);
        at(pos.line, pos.col, `more than ${MAX_ALIASES} YAML aliases; refused (alias expansion bomb?)`);
      }
    },
  });
  if (aliasProblem) return { file, doc: undefined, lines, data: undefined };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    at(1, 1, `YAML aliases expand too much: ${(err as Error).message.split('\n')[0]}`);
    return { file, doc: undefined, lines, data: undefined };
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    const pos = lines.linePos(doc.contents?.range?.[0] ?? 0);
    at(pos.line, pos.col, 'a policy file is a mapping with the keys emitters, platforms and pools');
    return { file, doc, lines, data: undefined };
  }
  return { file, doc, lines, data };
}

/**
 * An unquoted `${…}` reference inside a flow collection (`{ token: ${env:X} }`) at or before a
 * syntax error on the same line: the usual cause of that error. A reference in a block mapping
 * (`token: ${env:X}`) is a plain scalar and parses; in a flow collection its `{` opens a mapping.
 */
function unquotedReference(text: string, errorAt: number): { offset: number; text: string } | undefined {
  const lineStart = text.lastIndexOf('\n', errorAt - 1) + 1;
  const lineEnd = text.indexOf('\n', errorAt);
  const line = text.slice(lineStart, lineEnd < 0 ? text.length : lineEnd);
  const re = /\$\{[^}\s"']*\}?/g;
  let quote: string | undefined;
  let m: RegExpExecArray | null;
  let scanned = 0;
  while ((m = re.exec(line))) {
    // Quotes opened and not closed before the reference: it is inside a quoted string.
    for (; scanned < m.index; scanned++) {
      const c = line[scanned];
      if (c === '#' && quote === undefined && (scanned === 0 || /\s/.test(line[scanned - 1] ?? ''))) return undefined;
      if (quote === undefined && (c === '"' || c === "'")) quote = c;
      else if (c === quote) quote = undefined;
    }
    if (quote !== undefined || lineStart + m.index > errorAt) continue;
    return { offset: lineStart + m.index, text: m[0] };
  }
  return undefined;
}

function yamlMessage(code: string, message: string, token: string | undefined): string {
  const first = message.split('\n')[0] ?? message;
  const clean = first.replace(/ at line \d+, column \d+:?$/, '');
  if (code === 'DUPLICATE_KEY') return `duplicate key${token ? ` "${token}"` : ''}: a key appears once per mapping`;
  if (/tab/i.test(clean)) return `YAML syntax: ${clean} (indent with spaces)`;
  return `YAML syntax: ${clean}`;
}

/** Line and column of the node at `path` (its key when `key` is set), or of the deepest ancestor found. */
export function locate(src: SourceFile, path: readonly PathSeg[], key = false): { line: number; col: number } {
  if (!src.doc) return { line: 1, col: 1 };
  let node: Node | null | undefined = src.doc.contents as Node | null;
  let lastKey: Node | undefined;
  let deepest: Node | undefined = node ?? undefined;
  let deepestKey: Node | undefined;
  let found = true;
  for (const seg of path) {
    if (node && isAlias(node)) node = node.resolve(src.doc) as Node | undefined;
    if (node && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) {
        found = false;
        break;
      }
      lastKey = pair.key as Node;
      node = pair.value as Node | null;
      deepestKey = lastKey;
      deepest = node ?? lastKey;
    } else if (node && isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) {
        found = false;
        break;
      }
      lastKey = undefined;
      node = item;
      deepestKey = undefined;
      deepest = item;
    } else {
      found = false;
      break;
    }
  }
  const target = found ? (key && lastKey ? lastKey : (node ?? lastKey)) : (deepestKey ?? deepest);
  const offset = target?.range?.[0] ?? 0;
  return src.lines.linePos(offset);
}

/** Every string scalar of the document with its position, for whole-document scans (literal secrets). */
export function stringScalars(src: SourceFile): Array<{ value: string; line: number; col: number; path: string }> {
  const out: Array<{ value: string; line: number; col: number; path: string }> = [];
  if (!src.doc) return out;
  visit(src.doc, {
    Scalar(_, node, ancestors) {
      if (typeof node.value !== 'string') return;
      const parts: string[] = [];
      for (let i = 0; i < ancestors.length; i++) {
        const a = ancestors[i];
        const next = ancestors[i + 1] ?? node;
        if (a && typeof a === 'object' && 'key' in a && 'value' in a && (a as { value: unknown }).value === next) {
          const k = (a as { key: unknown }).key;
          if (isScalar(k)) parts.push(String(k.value));
        } else if (isSeq(a as Node)) {
          const idx = (a as { items: unknown[] }).items.indexOf(next);
          if (idx >= 0) parts.push(String(idx));
        }
      }
      const pos = src.lines.linePos(node.range?.[0] ?? 0);
      out.push({ value: node.value, line: pos.line, col: pos.col, path: parts.join('.') });
    },
  });
  return out;
}
