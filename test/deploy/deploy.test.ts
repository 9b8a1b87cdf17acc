/**
 * deploy/: the Dockerfile, the Compose file and the Kubernetes manifests cannot run here (no Docker
 * daemon, no cluster, no network beyond npm). They are parsed and checked against what they run:
 *
 * - every container's command line goes through the real CLI's argument parser (`parmanu ARGS
 *   --help`: an unknown flag or a missing value is a usage error, exit 2), run from a copy of the
 *   image's /app (the Dockerfile's COPY lines of the final stage), so the ENTRYPOINT and the files
 *   it needs are checked too;
 * - the listen address of each command (the CLI's own `listenAddress`) against the ports, probes
 *   and health checks that reach it;
 * - deploy/install-terraform.sh, which the Dockerfile runs, against a local release signed with a
 *   key made here (real gpg, sha256sum and unzip; curl is a stub serving files): it installs the
 *   binary only when the SUMS signature is by the pinned fingerprint and the zip's checksum
 *   matches, and the URLs it fetches are the publishers' real ones;
 * - the policy in the ConfigMap with the real `parmanu validate`, laid out as the kubelet mounts
 *   a ConfigMap (symlinks into a hidden `..data` directory), and its ${env:…} references against
 *   the Deployments' secretKeyRefs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import AdmZip from 'adm-zip';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenAddress } from '../../src/cli/service.js';
import { parseDuration } from '../../src/policy/duration.js';
import { startRedis } from '../redis-server.js';
import { expectNoSecrets } from '../secret-scan.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const DEPLOY = join(REPO, 'deploy');
const K8S = join(DEPLOY, 'kubernetes');
/** HashiCorp's release signing key (SHA256SUMS of releases.hashicorp.com): https://www.hashicorp.com/security, key id 72D7468F. */
const HASHICORP_RELEASE_FPR = 'C874011F0AB405110D02105534365D9472D7468F';
/** OpenTofu's signing key: https://opentofu.org/docs/intro/install/standalone/. */
const OPENTOFU_FPR = 'E3E6E43D84CB852EADB0051D0C0AF313E5FD9F80';

const scratch = mkdtempSync(join(tmpdir(), 'parmanu-deploy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------- the Dockerfile, parsed

interface Instruction { stage: number; op: string; args: string; line: number }

/** Instructions in order, continuation lines joined, comments dropped; `stage` counts FROMs from 0 (-1 before the first). */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i] ?? ''}`;
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile:${start + 1}: not an instruction: ${line}`);
    const op = (m[1] ?? '').toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ stage, op, args: (m[2] ?? '').trim(), line: start + 1 });
  }
  return out;
}

const dockerText = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
const docker = parseDockerfile(dockerText);
const lastStage = Math.max(...docker.map((d) => d.stage));
const inStage = (stage: number, op: string) => docker.filter((d) => d.stage === stage && d.op === op);
/** ARG defaults, global and per stage (an ARG redeclared in a stage without a value keeps the global one). */
const argDefault = (name: string) => {
  const v = docker.filter((d) => d.op === 'ARG' && d.args.startsWith(`${name}=`)).map((d) => d.args.slice(name.length + 1));
  expect(new Set(v).size, `ARG ${name} has one default`).toBe(1);
  return v[0] ?? '';
};
const stageNamed = (name: string) => docker.find((d) => d.op === 'FROM' && new RegExp(`\\bAS\\s+${name}$`, 'i').test(d.args))?.stage ?? -2;
/** COPY lines of a stage as [from-stage or undefined, sources, destination]. */
const copies = (stage: number) =>
  inStage(stage, 'COPY').map((c) => {
    const words = c.args.split(/\s+/);
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
  });
const workdir = (stage: number) => inStage(stage, 'WORKDIR').at(-1)?.args ?? '/';
const jsonArray = (s: string) => JSON.parse(s) as string[];

// ---------------------------------------------------------------- the image's /app, copied here

const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
const APP = join(scratch, 'image', 'app');

/** The final stage's COPY --from=build lines replayed from the repository (the build stage's WORKDIR is the repository root). */
function buildImageApp(): void {
  const build = stageNamed('build');
  const src = workdir(build);
  for (const c of copies(lastStage).filter((x) => x.from === 'build')) {
    for (const s of c.sources) {
      const rel = posix.relative(src, s);
      expect(rel.startsWith('..'), `${s} is inside the build stage's ${src}`).toBe(false);
      const dest = posix.isAbsolute(c.dest) ? c.dest : posix.join(workdir(lastStage), c.dest);
      const target = join(scratch, 'image', dest);
      mkdirSync(dirname(target), { recursive: true });
      // node_modules: the repository's (with dev dependencies; the image prunes them), linked, not copied.
      if (rel === 'node_modules') symlinkSync(join(REPO, 'node_modules'), target);
      else cpSync(join(REPO, rel), target, { recursive: true });
    }
  }
}

