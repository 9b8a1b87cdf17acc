/**
 * Linux bootstrap: cloud-init user-data whose `write_files` holds every script and systemd unit
 * (their text comes from here, YAML-quoted: no shell heredoc ever interpolates a value) and whose
 * `runcmd` runs `/usr/local/sbin/parmanu-bootstrap` once.
 *
 * The runner credential is never in user-data. `parmanu-credential` (root, 0700) reads it from the
 * node's `CredentialSource` into `/run/parmanu/credential` (root, 0600, tmpfs: gone at shutdown);
 * `parmanu-start` runs it, then hands the secret to the runner without argv:
 * - GitLab: `gitlab-runner register` as root with `CI_SERVER_TOKEN` in its environment; the token
 *   then lives only in the root-only `/etc/gitlab-runner/config.toml` (the service runs as root,
 *   shell jobs as `gitlab-runner`, docker jobs in containers).
 * - GitHub JIT: systemd (as root) reads `/run/parmanu/runner.env` (0600) into the runner's
 *   environment as `ACTIONS_RUNNER_INPUT_JITCONFIG` (single use, one job).
 * - GitHub registration token: `config.sh` as `runner` with `ACTIONS_RUNNER_INPUT_TOKEN` in its
 *   environment; the runner then keeps its own credentials in its directory (readable by `runner`,
 *   which is also the job user: DESIGN "Runner credentials").
 * - Jenkins: systemd's `LoadCredential=` copies the file for the agent service only
 *   (`$CREDENTIALS_DIRECTORY`, readable by the service's user), passed as `-secret @file`.
 * `parmanu-start.service` runs `parmanu-start` before the runner's unit at every later boot (a node
 * started from standby reads a fresh credential); at the first boot the bootstrap runs it itself.
 * A registered (non-JIT) GitHub runner of a standby pool lost its registration when it stopped: a
 * start brings a new registration token, and a token other than the one that configured it
 * (its SHA-256 kept root-only) configures the runner again.
 *
 * On AWS and GCP (`aws-ssm` / `gcp-secret` sources) `parmanu-firewall` drops traffic to instance
 * metadata (169.254.169.254) from Docker containers (`DOCKER-USER`) and from the runner's job user
 * (owner match), at every boot before the runner and after every Docker start; root keeps access.
 *
 * Policy extensions (trusted policy content, written into user-data as is, never a secret):
 * - `runner.hooks`: `/usr/local/lib/parmanu/hooks/{before,after}` (root, 0700), run by the bootstrap
 *   before the runner is installed and after its service started (first boot only); a failing
 *   hook stops the bootstrap with its exit code on the console.
 * - `runner.config`: GitLab — `/etc/parmanu/gitlab-runner-template.toml` (root, 0600), the
 *   fragment below a `[[runners]]` header, given to `gitlab-runner register --template-config`;
 *   GitHub — `/etc/parmanu/runner-config.env` (root, 0600), read by systemd into the runner's
 *   environment; Jenkins — JVM options, each a quoted argument of `java` before `-jar`.
 *
 * Every script honours `PARMANU_ROOT` (a path prefix), set only by the tests that run the shipped
 * scripts in a sandbox (test/stacks/bootstrap-sandbox.test.ts); on a node it is unset.
 */
import type { PoolConfig } from '../../src/policy/types.js';
import type { CredentialSource, RunnerAccess } from '../types.js';
import { type BootstrapOptions, concreteVersion, runnerLabels, shq, yq } from './common.js';

export interface WrittenFile {
  path: string;
  /** Octal, as cloud-init wants it. */
  permissions: string;
  content: string;
}

const CRED = '"$R/run/parmanu/credential"';
const HOOKS_DIR = '/usr/local/lib/parmanu/hooks';
const GITLAB_TEMPLATE = '/etc/parmanu/gitlab-runner-template.toml';
const RUNNER_ENV = '/etc/parmanu/runner-config.env';
const METADATA = '169.254.169.254';
/** What a secret may hold: it goes into an environment file (tokens, base64 and hex need no more). */
const SECRET_CHARS = 'A-Za-z0-9._~+/=:-';

