/**
 * Windows bootstrap: a PowerShell script (EC2Launch `<powershell>` block on AWS, the
 * `windows-startup-script-ps1` metadata key on GCP). Every interpolated value is a single-quoted
 * PowerShell string (`psq`).
 *
 * The credential is read from the node's `CredentialSource` (AWS Tools for PowerShell's
 * `Get-SSMParameterValue`, on Windows AMIs by default; GCP Secret Manager's REST API with the
 * metadata server's token) into `C:\ProgramData\Parmanu\credential`, readable by SYSTEM and
 * Administrators only, and handed to the runner through its environment (GitLab `CI_SERVER_TOKEN`,
 * GitHub `ACTIONS_RUNNER_INPUT_TOKEN` / `ACTIONS_RUNNER_INPUT_JITCONFIG`) or as a file (Jenkins
 * `-secret @file`), never on a command line.
 *
 * Instance metadata on Windows — what Windows Firewall allows and what it does not:
 * - Outbound rules can match a service (`-Service`: its service SID, which the processes it starts
 *   inherit once the service's SID type is `unrestricted`): GitLab's and a registered GitHub
 *   runner's services get a rule blocking 169.254.169.254, so their jobs' processes are blocked too.
 * - They cannot match a local user for outbound traffic without IPsec authentication
 *   (`-LocalUser` takes effect only on authenticated rules), so the just-in-time GitHub runner and
 *   the Jenkins agent (started as SYSTEM by a scheduled task, like the credential fetch) are NOT
 *   kept away from metadata: their jobs can read the node's identity and so this node's secret.
 * - Windows containers (docker-windows) reach the network through WinNAT, which host firewall rules
 *   do not filter: containers are NOT kept away from metadata either.
 * On AWS the hop limit of 1 still keeps containers behind NAT from IMDSv2.
 *
 * Policy extensions (trusted policy content): `runner.hooks` become PowerShell scripts under
 * `C:\ProgramData\Parmanu\hooks` (SYSTEM and Administrators only), run before the runner is set up
 * and after it started; a hook that throws or exits non-zero stops the bootstrap. `runner.config`:
 * GitLab — a `--template-config` file below `[[runners]]`; GitHub — the runner's `.env` file
 * (`NAME=value` lines, read by the runner at start); Jenkins — JVM options before `-jar`.
 */
import type { PoolConfig } from '../../src/policy/types.js';
import type { CredentialSource, RunnerAccess } from '../types.js';
import { type BootstrapOptions, concreteVersion, psq, runnerLabels } from './common.js';

const CRED_DIR = 'C:\\ProgramData\\Parmanu';
const CRED = `${CRED_DIR}\\credential`;
const GITLAB_TEMPLATE = `${CRED_DIR}\\gitlab-runner-template.toml`;

/** Writes a `runner.hooks` script into the root-only directory and runs it; a failure stops the bootstrap. */
function hookLines(pool: PoolConfig, which: 'before' | 'after'): string[] {
  const hook = pool.runner.hooks?.[which];
  if (!hook) return [];
  const file = `${CRED_DIR}\\hooks\\${which}.ps1`;
  const what = `the ${which} hook (runner.hooks.${which}: ${hook.path})`;
  return [
    `Write-Output ${psq(`parmanu: running ${what}`)}`,
    `New-Item -ItemType Directory -Force -Path ${psq(`${CRED_DIR}\\hooks`)} | Out-Null`,
    `[IO.File]::WriteAllText(${psq(file)}, ${psq(hook.script)})`,
    '$global:LASTEXITCODE = 0',
    `try { & ${psq(file)} } catch { throw (${psq(`${what} failed: `)} + $_) }`,
    `if ($LASTEXITCODE -ne 0) { throw (${psq(`${what} failed with exit code `)} + $LASTEXITCODE) }`,
  ];
}

