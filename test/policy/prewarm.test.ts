/** `scaling.prewarm` in the policy (issue 17, item 4): defaults, durations, problems at FILE:LINE:COL. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-prewarm-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function load(pool: string) {
  const f = join(dir, `case-${n++}.yaml`);
  writeFileSync(f, ['emitters:', '  r: { type: replay, trace: t.csv }', 'platforms:', '  lab: { type: local }', 'pools:', `  a: ${pool}`, ''].join('\n'));
  const r = loadPolicy([f], { cwd: dir, env: {} });
  return { ...r, lines: r.problems.map(formatProblem).map((l) => l.slice(l.indexOf('.yaml') + 5)) };
}

describe('scaling.prewarm', () => {
  it('defaults: on, lead from the boot time (unset), grace 10m', () => {
    const r = load('{ emitter: r, platform: lab }');
    expect(r.lines).toEqual([]);
    expect(r.policy?.pools[0]?.scaling.prewarm).toEqual({ schedules: true, leadMs: undefined, graceMs: 600_000 });
  });

  it('takes schedules, lead and grace as written', () => {
    const r = load('{ emitter: r, platform: lab, scaling: { prewarm: { schedules: false, lead: 7m, grace: 90s } } }');
    expect(r.lines).toEqual([]);
    expect(r.policy?.pools[0]?.scaling.prewarm).toEqual({ schedules: false, leadMs: 420_000, graceMs: 90_000 });
  });

  it('says where an unknown key or a bad duration is', () => {
    expect(load('{ emitter: r, platform: lab, scaling: { prewarm: { leed: 5m } } }').lines.join('\n')).toMatch(/^:6:\d+: pools\.a\.scaling\.prewarm\.leed: unknown key/m);
    expect(load('{ emitter: r, platform: lab, scaling: { prewarm: { grace: soon } } }').lines.join('\n')).toMatch(/^:6:\d+: pools\.a\.scaling\.prewarm\.grace: /m);
  });

  it('warns about a lead beyond the hour the schedules are read ahead', () => {
    const r = load('{ emitter: r, platform: lab, scaling: { prewarm: { lead: 2h } } }');
    expect(r.lines).toEqual([expect.stringMatching(/pools\.a\.scaling\.prewarm\.lead: is over 1h: pipeline schedules are read an hour ahead at most/)]);
    expect(r.problems[0]?.severity).toBe('warning');
    expect(r.policy).toBeDefined();
  });
});
