import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { manyPoolsPolicy } from '../../bench/fixtures.js';
import { loadPolicy } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/types.js';
import { INVALID_CASES } from './invalid-corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: string | Buffer): string {
  const f = join(dir, name);
  writeFileSync(f, content);
  return f;
}

describe('invalid policies', () => {
  it('has at least 40 cases', () => {
    expect(INVALID_CASES.length).toBeGreaterThanOrEqual(40);
  });

  it.each(INVALID_CASES.map((c, i) => [c.name, c, i] as const))('%s', (_name, c, i) => {
    const file = write(`case-${i}.yaml`, c.yaml);
    const r = loadPolicy([file], { cwd: dir });
    expect(r.policy).toBeUndefined();
    const errors = r.problems.filter((p) => p.severity === 'error');
    const hit = errors.find((p) => c.message.test(p.message));
    expect(hit, `no problem matching ${c.message}; got:\n${r.problems.map(formatProblem).join('\n')}`).toBeDefined();
    const [line, col] = c.at.split(':').map(Number);
    expect(hit?.line).toBe(line);
    if (col !== undefined) expect(hit?.col).toBe(col);
    if (c.path) expect(hit?.path).toBe(c.path);
    expect(hit?.file).toBe(`case-${i}.yaml`);
  });
});

describe('loading', () => {
  it('reports every problem of a file, not only the first', () => {
    const f = write(
      'many.yaml',
      'emitters:\n  x: { type: gitlub }\nplatforms:\n  y: { type: azure }\npools:\n  p:\n    emitter: x\n    platform: y\n    scaling: { min: 3, max: 1, mni: 2 }\n',
    );
    const r = loadPolicy([f], { cwd: dir });
    const msgs = r.problems.map(formatProblem);
    expect(msgs).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^many\.yaml:2:14: emitters\.x\.type: must be one of/),
        expect.stringMatching(/^many\.yaml:4:14: platforms\.y\.type: must be one of/),
        expect.stringMatching(/^many\.yaml:9:32: pools\.p\.scaling\.mni: unknown key/),
      ]),
    );
  });

  it('still checks the rules of a pool that failed the schema elsewhere', () => {
    const f = write('partial.yaml', 'pools:\n  p:\n    emitter: nope\n    platform: lab\n    runner: { jobsPerNode: 0 }\n    scaling: { min: 4, max: 2 }\n');
    const r = loadPolicy([f], { cwd: dir });
    const msgs = r.problems.map((p) => p.message);
    expect(msgs).toEqual(expect.arrayContaining([expect.stringMatching(/at least 1/), expect.stringMatching(/no emitter named "nope"/), expect.stringMatching(/min \(4\) is greater than max \(2\)/)]));
  });

  it('merges a directory of files and names both files on a duplicate', () => {
    const sub = mkdtempSync(join(dir, 'multi-'));
    writeFileSync(join(sub, 'a.yaml'), 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab }\n');
    writeFileSync(join(sub, 'b.yml'), 'pools:\n  q: { emitter: r, platform: lab, labels: [x] }\n  p: { emitter: r, platform: lab }\n');
    writeFileSync(join(sub, 'notes.txt'), 'not a policy');
    const r = loadPolicy([sub], { cwd: sub });
    expect(r.files).toEqual(['a.yaml', 'b.yml']);
    expect(r.problems.map(formatProblem)).toContain('b.yml:3:3: pools.p: duplicate pool name "p": also defined at a.yaml:6:3; names are unique across files');
  });

  it('resolves references across files and keeps policy order', () => {
    const sub = mkdtempSync(join(dir, 'order-'));
    writeFileSync(join(sub, '1-base.yaml'), 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\n');
    writeFileSync(join(sub, '2-pools.yaml'), 'pools:\n  zeta: { emitter: r, platform: lab, labels: [a] }\n  alpha: { emitter: r, platform: lab, labels: [b] }\n');
    const r = loadPolicy([sub], { cwd: sub });
    expect(r.problems.filter((p) => p.severity === 'error')).toEqual([]);
    expect(r.policy?.pools.map((p) => p.name)).toEqual(['zeta', 'alpha']);
  });

  it('applies defaults and converts durations', () => {
    const f = write('defaults.yaml', 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: r, platform: lab, scaling: { scaleDownAfter: 1h30m } }\n');
    const r = loadPolicy([f], { cwd: dir });
    const p = r.policy?.pools[0];
    expect(p?.scaling).toMatchObject({ min: 0, max: 100, spare: 0, maxStep: 20, scaleDownAfterMs: 5_400_000, minLifetimeMs: 120_000, bootTimeoutMs: 600_000, predict: true, schedules: [] });
    expect(p?.runner).toMatchObject({ jobsPerNode: 1, ephemeral: false, install: 'download' });
    expect(p?.machine).toMatchObject({ os: 'linux', diskGb: 50, spot: false });
    expect(r.policy?.emitters.r).toMatchObject({ probeIntervalMs: 30_000, requestTimeoutMs: 10_000, concurrency: 1 });
  });

  it('warns, without failing, about unused emitters and pools that shadow each other', () => {
    const f = write('warn.yaml', 'emitters:\n  r: { type: replay, trace: t.csv }\n  unused: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  a: { emitter: r, platform: lab, labels: [x, y] }\n  b: { emitter: r, platform: lab, labels: [y, x] }\n');
    const r = loadPolicy([f], { cwd: dir });
    expect(r.policy).toBeDefined();
    expect(r.problems.map(formatProblem)).toEqual([
      'warn.yaml:3:3: warning: emitters.unused: no pool uses this emitter',
      'warn.yaml:8:43: warning: pools.b.labels: takes exactly the jobs of pool "a" (same emitter and labels); "a", listed first, gets them all',
    ]);
  });

  it('supports anchors and merge keys within the alias bound', () => {
    const f = write(
      'anchors.yaml',
      'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  lab: { type: local }\npools:\n  a: &base\n    emitter: r\n    platform: lab\n    scaling: { max: 7 }\n  b:\n    <<: *base\n    labels: [big]\n',
    );
    const r = loadPolicy([f], { cwd: dir });
    expect(r.problems).toEqual([]);
    expect(r.policy?.pools.find((p) => p.name === 'b')?.scaling.max).toBe(7);
  });

  it('reports a missing path and a directory without policies', () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    const r = loadPolicy([join(dir, 'nope.yaml'), empty], { cwd: dir });
    expect(r.problems.map((p) => p.message).sort()).toEqual(['no *.yaml or *.yml policy files in this directory', 'no such file or directory']);
  });

  it('validates a 200-pool policy', () => {
    const f = write('many-pools.yaml', manyPoolsPolicy(200));
    const r = loadPolicy([f], { cwd: dir });
    expect(r.problems).toEqual([]);
    expect(r.policy?.pools).toHaveLength(200);
  });

  it('loads the example policies without a problem', () => {
    for (const p of ['policies', 'examples/demo']) {
      const r = loadPolicy([p]);
      expect(r.problems.map(formatProblem)).toEqual([]);
      expect(r.policy?.pools.length).toBeGreaterThan(0);
    }
  });

  it('starts every example policy with a schema modeline', () => {
    for (const f of ['policies/fleet.yaml', 'examples/demo/policy.yaml']) {
      expect(readFileSync(f, 'utf8').split('\n')[0]).toMatch(/^# yaml-language-server: \$schema=\S*schema\.json$/);
    }
  });
});