function fetchLines(source: CredentialSource): string[] {
  const retry = (what: string, body: string[]): string[] => [
    '$secret = $null',
    'for ($attempt = 1; $attempt -le 30; $attempt++) {',
    '  try {',
    ...body.map((l) => `    ${l}`),
    '    break',
    '  } catch {',
    `    if ($attempt -eq 30) { throw ("could not read the runner credential from ${what}: " + $_) }`,
    `    Write-Output ("parmanu: the runner credential is not readable from ${what} yet (attempt $attempt/30); retrying in 10s")`,
    '    Start-Sleep -Seconds 10',
    '  }',
    '}',
  ];
  switch (source.kind) {
    case 'aws-ssm':
      return retry('SSM Parameter Store', [`$secret = Get-SSMParameterValue -Region ${psq(source.region)} -Name ${psq(source.parameter)} -WithDecryption $true | ForEach-Object { $_.Parameters[0].Value }`, 'if (-not $secret) { throw "no value" }']);
    case 'gcp-secret':
      return retry('Secret Manager', [
        "$token = (Invoke-RestMethod -UseBasicParsing -Headers @{ 'Metadata-Flavor' = 'Google' } -Uri 'http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token').access_token",
        `$uri = 'https://secretmanager.googleapis.com/v1/projects/' + ${psq(source.project)} + '/secrets/' + ${psq(source.secret)} + '/versions/latest:access'`,
        "$data = (Invoke-RestMethod -UseBasicParsing -Headers @{ Authorization = ('Bearer ' + $token) } -Uri $uri).payload.data",
        '$secret = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String($data))',
      ]);
    case 'file':
      return [`$secret = [IO.File]::ReadAllText(${psq(source.path)})`];
    case 'none':
      return ['throw "this node has no credential source"'];
  }
}

/** Windows Firewall: block metadata for a service's processes (see the module comment); `service` is a PowerShell expression. */
function blockMetadataFor(service: string): string[] {
  return [
    `sc.exe sidtype ${service} unrestricted | Out-Null`,
    `if ($LASTEXITCODE -ne 0) { throw ('sc.exe sidtype failed for ' + ${service}) }`,
    `New-NetFirewallRule -DisplayName ('Parmanu: no instance metadata for ' + ${service}) -Direction Outbound -Action Block -RemoteAddress 169.254.169.254 -Service ${service} | Out-Null`,
  ];
}