function head(what: string, paths = true): string[] {
  return [
    '#!/bin/bash',
    `# ${what}`,
    'set -euo pipefail',
    ...(paths ? ['# PARMANU_ROOT: a sandbox root, set only by the tests that run this script; empty on a node.', 'R="${PARMANU_ROOT:-}"'] : []),
    'fail() { echo "parmanu: $*" >&2; exit 1; }',
    // cloud-init copies a runcmd's output to the console log: the reason reaches the cloud's console output.
    'trap \'echo "parmanu: ${BASH_SOURCE[0]##*/} failed at line $LINENO" >&2\' ERR',
  ];
}

/** The job user: who runs jobs (and so is kept away from metadata). */
function jobUser(access: RunnerAccess): string | undefined {
  switch (access.kind) {
    case 'gitlab':
      return 'gitlab-runner';
    case 'github':
      return 'runner';
    case 'jenkins':
      return 'jenkins';
    case 'none':
      return undefined;
  }
}

/** Whether the node runs on a cloud whose metadata server hands out the node's identity. */
function closesMetadata(source: CredentialSource, access: RunnerAccess): boolean {
  return access.kind !== 'none' && (source.kind === 'aws-ssm' || source.kind === 'gcp-secret' || (source.kind === 'file' && source.vm === true));
}

/** Installs a package with apt-get or dnf, whichever the image has. */
function installPackage(apt: string, dnf: string, why: string): string[] {
  return [
    'if command -v apt-get >/dev/null; then',
    '  apt-get update -qq',
    `  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${shq(apt)}`,
    'elif command -v dnf >/dev/null; then',
    `  dnf install -y ${shq(dnf)}`,
    'else',
    `  fail ${shq(`${why}: neither apt-get nor dnf is available to install it`)}`,
    'fi',
  ];
}

function fetchLines(source: CredentialSource): string[] {
  const retry = (what: string, attempt: string[]): string[] => [
    '# The secret is created right after the instance (its IAM condition names the instance): wait for it.',
    'secret=',
    'attempt=1',
    'while :; do',
    ...attempt.map((l) => `  ${l}`),
    '  if [ "$attempt" -ge 30 ]; then',
    `    fail ${shq(`could not read the runner credential from ${what} after 30 attempts`)}`,
    '  fi',
    `  echo ${shq(`parmanu: the runner credential is not readable from ${what} yet`)}" (attempt $attempt/30); retrying in 10s" >&2`,
    '  attempt=$((attempt + 1))',
    '  sleep 10',
    'done',
  ];
  switch (source.kind) {
    case 'aws-ssm':
      return [
        `REGION=${shq(source.region)}`,
        `PARAMETER=${shq(source.parameter)}`,
        'command -v aws >/dev/null || fail "the AWS CLI (aws) is not installed in the image; it reads the runner credential from SSM Parameter Store"',
        ...retry('SSM Parameter Store', [
          'if secret=$(aws ssm get-parameter --region "$REGION" --name "$PARAMETER" --with-decryption --query Parameter.Value --output text); then',
          '  break',
          'fi',
        ]),
      ];
    case 'gcp-secret':
      return [
        `PROJECT=${shq(source.project)}`,
        `SECRET=${shq(source.secret)}`,
        'TOKEN_URL=http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token',
        '# The access token goes to curl on stdin (-H @-), never in argv.',
        ...retry('Secret Manager', [
          'if token_json=$(curl -fsS --retry 3 -H "Metadata-Flavor: Google" "$TOKEN_URL") &&',
          '  token=$(printf \'%s\\n\' "$token_json" | sed -n \'s/.*"access_token" *: *"\\([^"]*\\)".*/\\1/p\') &&',
          '  [ -n "$token" ] &&',
          '  body=$(printf \'Authorization: Bearer %s\\n\' "$token" | curl -fsS --retry 3 -H @- "https://secretmanager.googleapis.com/v1/projects/$PROJECT/secrets/$SECRET/versions/latest:access") &&',
          '  data=$(printf \'%s\\n\' "$body" | sed -n \'s/.*"data" *: *"\\([^"]*\\)".*/\\1/p\') &&',
          '  [ -n "$data" ] &&',
          '  secret=$(printf \'%s\' "$data" | base64 -d); then',
          '  break',
          'fi',
        ]),
      ];
    case 'file':
      return [
        `SOURCE="$R"${shq(source.path)}`,
        '[ -f "$SOURCE" ] || fail "the runner credential file $SOURCE does not exist"',
        'secret=$(<"$SOURCE")',
      ];
    case 'none':
      return ['fail "this node has no credential source"'];
  }
}

