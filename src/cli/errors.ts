/** Bad input from the user: printed as one line, exit 2, never a stack trace. */
/** Why a file or directory the user named cannot be written, in words. */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'its directory does not exist' : code === 'ENOTDIR' ? 'a file is in the way' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : code === 'ENOSPC' ? 'no space left on the device' : (code ?? (err as Error).message);
}

/** Runs `write`; a failure to write what the user asked for is bad input (exit 2), not an internal error. */
export function writeOrExplain<T>(command: string, what: string, path: string, write: () => T): T {
  try {
    return write();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw new UsageError(`${command}: cannot write ${what} ${path}: ${fsReason(err)}`);
    throw err;
  }
}

export class UsageError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  isTTY: boolean;
}

export const processIo = (): Io => ({
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
  env: process.env,
  cwd: process.cwd(),
  isTTY: Boolean(process.stdout.isTTY),
});

/**
 * How a command's failure reaches the user: a UsageError as its one line and exit code; anything
 * else as an internal error without a stack trace unless PARMANU_DEBUG is set (exit 1).
 */
export function reportFailure(err: unknown, io: Io, hint = 'set PARMANU_DEBUG=1 for the stack trace, and please report it'): number {
  if (err instanceof UsageError) {
    io.err(`parmanu: ${err.message}`);
    return err.exitCode;
  }
  const e = err as Error;
  io.err(`parmanu: internal error: ${e.message}`);
  if (io.env.PARMANU_DEBUG) io.err(e.stack ?? '');
  else io.err(`parmanu: ${hint}`);
  return 1;
}
