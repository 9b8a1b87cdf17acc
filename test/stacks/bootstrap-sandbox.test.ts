/**
 * The Linux bootstrap as code under test: every script the node's cloud-init writes passes
 * `bash -n` and `shellcheck -S warning`, and the shipped scripts run in a sandbox — a temp root
 * (`PARMANU_ROOT`, which the scripts prefix to every path they touch) and a PATH of stub binaries
 * that record their argv, stdin and the credential-carrying environment variables. The test checks
 * the sequence of calls, that no credential is ever in an argv (visible in `ps`), that every file
 * holding it is 0600, and that the runner receives it through its environment or a file.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { linuxFiles, linuxUserData, type BootstrapOptions, type WrittenFile } from '../../stacks/bootstrap.js';
import type { CredentialSource, RunnerAccess } from '../../stacks/types.js';
import type { PoolConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

const SECRET = 'glrt-S3CRETtoken_0123456789.abc';
const GCP_ACCESS_TOKEN = 'ya29.ACCESSTOKENfromMETADATA';
const BINARY = 'stub binary\n';

/** Commands that record their calls (the rest of PATH: a few real coreutils). */
const STUBS = ['curl', 'systemctl', 'gitlab-runner', 'useradd', 'id', 'usermod', 'iptables', 'nft', 'aws', 'docker', 'java', 'tar', 'sha256sum', 'chown', 'runuser', 'apt-get', 'dnf', 'uname', 'sleep', 'pwned'];
const REAL = ['mkdir', 'chmod', 'mv', 'rm', 'cat', 'sed', 'base64', 'env'];

const STUB = `#!/bin/bash
# A recording stub: argv (NUL-separated), stdin, and the credential-carrying environment variables.
PATH=/usr/bin:/bin
name=$(basename "$0")
n=$(( $(cat "$STUB_LOG/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" >"$STUB_LOG/count"
d="$STUB_LOG/$(printf '%04d' "$n")"
mkdir "$d"
printf '%s\\0' "$name" "$@" >"$d/argv"
if [ ! -t 0 ]; then cat >"$d/stdin"; fi
for v in CI_SERVER_TOKEN ACTIONS_RUNNER_INPUT_TOKEN ACTIONS_RUNNER_INPUT_JITCONFIG; do
  if [ -n "\${!v:-}" ]; then printf '%s=%s\\n' "$v" "\${!v}" >>"$d/env"; fi
done
arg_after() { local want=$1; shift; while [ $# -gt 0 ]; do if [ "$1" = "$want" ]; then echo "$2"; return; fi; shift; done; }
first_fails() { if [ -e "$STUB_STATE/fail-first-$name" ] && [ ! -e "$STUB_STATE/failed-$name" ]; then : >"$STUB_STATE/failed-$name"; return 0; fi; return 1; }
case "$name" in
  id) [ -e "$STUB_STATE/user-\${!#}" ] && echo 1001 || exit 1 ;;
  useradd) : >"$STUB_STATE/user-\${!#}" ;;
  uname) echo x86_64 ;;
  aws) if first_fails; then echo "An error occurred (ParameterNotFound)" >&2; exit 254; fi; cat "$STUB_STATE/secret"; echo ;;
  curl)
    out=$(arg_after -o "$@")
    url=\${!#}
    if first_fails; then echo "curl: (22) 404" >&2; exit 22; fi
    case "$url" in
      *computeMetadata*) printf '{"access_token":"%s","expires_in":3599,"token_type":"Bearer"}\\n' "$GCP_ACCESS_TOKEN" ;;
      *secretmanager*)
        grep -q "Authorization: Bearer $GCP_ACCESS_TOKEN" "$d/stdin" || { echo "no bearer token on stdin" >&2; exit 22; }
        printf '{\\n  "name": "projects/1/secrets/s/versions/3",\\n  "payload": {\\n    "data": "%s",\\n    "dataCrc32c": "42"\\n  }\\n}\\n' "$(base64 -w0 <"$STUB_STATE/secret")" ;;
      */releases/latest) printf 'https://github.com/actions/runner/releases/tag/v2.321.0' ;;
      *) if [ -n "$out" ] && [ "$out" != /dev/null ]; then printf '%s' "$STUB_BINARY" >"$out"; fi ;;
    esac ;;
  sha256sum) exec /usr/bin/sha256sum "$@" <"$d/stdin" ;;
  systemctl) [ "$1" = cat ] && exit 1; exit 0 ;;
  iptables) for a in "$@"; do case "$a" in -L|-C) exit 1 ;; esac; done ;;
  gitlab-runner)
    if [ "$1" = register ]; then
      cfg=$(arg_after --config "$@")
      printf 'concurrent = 1\\n\\n[[runners]]\\n  token = "%s"\\n' "$CI_SERVER_TOKEN" >"$cfg"
    fi ;;
  tar)
    dir=$(arg_after -C "$@")
    mkdir -p "$dir/bin"
    for f in config.sh run.sh bin/installdependencies.sh; do ln -sf "$STUB_DIR/stub" "$dir/$f"; done ;;
  config.sh) : >.runner ;;
  runuser) while [ "$1" != -- ]; do shift; done; shift; exec "$@" ;;
esac
exit 0
`;

