/* eslint-disable no-control-regex -- these tests are about control characters */
import { describe, expect, it } from 'vitest';
import { cycleLogger } from '../../src/cli/log.js';
import type { Io } from '../../src/cli/errors.js';
import { forTerminal } from '../../src/policy/text.js';
import { formatProblem } from '../../src/policy/types.js';

const NASTY = 'runner-1\u001b]0;pwned\u0007 \u001b[2J\u001b[31mred\u001b[0m \u009b31m c1 \u001bP q \u001b\\ bell\u0007 nul\u0000 cr\r del\u007f tab\tnl\nend';

describe('forTerminal: what a CI platform or a policy says reaches the terminal without control characters', () => {
  it('removes ESC sequences whole (CSI, OSC, DCS, C1 CSI) and drops every other control but newline and tab', () => {
    const t = forTerminal(NASTY);
    expect(t).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(t).toBe('runner-1 red  c1  bell nul cr del tab\tnl\nend');
  });

  it('leaves ordinary text alone', () => {
    expect(forTerminal('linux-a1b2: 3 queued → 4 nodes [12 ms] ✖ ünïcode')).toBe('linux-a1b2: 3 queued → 4 nodes [12 ms] ✖ ünïcode');
  });

  it('formatProblem prints what a policy quotes without control characters', () => {
    const line = formatProblem({ file: 'p.yaml', line: 1, col: 2, path: 'pools.p.emitter', message: 'no emitter named "\u001b[2Jx"', severity: 'error' });
    expect(line).toBe('p.yaml:1:2: pools.p.emitter: no emitter named "x"');
  });

  it('progress lines on a terminal carry no control characters from runner names or reasons', () => {
    const lines: string[] = [];
    const io: Io = { out: () => undefined, err: (l) => lines.push(l), env: {}, cwd: '.', isTTY: true };
    const log = cycleLogger(io, { json: false, verbose: true, quiet: false, stderrIsTTY: true });
    log({ level: 'warn', msg: `probe failed: ${NASTY}`, emitter: 'gl\u001b[1m' } as never);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(lines[0]).toContain('! gl: probe failed: runner-1');
  });
});
