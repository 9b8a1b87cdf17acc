/**
 * The compiled CLI as a user runs it (`npm test` builds it first). Every run's stdout and stderr go
 * through the secret scan.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { expectNoSecrets } from './secret-scan.js';

export const root = resolve(import.meta.dirname, '..');
export const bin = join(root, 'bin', 'parmanu.js');
/** The development tools' entry (`npm run bench|soak`): not part of the shipped CLI. */
export const devBin = join(root, 'dist', 'bench', 'cli.js');

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

export interface CliOptions {
  cwd?: string;
  /** The child's whole environment is PATH plus these (no inherited secrets). */
  env?: Record<string, string>;
  /** Inherit the test process's environment instead. */
  inheritEnv?: boolean;
  /** Run the development tools' entry (dist/bench/cli.js, as `npm run bench|soak` does) instead of bin/parmanu.js. */
  dev?: boolean;
}

function childEnv(o: CliOptions): NodeJS.ProcessEnv {
  return o.inheritEnv ? { ...process.env, ...o.env } : { PATH: process.env.PATH ?? '', ...o.env };
}

/** Runs `parmanu ARGS` to completion; throws (failing the test) when its output holds a secret. */
export function cli(args: string[], o: CliOptions = {}): CliResult {
  const r = spawnSync(process.execPath, [o.dev ? devBin : bin, ...args], { cwd: o.cwd ?? root, env: childEnv(o), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const res = { code: r.status, out: r.stdout, err: r.stderr };
  scan(args, res, o.dev);
  return res;
}

/** The same, without blocking the event loop (needed when the test process serves an emulator). */
export function cliAsync(args: string[], o: CliOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [o.dev ? devBin : bin, ...args], { cwd: o.cwd ?? root, env: childEnv(o), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = o.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), o.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      const res = { code, out, err };
      try {
        scan(args, res, o.dev);
        resolvePromise(res);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

function scan(args: string[], r: CliResult, dev?: boolean): void {
  const name = `${dev ? 'dist/bench/cli.js' : 'parmanu'} ${args.join(' ')}`;
  expectNoSecrets(`stdout of ${name}`, r.out);
  expectNoSecrets(`stderr of ${name}`, r.err);
}