/** `/usr/local/sbin/parmanu-credential`: the secret into `/run/parmanu/credential` (root, 0600). */
function credentialScript(source: CredentialSource): string {
  const where = { 'aws-ssm': 'AWS SSM Parameter Store', 'gcp-secret': 'GCP Secret Manager', file: 'a root-only file', none: 'nowhere' }[source.kind];
  return [
    ...head(`Reads this node's runner credential from ${where} into a root-only file (run as root, before the runner starts).`),
    'umask 077',
    'mkdir -p "$R/run/parmanu"',
    'chmod 0700 "$R/run/parmanu"',
    ...fetchLines(source),
    '[ -n "$secret" ] || fail "the runner credential is empty"',
    '# It is later put in an environment file: only the characters of tokens, base64 and hex.',
    `case "$secret" in *[!${SECRET_CHARS}]*) fail "the runner credential has unexpected characters" ;; esac`,
    'printf \'%s\' "$secret" >"$R/run/parmanu/credential.new"',
    'chmod 0600 "$R/run/parmanu/credential.new"',
    'mv -f "$R/run/parmanu/credential.new" "$R/run/parmanu/credential"',
    'echo "parmanu: runner credential read"',
  ].join('\n');
}

/** `/usr/local/sbin/parmanu-start`: at every boot, before the runner: credential, then registration. */
function startScript(pool: PoolConfig, node: string, access: RunnerAccess): string {
  const r = pool.runner;
  const prepare: string[] = [];
  switch (access.kind) {
    case 'gitlab': {
      const exec = r.executor === 'docker' ? `--executor docker --docker-image ${shq('alpine:latest')}` : '--executor shell';
      prepare.push(
        '# A fresh config.toml at every start, from the credential just read (for an authentication token',
        '# `register` only verifies it); the token is passed in the environment (CI_SERVER_TOKEN = --token).',
        'mkdir -p "$R/etc/gitlab-runner"',
        'chmod 0700 "$R/etc/gitlab-runner"',
        'CONFIG="$R/etc/gitlab-runner/config.toml"',
        'rm -f "$CONFIG.new"',
        ...(typeof r.config === 'string' ? ['# runner.config: the policy\'s fragment below [[runners]], merged by register.'] : []),
        `CI_SERVER_TOKEN="$(<${CRED})" gitlab-runner register --non-interactive --config "$CONFIG.new"${typeof r.config === 'string' ? ` --template-config "$R"${GITLAB_TEMPLATE}` : ''} --url ${shq(access.url)} --name ${shq(node)} ${exec} --limit ${r.jobsPerNode}`,
        `sed -i 's/^concurrent = .*/concurrent = ${r.jobsPerNode}/' "$CONFIG.new"`,
        'chmod 0600 "$CONFIG.new"',
        'mv -f "$CONFIG.new" "$CONFIG"',
      );
      break;
    }
    case 'github':
      if (access.mode === 'jit')
        prepare.push(
          '# systemd (root) reads this file into the runner\'s environment: ACTIONS_RUNNER_INPUT_JITCONFIG = --jitconfig.',
          `printf 'ACTIONS_RUNNER_INPUT_JITCONFIG=%s\\n' "$(<${CRED})" >"$R/run/parmanu/runner.env.new"`,
          'chmod 0600 "$R/run/parmanu/runner.env.new"',
          'mv -f "$R/run/parmanu/runner.env.new" "$R/run/parmanu/runner.env"',
        );
      else
        prepare.push(
          '# Configured once (again after an ephemeral runner removed its configuration); the token is passed in',
          '# the environment (ACTIONS_RUNNER_INPUT_TOKEN = --token; runuser keeps the environment, sudo would not).',
          'cd "$R/opt/actions-runner"',
          // Standby: a node stopped into standby lost its registration (GitHub has no pause); its
          // start brings a new registration token: a token other than the one that configured the
          // runner means configuring it again. Only in standby pools (it is part of the node spec).
          ...(pool.scaling.standby !== 0
            ? [
                'TOKEN_SUM="$(sha256sum <' + CRED + ' | sed \'s/ .*//\')"',
                'if [ -e .runner ] && [ "$(cat "$R/var/lib/parmanu/registered-with" 2>/dev/null)" != "$TOKEN_SUM" ]; then',
                '  echo "parmanu: started from standby with a new registration token: configuring the runner again"',
                '  rm -f .runner .credentials .credentials_rsaparams',
                'fi',
              ]
            : []),
          'if [ ! -e .runner ]; then',
          `  ACTIONS_RUNNER_INPUT_TOKEN="$(<${CRED})" runuser -u runner -- ./config.sh --unattended --replace --url ${shq(access.url)} --name ${shq(node)} --labels ${shq(runnerLabels(pool).join(','))}${r.ephemeral ? ' --ephemeral' : ''}`,
          ...(pool.scaling.standby !== 0 ? ['  mkdir -p "$R/var/lib/parmanu"', '  printf \'%s\' "$TOKEN_SUM" >"$R/var/lib/parmanu/registered-with"'] : []),
          'fi',
        );
      break;
    case 'jenkins':
      prepare.push('# parmanu-agent.service hands the file to the agent alone (LoadCredential=).');
      break;
    case 'none':
      break;
  }
  return [
    ...head('Prepares the runner at every boot, before its service: reads a fresh credential, then registers.'),
    'umask 077',
    '# At the first boot parmanu-bootstrap runs this itself; the unit then finds it done.',
    'if [ -e "$R/run/parmanu/started" ]; then',
    '  echo "parmanu: runner already prepared at this boot"',
    '  exit 0',
    'fi',
    '"$R/usr/local/sbin/parmanu-credential"',
    ...prepare,
    ': >"$R/run/parmanu/started"',
    'echo "parmanu: runner prepared"',
  ].join('\n');
}

