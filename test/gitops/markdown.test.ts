/* eslint-disable no-control-regex -- the tests look for control characters on purpose */
import { describe, expect, it } from 'vitest';
import { COMMENT_MARKER, planMarkdown, type PlanDiff } from '../../src/gitops/diff.js';
import { htmlText, mdCode, mdText } from '../../src/gitops/markdown.js';

const HOSTILE = '</details><img src=x onerror=alert(1)> [click](https://evil.example) **bold** a|b `tick` ``two`` \\ \u001b[31mred\u0007\nnext';

/** Cells of a GFM table row: split on pipes that no backslash escapes. */
const cells = (row: string) => row.split(/(?<!\\)\|/).slice(1, -1);

/** A line with its code spans removed (a backslash-escaped backtick opens none). */
function withoutCodeSpans(line: string): string {
  let out = '';
  for (let i = 0; i < line.length; ) {
    if (line[i] === '\\') {
      out += line.slice(i, i + 2);
      i += 2;
    } else if (line[i] === '`') {
      const fence = /^`+/.exec(line.slice(i))?.[0] ?? '`';
      i += fence.length + codeSpanAt(line, i).length + fence.length;
    } else out += line[i++];
  }
  return out;
}

/** The code span starting at `i` of `s`: its content, given its opening fence (a backtick fence is closed only by one of the same length). */
function codeSpanAt(s: string, i: number): string {
  const fence = /^`+/.exec(s.slice(i))?.[0] ?? '';
  const rest = s.slice(i + fence.length);
  const close = new RegExp(`(?<!\`)${fence}(?!\`)`).exec(rest);
  if (!close) throw new Error('unclosed code span');
  return rest.slice(0, close.index);
}

describe('markdown escaping of untrusted strings', () => {
  it('mdText: HTML entities for < > &, backslash before markdown punctuation, no controls, one line', () => {
    const t = mdText(HOSTILE);
    expect(t).not.toMatch(/<|>/);
    expect(t).toContain('&lt;/details&gt;&lt;img src=x onerror=alert\\(1\\)&gt;');
    expect(t).toContain('\\[click\\]\\(https\\://evil\\.example\\)');
    expect(t).toContain('\\*\\*bold\\*\\*');
    expect(t).toContain('a\\|b');
    expect(t).toContain('\\`tick\\`');
    expect(t).toContain('\\\\');
    expect(t).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(t).toContain('red next');
    expect(mdText('a & b')).toBe('a &amp; b');
    // Every [, ], |, ` and * is escaped.
    expect(t).not.toMatch(/(?<!\\)[[\]|`*]/);
  });

  it('mdCode: a backtick in the value cannot close the span', () => {
    for (const v of ['a`b', '``x``', '`', 'x`', 'plain', '```triple```']) {
      const span = mdCode(v);
      const inner = codeSpanAt(span, 0);
      expect(inner.trim()).toBe(v);
      expect(span.length).toBe(inner.length + 2 * (/^`+/.exec(span)?.[0].length ?? 0));
    }
    expect(mdCode('a|b', true)).toBe('`a\\|b`');
    expect(mdCode('a\nb\u001b[2Jc')).toBe('`a bc`');
  });

  it('htmlText: entities for what inline HTML would act on', () => {
    expect(htmlText('<b>"x" & \'y\'</b>')).toBe('&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;');
  });

  it('planMarkdown escapes job labels, emitter names, setting paths and values', () => {
    const d: PlanDiff = {
      pools: [{ pool: 'web', change: 'changed', settings: [{ path: 'labels', old: ['a'], new: [HOSTILE] }, { path: 'machine.image', old: 'img', new: '[x](javascript:alert(1))|' }], now: { nodes: 1, queued: 0, running: 0, desired: 1, create: 0, destroy: 0, replace: 0, at: 1 } }],
      unmatched: [{ emitter: 'gl<b>', labels: HOSTILE, jobs: 2, new: true }],
      report: { create: 0, update: 1, delete: 0 },
    };
    const md = planMarkdown(d);
    expect(md.startsWith(COMMENT_MARKER)).toBe(true);
    // The only HTML is Parmanu's own.
    const outsideCode = md.split('\n').map(withoutCodeSpans).join('\n');
    for (const m of outsideCode.matchAll(/<\/?([a-z!-]+)/g)) expect(['!--', 'details', 'summary', 'code']).toContain(m[1]);
    expect(outsideCode).not.toContain('<img');
    expect(outsideCode).not.toMatch(/(?<!\\)[[\]]/);
    expect(md).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    // Table rows keep their columns: a | in a value does not open a cell.
    const rows = md.split('\n').filter((l) => l.startsWith('| '));
    for (const r of rows.filter((l) => l.includes('`labels`') || l.includes('`machine.image`'))) expect(cells(r)).toHaveLength(3);
    // No link can be formed out of a value: [ and ] are escaped everywhere outside code spans.
    const setting = rows.find((l) => l.includes('`machine.image`')) ?? '';
    expect(setting).toContain('\\[x\\]\\(javascript\\:alert\\(1\\)\\)\\|');
    // The job labels sit in one code span that the value's backticks cannot close.
    const jobs = md.split('\n').find((l) => l.startsWith('**Jobs no pool would take**')) ?? '';
    const start = jobs.indexOf('`');
    expect(codeSpanAt(jobs, start)).toContain('[click](https://evil.example)');
    expect(jobs).toContain('(gl&lt;b&gt;)');
  });
});
