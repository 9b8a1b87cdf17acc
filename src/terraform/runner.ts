/**
 * Running terraform (or OpenTofu: PARMANU_TERRAFORM=tofu) through execa: version check, init once
 * per working directory, plan to a file with -detailed-exitcode and a lock timeout, show -json,
 * apply of the saved plan. Failures are TerraformError with terraform's errors, whole, in one line
 * (terraformProblem: without the CLI configuration's noise).
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PlanJsonSchema, type PlanJson } from './plan.js';
import { parseStateNodes, type StateNode } from './state.js';
import { moduleCallsHash, referenceEnv } from './modules.js';

export class TerraformError extends Error {
  /** The failed command's whole output, for reading its diagnostics (capacity.ts); not enumerable, so never serialized with the error. */
  declare readonly output?: string;
  constructor(message: string, output?: string) {
    super(message);
    this.name = 'TerraformError';
    if (output !== undefined) Object.defineProperty(this, 'output', { value: output, enumerable: false });
  }
}

/** The most lines of terraform's errors a message carries; the rest are counted, never cut mid-line. */
export const MAX_ERROR_LINES = 40;

/** A diagnostic of terraform's human output (`Error: …` / `Warning: …` and the lines under it). */
interface Diagnostic {
  severity: 'Error' | 'Warning';
  summary: string;
  /** The summary's lines in terraform's output (a long one is wrapped). */
  summaryLines: number;
  /** The lines after the summary, from the blank line that ends it. */
  lines: string[];
}

/**
 * Terraform's output reduced to its errors, as the rest of a one-line message (`: …`, or ` with N
 * errors: … | …`). Dropped: the CLI configuration's problems (a missing ~/.terraformrc, a plugin
 * cache directory that cannot be opened: "There are some problems with the CLI configuration" and
 * its boxed diagnostics), every warning (provider development overrides, -target), progress lines
 * and source excerpts. Each error is kept whole: its summary (the lines after `Error:` up to the
 * first blank line: terraform wraps a long one), where (file and line; the resource, from the
 * `with ADDRESS,` line right after that blank line), the values terraform shows under the excerpt,
 * and its detail, wrapped lines joined. Past
 * MAX_ERROR_LINES lines the message ends with "… (N more lines)". Output with no error diagnostic
 * (a crash) gives its last lines.
 */