/** `parmanu ARGS` as the image's ENTRYPOINT runs it, from the copied /app; the output is secret-scanned. */
function image(args: string[], env: Record<string, string> = {}) {
  const entry = jsonArray(inStage(lastStage, 'ENTRYPOINT').at(-1)?.args ?? '[]');
  expect(entry[0]).toBe('node');
  const script = join(scratch, 'image', entry[1] ?? '');
  const r = spawnSync(process.execPath, [script, ...entry.slice(2), ...args], { cwd: scratch, env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  expectNoSecrets(`parmanu ${args.join(' ')}`, `${r.stdout}${r.stderr}`);
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** The CLI's parser accepts every flag of a container command line (`--help` stops before anything runs). */
function expectAccepted(args: string[]) {
  const r = image([...args, '--help']);
  expect(r.out, `parmanu ${args.join(' ')}`).not.toMatch(/unknown option|unknown command|argument is ambiguous|see --help/);
  expect(r.code, `parmanu ${args.join(' ')}: ${r.out}`).toBe(0);
}

/** The ${env:NAME} references among a parsed policy's values (comments are not values). */
const envRefs = (v: unknown): string[] =>
  typeof v === 'string' ? [...v.matchAll(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] ?? '') : v && typeof v === 'object' ? Object.values(v).flatMap(envRefs) : [];

const flag = (args: string[], name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
/** The listener a command line asks for, read by the CLI's own parser. */
const listenOf = (args: string[]) => listenAddress(args[0] ?? '', { listen: flag(args, '--listen'), watch: args.includes('--watch') });

beforeAll(buildImageApp);

describe('deploy/Dockerfile', () => {
  it('builds on node:20-bookworm-slim, pinned by tag, and says to pin a digest in production', () => {
    expect(argDefault('NODE_IMAGE')).toBe('node:20-bookworm-slim');
    for (const from of docker.filter((d) => d.op === 'FROM')) expect(from.args).toMatch(/^\$\{NODE_IMAGE\}(\s+AS\s+\w+)?$/);
    expect(dockerText).toMatch(/pin it by digest/);
  });

  it('compiles with dev dependencies in a build stage, then ships only the production ones', () => {
    const build = stageNamed('build');
    const runs = inStage(build, 'RUN').map((r) => r.args).join('\n');
    expect(runs).toMatch(/npm ci\b[\s\S]*npm run build[\s\S]*npm prune --omit=dev/);
    expect(inStage(lastStage, 'RUN').map((r) => r.args).join('\n')).not.toMatch(/npm (ci|install)(?![^&]*--omit=dev)/);
    expect(copies(lastStage).some((c) => c.from === 'build' && c.sources.includes('/src/node_modules'))).toBe(true);
  });

  it('pins terraform (the version CI uses, ≥ 1.11) and both publishers\' key fingerprints', () => {
    const ci = parse(readFileSync(join(REPO, '.gitlab-ci.yml'), 'utf8'), { merge: true }) as { variables: Record<string, string> };
    expect(argDefault('TERRAFORM_DIST')).toBe('terraform');
    expect(argDefault('TERRAFORM_VERSION')).toMatch(/^1\.(1[1-9]|[2-9]\d)\.\d+$/);
    expect(argDefault('TERRAFORM_VERSION')).toBe(ci.variables.TERRAFORM_VERSION);
    expect(argDefault('HASHICORP_KEY_FINGERPRINT')).toBe(HASHICORP_RELEASE_FPR);
    expect(argDefault('OPENTOFU_KEY_FINGERPRINT')).toBe(OPENTOFU_FPR);
  });

  it('installs terraform in its own stage with deploy/install-terraform.sh and copies only the binary on', () => {
    const tf = stageNamed('terraform');
    expect(tf).toBeGreaterThanOrEqual(0);
    const script = copies(tf).find((c) => c.sources.includes('deploy/install-terraform.sh'));
    expect(script).toBeDefined();
    // COPY keeps the file's mode: the RUN below executes it by name.
    expect(spawnSync('git', ['ls-files', '-s', 'deploy/install-terraform.sh'], { cwd: REPO, encoding: 'utf8' }).stdout).toMatch(/^100755 /);
    const runs = inStage(tf, 'RUN').map((r) => r.args);
    expect(runs.some((r) => r.includes(posix.basename(script?.dest ?? '')) && /DEST=(\S+)/.test(r))).toBe(true);
    for (const a of ['TERRAFORM_DIST', 'TERRAFORM_VERSION', 'HASHICORP_KEY_FINGERPRINT', 'OPENTOFU_KEY_FINGERPRINT', 'TARGETARCH']) {
      expect(inStage(tf, 'ARG').some((d) => d.args === a || d.args.startsWith(`${a}=`)), `ARG ${a} in the terraform stage (a RUN sees it as its environment)`).toBe(true);
    }
    const dest = /DEST=(\S+)/.exec(runs.find((r) => r.includes('install-terraform')) ?? '')?.[1];
    const shipped = copies(lastStage).find((c) => c.from === 'terraform');
    expect(shipped?.sources.map((s) => s.replace(/\/$/, ''))).toEqual([dest]);
    expect(shipped?.dest.replace(/\/$/, '')).toBe('/usr/local/bin');
    // The final stage names the binary for Parmanu (terraform or tofu).
    expect(inStage(lastStage, 'ENV').map((e) => e.args).join(' ')).toMatch(/PARMANU_TERRAFORM=\$\{TERRAFORM_DIST\}/);
  });

  it('runs as a non-root user (uid 10001) with a writable PARMANU_STATE_DIR', () => {
    const user = inStage(lastStage, 'USER').at(-1)?.args ?? '';
    expect(user).toMatch(/^10001(:10001)?$/);
    const run = inStage(lastStage, 'RUN').map((r) => r.args).join('\n');
    expect(run).toMatch(/useradd[^&]*--uid 10001/);
    const stateDir = /PARMANU_STATE_DIR=(\S+)/.exec(inStage(lastStage, 'ENV').map((e) => e.args).join(' '))?.[1];
    expect(stateDir).toBeDefined();
    expect(run).toContain(`mkdir -p ${stateDir}`);
    expect(run).toMatch(new RegExp(`chown 10001:10001 ${stateDir}(\\s|$)`));
    expect(inStage(lastStage, 'EXPOSE').map((e) => e.args)).toEqual(['9464']);
  });

  it('ENTRYPOINT is node /app/bin/parmanu.js: package.json\'s bin, shipped with everything in "files"', () => {
    expect(jsonArray(inStage(lastStage, 'ENTRYPOINT').at(-1)?.args ?? '[]')).toEqual(['node', '/app/bin/parmanu.js']);
    expect(workdir(lastStage)).toBe('/app');
    expect(pkg.bin.parmanu).toBe('bin/parmanu.js');
    expect(pkg.files).toContain('bin/parmanu.js');
    expect(existsSync(join(REPO, 'bin/parmanu.js'))).toBe(true);
    for (const f of [...pkg.files, 'package.json']) expect(existsSync(join(APP, f)), `/app/${f} in the image`).toBe(true);
    // The copied /app runs on its own: every command it loads resolves.
    for (const cmd of ['validate', 'reconcile', 'plan', 'status', 'synth', 'destroy']) expectAccepted([cmd]);
  });

  it('HEALTHCHECK asks /healthz on the port it EXPOSEs, with node (the image has no curl)', () => {
    const hc = inStage(lastStage, 'HEALTHCHECK').at(-1)?.args ?? '';
    const cmd = jsonArray(hc.slice(hc.indexOf('CMD') + 3).trim());
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    expect(cmd[2]).toContain('http://127.0.0.1:9464/healthz');
  });

  it('its RUN lines pass shellcheck as /bin/sh scripts', () => {
    const runs = docker.filter((d) => d.op === 'RUN').map((r) => `# Dockerfile:${r.line}\n${r.args}`);
    const file = join(scratch, 'dockerfile-runs.sh');
    writeFileSync(file, `#!/bin/sh\n${runs.join('\n')}\n`);
    const r = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
    expect(r.error, 'shellcheck not found on PATH').toBeUndefined();
    expect(r.status, r.stdout).toBe(0);
  });
});

// ---------------------------------------------------------------- install-terraform.sh against a local signed release

interface Key { home: string; fpr: string; asc: string }
let release: Record<string, Key> = {};

function gpg(home: string, args: string[], input?: string) {
  const r = spawnSync('gpg', ['--homedir', home, '--batch', '--quiet', ...args], { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`gpg ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function makeKey(name: string): Key {
  const home = join(scratch, `gpg-${name}`);
  mkdirSync(home, { mode: 0o700 });
  gpg(home, ['--passphrase', '', '--quick-gen-key', `${name} <${name}@example.invalid>`, 'ed25519', 'sign', 'never']);
  const fpr = /^fpr:+([0-9A-F]{40}):/m.exec(gpg(home, ['--with-colons', '--list-keys']))?.[1] ?? '';
  return { home, fpr, asc: gpg(home, ['--armor', '--export', fpr]) };
}

beforeAll(() => {
  release = { publisher: makeKey('publisher'), attacker: makeKey('attacker') };
}, 60_000);
afterAll(() => {
  for (const k of Object.values(release)) spawnSync('gpgconf', ['--homedir', k.home, '--kill', 'all']);
});

const CURL = String.raw`#!/bin/bash
out=; url=
while [ $# -gt 0 ]; do case "$1" in -o|--output) out=$2; shift 2;; --proto|--retry) shift 2;; -*) shift;; *) url=$1; shift;; esac; done
echo "$url" >> "$CURL_LOG"
f="$RELEASE_ROOT/\${url#https://}"
[[ $url == https://* && -f $f ]] || { echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; }
cp "$f" "$out"`;

interface Release {
  dist: 'terraform' | 'tofu';
  version: string;
  /** Who signs SHA256SUMS, and whose keys the key URL serves. */
  signer?: Key;
  served?: Key[];
  zipBody?: string;
  /** Changes made after signing. */
  tamperZip?: boolean;
  tamperSums?: (sums: string) => string;
  sumsFor?: (zip: string, sha: string) => string;
  fingerprint?: string;
  /** Environment set over the Dockerfile's ARGs. */
  env?: Record<string, string>;
}

/** Serves a release as the publisher's URLs, runs install-terraform.sh with the Dockerfile's ARGs; returns its exit, output, the fetched URLs and the installed binary. */
function install(o: Release) {
  const root = mkdtempSync(join(scratch, 'release-'));
  const stub = join(root, 'stub');
  const dest = join(root, 'dest');
  mkdirSync(stub);
  mkdirSync(dest);
  writeFileSync(join(stub, 'curl'), CURL.replaceAll('\\${', '${'));
  chmodSync(join(stub, 'curl'), 0o755);
  const signer = o.signer ?? release.publisher;
  if (!signer) throw new Error('no key');
  const v = o.version;
  const site =
    o.dist === 'terraform'
      ? { base: `releases.hashicorp.com/terraform/${v}`, name: `terraform_${v}`, sig: `terraform_${v}_SHA256SUMS.sig`, key: 'www.hashicorp.com/.well-known/pgp-key.txt' }
      : { base: `github.com/opentofu/opentofu/releases/download/v${v}`, name: `tofu_${v}`, sig: `tofu_${v}_SHA256SUMS.gpgsig`, key: 'get.opentofu.org/opentofu.asc' };
  const served = join(root, 'served');
  const at = (p: string) => {
    mkdirSync(dirname(join(served, p)), { recursive: true });
    return join(served, p);
  };
  const zipName = `${site.name}_linux_amd64.zip`;
  const zip = new AdmZip();
  zip.addFile(o.dist, Buffer.from(o.zipBody ?? `#!/bin/sh\necho "${o.dist === 'tofu' ? 'OpenTofu' : 'Terraform'} v${v}"\n`), '', 0o100755 << 16);
  zip.addFile('LICENSE.txt', Buffer.from('license\n'));
  const zipBuf = zip.toBuffer();
  const sha = spawnSync('sha256sum', { input: zipBuf, encoding: 'utf8' }).stdout.split(' ')[0] ?? '';
  const sums = (o.sumsFor ?? ((z: string, s: string) => `${'0'.repeat(64)}  ${site.name}_darwin_arm64.zip\n${s}  ${z}\n${'f'.repeat(64)}  ${site.name}_linux_arm64.zip\n`))(zipName, sha);
  writeFileSync(at(`${site.base}/${site.name}_SHA256SUMS`), sums);
  gpg(signer.home, ['--yes', '--local-user', signer.fpr, '--detach-sign', '--output', at(`${site.base}/${site.sig}`), at(`${site.base}/${site.name}_SHA256SUMS`)]);
  if (o.tamperSums) writeFileSync(at(`${site.base}/${site.name}_SHA256SUMS`), o.tamperSums(sums));
  if (o.tamperZip) zipBuf[zipBuf.length - 30] = (zipBuf[zipBuf.length - 30] ?? 0) ^ 0xff;
  writeFileSync(at(`${site.base}/${zipName}`), zipBuf);
  writeFileSync(at(site.key), (o.served ?? [release.publisher]).map((k) => k?.asc ?? '').join('\n'));
  const log = join(root, 'curl.log');
  writeFileSync(log, '');
  const fprArg = o.dist === 'terraform' ? 'HASHICORP_KEY_FINGERPRINT' : 'OPENTOFU_KEY_FINGERPRINT';
  const env: Record<string, string> = {
    PATH: `${stub}:/usr/bin:/bin`,
    HOME: root,
    TMPDIR: root,
    CURL_LOG: log,
    RELEASE_ROOT: served,
    TERRAFORM_DIST: o.dist,
    TERRAFORM_VERSION: v,
    HASHICORP_KEY_FINGERPRINT: argDefault('HASHICORP_KEY_FINGERPRINT'),
    OPENTOFU_KEY_FINGERPRINT: argDefault('OPENTOFU_KEY_FINGERPRINT'),
    // The publisher's key here is made by the test; the pinned fingerprints are checked above.
    [fprArg]: o.fingerprint ?? release.publisher?.fpr ?? '',
    TARGETARCH: 'amd64',
    DEST: dest,
    ...o.env,
  };
  const r = spawnSync('/bin/bash', [join(DEPLOY, 'install-terraform.sh')], { cwd: root, env, encoding: 'utf8' });
  const bin = join(dest, o.dist);
  return { code: r.status, out: `${r.stdout}${r.stderr}`, urls: readFileSync(log, 'utf8').trim().split('\n'), installed: existsSync(bin), leftovers: readdirSync(root).filter((f) => f.startsWith('tmp.')) };
}

describe('deploy/install-terraform.sh (the Dockerfile\'s terraform stage)', () => {
  const version = () => argDefault('TERRAFORM_VERSION');

  it('installs the pinned terraform from releases.hashicorp.com once its SUMS signature and checksum hold', () => {
    const r = install({ dist: 'terraform', version: version() });
    expect(r.code, r.out).toBe(0);
    expect(r.installed).toBe(true);
    expect(r.out).toContain(`Terraform v${version()}`);
    expect(r.out).toMatch(/terraform_[\d.]+_linux_amd64\.zip: OK/);
    const v = version();
    expect(r.urls).toEqual([
      'https://www.hashicorp.com/.well-known/pgp-key.txt',
      `https://releases.hashicorp.com/terraform/${v}/terraform_${v}_SHA256SUMS`,
      `https://releases.hashicorp.com/terraform/${v}/terraform_${v}_SHA256SUMS.sig`,
      `https://releases.hashicorp.com/terraform/${v}/terraform_${v}_linux_amd64.zip`,
    ]);
    expect(r.leftovers).toEqual([]);
  });

  it('installs OpenTofu from its GitHub release (GPG signature: .gpgsig) with TERRAFORM_DIST=tofu', () => {
    const r = install({ dist: 'tofu', version: '1.12.5' });
    expect(r.code, r.out).toBe(0);
    expect(r.installed).toBe(true);
    expect(r.out).toContain('OpenTofu v1.12.5');
    expect(r.urls).toEqual([
      'https://get.opentofu.org/opentofu.asc',
      'https://github.com/opentofu/opentofu/releases/download/v1.12.5/tofu_1.12.5_SHA256SUMS',
      'https://github.com/opentofu/opentofu/releases/download/v1.12.5/tofu_1.12.5_SHA256SUMS.gpgsig',
      'https://github.com/opentofu/opentofu/releases/download/v1.12.5/tofu_1.12.5_linux_amd64.zip',
    ]);
  });

  it('refuses a zip whose checksum does not match the signed SUMS, before unzipping it', () => {
    const r = install({ dist: 'terraform', version: version(), tamperZip: true });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/FAILED/);
    expect(r.installed).toBe(false);
  });

  it('refuses a SUMS file changed after it was signed', () => {
    const r = install({ dist: 'terraform', version: version(), tamperSums: (s) => s.replace(/^[0-9a-f]{64}(?= {2}terraform_[\d.]+_linux_amd64)/m, 'a'.repeat(64)) });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/BAD signature/i);
    expect(r.installed).toBe(false);
  });

  it('refuses SUMS signed by another key, even when the key file serves that key too', () => {
    const r = install({ dist: 'terraform', version: version(), signer: release.attacker, served: [release.publisher as Key, release.attacker as Key] });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain(`is not signed by ${release.publisher?.fpr}`);
    expect(r.installed).toBe(false);
  });

  it('refuses a key file without the pinned key (the signature cannot be checked)', () => {
    const r = install({ dist: 'terraform', version: version(), signer: release.attacker, served: [release.attacker as Key] });
    expect(r.code).not.toBe(0);
    expect(r.installed).toBe(false);
  });

  it('checks only the zip\'s own line: a SUMS without it, or with it twice, is refused', () => {
    const none = install({ dist: 'terraform', version: version(), sumsFor: (z) => `${'0'.repeat(64)}  ${z.replace('amd64', 'arm64')}\n` });
    expect(none.code).not.toBe(0);
    expect(none.out).toMatch(/no single line for terraform_[\d.]+_linux_amd64\.zip/);
    const twice = install({ dist: 'terraform', version: version(), sumsFor: (z, s) => `${s}  ${z}\n${'0'.repeat(64)}  ${z}\n` });
    expect(twice.code).not.toBe(0);
    expect(twice.installed).toBe(false);
  });

  it('refuses, before fetching anything, a version that is not a release number, an unknown distribution or no fingerprint', () => {
    const cases = [
      { o: { version: 'latest' }, says: /TERRAFORM_VERSION must be a release such as 1\.11\.4, not 'latest'/ },
      { o: { env: { TERRAFORM_DIST: 'terraform-latest' } }, says: /TERRAFORM_DIST must be terraform or tofu/ },
      { o: { fingerprint: '' }, says: /HASHICORP_KEY_FINGERPRINT is required/ },
    ];
    for (const { o, says } of cases) {
      const r = install({ dist: 'terraform', version: version(), ...o });
      expect(r.code).not.toBe(0);
      expect(r.out).toMatch(says);
      expect(r.urls).toEqual(['']);
    }
  });

  it('passes shellcheck', () => {
    const r = spawnSync('shellcheck', [join(DEPLOY, 'install-terraform.sh')], { encoding: 'utf8' });
    expect(r.error, 'shellcheck not found on PATH').toBeUndefined();
    expect(r.status, r.stdout).toBe(0);
  });
});

// ---------------------------------------------------------------- .dockerignore

/** Whether the build context keeps `path` (Docker's rules: the last matching pattern wins; a pattern matches a path or any of its parents). */
function dockerKeeps(patterns: string[], path: string): boolean {
  const re = (p: string) => new RegExp(`^${p.replace(/\/$/, '').replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\/?/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replaceAll('\u0000', '(.*/)?')}$`);
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let keep = true;
  for (const raw of patterns) {
    const neg = raw.startsWith('!');
    const p = neg ? raw.slice(1) : raw;
    if (prefixes.some((x) => re(p).test(x))) keep = neg;
  }
  return keep;
}

describe('.dockerignore', () => {
  const patterns = readFileSync(join(REPO, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const tracked = spawnSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: REPO, encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

  it('keeps every file the Dockerfile copies from the context', () => {
    const sources = docker.filter((d) => d.op === 'COPY' && !d.args.includes('--from=')).flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const s of sources) {
      const files = tracked.filter((f) => f === s || f.startsWith(`${s.replace(/\/$/, '')}/`));
      expect(files.length, `${s} exists in the repository`).toBeGreaterThan(0);
      for (const f of files) expect(dockerKeeps(patterns, f), `${f} is in the build context`).toBe(true);
    }
  });

  it('leaves out node_modules, dist, state, git, tokens, policies and tests', () => {
    for (const f of ['node_modules/yaml/package.json', 'dist/src/cli/main.js', '.parmanu/history/x.json', '.git/HEAD', 'deploy/parmanu.env', '.env', 'policies/fleet.yaml', 'test/deploy/deploy.test.ts', 'src/node_modules/x.js', 'stacks/.terraform/x', 'terraform.tfstate', 'report.html', 'coverage/index.html']) {
      expect(dockerKeeps(patterns, f), f).toBe(false);
    }
  });
});

// ---------------------------------------------------------------- deploy/compose.yaml

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
  stop_grace_period?: string;
}

describe('deploy/compose.yaml', () => {
  const compose = parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, ComposeService> };
  const services = Object.entries(compose.services);
  const parmanu = services.filter(([, s]) => s.build);
  const role = (s: ComposeService) => (s.command?.[0] === 'probe' ? 'prober' : s.command?.[0] === 'reconcile' && s.command.includes('--from-redis') ? 'scaler' : 'other');
  const replicas = (s: ComposeService) => s.deploy?.replicas ?? 1;

  it('runs Redis, one prober and two scalers, built from deploy/Dockerfile', () => {
    expect(compose.services.redis?.image).toBe('redis:7-alpine');
    expect(parmanu.filter(([, s]) => role(s) === 'prober').reduce((n, [, s]) => n + replicas(s), 0)).toBe(1);
    expect(parmanu.filter(([, s]) => role(s) === 'scaler').reduce((n, [, s]) => n + replicas(s), 0)).toBe(2);
    expect(parmanu.filter(([, s]) => role(s) === 'other')).toEqual([]);
    for (const [, s] of parmanu) expect(resolve(DEPLOY, s.build?.context ?? '', s.build?.dockerfile ?? '')).toBe(join(DEPLOY, 'Dockerfile'));
  });

  it('every command\'s flags exist in the CLI', () => {
    for (const [, s] of parmanu) expectAccepted(s.command ?? []);
  });

  it('publishes the webhook port on the prober only, the port its listener takes on all interfaces; Redis publishes none', () => {
    for (const [name, s] of services) {
      if (name === 'redis' || role(s) === 'scaler') expect(s.ports ?? [], name).toEqual([]);
    }
    const [, prober] = parmanu.find(([, s]) => role(s) === 'prober') ?? [];
    const listen = listenOf(prober?.command ?? []);
    expect(listen?.host).toBe('0.0.0.0');
    expect(prober?.ports).toEqual([`${listen?.port}:${listen?.port}`]);
  });

  it('points the services at the redis service once it is healthy, and mounts the policy read-only where --policy reads it', () => {
    expect(compose.services.redis?.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
    for (const [name, s] of parmanu) {
      expect(s.environment?.REDIS_URL, name).toMatch(/^redis:\/\/redis:6379(\/\d+)?$/);
      expect(s.depends_on?.redis?.condition).toBe('service_healthy');
      expect(s.volumes).toContain(`../policies:${flag(s.command ?? [], '--policy')}:ro`);
      expect(parseDuration(s.stop_grace_period ?? '0s'), `${name}: stop_grace_period covers a terraform apply`).toBeGreaterThanOrEqual(600_000);
    }
  });

  it('reads tokens from an env file kept out of git and the image: every ${env:…} of policies/ is in its example', () => {
    for (const [, s] of parmanu) expect(s.env_file).toEqual(['parmanu.env']);
    const example = readFileSync(join(DEPLOY, 'parmanu.env.example'), 'utf8');
    const keys = new Set([...example.matchAll(/^([A-Z_][A-Z0-9_]*)=/gm)].map((m) => m[1]));
    const refs = readdirSync(join(REPO, 'policies')).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => envRefs(parse(readFileSync(join(REPO, 'policies', f), 'utf8'))));
    expect(refs.length).toBeGreaterThan(0);
    for (const r of refs) expect(keys.has(r), `${r} in parmanu.env.example`).toBe(true);
    const ignored = spawnSync('git', ['check-ignore', '-q', 'deploy/parmanu.env'], { cwd: REPO });
    expect(ignored.status, 'deploy/parmanu.env is git-ignored').toBe(0);
  });

  it('checks health with node\'s fetch of /healthz on the listener: 0 when it answers 200, 1 on 503 or no answer', () => {
    for (const [, s] of parmanu) {
      const test = s.healthcheck?.test ?? [];
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      expect(test[3]).toContain(`http://127.0.0.1:${listenOf(s.command ?? [])?.port}/healthz`);
    }
    const body = parmanu[0]?.[1].healthcheck?.test[3] ?? '';
    // The check runs against a listener in a child process (spawnSync blocks this one), its port put in for 9464.
    const run = (status: number | 'closed') =>
      spawnSync(
        process.execPath,
        [
          '-e',
          `const s = require('node:http').createServer((q, r) => { r.statusCode = q.url === '/healthz' ? ${status === 'closed' ? 0 : status} : 404; r.end(); });
           s.listen(0, '127.0.0.1', () => {
             const port = s.address().port;
             const check = () => { const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(body)}.replace('127.0.0.1:9464', '127.0.0.1:' + port)], { stdio: 'inherit' }); c.on('exit', (x) => process.exit(x)); };
             if (${status === 'closed'}) s.close(check); else check();
           });`,
        ],
        { encoding: 'utf8', timeout: 15_000 },
      ).status;
    expect(run(200)).toBe(0);
    expect(run(503)).toBe(1);
    expect(run('closed')).toBe(1);
  });
});

// ---------------------------------------------------------------- deploy/kubernetes

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: Array<{ name: string; emptyDir?: object; configMap?: { name: string } }>;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } & Record<string, unknown>;
    template?: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    maxUnavailable?: number | string;
    minAvailable?: number | string;
    ports?: Array<{ port: number; targetPort: number | string }>;
  };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  automountServiceAccountToken?: boolean;
}

const yamlFiles = (dir: string) => readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(dir, f));
const loadManifests = (files: string[]) =>
  files.flatMap((file) =>
    parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
      expect(d.errors, file).toEqual([]);
      return { file, m: d.toJS() as Manifest };
    }),
  );

