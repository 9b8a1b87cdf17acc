/**
 * Runner bootstrap user-data, per runner kind and OS:
 * - Linux: cloud-init (`#cloud-config`) writing the credential to a 0600 file and a bootstrap
 *   script run once; the script never echoes the credential (no `set -x`).
 * - Windows: a PowerShell script (EC2Launch `<powershell>` block on AWS, the
 *   `windows-startup-script-ps1` metadata key on GCP).
 * GitLab: install (or use a pre-installed) gitlab-runner, `register --non-interactive` with the
 * node's authentication token and name, `concurrent` = jobsPerNode, run as a service.
 * GitHub: the actions runner started with the node's just-in-time config (one job), or configured
 * with a registration token as a service. Jenkins: `agent.jar -url -secret @file -name -webSocket
 * -workDir` as a service.
 */
import { createHash } from 'node:crypto';
import type { PoolConfig } from '../src/policy/types.js';
import type { RunnerCredential } from './types.js';

/** A POSIX shell single-quoted string. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
/** A PowerShell single-quoted string. */
export function psq(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}
/** A YAML double-quoted scalar (JSON strings are valid YAML). */
const yq = (s: string) => JSON.stringify(s);

/**
 * The labels a GitHub runner configured with a registration token is given: the pool's, plus
 * Parmanu's ownership marker `parmanu-pool-<pool>` (src/emitters/types.ts markerLabel; jobs match
 * labels as a subset, so the extra label takes nothing away).
 */
export function runnerLabels(pool: PoolConfig): string[] {
  return [...pool.labels, `parmanu-pool-${pool.name}`];
}

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function gitlabVersionPath(version: string): string {
  return version === 'latest' ? 'latest' : version.startsWith('v') ? version : `v${version}`;
}

interface Ctx {
  pool: PoolConfig;
  node: string;
}

