/**
 * The bad-input corpus, through the compiled CLI: every malformed policy of the foundation's
 * corpus, malformed traces, bad flags, missing `${env:…}` values, unreadable files and a missing
 * terraform. Each must give a clear error (one line per problem, naming the file and position
 * where there is one), exit 2, no stack trace, and run no terraform command: PARMANU_TERRAFORM is
 * a wrapper that records every call other than `version` before handing it to the real terraform.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliAsync, type CliResult } from '../cli.js';
import { INVALID_CASES } from '../policy/invalid-corpus.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-bad-'));
const wrapper = join(dir, 'terraform-wrapper');
let runs = 0;

const GOOD_TRACE = 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,600,linux\n';
const policy = (emitter: string) => `emitters:\n  ci:\n${emitter}platforms:\n  lab: { type: local }\npools:\n  p: { emitter: ci, platform: lab, labels: [linux] }\n`;
const replay = (trace: string) => policy(`    type: replay\n    trace: ${trace}\n`);
const gitlab = (token: string) => policy(`    type: gitlab\n    url: http://127.0.0.1:9\n    token: ${token}\n    projects: [a/b]\n    runnerOwner: instance\n`);

beforeAll(() => {
  writeFileSync(wrapper, `#!/bin/sh\n[ "$1" = version ] || echo "$@" >> "$PARMANU_TEST_CALLS"\nexec terraform "$@"\n`);
  chmodSync(wrapper, 0o755);
  writeFileSync(join(dir, 'good.csv'), GOOD_TRACE);
  writeFileSync(join(dir, 'good.yaml'), replay('good.csv'));
  mkdirSync(join(dir, 'a-directory'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI with the recording wrapper as terraform; `calls` is the file of what it recorded. */
async function run(args: string[], env: Record<string, string> = {}, cwd = dir): Promise<CliResult & { calls: string }> {
  const n = runs++;
  const calls = join(dir, `terraform-calls-${n}.log`);
  const r = await cliAsync(args, { cwd, env: { PARMANU_TERRAFORM: wrapper, PARMANU_TEST_CALLS: calls, PARMANU_STATE_DIR: join(dir, `state-${n}`), ...env }, timeoutMs: 60_000 });
  return { ...r, calls: existsSync(calls) ? readFileSync(calls, 'utf8') : '' };
}

/** A directory of its own, for cases that write files with fixed names. */
function own(): string {
  const d = mkdtempSync(join(dir, 'case-'));
  writeFileSync(join(d, 'good.csv'), GOOD_TRACE);
  mkdirSync(join(d, 'a-directory'));
  return d;
}

function expectRefused(r: CliResult & { calls: string }, message: RegExp): void {
  expect(r.code, `stdout: ${r.out}\nstderr: ${r.err}`).toBe(2);
  const text = r.out + r.err;
  expect(text).toMatch(message);
  expect(text).not.toMatch(/\n\s+at .*[(:]\d+/);
  expect(text).not.toMatch(/\b(TypeError|ReferenceError|SyntaxError|ZodError)\b/);
  // Every line the CLI printed is short enough to read: no dumps.
  for (const line of text.split('\n')) expect(line.length).toBeLessThan(400);
  expect(r.calls).toBe('');
}

describe.concurrent('every malformed policy of the corpus: reconcile refuses it before any terraform', () => {
  it.each(INVALID_CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const file = join(dir, `corpus-${INVALID_CASES.indexOf(c)}.yaml`);
    writeFileSync(file, c.yaml);
    const r = await run(['reconcile', '--policy', file], { GITLAB_TOKEN: 'x' });
    expectRefused(r, new RegExp(`corpus-\\d+\\.yaml:${c.at}\\b.*`));
    expect(r.out + r.err).toMatch(c.message);
  });
});