/** `/usr/local/sbin/parmanu-firewall`: jobs (job user, containers) cannot reach instance metadata. */
function firewallScript(user: string): string {
  return [
    ...head('Keeps jobs away from instance metadata: drops traffic to 169.254.169.254 from Docker containers and from the job user; root keeps access.', false),
    `JOB_USER=${shq(user)}`,
    `METADATA=${METADATA}/32`,
    'if command -v iptables >/dev/null; then',
    '  # Containers: DOCKER-USER is consulted before Docker\'s own rules; Docker jumps to it once it runs',
    '  # (and this script runs again after every Docker start, docker.service.d/parmanu-metadata.conf).',
    '  if ! iptables -w -n -L DOCKER-USER >/dev/null 2>&1; then',
    '    iptables -w -N DOCKER-USER',
    '  fi',
    '  if ! iptables -w -C DOCKER-USER -d "$METADATA" -j DROP >/dev/null 2>&1; then',
    '    iptables -w -I DOCKER-USER 1 -d "$METADATA" -j DROP',
    '  fi',
    '  if ! iptables -w -C OUTPUT -d "$METADATA" -m owner --uid-owner "$JOB_USER" -j DROP >/dev/null 2>&1; then',
    '    iptables -w -I OUTPUT 1 -d "$METADATA" -m owner --uid-owner "$JOB_USER" -j DROP',
    '  fi',
    'elif command -v nft >/dev/null; then',
    '  # A table of its own, replaced whole: forwarded traffic (containers) and the job user\'s own.',
    '  uid=$(id -u "$JOB_USER")',
    '  printf \'%s\\n\' \'table inet parmanu\' \'delete table inet parmanu\' \'table inet parmanu {\' \\',
    `    '  chain output { type filter hook output priority 0; policy accept; ip daddr ${METADATA} meta skuid '"$uid"' drop; }' \\`,
    `    '  chain forward { type filter hook forward priority 0; policy accept; ip daddr ${METADATA} drop; }' \\`,
    '    \'}\' | nft -f -',
    'else',
    '  fail "neither iptables nor nft is installed: jobs could reach instance metadata"',
    'fi',
    'echo "parmanu: instance metadata closed to $JOB_USER and to containers"',
  ].join('\n');
}

