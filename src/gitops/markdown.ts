/**
 * Untrusted strings in GitLab/GitHub markdown (job labels from any workflow author, names and
 * setting values from the policy, anything a CI platform returned). Text is escaped: HTML
 * entities for `< > &`, a backslash before every markdown punctuation character (backticks, `|`,
 * `[ ]` included), control characters dropped and line breaks folded, so a value can neither
 * open HTML, a link, an image or emphasis, nor end a table cell or a line. A code span takes a
 * backtick fence longer than any run of backticks in its value, so a backtick cannot close it.
 */

// C0 (newline and tab included: a value stays on its line), DEL, C1; ESC sequences go with their ESC.
// eslint-disable-next-line no-control-regex
const CONTROLS = /\u001b\[[0-?]*[ -/]*[@-~]?|[\u0000-\u001f\u007f-\u009f]/g;
/** Markdown punctuation that can start or end an inline construct, a block, or a table cell. */
const PUNCTUATION = /[\\`*_{}[\]()#+\-.!|~:]/g;

function oneLine(s: string): string {
  return s.replace(/\r\n|\r|\n|\t/g, ' ').replace(CONTROLS, '');
}

/** `s` as literal text in markdown (a table cell included). */
export function mdText(s: string): string {
  return oneLine(s)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(PUNCTUATION, (c) => `\\${c}`);
}

/** `s` as literal HTML text or attribute value: `& < > " '` as entities. */
export function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** `s` as literal text inside inline HTML (`<code>`, `<summary>`), where backslashes are not escapes. */
export function htmlText(s: string): string {
  return htmlEscape(oneLine(s));
}

/**
 * `s` as a code span: fenced by one backtick more than its longest run of backticks (padded with
 * a space when it starts or ends with one). In a table cell (`inTable`), `|` is escaped as GFM
 * tables require even inside code spans.
 */
export function mdCode(s: string, inTable = false): string {
  let v = oneLine(s);
  if (v === '') return '` `';
  const longest = Math.max(0, ...(v.match(/`+/g) ?? []).map((r) => r.length));
  const fence = '`'.repeat(longest + 1);
  const pad = v.startsWith('`') || v.endsWith('`') || (v.startsWith(' ') && v.endsWith(' ')) ? ' ' : '';
  if (inTable) v = v.replace(/\|/g, '\\|');
  return `${fence}${pad}${v}${pad}${fence}`;
}
