/**
 * The `parmanu` command line. Each command lives in its own module and is imported only when it
 * runs: `validate` must not pay for terraform, cdktf or HTTP clients.
 */
import { reportFailure, UsageError, processIo, type Io } from './errors.js';

export type CommandFn = (argv: string[], io: Io) => Promise<number>;

interface CommandEntry {
  summary: string;
  load?: () => Promise<CommandFn>;
  /** The issue that builds a command not yet built. */
  pending?: string;
}

const COMMANDS: Record<string, CommandEntry> = {
  validate: { summary: 'load and check policies; FILE:LINE:COL per problem', load: async () => (await import('./validate.js')).run },
  reconcile: { summary: 'one reconcile cycle (or a loop with --watch)', load: async () => (await import('./reconcile.js')).run },
  plan: { summary: 'what a policy change would do, per pool', load: async () => (await import('./plan.js')).run },
  simulate: { summary: 'replay a job trace through decide and the baselines', load: async () => (await import('./simulate.js')).run },
  synth: { summary: "render each pool's Terraform stack without running terraform", load: async () => (await import('./synth.js')).run },
  report: { summary: 'HTML/JSON report of load, nodes and scale events', load: async () => (await import('./report.js')).run },
  status: { summary: "each pool's nodes and their runner state", load: async () => (await import('./status.js')).run },
  destroy: { summary: 'drain and destroy pools on purpose (--pool NAME or --all)', load: async () => (await import('./destroy.js')).run },
};

/**
 * Development tools that live in bench/ and use the test emulators: a checkout runs them with
 * `npm run bench` / `npm run soak`. The shipped CLI neither contains nor imports them.
 */
const DEV_TOOLS = ['bench', 'soak'];

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}${c.pending ? ' (not built yet)' : ''}`);
  return [
    'parmanu — GitOps autoscaler for CI runner fleets',
    '',
    'Usage: parmanu <command> [options]     (npm run <command> -- [options])',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `parmanu <command> --help` for a command\'s options.',
    'Environment: REDIS_URL, PARMANU_STATE_DIR (default .parmanu/), PARMANU_TERRAFORM (default terraform).',
    `Development tools (${DEV_TOOLS.join(', ')}) run from a checkout of the repository: npm run <tool>.`,
  ].join('\n');
}

export async function main(argv: string[], io: Io = processIo()): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    io.out(usage());
    return command === undefined ? 2 : 0;
  }
  if (command === '--version') {
    io.out('parmanu 0.1.0');
    return 0;
  }
  const entry = COMMANDS[command];
  try {
    if (!entry && DEV_TOOLS.includes(command)) throw new UsageError(`"${command}" is a development tool, not part of the installed CLI: run \`npm run ${command}\` in a checkout of the repository`);
    if (!entry) throw new UsageError(`unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(', ')}`);
    if (!entry.load) throw new UsageError(`"${command}" is not built yet (${entry.pending}); see the issue tracker`, 1);
    const fn = await entry.load();
    return await fn(rest, io);
  } catch (err) {
    return reportFailure(err, io);
  }
}
