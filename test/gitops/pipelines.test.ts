/**
 * The shipped CI pipelines: parsed, their rules checked, and every job's script run.
 *
 * Each job runs through a real bash (`-e -o pipefail`, as the GitLab runner does; `bash -e` for a
 * GitHub `run:` step) in a scratch root whose PATH holds only what the image or runner has:
 *
 * - `node:20-bookworm` (GitLab): Debian's base tools, and from buildpack-deps:bookworm curl, gnupg
 *   (gpg), wget, git and unzip; node, npm and npx. No terraform, no redis-server, no lsb_release;
 *   its apt lists are empty until `apt-get update`.
 * - `ubuntu-latest` (GitHub): the base tools, curl, gpg and git; `uses:` steps are emulated:
 *   actions/checkout (the workspace holds the repository), actions/setup-node (node, npm, npx),
 *   hashicorp/setup-terraform (terraform of its `terraform_version`). node and terraform exist only
 *   after their setup step.
 *
 * The base tools are the real binaries; the ones that would reach the network or change the
 * machine are stubs that behave like the real ones as far as a job relies on them: curl serves
 * HashiCorp's key (a stand-in carrying its fingerprint), gpg shows and dearmors it, apt-get reads
 * the sources the job wrote, checks the repository's key and installs a stub terraform of the
 * pinned version (or redis-server), git fetches nothing, and npm runs `ci` (node_modules) and its
 * scripts: `reconcile` fails like the CLI when terraform is not on PATH or older than 1.11, and
 * each command's flags go through the real CLI's parser (`parmanu CMD FLAGS --help`). Absolute
 * system paths in the scripts (/etc, /usr, /tmp, /var, /opt) are moved below the scratch root;
 * GitHub's `${{ … }}` expressions are replaced as GitHub would before the shell sees them.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';

type Script = Array<string | Script>;
interface Job { stage?: string; image?: string; script?: Script; before_script?: Script; timeout?: string; rules?: Array<{ if?: string; changes?: string[]; when?: string }>; resource_group?: string; artifacts?: { reports?: { terraform?: string } } }
interface Step { uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string> }
interface WfJob { if: string; 'runs-on': string; permissions?: Record<string, string>; 'timeout-minutes'?: number; concurrency?: { group: string; 'cancel-in-progress'?: boolean }; steps: Step[] }

const REPO = resolve(import.meta.dirname, '..', '..');
/**
 * HashiCorp's Linux package signing key (https://www.hashicorp.com/en/trust/security), in force
 * since its rotation on 2026-09-10 (HCSEC-2026-33; the key before it was 798A EC65 … A621 E701).
 */
const HASHICORP_FPR = 'D55C0D1AC78A8D8126CB631CFC9CA96ACA026560';