/** Downloads `url` to `file` and, with a release, verifies its published SHA-256 for `$ASSET`. */
function downloadVerified(url: string, file: string, opts: BootstrapOptions): string[] {
  const lines = [`curl -fsSL --retry 5 -o ${file} ${url}`];
  const sums = opts.release?.sha256;
  if (!sums) return lines;
  lines.push('case "$ASSET" in');
  for (const [asset, sum] of Object.entries(sums)) lines.push(`  ${shq(asset)}) SUM=${shq(sum)} ;;`);
  lines.push(`  *) fail "no published checksum for $ASSET in runner release "${shq(opts.release?.version ?? '')} ;;`, 'esac');
  lines.push(`printf '%s  %s\\n' "$SUM" ${file} | sha256sum -c - || fail "checksum mismatch for $ASSET: refusing to run it"`);
  return lines;
}

const LATEST_TODO =
  '# TODO(reconciler): `latest` is resolved by the reconciler into a concrete version and its published checksum\n' +
  '# (BootstrapOptions.release); until it passes one, the VM takes the latest release unverified.';

function installLines(pool: PoolConfig, access: RunnerAccess, opts: BootstrapOptions): string[] {
  const r = pool.runner;
  const version = concreteVersion(pool, opts);
  switch (access.kind) {
    case 'gitlab':
      return [
        'id -u gitlab-runner >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash gitlab-runner',
        ...(r.install === 'download'
          ? [
              'case "$(uname -m)" in x86_64) ASSET=linux-amd64 ;; aarch64) ASSET=linux-arm64 ;; *) fail "unsupported architecture $(uname -m)" ;; esac',
              ...(version ? [] : [LATEST_TODO]),
              `VERSION=${shq(version ? `v${version}` : 'latest')}`,
              'mkdir -p "$R/usr/local/bin"',
              ...downloadVerified('"https://gitlab-runner-downloads.s3.amazonaws.com/$VERSION/binaries/gitlab-runner-$ASSET"', '"$R/usr/local/bin/gitlab-runner.new"', opts),
              'chmod 0755 "$R/usr/local/bin/gitlab-runner.new"',
              'mv -f "$R/usr/local/bin/gitlab-runner.new" "$R/usr/local/bin/gitlab-runner"',
            ]
          : ['command -v gitlab-runner >/dev/null || fail "gitlab-runner is not installed in the image (runner.install: preinstalled)"']),
      ];
    case 'github': {
      const dir = '"$R/opt/actions-runner"';
      return [
        'id -u runner >/dev/null 2>&1 || useradd --create-home --shell /bin/bash runner',
        `mkdir -p ${dir}`,
        ...(r.install === 'download'
          ? [
              'case "$(uname -m)" in x86_64) ASSET=linux-x64 ;; aarch64) ASSET=linux-arm64 ;; *) fail "unsupported architecture $(uname -m)" ;; esac',
              ...(version
                ? [`V=${shq(version)}`]
                : [
                    LATEST_TODO,
                    '# github.com\'s web redirect to the latest release, not the REST API (60 unauthenticated calls an hour per address).',
                    "V=$(curl -fsSLI --retry 5 -o /dev/null -w '%{url_effective}' https://github.com/actions/runner/releases/latest)",
                    'V=${V##*/v}',
                    'case "$V" in "" | *[!0-9.]*) fail "could not resolve the latest actions runner version" ;; esac',
                  ]),
              ...downloadVerified('"https://github.com/actions/runner/releases/download/v$V/actions-runner-$ASSET-$V.tar.gz"', `${dir}/runner.tar.gz`, opts),
              `tar -xzf ${dir}/runner.tar.gz -C ${dir}`,
              `rm -f ${dir}/runner.tar.gz`,
              `${dir}/bin/installdependencies.sh`,
            ]
          : [`[ -x ${dir}/run.sh ] || fail "the actions runner is not in /opt/actions-runner (runner.install: preinstalled)"`]),
        `chown -R runner ${dir}`,
      ];
    }
    case 'jenkins':
      return [
        ...(r.install === 'download'
          ? ['if ! command -v java >/dev/null; then', ...installPackage('default-jre-headless', 'java-17-openjdk-headless', 'java (for the Jenkins agent)').map((l) => `  ${l}`), 'fi']
          : ['command -v java >/dev/null || fail "java is not installed in the image (runner.install: preinstalled)"']),
        'id -u jenkins >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash jenkins',
        'mkdir -p "$R/var/lib/jenkins-agent" "$R/usr/local/lib/parmanu"',
        'chown jenkins "$R/var/lib/jenkins-agent"',
        '# agent.jar comes from the controller over TLS; root-owned, out of the job user\'s reach.',
        `curl -fsSL --retry 5 -o "$R/usr/local/lib/parmanu/agent.jar" ${shq(access.url.replace(/\/$/, '') + '/jnlpJars/agent.jar')}`,
      ];
    case 'none':
      return [];
  }
}

