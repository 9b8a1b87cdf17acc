/**
 * Strings from a CI platform reach the terminal without control sequences: the compiled CLI
 * against a GitLab emulator whose error bodies and runner names carry ANSI escapes and other
 * control characters (a hostile or broken platform). `reconcile` (terminal lines) and `status` print
 * the reason and the names with the escapes stripped.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync } from '../cli.js';
import { GitlabEmulator } from '../emulators/gitlab.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-terminal-'));
let emu: GitlabEmulator;
const HOSTILE = '\u001b[2J\u001b]0;pwned\u0007\u001b[31mred\u001b[0m\u0008\u009b1m';
// Any C0 control but newline and tab, DEL, C1 controls.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

beforeAll(async () => {
  emu = await new GitlabEmulator().start();
  const group = emu.addGroup('platform');
  emu.addProject('api', group);
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'policies', 'fleet.yaml'),
    `emitters:\n  gl:\n    type: gitlab\n    url: ${emu.url}\n    token: \${env:GL_TOKEN}\n    groups: [platform]\n    runnerOwner: { group: platform }\n    requestTimeout: 2s\n    retries: 0\nplatforms:\n  lab: { type: local }\npools:\n  linux:\n    emitter: gl\n    platform: lab\n    labels: [linux]\n    scaling: { predict: false }\n`,
  );
});
afterAll(async () => {
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
});

const run = (args: string[]) => cliAsync(args, { cwd: dir, env: { GL_TOKEN: emu.token, PARMANU_STATE_DIR: join(dir, 'state') }, timeoutMs: 120_000 });

describe('terminal output of strings from a CI platform', () => {
  it('reconcile prints a probe failure reason without its control sequences', async () => {
    emu.faults.push({ path: /.*/, status: 400, body: { message: `bad ${HOSTILE} request` } });
    try {
      const r = await run(['reconcile']);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/probe failed/);
      expect(r.out).toMatch(/red/);
      expect(r.out).not.toMatch(CONTROL);
    } finally {
      emu.faults.length = 0;
    }
  });

  it('status prints runner names and states without control sequences', async () => {
    emu.addRunner(`linux-x${HOSTILE}`, { maintenance_note: 'parmanu-pool=linux' });
    emu.faults.push({ path: /.*/, status: 400, body: { message: `bad ${HOSTILE} request` } });
    try {
      const r = await run(['status']);
      expect(r.out).toMatch(/linux/);
      expect(r.out).not.toMatch(CONTROL);
    } finally {
      emu.faults.length = 0;
    }
  });
});