describe.concurrent('malformed traces', () => {
  const traces: Array<[string, string, RegExp]> = [
    ['a missing header', '2025-01-06T08:00:00Z,600,linux\n', /bad\.csv:1(:\d+)?: .*header/i],
    ['a bad timestamp', 'queued_at,duration_s,labels\nyesterday,600,linux\n', /bad\.csv:2(:\d+)?: .*queued_at/],
    ['a negative duration', 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,-5,linux\n', /bad\.csv:2(:\d+)?: .*duration_s/],
    ['a short row', 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z\n', /bad\.csv:2(:\d+)?: /],
    ['binary', '\u0000\u0001\u0002PK', /bad\.csv(:\d+)*: /],
  ];
  it.each(traces)('simulate refuses %s', async (_n, text, message) => {
    const d = own();
    writeFileSync(join(d, 'bad.csv'), text);
    expectRefused(await run(['simulate', '--trace', 'bad.csv'], {}, d), message);
  });
  it.each(traces)('reconcile with a replay emitter refuses %s', async (_n, text, message) => {
    const d = own();
    writeFileSync(join(d, 'bad.csv'), text);
    writeFileSync(join(d, 'replay-bad.yaml'), replay('bad.csv'));
    expectRefused(await run(['reconcile', '--policy', 'replay-bad.yaml'], {}, d), message);
  });
});

describe.concurrent('bad flags', () => {
  it.each<[string[], RegExp]>([
    [['reconcile', '--policy', 'good.yaml', '--frobnicate'], /unknown option.*--frobnicate/i],
    [['reconcile', '--policy'], /--policy.*(argument|value)/i],
    [['reconcile', '--policy', 'good.yaml', '--now', 'yesterday'], /--now must be an ISO-8601 time/],
    [['reconcile', '--policy', 'good.yaml', '--pool', 'nope'], /no pool named "nope"/],
    [['reconcile', 'extra-positional', '--policy', 'good.yaml'], /extra-positional/],
    [['deploy'], /unknown command "deploy"/],
    [['bench', '--only', 'nope'], /^parmanu: "bench" is a development tool, not part of the installed CLI: run `npm run bench` in a checkout of the repository\n$/],
    [['soak'], /^parmanu: "soak" is a development tool, not part of the installed CLI: run `npm run soak` in a checkout of the repository\n$/],
    [['plan', '--policy', 'good.yaml', '--format', 'yaml'], /--format must be markdown or json/],
    [['synth', '--policy', 'good.yaml', '--nodes', 'many'], /--nodes must be/],
    [['simulate', '--trace', 'good.csv', '--boot', 'soon'], /--boot/],
    [['simulate'], /--trace/],
    [['simulate', '--trace', 'good.csv', '--boot', '-5s'], /the value after --boot starts with "-": write --boot=VALUE/],
    [['simulate', '--trace', 'good.csv', '--boot=-5s'], /--boot must be a duration such as 30s, 2m or 1h, not "-5s"/],
    [['reconcile', '--policy', 'good.yaml', '--pool', ','], /--pool needs at least one pool name/],
    [['plan', '--policy', 'good.yaml', '--base', '.', '--comment'], /--comment needs a merge request pipeline \(CI_MERGE_REQUEST_IID, CI_API_V4_URL, CI_PROJECT_ID\) or a GitHub pull request run/],
    [['simulate', '--trace', 'good.csv', '--write-trace', 'out.csv'], /--write-trace applies to a generated trace \(--shape\), not to --trace/],
    [['report', '--policy', 'good.yaml', '--since', 'ever'], /--since/],
    [['status', '--policy', 'good.yaml', '--json=yes'], /--json/],
  ])('%j', async (args, message) => {
    expectRefused(await run(args), message);
  });
});

describe.concurrent('secrets that do not resolve, files that cannot be read, no terraform', () => {
  it.each<[string, string, Record<string, string>, RegExp]>([
    ['a missing ${env:} value', gitlab('${env:GL_TOKEN}'), {}, /gl\.yaml:\d+:\d+: emitters\.ci\.token: \$\{env:GL_TOKEN\}: environment variable GL_TOKEN is not set/],
    ['an empty ${env:} value', gitlab('${env:GL_TOKEN}'), { GL_TOKEN: '' }, /gl\.yaml:\d+:\d+: emitters\.ci\.token: .*GL_TOKEN.*empty/],
    ['a ${file:} that does not exist', gitlab('${file:./nope.txt}'), {}, /gl\.yaml:\d+:\d+: emitters\.ci\.token: \$\{file:\.\/nope\.txt\}: .*(no such file|does not exist)/i],
    ['a ${file:} that is a directory', gitlab('${file:./a-directory}'), {}, /gl\.yaml:\d+:\d+: emitters\.ci\.token: \$\{file:\.\/a-directory\}: .*director/i],
  ])('reconcile refuses %s', async (_n, yaml, env, message) => {
    const d = own();
    writeFileSync(join(d, 'gl.yaml'), yaml);
    expectRefused(await run(['reconcile', '--policy', 'gl.yaml'], env, d), message);
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['REDIS_URL that is not a URL', { REDIS_URL: 'garbage' }, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL/],
    ['REDIS_URL of another scheme', { REDIS_URL: 'http://127.0.0.1:1' }, /REDIS_URL must be a redis:\/\/ or rediss:\/\/ URL, not http:/],
    ['PARMANU_STATE_DIR that is a file', { PARMANU_STATE_DIR: join(dir, 'good.csv') }, /cannot use \S*good\.csv as the state directory \(PARMANU_STATE_DIR\): a file is in the way/],
    ['PARMANU_LEASE_TTL that is not a duration', { PARMANU_LEASE_TTL: 'abc' }, /PARMANU_LEASE_TTL must be a duration such as 10m, not "abc"/],
  ])('reconcile refuses %s', async (_n, env, message) => {
    expectRefused(await run(['reconcile', '--policy', 'good.yaml'], env), message);
  });

  it.each<[string[], RegExp]>([
    [['report', '--policy', 'good.yaml', '--out', 'no-such-dir/r.html'], /report: cannot write --out \S*no-such-dir\/r\.html: its directory does not exist/],
    [['report', '--policy', 'good.yaml', '--format', 'json', '--out', 'a-directory'], /report: cannot write --out \S*a-directory: it is a directory/],
    [['synth', '--policy', 'good.yaml', '--out', 'good.csv'], /synth: cannot write the stack into \S*good\.csv\/p: a file is in the way/],
    [['plan', '--policy', 'good.yaml', '--base', '.', '--report', 'no-such-dir/x.json'], /plan: cannot write --report \S*no-such-dir\/x\.json: its directory does not exist/],
    [['simulate', '--shape', 'nightly', '--days', '1', '--write-trace', 'no-such-dir/t.csv'], /simulate: cannot write --write-trace \S*no-such-dir\/t\.csv: its directory does not exist/],
  ])('an output that cannot be written: %j', async (args, message) => {
    expectRefused(await run(args), message);
  });

  it('a policy path that does not exist', async () => {
    expectRefused(await run(['reconcile', '--policy', 'missing.yaml']), /missing\.yaml.*(no such file|does not exist|not found)/i);
  });

  it('a policy file that cannot be read (a directory of no policies)', async () => {
    expectRefused(await run(['validate', 'a-directory']), /a-directory.*(no policy files|\.yaml)/i);
  });

  it('a trace that does not exist', async () => {
    expectRefused(await run(['simulate', '--trace', 'nope.csv']), /nope\.csv.*(no such file|does not exist|cannot read)/i);
  });

  it('terraform missing from PATH', async () => {
    expectRefused(await run(['reconcile', '--policy', 'good.yaml'], { PARMANU_TERRAFORM: 'no-such-terraform' }), /no-such-terraform not found on PATH: install Terraform ≥ 1\.11\.0 or OpenTofu ≥ 1\.11\.0, or set PARMANU_TERRAFORM/);
  });

  it('and the wrapper does record terraform when the input is good (so the checks above can fail)', async () => {
    const r = await run(['reconcile', '--policy', 'good.yaml', '--now', '2025-01-06T08:00:30Z', '--json']);
    expect(r.code, r.err).toBe(0);
    expect(r.calls).toMatch(/^init /m);
  });
});