function dockerLines(): string[] {
  return [
    '# The docker executor needs Docker: installed from the distribution when missing, then checked.',
    'if ! command -v docker >/dev/null; then',
    ...installPackage('docker.io', 'docker', 'Docker (runner.executor: docker)').map((l) => `  ${l}`),
    'fi',
    'systemctl enable --now docker.service',
    'docker info >/dev/null || fail "Docker does not answer (docker info failed): the docker executor cannot run jobs"',
  ];
}

/** The runner's own systemd unit (GitHub, Jenkins) or a drop-in on gitlab-runner's. */
function runnerUnits(pool: PoolConfig, node: string, access: RunnerAccess, firewall: boolean): WrittenFile[] {
  const requires = ['Requires=parmanu-start.service', 'After=parmanu-start.service network-online.target', 'Wants=network-online.target'];
  const unit = (path: string, lines: string[]): WrittenFile => ({ path, permissions: '0644', content: lines.join('\n') + '\n' });
  const files: WrittenFile[] = [
    unit('/etc/systemd/system/parmanu-start.service', [
      '[Unit]',
      'Description=Parmanu: read the runner credential and prepare the runner',
      'Wants=network-online.target',
      `After=network-online.target${firewall ? ' parmanu-firewall.service' : ''}`,
      ...(firewall ? ['Requires=parmanu-firewall.service'] : []),
      '[Service]',
      'Type=oneshot',
      'RemainAfterExit=yes',
      'ExecStart=/usr/local/sbin/parmanu-start',
      '[Install]',
      'WantedBy=multi-user.target',
    ]),
  ];
  if (firewall) {
    files.push(
      unit('/etc/systemd/system/parmanu-firewall.service', [
        '[Unit]',
        'Description=Parmanu: keep jobs away from instance metadata',
        'Before=parmanu-start.service docker.service',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        'ExecStart=/usr/local/sbin/parmanu-firewall',
        '[Install]',
        'WantedBy=multi-user.target',
      ]),
      unit('/etc/systemd/system/docker.service.d/parmanu-metadata.conf', ['# Docker rebuilds its chains when it starts: close metadata to containers again.', '[Service]', 'ExecStartPost=/usr/local/sbin/parmanu-firewall']),
    );
  }
  switch (access.kind) {
    case 'gitlab':
      files.push(unit('/etc/systemd/system/gitlab-runner.service.d/parmanu.conf', ['[Unit]', ...requires]));
      break;
    case 'github':
      files.push(
        unit('/etc/systemd/system/parmanu-runner.service', [
          '[Unit]',
          `Description=GitHub Actions runner (${access.mode === 'jit' ? 'just-in-time' : 'registered'})`,
          ...requires,
          '[Service]',
          'User=runner',
          'WorkingDirectory=/opt/actions-runner',
          ...(githubEnv(pool) ? ['# runner.config of the policy (root-only file, read by systemd).', `EnvironmentFile=${RUNNER_ENV}`] : []),
          ...(access.mode === 'jit' ? ['# Read by systemd as root; the file stays root-only.', 'EnvironmentFile=/run/parmanu/runner.env'] : []),
          'ExecStart=/opt/actions-runner/run.sh',
          `Restart=${access.mode === 'jit' || pool.runner.ephemeral ? 'no' : 'on-failure'}`,
          '[Install]',
          'WantedBy=multi-user.target',
        ]),
      );
      break;
    case 'jenkins':
      files.push(
        unit('/etc/systemd/system/parmanu-agent.service', [
          '[Unit]',
          'Description=Jenkins inbound agent',
          ...requires,
          '[Service]',
          'User=jenkins',
          '# systemd copies the root-only file for this service alone: $CREDENTIALS_DIRECTORY/jenkins-secret.',
          'LoadCredential=jenkins-secret:/run/parmanu/credential',
          'ExecStart=/usr/local/lib/parmanu/jenkins-agent',
          'Restart=always',
          '[Install]',
          'WantedBy=multi-user.target',
        ]),
        {
          path: '/usr/local/lib/parmanu/jenkins-agent',
          permissions: '0755',
          content:
            [
              '#!/bin/bash',
              '# Started by parmanu-agent.service as jenkins; the secret is read by agent.jar from a file (-secret @file), never argv.',
              'set -euo pipefail',
              `exec java ${jvmOptions(pool).map((o) => `${shq(o)} `).join('')}-jar /usr/local/lib/parmanu/agent.jar -url ${shq(access.url)} -secret "@$CREDENTIALS_DIRECTORY/jenkins-secret" -name ${shq(node)} -webSocket -workDir /var/lib/jenkins-agent`,
            ].join('\n') + '\n',
        },
      );
      break;
    case 'none':
      break;
  }
  return files;
}