describe('deploy/kubernetes', () => {
  const applied = loadManifests(yamlFiles(K8S));
  const examples = loadManifests(yamlFiles(join(K8S, 'secrets')));
  const all = [...applied, ...examples].map((x) => x.m);
  const deployments = applied.map((x) => x.m).filter((m) => m.kind === 'Deployment');
  const byName = (kind: string, name: string) => all.find((m) => m.kind === kind && m.metadata.name === name);
  const container = (d: Manifest) => d.spec?.template?.spec.containers[0] as Container;
  const role = (d: Manifest) => container(d).args?.[0];
  const prober = deployments.find((d) => role(d) === 'probe') as Manifest;
  const scaler = deployments.find((d) => role(d) === 'reconcile') as Manifest;

  it('every file parses, and every document has apiVersion, kind and a name', () => {
    expect(applied.length).toBeGreaterThanOrEqual(7);
    for (const { file, m } of [...applied, ...examples]) {
      expect(m.apiVersion, file).toMatch(/^(v1|apps\/v1|policy\/v1)$/);
      expect(m.kind, file).toMatch(/^[A-Z]\w+$/);
      expect(m.metadata.name, file).toMatch(/^[a-z0-9-]+$/);
      expect((m.metadata as Record<string, unknown>).namespace, `${file}: namespace-agnostic`).toBeUndefined();
    }
  });

  it('runs two probers and three scalers (--from-redis), as args to the image\'s ENTRYPOINT, with flags the CLI has', () => {
    expect(deployments).toHaveLength(2);
    expect(prober.spec?.replicas).toBe(2);
    expect(scaler.spec?.replicas).toBe(3);
    for (const d of deployments) {
      const c = container(d);
      expect(d.spec?.template?.spec.containers).toHaveLength(1);
      expect(c.command, 'command would replace the ENTRYPOINT').toBeUndefined();
      expect(c.args?.includes('--watch')).toBe(true);
      expectAccepted(c.args ?? []);
    }
    expect(container(scaler).args).toContain('--from-redis');
    expect(container(prober).args).not.toContain('--from-redis');
  });

  it('probes /healthz (liveness) and /readyz (readiness) on the port the listener takes, on all interfaces', () => {
    for (const d of deployments) {
      const c = container(d);
      const listen = listenOf(c.args ?? []);
      expect(listen?.host, d.metadata.name).toBe('0.0.0.0');
      const portOf = (p: number | string | undefined) => (typeof p === 'number' ? p : c.ports?.find((x) => x.name === p)?.containerPort);
      expect(c.ports?.map((p) => p.containerPort)).toEqual([listen?.port]);
      expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(portOf(c.livenessProbe?.httpGet?.port)).toBe(listen?.port);
      expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(portOf(c.readinessProbe?.httpGet?.port)).toBe(listen?.port);
    }
  });

  it('exposes the prober\'s webhook port through a Service that selects the probers only', () => {
    const svc = applied.map((x) => x.m).find((m) => m.kind === 'Service') as Manifest;
    const sel = svc.spec?.selector as Record<string, string>;
    const selects = (d: Manifest) => Object.entries(sel).every(([k, v]) => d.spec?.template?.metadata.labels[k] === v);
    expect(selects(prober)).toBe(true);
    expect(selects(scaler)).toBe(false);
    const target = svc.spec?.ports?.[0]?.targetPort;
    const c = container(prober);
    expect(typeof target === 'number' ? target : c.ports?.find((p) => p.name === target)?.containerPort).toBe(listenOf(c.args ?? [])?.port);
  });

  it('reads REDIS_URL and every ${env:…} of the policy from Secrets (secretKeyRef) whose examples have those keys', () => {
    const policy = byName('ConfigMap', 'parmanu-policy')?.data ?? {};
    const refs = new Set(Object.values(policy).flatMap((t) => envRefs(parse(t))));
    expect(refs.size).toBeGreaterThanOrEqual(4);
    for (const d of deployments) {
      const env = container(d).env ?? [];
      for (const name of ['REDIS_URL', ...refs]) {
        const e = env.find((x) => x.name === name);
        const ref = e?.valueFrom?.secretKeyRef;
        expect(ref, `${d.metadata.name}: ${name} from a secretKeyRef`).toBeDefined();
        expect(e?.value).toBeUndefined();
        const secret = examples.map((x) => x.m).find((m) => m.kind === 'Secret' && m.metadata.name === ref?.name);
        expect(Object.keys(secret?.stringData ?? {}), `${ref?.name} example has ${ref?.key}`).toContain(ref?.key);
      }
    }
    expect(byName('Secret', 'parmanu-redis')?.stringData?.REDIS_URL).toMatch(/^rediss?:\/\//);
  });

  it('keeps the example Secrets out of `kubectl apply -f deploy/kubernetes/` (not recursive), so it never overwrites real ones', () => {
    expect(applied.filter((x) => x.m.kind === 'Secret')).toEqual([]);
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const { file } of examples) expect(file).toMatch(/\.example\.ya?ml$/);
  });

  it('runs non-root (the image\'s uid) on a read-only root, with emptyDirs for PARMANU_STATE_DIR and /tmp', () => {
    const uid = Number((inStage(lastStage, 'USER').at(-1)?.args ?? '').split(':')[0]);
    for (const d of deployments) {
      const pod = d.spec?.template?.spec as PodSpec;
      const c = container(d);
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: uid });
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      const stateDir = c.env?.find((e) => e.name === 'PARMANU_STATE_DIR')?.value;
      for (const path of [stateDir, '/tmp']) {
        const mount = c.volumeMounts?.find((m) => m.mountPath === path);
        expect(mount, `${d.metadata.name}: ${path} mounted`).toBeDefined();
        expect(pod.volumes?.find((v) => v.name === mount?.name)?.emptyDir, `${path} is an emptyDir`).toBeDefined();
        expect(mount?.readOnly).toBeFalsy();
      }
    }
  });

  it('mounts the policy ConfigMap read-only where --policy reads it', () => {
    for (const d of deployments) {
      const c = container(d);
      const mount = c.volumeMounts?.find((m) => m.mountPath === flag(c.args ?? [], '--policy'));
      expect(mount?.readOnly).toBe(true);
      const cm = d.spec?.template?.spec.volumes?.find((v) => v.name === mount?.name)?.configMap?.name;
      expect(byName('ConfigMap', cm ?? '')).toBeDefined();
    }
  });

  it('gives each container resources and the scalers a grace period that covers a terraform apply', () => {
    for (const d of deployments) {
      const r = container(d).resources;
      expect(r?.requests?.cpu).toBeDefined();
      expect(r?.requests?.memory).toBeDefined();
      expect(r?.limits?.memory).toBeDefined();
      expect(d.spec?.template?.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    }
    expect(scaler.spec?.template?.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(600);
  });

  it('uses a ServiceAccount without API access or a mounted token', () => {
    const sa = applied.map((x) => x.m).filter((m) => m.kind === 'ServiceAccount');
    expect(sa).toHaveLength(1);
    expect(sa[0]?.automountServiceAccountToken).toBe(false);
    expect(all.filter((m) => /Role|RoleBinding/.test(m.kind))).toEqual([]);
    for (const d of deployments) {
      expect(d.spec?.template?.spec.serviceAccountName).toBe(sa[0]?.metadata.name);
      expect(d.spec?.template?.spec.automountServiceAccountToken).toBe(false);
    }
  });

  it('has a PodDisruptionBudget for each Deployment that selects its pods (and no other) and lets a drain proceed', () => {
    const pdbs = applied.map((x) => x.m).filter((m) => m.kind === 'PodDisruptionBudget');
    const selects = (pdb: Manifest, d: Manifest) => Object.entries(pdb.spec?.selector?.matchLabels ?? {}).every(([k, v]) => d.spec?.template?.metadata.labels[k] === v);
    for (const d of deployments) {
      expect(d.spec?.selector?.matchLabels).toEqual(d.spec?.template?.metadata.labels);
      const mine = pdbs.filter((p) => selects(p, d));
      expect(mine, d.metadata.name).toHaveLength(1);
      const pdb = mine[0] as Manifest;
      const down = pdb.spec?.maxUnavailable ?? (d.spec?.replicas ?? 1) - Number(pdb.spec?.minAvailable ?? 0);
      expect(Number(down)).toBeGreaterThanOrEqual(1);
      expect(Number(down)).toBeLessThan(d.spec?.replicas ?? 1);
    }
    for (const p of pdbs) expect(Object.keys(p.spec?.selector?.matchLabels ?? {}).length, 'a PDB selects something').toBeGreaterThan(0);
  });

  it('the ConfigMap\'s policy (S3 and GCS backends) passes the real `parmanu validate`, mounted as the kubelet mounts it', () => {
    const cm = byName('ConfigMap', 'parmanu-policy') as Manifest;
    const platforms = Object.values(cm.data ?? {}).flatMap((t) => Object.values((parse(t) as { platforms: Record<string, { type: string; backend?: { type: string } }> }).platforms));
    // The state must outlive the pod: never the local backend (an emptyDir) in a cluster.
    expect(platforms.map((p) => p.backend?.type).sort()).toEqual(['gcs', 's3']);
    expect(platforms.map((p) => p.type).sort()).toEqual(['aws', 'gcp']);
    // A ConfigMap volume: each key a symlink into ..data, itself a symlink to a timestamped directory.
    const dir = join(scratch, 'etc-parmanu-policies');
    const stamp = '..2026_11_30_05_00_00.000000001';
    mkdirSync(join(dir, stamp), { recursive: true });
    for (const [key, text] of Object.entries(cm.data ?? {})) {
      writeFileSync(join(dir, stamp, key), text);
      symlinkSync(join('..data', key), join(dir, key));
    }
    symlinkSync(stamp, join(dir, '..data'));
    const r = image(['validate', '--json', dir]);
    expect(r.code, r.out).toBe(0);
    // One file: the copy under the hidden ..data directories is not loaded twice.
    expect(JSON.parse(r.out)).toMatchObject({ ok: true, files: [expect.stringMatching(/^etc-parmanu-policies\/fleet\.yaml$/)] });
    // With the environment the Deployments set from the Secrets, every reference resolves.
    const env = Object.fromEntries((container(scaler).env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, 'example-value-not-a-token']));
    const checked = image(['validate', '--check-env', dir], env);
    expect(checked.code, checked.out).toBe(0);
    const missing = image(['validate', '--check-env', dir], { ...env, GITHUB_TOKEN: '' });
    expect(missing.code).toBe(2);
  });

  it('the prober, run as prober.yaml runs it, answers /healthz and /readyz (503 while Redis is away) and exits 0 on SIGTERM within its grace period', async () => {
    const cm = byName('ConfigMap', 'parmanu-policy') as Manifest;
    // The example policy with its CI platforms on a closed loopback port: probes fail at once, nothing leaves the machine.
    const policy = parse(cm.data?.['fleet.yaml'] ?? '') as { emitters: Record<string, Record<string, unknown>> };
    for (const e of Object.values(policy.emitters)) {
      if (e.type === 'gitlab') e.url = 'http://127.0.0.1:1';
      if (e.type === 'github') e.apiUrl = 'http://127.0.0.1:1';
    }
    const dir = join(scratch, 'prober-policy');
    mkdirSync(dir);
    writeFileSync(join(dir, 'fleet.yaml'), stringify(policy));
    const port = await new Promise<number>((done) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => done(typeof a === 'object' && a ? a.port : 0));
      });
    });
    const c = container(prober);
    const args = (c.args ?? []).map((a, i, all) => (all[i - 1] === '--listen' ? `127.0.0.1:${port}` : all[i - 1] === '--policy' ? dir : a));
    const redis = await startRedis();
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, PARMANU_STATE_DIR: join(scratch, 'prober-state') };
    for (const e of c.env ?? []) if (e.name !== 'REDIS_URL' && e.name !== 'PARMANU_STATE_DIR') env[e.name] = e.value ?? 'example-value-not-a-token';
    const entry = jsonArray(inStage(lastStage, 'ENTRYPOINT').at(-1)?.args ?? '[]');
    const child = spawn(process.execPath, [join(scratch, 'image', entry[1] ?? ''), ...args], { cwd: scratch, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const status = async (path: string) => fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.status, () => 0);
    const until = async (path: string, want: number, ms: number) => {
      const end = Date.now() + ms;
      let got = await status(path);
      while (got !== want && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 200));
        got = await status(path);
      }
      return got;
    };
    // The paths the Deployment's probes ask.
    const live = c.livenessProbe?.httpGet?.path ?? '';
    const ready = c.readinessProbe?.httpGet?.path ?? '';
    try {
      expect(await until(ready, 200, 20_000), out).toBe(200);
      expect(await status(live)).toBe(200);
      await redis.stop();
      expect(await until(ready, 503, 20_000), out).toBe(503);
      expect(await status(live)).toBe(200);
      await redis.restart();
      expect(await until(ready, 200, 20_000), out).toBe(200);
      child.kill('SIGTERM');
      const grace = (prober.spec?.template?.spec.terminationGracePeriodSeconds ?? 30) * 1000;
      const code = await Promise.race([exited, new Promise<'still running'>((done) => setTimeout(() => done('still running'), grace))]);
      expect(code, `exit after SIGTERM within ${grace / 1000} s: ${out.slice(-600)}`).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
      await redis.stop();
      expectNoSecrets('parmanu probe (prober.yaml)', out);
    }
  }, 150_000);

  it.skipIf(spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status !== 0)('the Deployments survive kubectl\'s typed decoding without a dropped field (where kubectl is installed)', () => {
    for (const d of deployments) {
      const file = join(scratch, `${d.metadata.name}.json`);
      writeFileSync(file, JSON.stringify(d));
      const r = spawnSync('kubectl', ['set', 'image', '--local', '-f', file, '*=x', '-o', 'json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as unknown;
      const walk = (a: unknown, b: unknown, path: string): string[] => {
        if (a && typeof a === 'object') {
          if (!b || typeof b !== 'object') return [path];
          return Object.entries(a).flatMap(([k, v]) => walk(v, (b as Record<string, unknown>)[k], `${path}.${k}`));
        }
        return path.endsWith('.image') || String(a) === String(b) ? [] : [path];
      };
      expect(walk(d, out, d.metadata.name)).toEqual([]);
    }
  });
});