/** PowerShell bootstrap for a Windows node (without the EC2Launch wrapper). */
export function windowsScript(pool: PoolConfig, node: string, access: RunnerAccess, source: CredentialSource, opts: BootstrapOptions = {}): string {
  const r = pool.runner;
  const version = concreteVersion(pool, opts);
  const cloud = source.kind === 'aws-ssm' || source.kind === 'gcp-secret' || (source.kind === 'file' && source.vm === true);
  const head = [
    '$ErrorActionPreference = "Stop"',
    `# Parmanu node (${access.kind} runner)`,
    '[Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12',
    'function Assert-Exit([string]$what) { if ($LASTEXITCODE -ne 0) { throw ($what + " failed with exit code " + $LASTEXITCODE) } }',
  ];
  if (access.kind === 'none') return [...head, 'Write-Output "replay node: no runner to start"'].join('\r\n');
  if (source.kind === 'none') throw new Error(`node ${node}: a ${access.kind} runner needs a credential source`);
  const checksum = (file: string, asset: string): string[] => {
    const sum = opts.release?.sha256[asset];
    if (!opts.release) return [];
    if (!sum) return [`throw ${psq(`no published checksum for ${asset} in runner release ${opts.release.version}`)}`];
    return [`if ((Get-FileHash -Algorithm SHA256 -Path ${file}).Hash -ne ${psq(sum.toUpperCase())}) { throw ${psq(`checksum mismatch for ${asset}: refusing to run it`)} }`];
  };
  const fetch = [
    `New-Item -ItemType Directory -Force -Path ${psq(CRED_DIR)} | Out-Null`,
    `icacls ${psq(CRED_DIR)} /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null`,
    "Assert-Exit 'icacls'",
    ...fetchLines(source),
    `[IO.File]::WriteAllText(${psq(CRED)}, $secret)`,
    'Remove-Variable secret',
  ];
  // The before hook runs once the root-only directory exists, before the runner is set up.
  fetch.splice(3, 0, ...hookLines(pool, 'before'));
  const after = hookLines(pool, 'after');
  const readCred = `[IO.File]::ReadAllText(${psq(CRED)})`;
  const template = typeof r.config === 'string' ? [`[IO.File]::WriteAllText(${psq(GITLAB_TEMPLATE)}, ${psq(`[[runners]]\n${r.config}\n`)})`] : [];
  const env = r.config && typeof r.config === 'object' && !Array.isArray(r.config) && Object.keys(r.config).length ? Object.entries(r.config).map(([k, v]) => `${k}=${v}\n`).join('') : undefined;
  const jvm = Array.isArray(r.config) ? r.config.map((o) => `${o} `).join('') : '';
  switch (access.kind) {
    case 'gitlab':
      return [
        ...head,
        ...fetch,
        'New-Item -ItemType Directory -Force -Path C:\\GitLab-Runner | Out-Null',
        ...(r.install === 'download'
          ? [
              ...(version ? [] : ['# TODO(reconciler): `latest` is resolved by the reconciler into a concrete version and its checksum (BootstrapOptions.release).']),
              `Invoke-WebRequest -UseBasicParsing -Uri ('https://gitlab-runner-downloads.s3.amazonaws.com/' + ${psq(version ? `v${version}` : 'latest')} + '/binaries/gitlab-runner-windows-amd64.exe') -OutFile C:\\GitLab-Runner\\gitlab-runner.exe`,
              ...checksum('C:\\GitLab-Runner\\gitlab-runner.exe', 'windows-amd64'),
            ]
          : ['if (-not (Test-Path C:\\GitLab-Runner\\gitlab-runner.exe)) { throw "gitlab-runner is not installed in the image (runner.install: preinstalled)" }']),
        'Set-Location C:\\GitLab-Runner',
        "icacls C:\\GitLab-Runner /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' | Out-Null",
        "Assert-Exit 'icacls'",
        '# The token in the environment (CI_SERVER_TOKEN = --token), never on the command line; it ends up in config.toml only.',
        `$env:CI_SERVER_TOKEN = ${readCred}`,
        ...template,
        `.\\gitlab-runner.exe register --non-interactive${template.length ? ` --template-config ${psq(GITLAB_TEMPLATE)}` : ''} --url ${psq(access.url)} --name ${psq(node)} --executor ${r.executor === 'docker' ? 'docker-windows --docker-image mcr.microsoft.com/windows/servercore:ltsc2022' : 'shell --shell pwsh'} --limit ${r.jobsPerNode}`,
        "Assert-Exit 'gitlab-runner register'",
        'Remove-Item Env:\\CI_SERVER_TOKEN',
        `(Get-Content .\\config.toml) -replace '^concurrent = .*', 'concurrent = ${r.jobsPerNode}' | Set-Content .\\config.toml`,
        '.\\gitlab-runner.exe install',
        "Assert-Exit 'gitlab-runner install'",
        ...(cloud ? blockMetadataFor(psq('gitlab-runner')) : []),
        '.\\gitlab-runner.exe start',
        "Assert-Exit 'gitlab-runner start'",
        ...after,
      ].join('\r\n');
    case 'github':
      return [
        ...head,
        ...fetch,
        'New-Item -ItemType Directory -Force -Path C:\\actions-runner | Out-Null',
        'Set-Location C:\\actions-runner',
        ...(r.install === 'download'
          ? [
              ...(version
                ? [`$v = ${psq(version)}`]
                : [
                    '# TODO(reconciler): `latest` is resolved by the reconciler into a concrete version and its checksum (BootstrapOptions.release);',
                    "# until then github.com's web redirect (not the rate-limited REST API) names the latest release.",
                    "$v = ((Invoke-WebRequest -UseBasicParsing -Method Head -Uri 'https://github.com/actions/runner/releases/latest').BaseResponse.ResponseUri.AbsoluteUri -split '/v')[-1]",
                  ]),
              "Invoke-WebRequest -UseBasicParsing -Uri ('https://github.com/actions/runner/releases/download/v' + $v + '/actions-runner-win-x64-' + $v + '.zip') -OutFile runner.zip",
              ...checksum('runner.zip', 'win-x64'),
              'Expand-Archive -Path runner.zip -DestinationPath . -Force; Remove-Item runner.zip',
            ]
          : ['if (-not (Test-Path .\\run.cmd)) { throw "the actions runner is not in C:\\actions-runner (runner.install: preinstalled)" }']),
        ...(env ? ['# runner.config: the runner reads .env (NAME=value lines) from its directory at start.', `[IO.File]::WriteAllText('C:\\actions-runner\\.env', ${psq(env)})`] : []),
        ...(access.mode === 'jit'
          ? [
              '# The JIT config in the environment (ACTIONS_RUNNER_INPUT_JITCONFIG = --jitconfig), never on the command line.',
              `$env:ACTIONS_RUNNER_INPUT_JITCONFIG = ${readCred}`,
              'Start-Process -FilePath .\\run.cmd -WindowStyle Hidden',
              'Remove-Item Env:\\ACTIONS_RUNNER_INPUT_JITCONFIG',
            ]
          : [
              '# The registration token in the environment (ACTIONS_RUNNER_INPUT_TOKEN = --token), never on the command line.',
              `$env:ACTIONS_RUNNER_INPUT_TOKEN = ${readCred}`,
              `.\\config.cmd --unattended --replace --url ${psq(access.url)} --name ${psq(node)} --labels ${psq(runnerLabels(pool).join(','))} --runasservice${r.ephemeral ? ' --ephemeral' : ''}`,
              "Assert-Exit 'config.cmd'",
              'Remove-Item Env:\\ACTIONS_RUNNER_INPUT_TOKEN',
              ...(cloud
                ? [
                    "$svc = (Get-Service -Name 'actions.runner.*' | Select-Object -First 1).Name",
                    ...blockMetadataFor('$svc'),
                    'Restart-Service -Name $svc',
                  ]
                : []),
            ]),
        ...after,
      ].join('\r\n');
    case 'jenkins':
      return [
        ...head,
        ...fetch,
        'if (-not (Get-Command java -ErrorAction SilentlyContinue)) { throw "java is not installed in the image" }',
        'New-Item -ItemType Directory -Force -Path C:\\jenkins-agent | Out-Null',
        `Invoke-WebRequest -UseBasicParsing -Uri ${psq(access.url.replace(/\/$/, '') + '/jnlpJars/agent.jar')} -OutFile C:\\jenkins-agent\\agent.jar`,
        '# The secret is read by agent.jar from the root-only file (-secret @file); the task runs as SYSTEM.',
        `$action = New-ScheduledTaskAction -Execute java -Argument (${psq(jvm)} + '-jar C:\\jenkins-agent\\agent.jar -url "' + ${psq(access.url)} + '" -secret @${CRED} -name "' + ${psq(node)} + '" -webSocket -workDir C:\\jenkins-agent')`,
        'Register-ScheduledTask -TaskName parmanu-agent -Action $action -Trigger (New-ScheduledTaskTrigger -AtStartup) -User SYSTEM -RunLevel Highest -Force | Out-Null',
        'Start-ScheduledTask -TaskName parmanu-agent',
        ...after,
      ].join('\r\n');
  }
}