/** Runs a `runner.hooks` script; its failure stops the bootstrap, with the hook and its exit code on the console. */
function hookLines(pool: PoolConfig, which: 'before' | 'after'): string[] {
  const hook = pool.runner.hooks?.[which];
  if (!hook) return [];
  const what = `the ${which} hook (runner.hooks.${which}: ${hook.path})`;
  return [`echo ${shq(`parmanu: running ${what}`)}`, `"$R"${shq(`${HOOKS_DIR}/${which}`)} || fail ${shq(`${what} failed`)}" with exit code $?"`];
}

/** A GitHub pool's `runner.config`: environment variables of the runner, or undefined. */
function githubEnv(pool: PoolConfig): Record<string, string> | undefined {
  const c = pool.runner.config;
  return c && typeof c === 'object' && !Array.isArray(c) && Object.keys(c).length ? c : undefined;
}

/** A Jenkins pool's `runner.config`: JVM options of the agent. */
function jvmOptions(pool: PoolConfig): string[] {
  return Array.isArray(pool.runner.config) ? pool.runner.config : [];
}

/**
 * A value for a systemd environment file: double-quoted, with `\`, `"`, `` ` `` and `$` escaped
 * (systemd takes the character after a backslash literally for exactly these inside double quotes).
 */
export function systemdEnvValue(v: string): string {
  return `"${v.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`;
}

/** The files `runner.config` becomes: GitLab's register template, GitHub's environment file. */
function configFiles(pool: PoolConfig, access: RunnerAccess): WrittenFile[] {
  const c = pool.runner.config;
  if (access.kind === 'gitlab' && typeof c === 'string') return [{ path: GITLAB_TEMPLATE, permissions: '0600', content: `[[runners]]\n${c}${c.endsWith('\n') ? '' : '\n'}` }];
  const env = githubEnv(pool);
  if (access.kind === 'github' && env) return [{ path: RUNNER_ENV, permissions: '0600', content: Object.entries(env).map(([k, v]) => `${k}=${systemdEnvValue(v)}\n`).join('') }];
  return [];
}

