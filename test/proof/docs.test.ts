/**
 * The documents say what the code does: the README's command table is the CLI's own help (each
 * command's Usage line, summary and Exit paragraph; `npm run docs:commands` rewrites it), every
 * command has its `npm run` script, and every file path README.md and BENCHMARKS.md name exists.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS_END, COMMANDS_START, commandTable } from '../../src/cli/main.js';
import { cli, root } from '../cli.js';

const read = (f: string) => readFileSync(join(root, f), 'utf8');
/** The commands `parmanu --help` lists. */
const commands = () => [...cli(['--help']).out.matchAll(/^ {2}(\w+) {2,}/gm)].map((m) => m[1] as string);

describe('README command table', () => {
  it('is what the commands\' --help says (run `npm run build:dev && npm run docs:commands` after changing a help)', async () => {
    const readme = read('README.md');
    const a = readme.indexOf(COMMANDS_START);
    const b = readme.indexOf(COMMANDS_END);
    expect(a, 'README.md has the command table markers').toBeGreaterThan(0);
    expect(readme.slice(a + COMMANDS_START.length, b).trim()).toBe(await commandTable());
  });

  it('has a row, an npm script and a help starting with its Usage line for every command', () => {
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
    const listed = commands();
    expect(listed).toContain('destroy');
    for (const c of listed) {
      const help = cli([c, '--help']);
      expect(help.code).toBe(0);
      expect(help.out.split('\n')[0]).toMatch(new RegExp(`^Usage: parmanu ${c}( |$)`));
      expect(help.out).toMatch(/(^|\n)Exit: /);
      expect(scripts[c]).toBe(`node bin/parmanu.js ${c}`);
      expect(read('README.md')).toContain(`| \`npm run ${c} -- `);
    }
  });
});

/** Files the repository tracks, and their first path segments. */
const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
const tops = new Set(tracked.map((f) => f.split('/')[0] as string));
const names = new Set(tracked.map((f) => basename(f)));
const shared = join(root, '..', 'shared');

/**
 * The file paths a markdown text names, in code spans and link targets: those that start with a
 * top-level entry of the repository (`src/…`, `bench/…`, `examples/…`, `BENCHMARKS.md`), or with
 * `../shared/`, or that name a trace (`*.csv`) or a source file (`*.ts`) by itself. Placeholders
 * (`<pool>`, `NAME`), globs and URLs are not paths.
 */
function pathsIn(text: string): string[] {
  const words = new Set<string>();
  for (const m of text.matchAll(/`([^`\n]+)`/g)) for (const w of (m[1] as string).split(/\s+/)) words.add(w);
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) words.add(m[1] as string);
  const out = new Set<string>();
  for (const raw of words) {
    const w = raw.replace(/^["'(]+/, '').replace(/[,;:.)"']+$/, '').replace(/#.*$/, '');
    if (!w || /^[a-z]+:/i.test(w) || /[<>*{}$|…?&=[\]]/.test(w) || w.split('/').some((seg) => /^[A-Z_]{2,}$/.test(seg))) continue;
    const first = w.split('/')[0] as string;
    if (w.startsWith('../shared/') || (first !== '' && tops.has(first) && (w.includes('/') || /\.\w+$/.test(w))) || (!w.includes('/') && /\.(csv|ts)$/.test(w))) out.add(w);
  }
  return [...out].sort();
}

function exists(p: string): boolean | 'skip' {
  if (p.startsWith('../shared/')) return existsSync(shared) ? existsSync(join(root, p)) : 'skip';
  if (p.includes('/')) return existsSync(join(root, p));
  // A file named alone: tracked somewhere in the repository, or one of the shared traces.
  return names.has(p) || (existsSync(shared) ? existsSync(join(shared, 'traces', p)) : 'skip');
}

describe('paths named in README.md and BENCHMARKS.md', () => {
  it('finds the paths it should (the extraction itself)', () => {
    expect(pathsIn('see `bench/cases/simulate.ts`, [x](BENCHMARKS.md), `../shared/traces/a.csv`, `trace.csv`, `observe.ts`, `<stateDir>/pools/<pool>`, `https://x.y/z`, `--policy PATH`, `npm run bench`, `NAME/x`')).toEqual(['../shared/traces/a.csv', 'BENCHMARKS.md', 'bench/cases/simulate.ts', 'observe.ts', 'trace.csv']);
    expect(exists('bench/no-such-file.ts')).toBe(false);
    expect(exists('no-such-trace.csv')).not.toBe(true);
  });

  it.each(['README.md', 'BENCHMARKS.md'])('every file path %s names exists', (doc) => {
    const paths = pathsIn(read(doc));
    expect(paths.length).toBeGreaterThan(3);
    const missing = paths.filter((p) => exists(p) === false);
    expect(missing, `${doc} names files that do not exist`).toEqual([]);
  });

  it('BENCHMARKS.md names the trace simulate-bitcoin reads, and bench reads that file', () => {
    const bench = read('BENCHMARKS.md');
    expect(bench).toContain('`../shared/traces/bitcoin-core-gha.csv`');
    expect(read('bench/cases/simulate.ts')).toContain("join(tracesDir, 'bitcoin-core-gha.csv')");
    expect(read('bench/run.ts')).toContain("resolve(root, '..', 'shared', 'traces')");
  });
});