interface Call {
  argv: string[];
  stdin: string;
  env: string;
}

interface Run {
  root: string;
  calls: Call[];
  status: number | null;
  output: string;
  files: WrittenFile[];
}

function sandbox(): { base: string; root: string; stubs: string; log: string; state: string } {
  const base = mkdtempSync(join(tmpdir(), 'parmanu-bs-'));
  const root = join(base, 'root');
  const stubs = join(base, 'bin');
  const log = join(base, 'log');
  const state = join(base, 'state');
  for (const d of [root, stubs, log, state]) mkdirSync(d);
  writeFileSync(join(stubs, 'stub'), STUB, { mode: 0o755 });
  for (const s of [...STUBS, 'config.sh', 'run.sh', 'installdependencies.sh']) symlinkSync(join(stubs, 'stub'), join(stubs, s));
  for (const r of REAL) {
    const real = ['/usr/bin/', '/bin/'].map((d) => d + r).find((p) => existsSync(p));
    if (real) symlinkSync(real, join(stubs, r));
  }
  writeFileSync(join(state, 'secret'), SECRET);
  return { base, root, stubs, log, state };
}

/** Replaces one stub (a symlink to the shared recording stub) with a script of its own. */
function replaceStub(sb: { stubs: string }, name: string, script: string): void {
  rmSync(join(sb.stubs, name));
  writeFileSync(join(sb.stubs, name), script, { mode: 0o755 });
}

function install(root: string, files: WrittenFile[]): void {
  for (const f of files) {
    const p = join(root, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.content);
    chmodSync(p, parseInt(f.permissions, 8));
  }
}

function calls(log: string): Call[] {
  return readdirSync(log)
    .filter((d) => /^\d+$/.test(d))
    .sort()
    .map((d) => {
      const read = (f: string) => (existsSync(join(log, d, f)) ? readFileSync(join(log, d, f), 'utf8') : '');
      return { argv: read('argv').split('\0').slice(0, -1), stdin: read('stdin'), env: read('env') };
    });
}

