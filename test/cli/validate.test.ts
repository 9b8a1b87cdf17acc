/**
 * The compiled CLI as a user runs it (`npm test` builds it first): exit codes, output shape, no
 * stack traces, no secret values.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli } from '../cli.js';
import { TEST_SECRET } from '../secret-scan.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-cli-'));
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { cwd: dir, env });

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = 'emitters:\n  gl:\n    type: gitlab\n    url: https://gitlab.example.com\n    token: ${env:GL_TOKEN}\n    projects: [a/b]\n    runnerOwner: instance\nplatforms:\n  lab: { type: local }\npools:\n  p: { emitter: gl, platform: lab }\n';

describe('parmanu validate', () => {
  it('exits 0 on the example policies, from the repository root', () => {
    const r = runCli(['validate'], { inheritEnv: true });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/✔ 1 file valid: 3 emitters, 2 platforms, 4 pools/);
  });

  it('exits 2 with FILE:LINE:COL lines and a summary, and no stack trace', () => {
    writeFileSync(join(dir, 'bad.yaml'), 'pools:\n  p:\n    emitter: x\n    scaling: { max: many }\n');
    const r = cli(['validate', 'bad.yaml']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('bad.yaml:2:3: pools.p.platform: is required');
    expect(r.out).toContain('bad.yaml:4:21: pools.p.scaling.max: must be a number, not the string "many"');
    expect(r.out).toMatch(/✖ \d+ errors in 1 file; nothing was applied/);
    expect(r.out + r.err).not.toMatch(/\n\s+at .*\(/);
  });

  it('prints JSON with --json', () => {
    writeFileSync(join(dir, 'good.yaml'), GOOD);
    const r = cli(['validate', 'good.yaml', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ok: true, files: ['good.yaml'], problems: [] });
  });

  it('checks references with --check-env without printing their values', () => {
    writeFileSync(join(dir, 'good.yaml'), GOOD);
    const missing = cli(['validate', 'good.yaml', '--check-env']);
    expect(missing.code).toBe(2);
    expect(missing.out).toContain('good.yaml:5:12: emitters.gl.token: ${env:GL_TOKEN}: environment variable GL_TOKEN is not set');
    const set = cli(['validate', 'good.yaml', '--check-env'], { GL_TOKEN: TEST_SECRET });
    expect(set.code).toBe(0);
    expect(set.out + set.err).not.toContain('SECRETVALUE');
  });

  it('refuses unknown flags and commands with exit 2', () => {
    const flag = cli(['validate', '--frobnicate']);
    expect(flag.code).toBe(2);
    expect(flag.err).toBe("parmanu: validate: unknown option '--frobnicate' (see --help)\n");
    const cmd = cli(['valdate']);
    expect(cmd.code).toBe(2);
    expect(cmd.err).toMatch(/^parmanu: unknown command "valdate"/);
  });

  it('has --help for the tool and the command', () => {
    expect(cli(['--help'])).toMatchObject({ code: 0, out: expect.stringContaining('Commands:') });
    expect(cli(['validate', '--help'])).toMatchObject({ code: 0, out: expect.stringContaining('--check-env') });
  });

  it('reports a missing policy directory', () => {
    const r = cli(['validate']);
    expect(r.code).toBe(2);
    expect(r.out).toContain('policies:1:1: no such file or directory');
  });
});