function linuxScript({ pool, node }: Ctx, cred: RunnerCredential): { files: Array<{ path: string; content: string }>; script: string } {
  const r = pool.runner;
  const head = ['#!/bin/bash', 'set -euo pipefail', `# Parmanu node ${node} (pool ${pool.name})`, 'ARCH=$(uname -m)'];
  switch (cred.kind) {
    case 'gitlab': {
      const exec = r.executor === 'docker' ? `--executor docker --docker-image ${shq('alpine:latest')}` : '--executor shell';
      return {
        files: [{ path: '/etc/parmanu/gitlab-runner-token', content: cred.token }],
        script: [
          ...head,
          'case "$ARCH" in x86_64) GL_ARCH=amd64 ;; aarch64) GL_ARCH=arm64 ;; *) GL_ARCH="$ARCH" ;; esac',
          r.install === 'download'
            ? `curl -fsSL --retry 5 -o /usr/local/bin/gitlab-runner "https://gitlab-runner-downloads.s3.amazonaws.com/${gitlabVersionPath(r.version)}/binaries/gitlab-runner-linux-$GL_ARCH"\nchmod 0755 /usr/local/bin/gitlab-runner`
            : 'command -v gitlab-runner >/dev/null || { echo "gitlab-runner is not installed in the image (runner.install: preinstalled)" >&2; exit 1; }',
          'id gitlab-runner >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash gitlab-runner',
          r.executor === 'docker' ? 'usermod -aG docker gitlab-runner 2>/dev/null || true' : ':',
          'gitlab-runner install --user=gitlab-runner --working-directory=/home/gitlab-runner 2>/dev/null || true',
          `gitlab-runner register --non-interactive --url ${shq(cred.url)} --token "$(cat /etc/parmanu/gitlab-runner-token)" --name ${shq(node)} ${exec} --limit ${r.jobsPerNode}`,
          `sed -i 's/^concurrent = .*/concurrent = ${r.jobsPerNode}/' /etc/gitlab-runner/config.toml`,
          'gitlab-runner restart',
        ].join('\n'),
      };
    }
    case 'github': {
      const jit = 'jitConfig' in cred;
      const version = r.version === 'latest' ? '' : r.version.replace(/^v/, '');
      const run = jit
        ? [
            'cat > /etc/systemd/system/parmanu-runner.service <<UNIT',
            '[Unit]',
            `Description=GitHub Actions runner ${node} (just-in-time)`,
            'After=network-online.target',
            '[Service]',
            'User=runner',
            'WorkingDirectory=/opt/actions-runner',
            'ExecStart=/bin/bash -c \'exec /opt/actions-runner/run.sh --jitconfig "$(cat /etc/parmanu/github-jitconfig)"\'',
            '[Install]',
            'WantedBy=multi-user.target',
            'UNIT',
            'chown runner /etc/parmanu/github-jitconfig',
            'systemctl daemon-reload && systemctl enable --now parmanu-runner.service',
          ]
        : [
            `sudo -u runner ./config.sh --unattended --replace --url ${shq(cred.url)} --token "$(cat /etc/parmanu/github-registration-token)" --name ${shq(node)} --labels ${shq(runnerLabels(pool).join(','))}${r.ephemeral ? ' --ephemeral' : ''}`,
            './svc.sh install runner && ./svc.sh start',
          ];
      return {
        files: [jit ? { path: '/etc/parmanu/github-jitconfig', content: cred.jitConfig } : { path: '/etc/parmanu/github-registration-token', content: cred.registrationToken }],
        script: [
          ...head,
          'case "$ARCH" in x86_64) GH_ARCH=x64 ;; aarch64) GH_ARCH=arm64 ;; *) GH_ARCH="$ARCH" ;; esac',
          'id runner >/dev/null 2>&1 || useradd --create-home --shell /bin/bash runner',
          'mkdir -p /opt/actions-runner && cd /opt/actions-runner',
          r.install === 'download'
            ? [
                version ? `V=${shq(version)}` : 'V=$(curl -fsSL --retry 5 https://api.github.com/repos/actions/runner/releases/latest | sed -n \'s/.*"tag_name": *"v\\([^"]*\\)".*/\\1/p\' | head -n1)',
                'curl -fsSL --retry 5 -o runner.tar.gz "https://github.com/actions/runner/releases/download/v$V/actions-runner-linux-$GH_ARCH-$V.tar.gz"',
                'tar xzf runner.tar.gz && rm runner.tar.gz',
                './bin/installdependencies.sh >/dev/null 2>&1 || true',
              ].join('\n')
            : 'test -x ./run.sh || { echo "the actions runner is not in /opt/actions-runner (runner.install: preinstalled)" >&2; exit 1; }',
          'chown -R runner /opt/actions-runner',
          ...run,
        ].join('\n'),
      };
    }
    case 'jenkins':
      return {
        files: [{ path: '/etc/parmanu/jenkins-secret', content: cred.secret }],
        script: [
          ...head,
          r.install === 'download'
            ? 'command -v java >/dev/null || { (apt-get update -qq && apt-get install -y -qq default-jre-headless) || dnf install -y java-17-openjdk-headless; }'
            : 'command -v java >/dev/null || { echo "java is not installed in the image (runner.install: preinstalled)" >&2; exit 1; }',
          'id jenkins >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash jenkins',
          'mkdir -p /var/lib/jenkins-agent && chown jenkins /var/lib/jenkins-agent /etc/parmanu/jenkins-secret',
          `curl -fsSL --retry 5 -o /var/lib/jenkins-agent/agent.jar ${shq(cred.url.replace(/\/$/, '') + '/jnlpJars/agent.jar')}`,
          'cat > /etc/systemd/system/parmanu-agent.service <<UNIT',
          '[Unit]',
          `Description=Jenkins agent ${node}`,
          'After=network-online.target',
          '[Service]',
          'User=jenkins',
          'Restart=always',
          `ExecStart=/usr/bin/java -jar /var/lib/jenkins-agent/agent.jar -url ${cred.url} -secret @/etc/parmanu/jenkins-secret -name ${node} -webSocket -workDir /var/lib/jenkins-agent`,
          '[Install]',
          'WantedBy=multi-user.target',
          'UNIT',
          'systemctl daemon-reload && systemctl enable --now parmanu-agent.service',
        ].join('\n'),
      };
    case 'none':
      return { files: [], script: [...head, 'echo "replay node: no runner to start"'].join('\n') };
  }
}

/** cloud-init user-data for a Linux node. */
export function linuxUserData(pool: PoolConfig, node: string, cred: RunnerCredential): string {
  const { files, script } = linuxScript({ pool, node }, cred);
  const lines = ['#cloud-config', `# Parmanu node ${node} (pool ${pool.name}, ${cred.kind} runner)`, 'write_files:'];
  lines.push('  - path: /etc/parmanu/node.env', '    permissions: "0644"', '    content: |', `      PARMANU_POOL=${pool.name}`, `      PARMANU_NODE=${node}`);
  for (const f of files) lines.push(`  - path: ${f.path}`, '    permissions: "0600"', `    content: ${yq(f.content)}`);
  lines.push('  - path: /usr/local/sbin/parmanu-bootstrap', '    permissions: "0700"', '    content: |');
  for (const l of script.split('\n')) lines.push(l === '' ? '' : `      ${l}`);
  lines.push('runcmd:', '  - [/usr/local/sbin/parmanu-bootstrap]');
  return lines.join('\n') + '\n';
}

