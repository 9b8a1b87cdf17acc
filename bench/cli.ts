/**
 * The development tools' entry point: `npm run bench` and `npm run soak` in a checkout run
 * `node dist/bench/cli.js bench|soak …`. They use the test emulators, so they are not part of the
 * shipped CLI (`bin/parmanu.js` → `dist/src`), which neither contains nor imports this folder.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { reportFailure, UsageError, processIo, type Io } from '../src/cli/errors.js';

type CommandFn = (argv: string[], io: Io) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandFn> }> = {
  bench: { summary: 'the benchmark suite (BENCHMARKS.md)', load: async () => (await import('./run.js')).run },
  soak: { summary: 'fault-injection soak against the emulators, terraform and Redis', load: async () => (await import('./soak.js')).run },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'parmanu development tools (a checkout of the repository only; not part of the installed CLI)',
    '',
    'Usage: npm run <tool> -- [options]     (node dist/bench/cli.js <tool> [options])',
    '',
    'Tools:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `npm run <tool> -- --help` for a tool's options.",
  ].join('\n');
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(usage());
    return command === undefined ? 2 : 0;
  }
  try {
    const entry = COMMANDS[command];
    if (!entry) throw new UsageError(`unknown development tool "${command}"; tools: ${Object.keys(COMMANDS).join(', ')}`);
    return await (await entry.load())(rest, io);
  } catch (err) {
    return reportFailure(err, io, 'set PARMANU_DEBUG=1 for the stack trace');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) process.exitCode = await main(process.argv.slice(2));