function runScript(sb: ReturnType<typeof sandbox>, script: string, env: Record<string, string> = {}): { status: number | null; output: string } {
  const r = spawnSync('/bin/bash', [join(sb.root, script)], {
    cwd: sb.base,
    env: { PATH: sb.stubs, PARMANU_ROOT: sb.root, STUB_LOG: sb.log, STUB_STATE: sb.state, STUB_DIR: sb.stubs, STUB_BINARY: BINARY, GCP_ACCESS_TOKEN, HOME: sb.base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  return { status: r.status, output: r.stdout + r.stderr };
}

interface Case {
  name: string;
  pool: PoolConfig;
  access: RunnerAccess;
  source: CredentialSource;
  opts?: BootstrapOptions;
}

function boot(c: Case, prepare?: (sb: ReturnType<typeof sandbox>) => void): Run & { sb: ReturnType<typeof sandbox> } {
  const sb = sandbox();
  const files = linuxFiles(c.pool, 'p-node1', c.access, c.source, c.opts);
  // What cloud-init does with user-data: write the files, then run runcmd.
  const doc = parseYaml(linuxUserData(c.pool, 'p-node1', c.access, c.source, c.opts)) as { write_files: WrittenFile[]; runcmd: string[][] };
  expect(doc.write_files).toEqual(files);
  install(sb.root, doc.write_files);
  if (c.source.kind === 'file') {
    mkdirSync(join(sb.root, dirname(c.source.path)), { recursive: true });
    writeFileSync(join(sb.root, c.source.path), SECRET, { mode: 0o600 });
  }
  prepare?.(sb);
  const { status, output } = runScript(sb, (doc.runcmd[0] as string[])[0] as string);
  return { sb, root: sb.root, calls: calls(sb.log), status, output, files };
}

/** Every file under `dir` whose content holds `needle`. */
function holders(dir: string, needle: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...holders(p, needle));
    else if (e.isFile() && readFileSync(p, 'utf8').includes(needle)) out.push(p);
  }
  return out;
}

const words = (c: Call) => c.argv.join(' ');
/** The calls' names with their first argument, for sequence checks. */
const seq = (cs: Call[]) => cs.map((c) => [c.argv[0], c.argv[1]].filter(Boolean).join(' '));
function expectInOrder(cs: Call[], expected: RegExp[]): void {
  const lines = cs.map(words);
  let i = 0;
  for (const re of expected) {
    const at = lines.findIndex((l, j) => j >= i && re.test(l));
    expect(at, `${re} after call ${i} in:\n${lines.join('\n')}`).toBeGreaterThanOrEqual(0);
    i = at + 1;
  }
}

const aws: CredentialSource = { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/p/p-node1' };
const gcp: CredentialSource = { kind: 'gcp-secret', project: 'acme-ci', secret: 'parmanu-p-p-node1' };
const file: CredentialSource = { kind: 'file', path: '/var/lib/parmanu/credentials/p-node1' };
const gitlab: RunnerAccess = { kind: 'gitlab', url: 'https://gitlab.example.com' };
const jit: RunnerAccess = { kind: 'github', mode: 'jit' };
const registration: RunnerAccess = { kind: 'github', mode: 'registration', url: 'https://github.com/acme' };
const jenkins: RunnerAccess = { kind: 'jenkins', url: 'https://jenkins.example.com/' };

const shellPool = testPool({ labels: ['linux'], runner: { jobsPerNode: 2, version: '17.5.0' } }, 'p');
const dockerPool = testPool({ labels: ['linux'], runner: { jobsPerNode: 2, executor: 'docker' } }, 'p');
const ephemeralPool = testPool({ labels: ['linux'], runner: { ephemeral: true } }, 'p');

const cases: Case[] = [];
for (const source of [aws, gcp, file]) {
  cases.push({ name: `gitlab shell / ${source.kind}`, pool: shellPool, access: gitlab, source });
  cases.push({ name: `gitlab docker / ${source.kind}`, pool: dockerPool, access: gitlab, source });
  cases.push({ name: `github jit / ${source.kind}`, pool: shellPool, access: jit, source });
  cases.push({ name: `github registration / ${source.kind}`, pool: ephemeralPool, access: registration, source });
  cases.push({ name: `jenkins / ${source.kind}`, pool: shellPool, access: jenkins, source });
}
cases.push({ name: 'replay / none', pool: shellPool, access: { kind: 'none' }, source: { kind: 'none' } });

const haveShellcheck = spawnSync('shellcheck', ['--version']).status === 0;
if (!haveShellcheck) console.warn('shellcheck is not installed: the shellcheck checks are skipped here (CI installs it: .ci/run)');

const scripts = (files: WrittenFile[]) => files.filter((f) => f.content.startsWith('#!/bin/bash'));

describe('Linux bootstrap scripts', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s: bash -n and shellcheck pass on every script', (_n, c) => {
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-sc-'));
    const list = scripts(linuxFiles(c.pool, 'p-node1', c.access, c.source, c.opts));
    expect(list.length).toBeGreaterThan(0);
    for (const f of list) {
      const p = join(dir, f.path.replace(/\//g, '_'));
      writeFileSync(p, f.content);
      expect(spawnSync('bash', ['-n', p], { encoding: 'utf8' }).stderr, f.path).toBe('');
      if (haveShellcheck) {
        const r = spawnSync('shellcheck', ['-S', 'warning', '-s', 'bash', p], { encoding: 'utf8' });
        expect(r.stdout + r.stderr, f.path).toBe('');
        expect(r.status).toBe(0);
      }
    }
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s: runs in the sandbox; the credential is never in argv and only in 0600 files', (_n, c) => {
    const run = boot(c);
    expect(run.status, run.output).toBe(0);
    expect(run.output).toContain('parmanu: bootstrap done'.replace('bootstrap done', c.access.kind === 'none' ? 'replay node' : 'bootstrap done'));
    for (const call of run.calls) {
      expect(words(call)).not.toContain(SECRET);
      expect(words(call)).not.toContain(GCP_ACCESS_TOKEN);
    }
    expect(run.output).not.toContain(SECRET);
    const held = holders(run.root, SECRET);
    if (c.access.kind === 'none') {
      expect(held).toEqual([]);
      expect(run.calls.map((x) => x.argv[0])).toEqual([]);
      return;
    }
    expect(held.length).toBeGreaterThan(0);
    for (const h of held) expect((statSync(h).mode & 0o777).toString(8), h).toBe('600');
    expect(held.map((h) => h.slice(run.root.length))).toContain('/run/parmanu/credential');
    expect((statSync(join(run.root, 'run/parmanu')).mode & 0o777).toString(8)).toBe('700');

    // The firewall closes metadata before the credential is read, on the clouds only.
    const fw = run.calls.filter((x) => x.argv[0] === 'iptables');
    if (c.source.kind === 'file') expect(fw).toEqual([]);
    else {
      const user = { gitlab: 'gitlab-runner', github: 'runner', jenkins: 'jenkins' }[c.access.kind];
      expectInOrder(run.calls, [
        new RegExp(`^useradd .* ${user}$`),
        /^iptables -w -N DOCKER-USER$/,
        /^iptables -w -I DOCKER-USER 1 -d 169\.254\.169\.254\/32 -j DROP$/,
        new RegExp(`^iptables -w -I OUTPUT 1 -d 169\\.254\\.169\\.254/32 -m owner --uid-owner ${user} -j DROP$`),
        c.source.kind === 'aws-ssm' ? /^aws ssm get-parameter --region eu-central-1 --name \/parmanu\/p\/p-node1 --with-decryption/ : /^curl .*computeMetadata/,
      ]);
    }
    const fetch = c.source.kind === 'aws-ssm' ? /^aws ssm get-parameter/ : c.source.kind === 'gcp-secret' ? /secretmanager\.googleapis\.com\/v1\/projects\/acme-ci\/secrets\/parmanu-p-p-node1\/versions\/latest:access$/ : /^$/;
    const steps: RegExp[] = [];
    if (c.source.kind !== 'file') steps.push(fetch);
    switch (c.access.kind) {
      case 'gitlab': {
        steps.push(/^gitlab-runner register --non-interactive --config \S+\/etc\/gitlab-runner\/config\.toml\.new --url https:\/\/gitlab\.example\.com --name p-node1 --executor/, /^systemctl enable parmanu-start\.service$/, /^gitlab-runner install/, /^systemctl restart gitlab-runner\.service$/);
        const register = run.calls.find((x) => x.argv[0] === 'gitlab-runner' && x.argv[1] === 'register');
        expect(register?.env).toBe(`CI_SERVER_TOKEN=${SECRET}\n`);
        const config = readFileSync(join(run.root, 'etc/gitlab-runner/config.toml'), 'utf8');
        expect(config).toMatch(/^concurrent = 2$/m);
        if (c.pool.runner.executor === 'docker') expectInOrder(run.calls, [/^systemctl enable --now docker\.service$/, /^docker info$/, /^gitlab-runner register .* --executor docker --docker-image alpine:latest/]);
        break;
      }
      case 'github':
        if (c.access.mode === 'jit') {
          steps.push(/^systemctl enable parmanu-start\.service$/, /^systemctl enable --now parmanu-runner\.service$/);
          expect(readFileSync(join(run.root, 'run/parmanu/runner.env'), 'utf8')).toBe(`ACTIONS_RUNNER_INPUT_JITCONFIG=${SECRET}\n`);
        } else {
          steps.push(/^runuser -u runner -- \.\/config\.sh --unattended --replace --url https:\/\/github\.com\/acme --name p-node1 --labels linux,parmanu-pool-p --ephemeral$/, /^config\.sh/, /^systemctl enable --now parmanu-runner\.service$/);
          expect(run.calls.find((x) => x.argv[0] === 'config.sh')?.env).toBe(`ACTIONS_RUNNER_INPUT_TOKEN=${SECRET}\n`);
        }
        break;
      case 'jenkins':
        expectInOrder(run.calls, [/^useradd .* jenkins$/, /^curl -fsSL --retry 5 -o \S+\/usr\/local\/lib\/parmanu\/agent\.jar https:\/\/jenkins\.example\.com\/jnlpJars\/agent\.jar$/]);
        steps.push(/^systemctl enable parmanu-start\.service$/, /^systemctl enable --now parmanu-agent\.service$/);
        break;
    }
    expectInOrder(run.calls, steps);
    // No credential-carrying variable reaches a command that does not need it.
    for (const call of run.calls) if (call.env) expect(['gitlab-runner', 'runuser', 'config.sh']).toContain(call.argv[0]);
  });

  it('a later boot (from standby) reads a fresh credential and registers with it', () => {
    for (const c of [cases[0], cases[2]] as Case[]) {
      const run = boot(c);
      expect(run.status, run.output).toBe(0);
      // The unit finds the first boot's work done…
      rmSync(run.sb.log, { recursive: true });
      mkdirSync(run.sb.log);
      expect(runScript(run.sb, 'usr/local/sbin/parmanu-start').status).toBe(0);
      expect(calls(run.sb.log)).toEqual([]);
      // …and after a reboot (/run is a tmpfs) it reads the store again.
      rmSync(join(run.root, 'run'), { recursive: true });
      const fresh = 'glrt-FRESHtoken9876543210';
      writeFileSync(join(run.sb.state, 'secret'), fresh);
      const again = runScript(run.sb, 'usr/local/sbin/parmanu-start');
      expect(again.status, again.output).toBe(0);
      expect(seq(calls(run.sb.log))[0]).toBe('aws ssm');
      expect(readFileSync(join(run.root, 'run/parmanu/credential'), 'utf8')).toBe(fresh);
      if (c.access.kind === 'gitlab') expect(readFileSync(join(run.root, 'etc/gitlab-runner/config.toml'), 'utf8')).toContain(fresh);
      else expect(readFileSync(join(run.root, 'run/parmanu/runner.env'), 'utf8')).toContain(fresh);
    }
  });

  it('a registered GitHub runner of a standby pool is configured again when a start brings a new registration token (its registration was removed when it stopped)', () => {
    const standbyPool = testPool({ labels: ['linux'], runner: { ephemeral: false }, scaling: { standby: 1 } }, 'p');
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-sc-'));
    for (const f of scripts(linuxFiles(standbyPool, 'p-node1', registration, aws))) {
      const p = join(dir, f.path.replace(/\//g, '_'));
      writeFileSync(p, f.content);
      expect(spawnSync('bash', ['-n', p], { encoding: 'utf8' }).stderr, f.path).toBe('');
      if (haveShellcheck) expect(spawnSync('shellcheck', ['-S', 'warning', '-s', 'bash', p], { encoding: 'utf8' }).stdout, f.path).toBe('');
    }
    const run = boot({ name: 'standby registration', pool: standbyPool, access: registration, source: aws });
    expect(run.status, run.output).toBe(0);
    expect(run.calls.filter((x) => x.argv[0] === 'config.sh')).toHaveLength(1);
    // A reboot with the same token (no standby cycle): nothing to configure.
    const reboot = (secret: string) => {
      rmSync(run.sb.log, { recursive: true });
      mkdirSync(run.sb.log);
      rmSync(join(run.root, 'run'), { recursive: true });
      writeFileSync(join(run.sb.state, 'secret'), secret);
      const r = runScript(run.sb, 'usr/local/sbin/parmanu-start');
      expect(r.status, r.output).toBe(0);
      return { ...r, calls: calls(run.sb.log) };
    };
    expect(reboot(SECRET).calls.filter((x) => x.argv[0] === 'config.sh')).toEqual([]);
    // A start from standby: a new token, the runner configured again with it.
    const fresh = 'AREGfreshTOKEN0123456789';
    const started = reboot(fresh);
    expect(started.output).toContain('configuring the runner again');
    const config = started.calls.filter((x) => x.argv[0] === 'config.sh');
    expect(config).toHaveLength(1);
    expect(config[0]?.env).toBe(`ACTIONS_RUNNER_INPUT_TOKEN=${fresh}\n`);
    for (const call of started.calls) expect(words(call)).not.toContain(fresh);
    expect(reboot(fresh).calls.filter((x) => x.argv[0] === 'config.sh')).toEqual([]);
  });

  it('waits for the secret to exist (terraform creates it right after the instance)', () => {
    const preinstalled = testPool({ runner: { install: 'preinstalled' } }, 'p');
    for (const source of [aws, gcp]) {
      const c: Case = { name: source.kind, pool: preinstalled, access: gitlab, source };
      const name = c.source.kind === 'aws-ssm' ? 'aws' : 'curl';
      const run = boot(c, (sb) => writeFileSync(join(sb.state, `fail-first-${name}`), ''));
      expect(run.status, run.output).toBe(0);
      expect(run.output).toMatch(/not readable from .* yet \(attempt 1\/30\)/);
      expect(run.calls.filter((x) => x.argv[0] === 'sleep')).toHaveLength(1);
      expect(run.calls.filter((x) => x.argv[0] === 'gitlab-runner' && x.argv[1] === 'register')).toHaveLength(1);
    }
  });

  it('a failing step stops the bootstrap and says why', () => {
    const run = boot(cases[0] as Case, (sb) => rmSync(join(sb.stubs, 'aws')));
    expect(run.status).not.toBe(0);
    expect(run.output).toContain('the AWS CLI (aws) is not installed in the image');
    expect(run.calls.map(words).some((w) => w.startsWith('gitlab-runner register'))).toBe(false);
    const docker = boot(cases[1] as Case, (sb) => replaceStub(sb, 'docker', '#!/bin/bash\necho "Cannot connect to the Docker daemon" >&2\nexit 1\n'));
    expect(docker.status).not.toBe(0);
    expect(docker.output).toContain('Docker does not answer');
    for (const f of linuxFiles(dockerPool, 'p-1', gitlab, aws)) {
      expect(f.content).not.toContain('|| true');
      expect(f.content).not.toContain('2>/dev/null');
    }
  });

  it('refuses a credential with characters a token never has (it goes into an environment file)', () => {
    const run = boot({ ...cases[2], source: file } as Case, (sb) => writeFileSync(join(sb.root, file.kind === 'file' ? file.path : ''), 'abc\nEVIL=1'));
    expect(run.status).not.toBe(0);
    expect(run.output).toContain('unexpected characters');
  });

  it('uses nft when iptables is absent', () => {
    const run = boot(cases[0] as Case, (sb) => rmSync(join(sb.stubs, 'iptables')));
    expect(run.status, run.output).toBe(0);
    const nft = run.calls.find((x) => x.argv[0] === 'nft');
    expect(nft?.argv).toEqual(['nft', '-f', '-']);
    expect(nft?.stdin).toContain('chain output { type filter hook output priority 0; policy accept; ip daddr 169.254.169.254 meta skuid 1001 drop; }');
    expect(nft?.stdin).toContain('chain forward { type filter hook forward priority 0; policy accept; ip daddr 169.254.169.254 drop; }');
  });

  it('installs the firewall again after every Docker start and before the runner at every boot', () => {
    const files = linuxFiles(dockerPool, 'p-1', gitlab, gcp);
    const byPath = new Map(files.map((f) => [f.path, f.content]));
    expect(byPath.get('/etc/systemd/system/docker.service.d/parmanu-metadata.conf')).toContain('ExecStartPost=/usr/local/sbin/parmanu-firewall');
    expect(byPath.get('/etc/systemd/system/parmanu-start.service')).toContain('Requires=parmanu-firewall.service');
    expect(byPath.get('/etc/systemd/system/gitlab-runner.service.d/parmanu.conf')).toContain('Requires=parmanu-start.service');
    expect(linuxFiles(dockerPool, 'p-1', gitlab, file).map((f) => f.path)).not.toContain('/usr/local/sbin/parmanu-firewall');
  });

  it('downloads a pinned release and verifies its SHA-256', () => {
    const sum = execFileSync('sha256sum', { input: BINARY, encoding: 'utf8' }).split(' ')[0] as string;
    const gl = boot({ name: 'pinned', pool: shellPool, access: gitlab, source: file, opts: { release: { version: '17.6.0', sha256: { 'linux-amd64': sum } } } });
    expect(gl.status, gl.output).toBe(0);
    expectInOrder(gl.calls, [/^curl .* https:\/\/gitlab-runner-downloads\.s3\.amazonaws\.com\/v17\.6\.0\/binaries\/gitlab-runner-linux-amd64$/, /^sha256sum -c -$/]);
    const bad = boot({ name: 'tampered', pool: shellPool, access: gitlab, source: file, opts: { release: { version: '17.6.0', sha256: { 'linux-amd64': '0'.repeat(64) } } } });
    expect(bad.status).not.toBe(0);
    expect(bad.output).toContain('checksum mismatch for linux-amd64');
    expect(existsSync(join(bad.root, 'usr/local/bin/gitlab-runner'))).toBe(false);
    const noArch = boot({ name: 'no arch', pool: shellPool, access: gitlab, source: file, opts: { release: { version: '17.6.0', sha256: { 'linux-arm64': sum } } } });
    expect(noArch.status).not.toBe(0);
    expect(noArch.output).toContain('no published checksum for linux-amd64');
    const gh = boot({ name: 'gh pinned', pool: shellPool, access: jit, source: file, opts: { release: { version: 'v2.320.0', sha256: { 'linux-x64': sum } } } });
    expect(gh.status, gh.output).toBe(0);
    expectInOrder(gh.calls, [/releases\/download\/v2\.320\.0\/actions-runner-linux-x64-2\.320\.0\.tar\.gz$/, /^sha256sum -c -$/, /^tar -xzf/]);
  });

  it('follows the latest release without the GitHub API when no release is given', () => {
    const pool = testPool({ runner: { version: 'latest' } }, 'p');
    const run = boot({ name: 'latest', pool, access: jit, source: file });
    expect(run.status, run.output).toBe(0);
    expect(run.calls.map(words).join('\n')).not.toContain('api.github.com');
    expectInOrder(run.calls, [/^curl -fsSLI .*https:\/\/github\.com\/actions\/runner\/releases\/latest$/, /releases\/download\/v2\.321\.0\/actions-runner-linux-x64-2\.321\.0\.tar\.gz$/]);
    expect(linuxUserData(pool, 'p-1', jit, file)).toContain('TODO(reconciler)');
    expect(run.calls.some((x) => x.argv[0] === 'sha256sum')).toBe(false);
  });

  it('hostile values in URLs and names run nothing', () => {
    const evil = "https://gitlab.example.com/$(pwned)/`pwned`/'$(pwned)'";
    const node = "n1';pwned;'";
    for (const access of [{ kind: 'gitlab', url: evil }, { kind: 'github', mode: 'registration', url: evil }, { kind: 'jenkins', url: evil }] as RunnerAccess[]) {
      const sb = sandbox();
      const files = linuxFiles(shellPool, node, access, { kind: 'aws-ssm', region: "eu-1$(pwned)", parameter: '/p/`pwned`' });
      install(sb.root, files);
      const r = runScript(sb, 'usr/local/sbin/parmanu-bootstrap');
      expect(r.status, r.output).toBe(0);
      const cs = calls(sb.log);
      expect(cs.map((x) => x.argv[0])).not.toContain('pwned');
      expect(cs.map(words).join('\n')).toContain(evil.replace(/\/$/, ''));
      if (access.kind === 'jenkins') {
        // The agent's wrapper, as systemd starts it.
        mkdirSync(join(sb.base, 'creds'));
        const w = runScript(sb, 'usr/local/lib/parmanu/jenkins-agent', { CREDENTIALS_DIRECTORY: join(sb.base, 'creds') });
        expect(w.status, w.output).toBe(0);
        const java = calls(sb.log).find((x) => x.argv[0] === 'java');
        expect(java?.argv).toEqual(['java', '-jar', '/usr/local/lib/parmanu/agent.jar', '-url', evil, '-secret', `@${join(sb.base, 'creds')}/jenkins-secret`, '-name', node, '-webSocket', '-workDir', '/var/lib/jenkins-agent']);
        expect(calls(sb.log).map((x) => x.argv[0])).not.toContain('pwned');
      }
    }
  });
});

describe('Linux bootstrap: runner.hooks and runner.config', () => {
  const hook = (path: string, script: string) => ({ path, sha256: 'x', script });
  /** Hooks that show up in the call sequence (the stub records them). */
  const hooked = (pool: PoolConfig, before = '#!/bin/bash\nsystemctl hook-before\n', after = 'systemctl hook-after\n'): PoolConfig => ({ ...pool, runner: { ...pool.runner, hooks: { before: hook('scripts/before.sh', before), after: hook('scripts/after.sh', after) } } });
  const withConfig = (pool: PoolConfig, config: PoolConfig['runner']['config']): PoolConfig => ({ ...pool, runner: { ...pool.runner, config } });
  const extCases: Case[] = [
    { name: 'gitlab docker + hooks + config', pool: withConfig(hooked(dockerPool), '[runners.docker]\n  privileged = true\n  volumes = ["/cache"]\n'), access: gitlab, source: aws },
    { name: 'github jit + hooks + env', pool: withConfig(hooked(shellPool), { HTTPS_PROXY: 'http://proxy:3128', ODD: 'a "b" $c `d` \\e \'f\'' }), access: jit, source: gcp },
    { name: 'github registration + hooks + env', pool: withConfig(hooked(ephemeralPool), { A: '1' }), access: registration, source: file },
    { name: 'jenkins + hooks + jvm options', pool: withConfig(hooked(shellPool), ['-Xmx2g', '-XX:+UseG1GC']), access: jenkins, source: aws },
  ];

  it.each(extCases.map((c) => [c.name, c] as const))('%s: bash -n and shellcheck pass', (_n, c) => {
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-sc-'));
    for (const f of scripts(linuxFiles(c.pool, 'p-node1', c.access, c.source))) {
      if (f.path.includes('/hooks/')) continue; // the policy's own scripts
      const p = join(dir, f.path.replace(/\//g, '_'));
      writeFileSync(p, f.content);
      expect(spawnSync('bash', ['-n', p], { encoding: 'utf8' }).stderr, f.path).toBe('');
      if (haveShellcheck) expect(spawnSync('shellcheck', ['-S', 'warning', '-s', 'bash', p], { encoding: 'utf8' }).stdout, f.path).toBe('');
    }
  });

  it.each(extCases.map((c) => [c.name, c] as const))('%s: the before hook runs before the runner setup, the after hook after it starts', (_n, c) => {
    const run = boot(c);
    expect(run.status, run.output).toBe(0);
    for (const which of ['before', 'after']) expect((statSync(join(run.root, `usr/local/lib/parmanu/hooks/${which}`)).mode & 0o777).toString(8)).toBe('700');
    const setup = { gitlab: /^useradd .* gitlab-runner$/, github: /^useradd .* runner$/, jenkins: /^(apt-get|useradd)/, none: /^$/ }[c.access.kind];
    const started = { gitlab: /^systemctl restart gitlab-runner\.service$/, github: /^systemctl enable --now parmanu-runner\.service$/, jenkins: /^systemctl enable --now parmanu-agent\.service$/, none: /^$/ }[c.access.kind];
    expectInOrder(run.calls, [/^systemctl hook-before$/, setup, started, /^systemctl hook-after$/]);
    expect(run.output).toMatch(/parmanu: running the before hook \(runner\.hooks\.before: scripts\/before\.sh\)[\s\S]*parmanu: running the after hook[\s\S]*parmanu: bootstrap done/);
  });

  it('a failing hook stops the bootstrap and names itself and its exit code on the console', () => {
    const before = boot({ ...(extCases[0] as Case), pool: hooked(dockerPool, '#!/bin/bash\necho "no disk" >&2\nexit 3\n') });
    expect(before.status).not.toBe(0);
    expect(before.output).toContain('no disk');
    expect(before.output).toContain('parmanu: the before hook (runner.hooks.before: scripts/before.sh) failed with exit code 3');
    expect(before.calls.map(words).some((w) => w.startsWith('gitlab-runner register'))).toBe(false);
    const after = boot({ ...(extCases[0] as Case), pool: hooked(dockerPool, undefined, 'false\n') });
    expect(after.status).not.toBe(0);
    expect(after.output).toContain('parmanu: the after hook (runner.hooks.after: scripts/after.sh) failed with exit code 1');
    expect(after.output).not.toContain('bootstrap done');
  });

  it('a hook path with shell syntax runs nothing', () => {
    const evil = { ...shellPool, runner: { ...shellPool.runner, hooks: { before: hook("s/'$(pwned)'`pwned`.sh", 'exit 4\n') } } };
    const run = boot({ name: 'evil', pool: evil, access: gitlab, source: file });
    expect(run.status).not.toBe(0);
    expect(run.output).toContain("the before hook (runner.hooks.before: s/'$(pwned)'`pwned`.sh) failed with exit code 4");
    expect(run.calls.map((x) => x.argv[0])).not.toContain('pwned');
  });

  it('gitlab: register merges the fragment below [[runners]] from a root-only template', () => {
    const c = extCases[0] as Case;
    const run = boot(c);
    expect(run.status, run.output).toBe(0);
    const register = run.calls.find((x) => x.argv[0] === 'gitlab-runner' && x.argv[1] === 'register');
    expect(register?.argv.slice(5, 7)).toEqual(['--template-config', `${run.root}/etc/parmanu/gitlab-runner-template.toml`]);
    const template = join(run.root, 'etc/parmanu/gitlab-runner-template.toml');
    expect(readFileSync(template, 'utf8')).toBe('[[runners]]\n[runners.docker]\n  privileged = true\n  volumes = ["/cache"]\n');
    expect((statSync(template).mode & 0o777).toString(8)).toBe('600');
    // Without runner.config: no template.
    expect(linuxUserData(dockerPool, 'p-1', gitlab, aws)).not.toContain('template-config');
  });

  it('github: the runner service reads the variables from a root-only environment file, values as written', () => {
    const c = extCases[1] as Case;
    const run = boot(c);
    expect(run.status, run.output).toBe(0);
    const env = join(run.root, 'etc/parmanu/runner-config.env');
    expect((statSync(env).mode & 0o777).toString(8)).toBe('600');
    const unit = readFileSync(join(run.root, 'etc/systemd/system/parmanu-runner.service'), 'utf8');
    // The credential's file comes last: a policy variable never replaces the JIT config.
    expect(unit).toMatch(/EnvironmentFile=\/etc\/parmanu\/runner-config\.env\n[\s\S]*EnvironmentFile=\/run\/parmanu\/runner\.env\n/);
    // systemd's double-quoted values escape exactly \ " ` $, as bash's do: bash reads back each value.
    const values = c.pool.runner.config as Record<string, string>;
    for (const [k, v] of Object.entries(values)) {
      const r = spawnSync('/bin/bash', ['-c', `set -a; . "$1"; printf '%s' "\${${k}}"`, 'x', env], { encoding: 'utf8', env: { PATH: sb().stubs } });
      expect(r.stdout, k).toBe(v);
    }
    expect(linuxUserData(shellPool, 'p-1', jit, aws)).not.toContain('runner-config.env');
  });

  it('jenkins: each JVM option is its own argument before -jar; hostile ones stay arguments', () => {
    const opts = ['-Xmx2g', "-Dx=$(pwned)'`pwned`"];
    const pool = withConfig(shellPool, opts);
    const s = sb();
    install(s.root, linuxFiles(pool, 'p-node1', jenkins, file));
    mkdirSync(join(s.base, 'creds'));
    const w = runScript(s, 'usr/local/lib/parmanu/jenkins-agent', { CREDENTIALS_DIRECTORY: join(s.base, 'creds') });
    expect(w.status, w.output).toBe(0);
    const java = calls(s.log).find((x) => x.argv[0] === 'java');
    expect(java?.argv.slice(0, 5)).toEqual(['java', ...opts, '-jar', '/usr/local/lib/parmanu/agent.jar']);
    expect(calls(s.log).map((x) => x.argv[0])).not.toContain('pwned');
  });
});

/** A fresh sandbox (for runs that install files themselves). */
function sb(): ReturnType<typeof sandbox> {
  return sandbox();
}