/** PowerShell bootstrap for a Windows node (without the EC2Launch wrapper). */
export function windowsScript(pool: PoolConfig, node: string, cred: RunnerCredential): string {
  const r = pool.runner;
  const head = ['$ErrorActionPreference = "Stop"', `# Parmanu node ${node} (pool ${pool.name}, ${cred.kind} runner)`, '[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12'];
  switch (cred.kind) {
    case 'gitlab':
      return [
        ...head,
        'New-Item -ItemType Directory -Force -Path C:\\GitLab-Runner | Out-Null',
        r.install === 'download'
          ? `Invoke-WebRequest -UseBasicParsing -Uri "https://gitlab-runner-downloads.s3.amazonaws.com/${gitlabVersionPath(r.version)}/binaries/gitlab-runner-windows-amd64.exe" -OutFile C:\\GitLab-Runner\\gitlab-runner.exe`
          : 'if (-not (Test-Path C:\\GitLab-Runner\\gitlab-runner.exe)) { throw "gitlab-runner is not installed in the image (runner.install: preinstalled)" }',
        'Set-Location C:\\GitLab-Runner',
        `$token = ${psq(cred.token)}`,
        `.\\gitlab-runner.exe register --non-interactive --url ${psq(cred.url)} --token $token --name ${psq(node)} --executor ${r.executor === 'docker' ? 'docker-windows --docker-image mcr.microsoft.com/windows/servercore:ltsc2022' : 'shell --shell pwsh'} --limit ${r.jobsPerNode}`,
        `(Get-Content .\\config.toml) -replace '^concurrent = .*', 'concurrent = ${r.jobsPerNode}' | Set-Content .\\config.toml`,
        '.\\gitlab-runner.exe install',
        '.\\gitlab-runner.exe start',
      ].join('\r\n');
    case 'github': {
      const jit = 'jitConfig' in cred;
      return [
        ...head,
        'New-Item -ItemType Directory -Force -Path C:\\actions-runner | Out-Null',
        'Set-Location C:\\actions-runner',
        r.install === 'download'
          ? [
              r.version === 'latest' ? '$v = (Invoke-RestMethod -UseBasicParsing https://api.github.com/repos/actions/runner/releases/latest).tag_name.TrimStart("v")' : `$v = ${psq(r.version.replace(/^v/, ''))}`,
              'Invoke-WebRequest -UseBasicParsing -Uri "https://github.com/actions/runner/releases/download/v$v/actions-runner-win-x64-$v.zip" -OutFile runner.zip',
              'Expand-Archive -Path runner.zip -DestinationPath . -Force; Remove-Item runner.zip',
            ].join('\r\n')
          : 'if (-not (Test-Path .\\run.cmd)) { throw "the actions runner is not in C:\\actions-runner (runner.install: preinstalled)" }',
        jit
          ? `$jit = ${psq(cred.jitConfig)}\r\nStart-Process -FilePath .\\run.cmd -ArgumentList "--jitconfig $jit" -WindowStyle Hidden`
          : `.\\config.cmd --unattended --replace --url ${psq(cred.url)} --token ${psq(cred.registrationToken)} --name ${psq(node)} --labels ${psq(runnerLabels(pool).join(','))} --runasservice${r.ephemeral ? ' --ephemeral' : ''}`,
      ].join('\r\n');
    }
    case 'jenkins':
      return [
        ...head,
        'if (-not (Get-Command java -ErrorAction SilentlyContinue)) { throw "java is not installed in the image" }',
        'New-Item -ItemType Directory -Force -Path C:\\jenkins-agent | Out-Null',
        `Invoke-WebRequest -UseBasicParsing -Uri ${psq(cred.url.replace(/\/$/, '') + '/jnlpJars/agent.jar')} -OutFile C:\\jenkins-agent\\agent.jar`,
        `Set-Content -Path C:\\jenkins-agent\\secret -Value ${psq(cred.secret)} -NoNewline`,
        'icacls C:\\jenkins-agent\\secret /inheritance:r /grant:r "SYSTEM:R" "Administrators:R" | Out-Null',
        `$action = New-ScheduledTaskAction -Execute java -Argument ${psq(`-jar C:\\jenkins-agent\\agent.jar -url ${cred.url} -secret @C:\\jenkins-agent\\secret -name ${node} -webSocket -workDir C:\\jenkins-agent`)}`,
        'Register-ScheduledTask -TaskName parmanu-agent -Action $action -Trigger (New-ScheduledTaskTrigger -AtStartup) -User SYSTEM -RunLevel Highest -Force | Out-Null',
        'Start-ScheduledTask -TaskName parmanu-agent',
      ].join('\r\n');
    case 'none':
      return [...head, 'Write-Output "replay node: no runner to start"'].join('\r\n');
  }
}

/** The user-data a node boots with, for its OS. */
export function userData(pool: PoolConfig, node: string, cred: RunnerCredential): string {
  return pool.machine.os === 'windows' ? windowsScript(pool, node, cred) : linuxUserData(pool, node, cred);
}
