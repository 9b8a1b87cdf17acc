/**
 * What a user installs: the shipped CLI (bin/parmanu.js → dist/src, and dist/stacks) neither
 * contains nor imports development code. bench/ and the test emulators are development tools
 * (`npm run bench|soak` in a checkout): no compiled import, static or dynamic, leads there, and the
 * packed package holds none of them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliAsync, root } from '../cli.js';

const SHIPPED = ['dist/src', 'dist/stacks'];

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath, e.name));
}

/** Every module specifier a compiled file names: import/export … from, import '…', import('…'), require('…'), new URL('…', import.meta.url). */
function specifiers(code: string): { literal: string[]; computed: string[] } {
  const literal: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*|\brequire\s*\(\s*|\bnew\s+URL\s*\(\s*)(['"`])([^'"`]+)\1/gm;
  for (const m of code.matchAll(re)) literal.push(m[2] as string);
  // A dynamic import of anything but a string literal could lead anywhere: none is allowed.
  const computed = [...code.matchAll(/\bimport\s*\(\s*(?!['"`])([^)]{0,60})/g)].map((m) => m[1] as string);
  return { literal, computed };
}

describe('the shipped CLI', () => {
  it('dist/src and dist/stacks import nothing under bench/ or test/, and every relative import stays inside them', () => {
    const files = SHIPPED.flatMap((d) => jsFiles(join(root, d)));
    expect(files.length).toBeGreaterThan(20);
    expect(files).toContain(join(root, 'dist', 'src', 'cli', 'main.js'));
    const bad: string[] = [];
    let seen = 0;
    for (const file of files) {
      const { literal, computed } = specifiers(readFileSync(file, 'utf8'));
      const at = relative(root, file);
      for (const c of computed) bad.push(`${at}: import(${c}…) with a computed specifier`);
      for (const spec of literal) {
        seen++;
        if (/(^|\/)(bench|test)\//.test(spec)) bad.push(`${at}: imports ${spec}`);
        if (!spec.startsWith('.')) continue;
        const target = relative(root, resolve(dirname(file), spec));
        if (!SHIPPED.some((d) => target.startsWith(d.split('/').join(sep) + sep))) bad.push(`${at}: imports ${spec} (${target}), outside ${SHIPPED.join(' and ')}`);
        else if (spec.endsWith('.js') && !existsSync(join(root, target))) bad.push(`${at}: imports ${spec}, which was not compiled`);
      }
    }
    expect(seen).toBeGreaterThan(100);
    expect(bad).toEqual([]);
  });

  it('a packed package (npm pack) holds bin/parmanu.js, dist/src, dist/stacks and the README, and no bench or test code', () => {
    const json = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const [pack] = JSON.parse(json) as Array<{ files: Array<{ path: string }> }>;
    const paths = (pack?.files ?? []).map((f) => f.path);
    for (const p of ['package.json', 'README.md', 'bin/parmanu.js', 'dist/src/cli/main.js', 'dist/src/policy/load.js', 'dist/stacks/render.js']) expect(paths).toContain(p);
    const outside = paths.filter((p) => !['package.json', 'README.md', 'LICENSE', 'bin/parmanu.js'].includes(p) && !SHIPPED.some((d) => p.startsWith(`${d}/`)));
    expect(outside).toEqual([]);
    expect(paths.filter((p) => /(^|\/)(bench|test)(\/|$)/.test(p))).toEqual([]);
  });

  it('`parmanu --help` lists no development tool as a command, and `parmanu bench` says where it is', async () => {
    const help = await cliAsync(['--help']);
    expect(help.code).toBe(0);
    const commands = help.out.split('\n').filter((l) => /^ {2}\S/.test(l)).map((l) => l.trim().split(/\s+/)[0]);
    expect(commands).toContain('validate');
    expect(commands).not.toContain('bench');
    expect(commands).not.toContain('soak');
    expect(help.out).toMatch(/Development tools \(bench, soak\) run from a checkout of the repository: npm run <tool>\./);
    const bench = await cliAsync(['bench', '--json']);
    expect(bench.code).toBe(2);
    expect(bench.out).toBe('');
    expect(bench.err).toBe('parmanu: "bench" is a development tool, not part of the installed CLI: run `npm run bench` in a checkout of the repository\n');
  });
});
