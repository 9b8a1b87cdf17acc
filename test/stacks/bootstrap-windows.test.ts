/** PowerShell quoting (psq) and the Windows bootstrap's handling of the credential. */
import { describe, expect, it } from 'vitest';
import { psq, shq, windowsScript } from '../../stacks/bootstrap.js';
import type { CredentialSource, RunnerAccess } from '../../stacks/types.js';
import { testPool } from '../helpers.js';

const QUOTES = new Set(["'", '\u2018', '\u2019', '\u201a', '\u201b']);

/**
 * How PowerShell reads a single-quoted string literal at the start of `text`: any of the five
 * single-quote characters opens and closes it, two of them in a row stand for one, nothing else is
 * special. Returns the value and what follows the literal.
 */
function readPsLiteral(text: string): { value: string; rest: string } {
  if (!QUOTES.has(text[0] ?? '')) throw new Error('not a single-quoted string');
  let value = '';
  for (let i = 1; i < text.length; i++) {
    const c = text[i] as string;
    if (QUOTES.has(c)) {
      if (QUOTES.has(text[i + 1] ?? '')) {
        value += c;
        i++;
        continue;
      }
      return { value, rest: text.slice(i + 1) };
    }
    value += c;
  }
  throw new Error('unterminated string');
}

describe('psq', () => {
  const table: Array<[string, string]> = [
    ['plain', "'plain'"],
    ["it's", "'it''s'"],
    ["''", "''''''"],
    ['$env:SECRET', "'$env:SECRET'"],
    ['$(Remove-Item C:\\ -Recurse)', "'$(Remove-Item C:\\ -Recurse)'"],
    ['`n`t`"', "'`n`t`\"'"],
    ['line1\nline2\r\n', "'line1\nline2\r\n'"],
    ['a\u2019; Remove-Item x; \u2018', "'a\u2019\u2019; Remove-Item x; \u2018\u2018'"],
    ['\u201a\u201b', "'\u201a\u201a\u201b\u201b'"],
    ['"double" @{x=1}', "'\"double\" @{x=1}'"],
  ];
  it.each(table)('%j → %j, read back whole', (input, quoted) => {
    expect(psq(input)).toBe(quoted);
    expect(readPsLiteral(psq(input) + '; rest')).toEqual({ value: input, rest: '; rest' });
  });
});

describe('shq', () => {
  it.each(["it's", '$(id)', '`id`', "a'$(id)'b", 'x\ny', '\\'])('%j is one literal word', (input) => {
    expect(shq(input)).toBe(`'${input.replace(/'/g, "'\\''")}'`);
  });
});

describe('Windows bootstrap', () => {
  const pool = testPool({ machine: { type: 'm6i.large', image: 'ami-win', os: 'windows' }, runner: { version: '17.5.0' } }, 'win');
  const ssm: CredentialSource = { kind: 'aws-ssm', region: 'eu-central-1', parameter: '/parmanu/win/win-1' };
  const gcp: CredentialSource = { kind: 'gcp-secret', project: 'acme-ci', secret: 'parmanu-win-win-1' };
  const kinds: RunnerAccess[] = [{ kind: 'gitlab', url: 'https://gitlab.example.com' }, { kind: 'github', mode: 'jit' }, { kind: 'github', mode: 'registration', url: 'https://github.com/acme' }, { kind: 'jenkins', url: 'https://jenkins.example.com' }];

  it.each(kinds.map((a) => [a.kind + ('mode' in a ? ` ${a.mode}` : ''), a] as const))('%s: reads the credential from the store into a SYSTEM/Administrators-only file, never onto a command line', (_n, access) => {
    for (const source of [ssm, gcp]) {
      const s = windowsScript(pool, 'win-1', access, source);
      expect(s).toContain("icacls 'C:\\ProgramData\\Parmanu' /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F'");
      expect(s).toContain("[IO.File]::WriteAllText('C:\\ProgramData\\Parmanu\\credential', $secret)");
      const code = s.split('\r\n').filter((l) => !l.startsWith('#')).join('\n');
      expect(code).not.toMatch(/--token|--jitconfig|-secret \$/);
      const env = { gitlab: '$env:CI_SERVER_TOKEN = ', github: access.kind === 'github' && access.mode === 'jit' ? '$env:ACTIONS_RUNNER_INPUT_JITCONFIG = ' : '$env:ACTIONS_RUNNER_INPUT_TOKEN = ', jenkins: '-secret @C:\\ProgramData\\Parmanu\\credential', none: '' }[access.kind];
      expect(s).toContain(env);
    }
  });

  it('blocks instance metadata for the runner services Windows Firewall can match, on the clouds only', () => {
    const gl = windowsScript(pool, 'win-1', kinds[0] as RunnerAccess, ssm);
    expect(gl).toContain("sc.exe sidtype 'gitlab-runner' unrestricted");
    expect(gl).toContain("-Direction Outbound -Action Block -RemoteAddress 169.254.169.254 -Service 'gitlab-runner'");
    expect(windowsScript(pool, 'win-1', kinds[2] as RunnerAccess, gcp)).toContain('-RemoteAddress 169.254.169.254 -Service $svc');
    expect(windowsScript(pool, 'win-1', kinds[0] as RunnerAccess, { kind: 'file', path: 'C:\\parmanu\\cred' })).not.toContain('169.254.169.254');
  });

  it('verifies a pinned release', () => {
    const s = windowsScript(pool, 'win-1', kinds[0] as RunnerAccess, ssm, { release: { version: '17.6.0', sha256: { 'windows-amd64': 'ab'.repeat(32) } } });
    expect(s).toContain("'v17.6.0'");
    expect(s).toContain(`if ((Get-FileHash -Algorithm SHA256 -Path C:\\GitLab-Runner\\gitlab-runner.exe).Hash -ne '${'AB'.repeat(32)}')`);
  });

  it('quotes hostile values', () => {
    const evil = "https://x.example.com/$(Remove-Item C:\\)/'`n";
    const s = windowsScript(pool, "w'1", { kind: 'gitlab', url: evil }, ssm);
    expect(s).toContain(`--url ${psq(evil)} --name 'w''1'`);
  });
});