export function terraformProblem(output: string, maxLines = MAX_ERROR_LINES): string {
  const raw = output.replace(/\r/g, '').split('\n');
  const lines: string[] = [];
  const blank = (k: number) => k < raw.length && (raw[k] as string).trim() === '';
  for (let i = 0; i < raw.length; i++) {
    const l = raw[i] as string;
    if (l.trim() === 'There are some problems with the CLI configuration:') {
      // The header, its boxed diagnostics (errors included: they are about the CLI configuration,
      // printed uncolored before the command's own output, which -no-color leaves unboxed and the
      // other commands color) and the trailer.
      for (;;) {
        let k = i + 1;
        while (blank(k)) k++;
        if (raw[k] !== '╷') break;
        while (k < raw.length && !(raw[k] as string).startsWith('╵')) k++;
        i = k;
      }
      while (blank(i + 1)) i++;
      if ((raw[i + 1] ?? '').startsWith('As a result of the above problems, Terraform may not behave as intended')) i++;
      continue;
    }
    // Commands without -no-color (state pull) color and box their diagnostics: the box is a blank line around them.
    // eslint-disable-next-line no-control-regex
    const plain = l.replace(/\u001b\[[0-9;]*m/g, '');
    if (/^[╷╵]/.test(plain)) lines.push('');
    else lines.push(plain.replace(/^│ ?/, ''));
  }
  const diags: Diagnostic[] = [];
  const rest: string[] = [];
  // Terraform wraps a long summary (at about 76 columns) onto the next lines: a line after a long
  // summary line continues it, up to the first blank line and at most 3 of them. After a short one
  // (`Error: The plugin crashed` and a crash's output), what follows is the detail.
  let inSummary = false;
  let lastLength = 0;
  for (const l of lines) {
    const m = /^(Error|Warning): (.*)$/.exec(l);
    const d = diags[diags.length - 1];
    if (m) {
      diags.push({ severity: m[1] as 'Error' | 'Warning', summary: (m[2] as string).trim(), summaryLines: 1, lines: [] });
      inSummary = true;
      lastLength = l.length;
    } else if (d && inSummary && l.trim() !== '' && lastLength >= 60 && d.summaryLines < 4) {
      d.summary = `${d.summary} ${l.trim()}`.trim();
      d.summaryLines++;
      lastLength = l.length;
    } else if (d) {
      inSummary = false;
      d.lines.push(l);
    } else rest.push(l);
  }
  const errors = diags.filter((d) => d.severity === 'Error');
  if (errors.length === 0) {
    // Nothing but warnings and text (a crash, a plain message): the last lines that are not warnings, else the last lines.
    const plain = rest.map((l) => l.trim()).filter(Boolean);
    const tail = plain.length ? plain : lines.map((l) => l.trim()).filter(Boolean);
    return tail.length ? `: ${tail.slice(-6).join(' ')}` : ' (no output)';
  }
  // Each error as its head (summary and where) and its paragraphs, counted in terraform's lines;
  // past the budget whole paragraphs are left out, never part of one.
  let budget = maxLines;
  let dropped = 0;
  const fits = (n: number) => {
    if (dropped === 0 && n <= budget) {
      budget -= n;
      return true;
    }
    dropped += n;
    return false;
  };
  const parts: string[] = [];
  for (const d of errors) {
    const where: string[] = [];
    const paragraphs: string[][] = [[]];
    // `with ADDRESS,` names the resource only as the first line after the summary's blank line.
    let first = true;
    for (const l of d.lines) {
      const t = l.trim();
      let m: RegExpExecArray | null;
      const atStart = first && t !== '';
      if (t !== '') first = false;
      if (t === '') {
        if ((paragraphs[paragraphs.length - 1] as string[]).length) paragraphs.push([]);
      } else if (atStart && (m = /^with (.+),$/.exec(t))) where.push(m[1] as string);
      else if ((m = /^on (.+?) line (\d+)(?:, in .*)?:$/.exec(t))) where.push(`${m[1]} line ${m[2]}`);
      else if (/^\d+:/.test(t) || /^├─*$/.test(t)) continue; // the source excerpt
      else if ((m = /^│ (.*)$/.exec(t))) where.push(`where ${m[1] as string}`); // a value under the excerpt
      else (paragraphs[paragraphs.length - 1] as string[]).push(t);
    }
    if (!fits(d.summaryLines)) {
      for (const p of paragraphs) fits(p.length);
      continue;
    }
    const body = paragraphs.filter((p) => p.length && fits(p.length)).map((p) => p.join(' '));
    // A summary that is a whole sentence (a wrapped one often is) is followed by its detail, not by a colon.
    const head = `${d.summary}${where.length ? ` (${where.join(', ')})` : ''}`;
    parts.push(`${head}${body.length ? `${/[.!?]$/.test(head) ? ' ' : ': '}${body.join(' ')}` : ''}`);
  }
  return `${errors.length > 1 ? ` with ${errors.length} errors` : ''}: ${parts.join(' | ')}${dropped ? ` … (${dropped} more line${dropped === 1 ? '' : 's'})` : ''}`;
}

/** Terraform ≥ 1.11 (or OpenTofu ≥ 1.11): the S3 backend's `use_lockfile` (1.10) and write-only arguments (1.11). */
export const MIN_VERSION = [1, 11, 0] as const;
const NEED = `Terraform ≥ ${MIN_VERSION.join('.')} or OpenTofu ≥ ${MIN_VERSION.join('.')}`;


export interface TerraformOptions {
  bin?: string;
  /** Extra environment (e.g. GOOGLE_APPLICATION_CREDENTIALS); never logged. */
  env?: Record<string, string>;
  lockTimeout?: string;
}

export class Terraform {
  readonly bin: string;
  /** Terraform commands run, for the no-op fast path's accounting. */
  runs = 0;
  private checked: string | undefined;

  constructor(private readonly opts: TerraformOptions = {}) {
    this.bin = opts.bin ?? 'terraform';
  }

  /** `env`: this call's extra environment (a pool's cloud credentials file, the ephemeral credentials variable); never logged. */
  private run(args: string[], cwd: string, env: Record<string, string> = {}): ResultPromise<{ cwd: string; reject: false; env: Record<string, string>; all: true; stdin: 'ignore' }> {
    this.runs++;
    // A module platform's secret inputs, resolved for the commands that evaluate the configuration (never written anywhere).
    const refs = args[0] === 'plan' || args[0] === 'apply' ? referenceEnv(cwd, { env: process.env, readFile: (p) => readFileSync(p, 'utf8') }) : {};
    return execa(this.bin, args, { cwd, reject: false, all: true, stdin: 'ignore', env: { TF_IN_AUTOMATION: '1', TF_INPUT: '0', CHECKPOINT_DISABLE: '1', ...(this.opts.env ?? {}), ...env, ...refs } });
  }

  /** A module platform's new module calls are installed (`terraform get`) before terraform reads the configuration. */
  private async installModules(dir: string, env?: Record<string, string>): Promise<void> {
    const hash = moduleCallsHash(dir);
    const marker = join(dir, '.parmanu-modules');
    if (hash === undefined || (existsSync(marker) && readFileSync(marker, 'utf8') === hash)) return;
    const r = await this.run(['get', '-no-color'], dir, env);
    if (r.exitCode !== 0) throw this.fail('get', String(r.all));
    writeFileSync(marker, hash);
  }

  private fail(what: string, output: string): TerraformError {
    return new TerraformError(`${this.bin} ${what} failed${terraformProblem(output)}`, output);
  }

  /** Checks that the binary exists and is recent enough; returns its version. */
  async version(): Promise<string> {
    if (this.checked) return this.checked;
    let out;
    try {
      out = await execa(this.bin, ['version', '-json'], { reject: false, stdin: 'ignore' });
    } catch {
      throw new TerraformError(`${this.bin} not found on PATH: install ${NEED}, or set PARMANU_TERRAFORM`);
    }
    if (out.failed && (out as { code?: string }).code === 'ENOENT') throw new TerraformError(`${this.bin} not found on PATH: install ${NEED}, or set PARMANU_TERRAFORM`);
    const v = z.object({ terraform_version: z.string() }).loose().safeParse(JSON.parse(String(out.stdout || '{}')));
    if (!v.success) throw new TerraformError(`${this.bin} version -json gave no version: is PARMANU_TERRAFORM a terraform or tofu binary?`);
    const parts = v.data.terraform_version.split('.').map(Number);
    for (let i = 0; i < 3; i++) {
      const a = parts[i] ?? 0;
      const b = MIN_VERSION[i] ?? 0;
      if (a > b) break;
      if (a < b) throw new TerraformError(`${this.bin} ${v.data.terraform_version} is too old: Parmanu needs ${NEED} (the S3 backend's use_lockfile and write-only arguments)`);
    }
    this.checked = v.data.terraform_version;
    return this.checked;
  }

  /** init, once per working directory and backend configuration. */
  async init(dir: string, backendHash: string, env?: Record<string, string>): Promise<void> {
    const marker = join(dir, '.parmanu-init');
    if (existsSync(join(dir, '.terraform')) && existsSync(marker) && readFileSync(marker, 'utf8') === backendHash) return;
    const r = await this.run(['init', '-input=false', '-no-color', '-reconfigure'], dir, env);
    if (r.exitCode !== 0) throw this.fail('init', String(r.all));
    writeFileSync(marker, backendHash);
  }

  /** plan to `planFile`; true when there are changes. */
  async plan(dir: string, planFile: string, env?: Record<string, string>): Promise<boolean> {
    await this.installModules(dir, env);
    const r = await this.run(['plan', '-input=false', '-no-color', '-detailed-exitcode', `-lock-timeout=${this.opts.lockTimeout ?? '60s'}`, `-out=${planFile}`], dir, env);
    if (r.exitCode === 0) return false;
    if (r.exitCode === 2) return true;
    throw this.fail('plan', String(r.all));
  }

  async show(dir: string, planFile: string): Promise<PlanJson> {
    const r = await this.run(['show', '-json', '-no-color', planFile], dir);
    if (r.exitCode !== 0) throw this.fail('show', String(r.all));
    let raw: unknown;
    try {
      raw = JSON.parse(String(r.stdout));
    } catch {
      throw new TerraformError(`${this.bin} show -json did not print JSON`);
    }
    const parsed = PlanJsonSchema.safeParse(raw);
    if (!parsed.success) throw new TerraformError(`${this.bin} show -json: unexpected plan format: ${parsed.error.issues[0]?.path.join('.')} ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  /**
   * The working directory's current state as the backend holds it (`terraform state pull`, for
   * every backend, local included): its nodes with the spec and creation time recorded on them.
   * An empty state (nothing applied yet) has no nodes.
   */
  async pullState(dir: string, env?: Record<string, string>): Promise<StateNode[]> {
    await this.installModules(dir, env);
    const r = await this.run(['state', 'pull'], dir, env);
    if (r.exitCode !== 0) throw this.fail('state pull', String(r.all));
    const text = String(r.stdout).trim();
    if (!text) return [];
    try {
      return parseStateNodes(text, `${this.bin} state pull`);
    } catch (err) {
      throw new TerraformError((err as Error).message);
    }
  }

  /** apply of a saved plan; `lockTimeout` overrides how long it waits for the state lock. */
  async apply(dir: string, planFile: string, opts: { lockTimeout?: string; env?: Record<string, string> } = {}): Promise<void> {
    const r = await this.run(['apply', '-input=false', '-no-color', `-lock-timeout=${opts.lockTimeout ?? this.opts.lockTimeout ?? '60s'}`, planFile], dir, opts.env);
    if (r.exitCode !== 0) throw this.fail('apply', String(r.all));
  }

  /** `apply -refresh-only`: writes what the cloud holds now into the state (VMs gone from the cloud leave it), changing nothing else. */
  async refreshOnly(dir: string, env?: Record<string, string>): Promise<void> {
    const r = await this.run(['apply', '-refresh-only', '-auto-approve', '-input=false', '-no-color', `-lock-timeout=${this.opts.lockTimeout ?? '60s'}`], dir, env);
    if (r.exitCode !== 0) throw this.fail('apply -refresh-only', String(r.all));
  }
}