const scratch = mkdtempSync(join(tmpdir(), 'parmanu-pipelines-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------- the emulated machines

/** Debian's and Ubuntu's base tools (coreutils, grep, sed, mawk, findutils, tar, gzip), real. */
const BASE_TOOLS = ['bash', 'sh', 'cat', 'chmod', 'cp', 'mkdir', 'rm', 'mv', 'ln', 'ls', 'touch', 'tee', 'grep', 'sed', 'awk', 'head', 'tail', 'tr', 'cut', 'env', 'sort', 'uniq', 'dirname', 'basename', 'id', 'uname', 'sha256sum', 'test', 'true', 'false', 'sleep', 'date', 'wc', 'xargs', 'find', 'tar', 'gzip'];
/** What buildpack-deps adds (curl: curl, gnupg, wget; scm: git; the full image: unzip…) that the stubs do not replace. */
const BUILDPACK_TOOLS = ['wget', 'unzip'];

const STUBS: Record<string, string> = {
  curl: String.raw`
out=; url=
while [ $# -gt 0 ]; do case "$1" in -o|--output) out=$2; shift 2;; -*) shift;; *) url=$1; shift;; esac; done
case "$url" in
  https://apt.releases.hashicorp.com/gpg) body=$'-----BEGIN PGP PUBLIC KEY BLOCK-----\n'"fpr:$SERVED_FPR"$'\n-----END PGP PUBLIC KEY BLOCK-----';;
  *) echo "curl: (22) The requested URL returned error: 404" >&2; exit 22;;
esac
if [ -n "$out" ]; then printf '%s\n' "$body" > "$out"; else printf '%s\n' "$body"; fi`,

  gpg: String.raw`
mode=; out=; in=
while [ $# -gt 0 ]; do case "$1" in
  --show-keys) mode=show; shift;; --dearmor|--dearmour) mode=dearmor; shift;;
  --with-colons|--batch|--yes|--quiet|-q) shift;;
  -o|--output) out=$2; shift 2;;
  -*) echo "gpg (stub): option $1 is not emulated" >&2; exit 2;;
  *) in=$1; shift;;
esac; done
if [ -n "$in" ]; then data=$(<"$in") || exit 2; else data=$(</dev/stdin); fi
[[ $data =~ fpr:([0-9A-F]{40}) ]] || { echo "gpg: no valid OpenPGP data found." >&2; exit 2; }
fpr=\${BASH_REMATCH[1]}
case "$mode" in
  show) printf 'pub:-:4096:1:%s:1674000000:::-:::scESC::::::23::0:\nfpr:::::::::%s:\nuid:-::::1674000000::0::HashiCorp Security (HashiCorp Package Signing) <security+packaging@hashicorp.com>::::::::::0:\n' "\${fpr:24}" "$fpr";;
  dearmor) if [ -n "$out" ]; then printf 'keyring %s\n' "$fpr" > "$out" || exit 2; else printf 'keyring %s\n' "$fpr"; fi;;
  *) echo "gpg (stub): only --show-keys and --dearmor are emulated" >&2; exit 2;;
esac`,

  'apt-get': String.raw`
lists=$STUB_ROOT/var/lib/apt/lists
cmd=; pkgs=()
for a in "$@"; do case "$a" in -*) ;; update|install) [ -z "$cmd" ] && cmd=$a || pkgs+=("$a");; *) pkgs+=("$a");; esac; done
case "$cmd" in
update)
  : > "$lists/debian"
  for f in "$STUB_ROOT"/etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] || continue
    while read -r line; do
      [ -z "$line" ] && continue
      re='^deb \[signed-by=([^]]+)\] https://apt\.releases\.hashicorp\.com ([a-z]+) main$'
      [[ $line =~ $re ]] || { echo "E: Malformed entry 1 in list file $f" >&2; exit 100; }
      key=\${BASH_REMATCH[1]}; suite=\${BASH_REMATCH[2]}
      [ "$suite" = "$CODENAME" ] || { echo "E: The repository 'https://apt.releases.hashicorp.com $suite Release' does not have a Release file." >&2; exit 100; }
      [ -f "$key" ] && [ "$(<"$key")" = "keyring $HASHICORP_FPR" ] || { echo "W: GPG error: https://apt.releases.hashicorp.com $suite InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY AA16FCBCA621E701" >&2; echo "E: The repository 'https://apt.releases.hashicorp.com $suite InRelease' is not signed." >&2; exit 100; }
      : > "$lists/hashicorp"
    done < "$f"
  done;;
install)
  for p in "\${pkgs[@]}"; do
    name=\${p%%=*}; version=; [[ $p == *=* ]] && version=\${p#*=}
    case "$name" in
      terraform)
        [ -e "$lists/hashicorp" ] || { echo "E: Unable to locate package terraform" >&2; exit 100; }
        if [ -z "$version" ]; then v=latest
        elif [[ $version =~ ^([0-9]+\.[0-9]+\.[0-9]+)-1$ ]]; then v=\${BASH_REMATCH[1]}
        else echo "E: Version '$version' for 'terraform' was not found" >&2; exit 100; fi
        cp "$STUB_ROOT/pool/terraform" "$STUB_ROOT/usr/bin/terraform" && printf '%s' "$v" > "$STUB_ROOT/usr/bin/terraform.version";;
      redis-server|chromium|shellcheck)
        [ -e "$lists/debian" ] || { echo "E: Unable to locate package $name" >&2; exit 100; }
        cp "$STUB_ROOT/pool/$name" "$STUB_ROOT/usr/bin/$name";;
      *) echo "E: Unable to locate package $name" >&2; exit 100;;
    esac
  done;;
*) echo "apt-get (stub): $cmd is not emulated" >&2; exit 100;;
esac`,

  git: String.raw`
case "$1" in fetch) ;; *) echo "git (stub): $1 is not emulated" >&2; exit 1;; esac`,

  node: String.raw`exec "$REAL_NODE" "$@"`,
  npx: String.raw`echo "npx (stub): not emulated" >&2; exit 1`,

  npm: String.raw`
installed() { [ -f node_modules/.installed ] || { echo "sh: 1: parmanu: not found (npm ci has not run)" >&2; exit 127; }; }
need_terraform() {
  command -v terraform > /dev/null || { echo "parmanu: $1: terraform not found on PATH" >&2; exit 2; }
  v=$(terraform version -json) || exit 2
  [[ $v =~ \"terraform_version\":\"1\.(1[1-9]|[2-9][0-9])\. ]] || { echo "parmanu: $1: terraform $v is too old: Parmanu needs >= 1.11" >&2; exit 2; }
}
case "$1" in
  ci)
    [ -f package-lock.json ] || { echo "npm ERR! The npm ci command can only install with an existing package-lock.json" >&2; exit 1; }
    mkdir -p node_modules && : > node_modules/.installed;;
  test)
    installed; need_terraform test
    command -v redis-server > /dev/null || { echo "test/redis-server.ts: redis-server not found on PATH" >&2; exit 1; }
    command -v chromium > /dev/null || { echo "test/gitops/report-screenshot.test.ts: chromium is not installed" >&2; exit 1; }
    command -v shellcheck > /dev/null || { echo "test/stacks/bootstrap-sandbox.test.ts: shellcheck not found on PATH" >&2; exit 1; };;
  run)
    script=$2; shift 2; [ "$1" = -- ] && shift
    installed
    case "$script" in validate|plan|reconcile) ;; *) echo "npm ERR! Missing script: \"$script\"" >&2; exit 1;; esac
    "$REAL_NODE" "$REPO/bin/parmanu.js" "$script" "$@" --help > /dev/null || exit 2
    [ "$script" = reconcile ] && need_terraform reconcile
    echo "parmanu $script: ok";;
  *) echo "npm (stub): $1 is not emulated" >&2; exit 1;;
esac`,
};

/** The stub terraform a package or setup-terraform installs: its version sits beside it. */
const TERRAFORM = String.raw`
v=$(<"\${BASH_SOURCE[0]}.version")
case "$1" in
  version) if [ "$2" = -json ]; then printf '{"terraform_version":"%s","platform":"linux_amd64"}\n' "$v"; else printf 'Terraform v%s\non linux_amd64\n' "$v"; fi;;
  *) echo "terraform (stub): $1 is not emulated" >&2; exit 1;;
esac`;

function writeStub(path: string, body: string, name: string) {
  writeFileSync(path, `#!/bin/bash\necho "${name} $*" >> "$STUB_LOG"\n${body.replaceAll('\\${', '${')}\n`);
  chmodSync(path, 0o755);
}

interface Machine {
  root: string;
  work: string;
  log: string;
  env: Record<string, string>;
}

let machines = 0;
/** A scratch root with the image's or runner's tools, and a workspace holding what the job reads of the repository. */
function machine(kind: 'node:20-bookworm' | 'ubuntu-latest', servedFpr = HASHICORP_FPR): Machine {
  const root = join(scratch, `m${machines++}`);
  const dirs = ['usr/bin', 'usr/local/bin', 'usr/share/keyrings', 'etc/apt/sources.list.d', 'var/lib/apt/lists', 'tmp', 'pool', 'opt', 'root', 'builds/project'];
  for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
  const bin = join(root, 'usr/bin');
  for (const t of [...BASE_TOOLS, ...BUILDPACK_TOOLS]) {
    const real = ['/usr/bin', '/bin'].map((d) => join(d, t)).find((p) => existsSync(p));
    if (real) symlinkSync(real, join(bin, t));
  }
  for (const t of ['curl', 'gpg', 'apt-get', 'git']) writeStub(join(bin, t), STUBS[t] ?? '', t);
  writeStub(join(root, 'pool/terraform'), TERRAFORM, 'terraform');
  for (const pkg of ['redis-server', 'chromium', 'shellcheck']) writeStub(join(root, `pool/${pkg}`), 'exit 0', pkg);
  const nodeBin = kind === 'node:20-bookworm' ? join(root, 'usr/local/bin') : join(root, 'opt/node/bin');
  mkdirSync(nodeBin, { recursive: true });
  for (const t of ['node', 'npm', 'npx']) writeStub(join(nodeBin, t), STUBS[t] ?? '', t);
  const codename = kind === 'node:20-bookworm' ? 'bookworm' : 'noble';
  writeFileSync(join(root, 'etc/os-release'), `PRETTY_NAME="${kind}"\nVERSION_CODENAME=${codename}\n`);
  const work = join(root, 'builds/project');
  copyFileSync(join(REPO, 'package-lock.json'), join(work, 'package-lock.json'));
  const log = join(root, 'stub.log');
  writeFileSync(log, '');
  const path = kind === 'node:20-bookworm' ? [join(root, 'usr/local/bin'), bin] : [bin];
  return {
    root,
    work,
    log,
    env: { PATH: path.join(':'), HOME: join(root, 'root'), STUB_LOG: log, STUB_ROOT: root, SERVED_FPR: servedFpr, HASHICORP_FPR, CODENAME: codename, REAL_NODE: process.execPath, REPO, CI: 'true' },
  };
}

/** Absolute system paths of a script, moved below the machine's root. */
const rooted = (root: string, line: string) => line.replace(/(^|[\s"'=<>(])\/(etc|usr|tmp|var|opt)\//g, `$1${root}/$2/`);

function bash(m: Machine, script: string, env: Record<string, string>, flags: string[]) {
  const file = join(m.root, 'tmp', `step-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(file, script);
  const r = spawnSync('/bin/bash', [...flags, file], { cwd: m.work, env: { ...m.env, ...env }, encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

// ---------------------------------------------------------------- GitLab

const gitlabText = readFileSync(join(REPO, '.gitlab-ci.yml'), 'utf8');
const ci = parse(gitlabText, { merge: true }) as Record<string, Job> & { default: Job; stages: string[]; variables: Record<string, string> };
/** GitLab flattens nested lists (YAML anchors of scripts) in before_script and script. */
const flat = (s: Script | undefined): string[] => (s ?? []).flatMap((x) => (Array.isArray(x) ? flat(x) : [x]));
/** A job's shell lines as the runner runs them: its before_script (or the default one), then its script. */
const gitlabLines = (job: string) => [...flat(ci[job]?.before_script ?? ci.default.before_script), ...flat(ci[job]?.script)];

function runGitlab(job: string, o: { lines?: string[]; servedFpr?: string } = {}) {
  const m = machine('node:20-bookworm', o.servedFpr);
  const predefined: Record<string, string> = { GITLAB_CI: 'true', CI_PROJECT_DIR: m.work, CI_DEFAULT_BRANCH: 'main', CI_COMMIT_BRANCH: 'main', CI_MERGE_REQUEST_TARGET_BRANCH_NAME: 'main', CI_PIPELINE_SOURCE: job === 'reconcile' ? 'schedule' : 'merge_request_event' };
  const variables = Object.fromEntries(Object.entries(ci.variables).map(([k, v]) => [k, String(v).replace(/\$(\w+)/g, (_, n: string) => predefined[n] ?? '')]));
  const script = (o.lines ?? gitlabLines(job)).map((l) => rooted(m.root, l)).join('\n');
  return { ...bash(m, script, { ...predefined, ...variables }, ['-e', '-o', 'pipefail']), log: () => readFileSync(m.log, 'utf8') };
}

describe('.gitlab-ci.yml', () => {
  const rules = (job: string) => ci[job]?.rules ?? [];

  it('validates and plans merge requests that touch policies/, with the terraform report and a sticky comment', () => {
    for (const job of ['validate', 'plan']) expect(rules(job)).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "merge_request_event"', changes: ['policies/**/*'] });
    expect(flat(ci.validate?.script).join('\n')).toMatch(/npm run validate -- policies/);
    expect(flat(ci.plan?.script).join('\n')).toMatch(/npm run plan -- .*--report plan-report\.json --comment/);
    expect(ci.plan?.artifacts?.reports?.terraform).toBe('plan-report.json');
    expect(rules('plan').some((r) => r.if?.includes('schedule'))).toBe(false);
  });

  it('tests every merge request', () => {
    expect(rules('test')).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' });
    expect(flat(ci.test?.script).join('\n')).toMatch(/npm test/);
  });

  it('reconciles on schedule and by hand, never two at once, as a bounded watch with a timeout above it', () => {
    expect(rules('reconcile')).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "schedule"' });
    expect(rules('reconcile')).toContainEqual({ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "web"', when: 'manual' });
    expect(ci.reconcile?.resource_group).toBe('parmanu-reconcile');
    expect(rules('reconcile').some((r) => r.if?.includes('merge_request_event'))).toBe(false);
    expect(flat(ci.reconcile?.script).at(-1)).toMatch(/^npm run reconcile -- --policy policies --watch --for 55m /);
    const timeout = /^(\d+)m$/.exec(ci.reconcile?.timeout ?? '');
    expect(Number(timeout?.[1])).toBeGreaterThan(55);
    // The schedule itself is set in GitLab (CI/CD → Schedules): the file says hourly.
    expect(gitlabText).toMatch(/hourly pipeline schedule \(CI\/CD → Schedules, "0 \* \* \* \*"\)/);
  });

  it('caches npm and terraform plugins', () => {
    expect(ci.variables.TF_PLUGIN_CACHE_DIR).toContain('.terraform.d/plugin-cache');
    for (const job of ['validate', 'test', 'plan', 'reconcile']) expect(ci.stages).toContain(ci[job]?.stage);
  });

  it('pins terraform to a 1.11 release and HashiCorp\'s key by its fingerprint', () => {
    expect(ci.default.image).toBe('node:20-bookworm');
    expect(ci.variables.TERRAFORM_VERSION).toMatch(/^1\.11\.\d+$/);
    expect(ci.variables.HASHICORP_KEY_FINGERPRINT).toBe(HASHICORP_FPR);
  });

  it.each(['validate', 'test', 'plan', 'reconcile'])('runs the %s job on node:20-bookworm with what it installs', (job) => {
    const r = runGitlab(job);
    expect(r.out).not.toMatch(/not found|not emulated|E: /);
    expect(r.code, r.out).toBe(0);
    const log = r.log();
    expect(log).toMatch(/^npm ci /m);
    if (job === 'test' || job === 'reconcile') {
      expect(log).toContain(`apt-get install -y -qq terraform=${ci.variables.TERRAFORM_VERSION}-1`);
      expect(r.out).toContain(`Terraform v${ci.variables.TERRAFORM_VERSION}`);
    } else {
      expect(log).not.toMatch(/apt-get/);
    }
    if (job === 'reconcile') expect(log).toMatch(/^npm run reconcile -- --policy policies --watch --for 55m --metrics-listen none --json$/m);
    if (job === 'test') expect(log).toMatch(/apt-get install -y -qq redis-server[\s\S]*npm test/);
  });

  // The harness has to catch what the issue found: a job without terraform.
  it('fails the reconcile and test jobs without the terraform install lines', () => {
    const without = (job: string) => gitlabLines(job).filter((l) => !/hashicorp|terraform/i.test(l));
    const reconcile = runGitlab('reconcile', { lines: without('reconcile') });
    expect(reconcile.code).not.toBe(0);
    expect(reconcile.out).toContain('parmanu: reconcile: terraform not found on PATH');
    const test = runGitlab('test', { lines: without('test') });
    expect(test.code).not.toBe(0);
    expect(test.out).toMatch(/E: Unable to locate package redis-server|terraform not found on PATH/);
  });

  it('fails when the downloaded key is not HashiCorp\'s, before anything is installed from it', () => {
    const r = runGitlab('reconcile', { servedFpr: 'E8A032E094D8EB4EA189D270DA418C88A3219F7B' });
    expect(r.code).not.toBe(0);
    expect(r.log()).not.toMatch(/gpg --batch --yes --dearmor|apt-get/);
  });

  it('fails on a tool the image does not have (lsb_release), and on an unpinned terraform', () => {
    const lsb = gitlabLines('reconcile').map((l) => l.replace('$(. /etc/os-release && echo "$VERSION_CODENAME")', '$(lsb_release -cs)'));
    expect(lsb).not.toEqual(gitlabLines('reconcile'));
    const r = runGitlab('reconcile', { lines: lsb });
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/lsb_release: (command )?not found/);
    const unpinned = gitlabLines('reconcile').map((l) => l.replace('"terraform=${TERRAFORM_VERSION}-1"', 'terraform'));
    expect(unpinned).not.toEqual(gitlabLines('reconcile'));
    expect(runGitlab('reconcile', { lines: unpinned }).out).toContain('Terraform vlatest');
  });
});

// ---------------------------------------------------------------- GitHub Actions

const wf = parse(readFileSync(join(REPO, 'examples/github-actions.yml'), 'utf8')) as { on: { pull_request: unknown; schedule: Array<{ cron: string }> }; permissions: Record<string, string>; jobs: Record<string, WfJob> };
const EXPRESSIONS: Record<string, string> = { 'github.base_ref': 'main', 'secrets.GITHUB_TOKEN': 'stub-token', 'secrets.PARMANU_REDIS_URL': 'redis://127.0.0.1:1', 'secrets.PARMANU_GITHUB_TOKEN': 'stub-token' };
/** `${{ expr }}` as GitHub substitutes it before the shell runs; an expression the test does not know fails it. */
const expand = (s: string) =>
  s.replace(/\$\{\{\s*([^}]+?)\s*\}\}/g, (_, e: string) => {
    const v = EXPRESSIONS[e];
    if (v === undefined) throw new Error(`expression not emulated: ${e}`);
    return v;
  });

function runGithub(job: string, steps: Step[] = wf.jobs[job]?.steps ?? []) {
  const m = machine('ubuntu-latest');
  let path = m.env.PATH ?? '';
  const outputs: string[] = [];
  for (const [i, step] of steps.entries()) {
    if (step.uses) {
      const [action] = step.uses.split('@');
      if (action === 'actions/checkout') continue;
      if (action === 'actions/setup-node') path = `${join(m.root, 'opt/node/bin')}:${path}`;
      else if (action === 'hashicorp/setup-terraform') {
        const dir = join(m.root, 'opt/terraform/bin');
        mkdirSync(dir, { recursive: true });
        copyFileSync(join(m.root, 'pool/terraform'), join(dir, 'terraform'));
        writeFileSync(join(dir, 'terraform.version'), String(step.with?.terraform_version ?? 'latest'));
        path = `${dir}:${path}`;
      } else throw new Error(`uses: ${step.uses} is not emulated`);
      continue;
    }
    const env = Object.fromEntries(Object.entries(step.env ?? {}).map(([k, v]) => [k, expand(String(v))]));
    const r = bash(m, rooted(m.root, expand(step.run ?? '')), { GITHUB_ACTIONS: 'true', GITHUB_WORKSPACE: m.work, ...env, PATH: path }, ['-e']);
    outputs.push(r.out);
    if (r.code !== 0) return { code: r.code, failedStep: i, out: outputs.join(''), log: readFileSync(m.log, 'utf8') };
  }
  return { code: 0, failedStep: undefined, out: outputs.join(''), log: readFileSync(m.log, 'utf8') };
}

describe('examples/github-actions.yml', () => {
  it('plans pull requests on policies/ and reconciles hourly without overlap, as a bounded watch with a timeout above it', () => {
    expect(wf.on.pull_request).toEqual({ paths: ['policies/**'] });
    // Least privilege: the workflow reads; only the plan job writes its comment.
    expect(wf.permissions).toEqual({ contents: 'read' });
    expect(wf.jobs.plan?.permissions).toEqual({ contents: 'read', 'pull-requests': 'write' });
    expect(wf.jobs.reconcile?.permissions).toBeUndefined();
    expect(wf.jobs.plan?.if).toContain("'pull_request'");
    expect(wf.jobs.plan?.steps.some((s) => s.run?.includes('--comment'))).toBe(true);
    expect(wf.jobs.reconcile?.if).toContain("'schedule'");
    expect(wf.jobs.reconcile?.concurrency).toEqual({ group: 'parmanu-reconcile', 'cancel-in-progress': false });
    expect(wf.on.schedule).toHaveLength(1);
    expect(wf.on.schedule[0]?.cron).toMatch(/^\d{1,2} \* \* \* \*$/);
    expect(wf.jobs.reconcile?.['timeout-minutes']).toBeGreaterThan(55);
    expect(wf.jobs.reconcile?.steps.at(-1)?.run).toMatch(/^npm run reconcile -- --policy policies --watch --for 55m /);
  });

  it('keeps expressions out of run: scripts (they reach the shell through env) and gives the plan the shared history', () => {
    for (const job of Object.values(wf.jobs)) for (const step of job.steps) expect(step.run ?? '').not.toContain('${{');
    const plan = wf.jobs.plan?.steps.find((s) => s.run?.includes('npm run plan'));
    expect(plan?.env).toMatchObject({ BASE_REF: '${{ github.base_ref }}', REDIS_URL: '${{ secrets.PARMANU_REDIS_URL }}' });
    expect(plan?.run).toContain('--base "origin/$BASE_REF"');
  });

  it('pins terraform to a 1.11 release, without the wrapper', () => {
    const setup = wf.jobs.reconcile?.steps.find((s) => s.uses?.startsWith('hashicorp/setup-terraform@'));
    expect(setup?.with).toEqual({ terraform_version: expect.stringMatching(/^1\.11\.\d+$/), terraform_wrapper: false });
  });

  it.each(['plan', 'reconcile'])('runs the %s job on ubuntu-latest with what its steps set up', (job) => {
    const r = runGithub(job);
    expect(r.out).not.toMatch(/not found|not emulated/);
    expect(r.code, r.out).toBe(0);
    expect(r.log).toMatch(/^npm ci$/m);
    if (job === 'reconcile') {
      expect(r.out).toMatch(/Terraform v1\.11\.\d+/);
      expect(r.log).toMatch(/^npm run reconcile -- --policy policies --watch --for 55m --metrics-listen none --json$/m);
    }
  });

  it('fails the reconcile job without setup-terraform', () => {
    const steps = (wf.jobs.reconcile?.steps ?? []).filter((s) => !s.uses?.startsWith('hashicorp/setup-terraform') && s.run !== 'terraform version');
    const r = runGithub('reconcile', steps);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('parmanu: reconcile: terraform not found on PATH');
  });

  it('fails a job whose node steps come before setup-node', () => {
    const steps = (wf.jobs.plan?.steps ?? []).filter((s) => !s.uses?.startsWith('actions/setup-node'));
    const r = runGithub('plan', steps);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/npm: (command )?not found/);
  });
});