function bootstrapScript(pool: PoolConfig, access: RunnerAccess, source: CredentialSource, opts: BootstrapOptions): string {
  const user = jobUser(access);
  const firewall = closesMetadata(source, access);
  const start: string[] = [];
  switch (access.kind) {
    case 'gitlab':
      start.push(
        'if ! systemctl cat gitlab-runner.service >/dev/null 2>&1; then',
        '  gitlab-runner install --user=gitlab-runner --working-directory=/home/gitlab-runner --config=/etc/gitlab-runner/config.toml',
        'fi',
        'systemctl daemon-reload',
        'systemctl enable gitlab-runner.service',
        'systemctl restart gitlab-runner.service',
      );
      break;
    case 'github':
      start.push('systemctl enable --now parmanu-runner.service');
      break;
    case 'jenkins':
      start.push('systemctl enable --now parmanu-agent.service');
      break;
    case 'none':
      break;
  }
  if (access.kind === 'none') return [...head('Parmanu node bootstrap (replay: no runner).', false), 'echo "parmanu: replay node: no runner to start"'].join('\n');
  return [
    ...head('Parmanu node bootstrap, run once by cloud-init; every failing step stops it and says why on the console.'),
    'echo "parmanu: bootstrapping"',
    'systemctl daemon-reload',
    ...hookLines(pool, 'before'),
    ...installLines(pool, access, opts),
    ...(access.kind === 'gitlab' && pool.runner.executor === 'docker' ? dockerLines() : []),
    ...(firewall && user ? ['"$R/usr/local/sbin/parmanu-firewall"', 'systemctl enable parmanu-firewall.service'] : []),
    '"$R/usr/local/sbin/parmanu-start"',
    'systemctl enable parmanu-start.service',
    ...start,
    ...hookLines(pool, 'after'),
    'echo "parmanu: bootstrap done"',
  ].join('\n');
}

/** Every file the node's cloud-init writes, scripts and units included (the tests run these). */
export function linuxFiles(pool: PoolConfig, node: string, access: RunnerAccess, source: CredentialSource, opts: BootstrapOptions = {}): WrittenFile[] {
  if (access.kind !== 'none' && source.kind === 'none') throw new Error(`node ${node}: a ${access.kind} runner needs a credential source`);
  const files: WrittenFile[] = [{ path: '/etc/parmanu/node.env', permissions: '0644', content: `PARMANU_POOL=${shq(pool.name)}\nPARMANU_NODE=${shq(node)}\n` }];
  const user = jobUser(access);
  const firewall = closesMetadata(source, access);
  if (access.kind !== 'none') {
    files.push({ path: '/usr/local/sbin/parmanu-credential', permissions: '0700', content: credentialScript(source) + '\n' });
    files.push({ path: '/usr/local/sbin/parmanu-start', permissions: '0700', content: startScript(pool, node, access) + '\n' });
    if (firewall && user) files.push({ path: '/usr/local/sbin/parmanu-firewall', permissions: '0700', content: firewallScript(user) + '\n' });
    files.push(...runnerUnits(pool, node, access, firewall));
    files.push(...configFiles(pool, access));
    for (const which of ['before', 'after'] as const) {
      const hook = pool.runner.hooks?.[which];
      if (hook) files.push({ path: `${HOOKS_DIR}/${which}`, permissions: '0700', content: hook.script.endsWith('\n') ? hook.script : `${hook.script}\n` });
    }
  }
  files.push({ path: '/usr/local/sbin/parmanu-bootstrap', permissions: '0700', content: bootstrapScript(pool, access, source, opts) + '\n' });
  return files;
}

/** cloud-init user-data for a Linux node. */
export function linuxUserData(pool: PoolConfig, node: string, access: RunnerAccess, source: CredentialSource, opts: BootstrapOptions = {}): string {
  const lines = ['#cloud-config', `# Parmanu node (${access.kind} runner)`, 'write_files:'];
  for (const f of linuxFiles(pool, node, access, source, opts)) lines.push(`  - path: ${yq(f.path)}`, `    permissions: ${yq(f.permissions)}`, `    content: ${yq(f.content)}`);
  lines.push('runcmd:', '  - [/usr/local/sbin/parmanu-bootstrap]');
  return lines.join('\n') + '\n';
}
