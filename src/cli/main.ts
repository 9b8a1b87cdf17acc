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
  validate: { summary: 'load and check policies (default policies/); FILE:LINE:COL: path: message per problem', load: async () => (await import('./validate.js')).run },
  reconcile: { summary: 'one reconcile cycle, or a loop with --watch (--from-redis: a scaler replica of services mode)', load: async () => (await import('./reconcile.js')).run },
  probe: { summary: 'services mode: probe the CI platforms into Redis for the scalers (--watch: the prober)', load: async () => (await import('./probe.js')).run },
  plan: { summary: 'what a policy change would do, per pool', load: async () => (await import('./plan.js')).run },
  simulate: { summary: 'replay a job trace through decide and the baselines', load: async () => (await import('./simulate.js')).run },
  synth: { summary: "render each pool's Terraform stack without running terraform", load: async () => (await import('./synth.js')).run },
  report: { summary: 'HTML/JSON report per pool: jobs against nodes over time, waits, node-hours, scale events', load: async () => (await import('./report.js')).run },
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

/** The markers around the README's command table, which `npm run docs:commands` writes. */
export const COMMANDS_START = '<!-- commands:start (generated from each command\'s --help by `npm run docs:commands`) -->';
export const COMMANDS_END = '<!-- commands:end -->';

/** A command's --help text, as `parmanu <command> --help` prints it. */
export async function helpOf(command: string): Promise<string> {
  const entry = COMMANDS[command];
  if (!entry?.load) throw new Error(`no command ${command}`);
  const lines: string[] = [];
  const io: Io = { out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: process.cwd(), isTTY: false };
  const code = await (await entry.load())(['--help'], io);
  if (code !== 0) throw new Error(`${command} --help exited ${code}`);
  return lines.join('\n');
}

const cell = (s: string) => s.replace(/\|/g, '\\|');

/**
 * The README's command table, one row per command: `npm run <command> -- <its Usage line's
 * options>`, its summary, and the `Exit:` paragraph of its --help. A help without a
 * `Usage: parmanu <command>` first line or an `Exit:` paragraph is an error.
 */
export async function commandTable(): Promise<string> {
  const rows = ['| command | does | exit |', '| --- | --- | --- |'];
  for (const [name, entry] of Object.entries(COMMANDS)) {
    if (!entry.load) continue;
    const help = await helpOf(name);
    const usage = new RegExp(`^Usage: parmanu ${name}(?: (.*))?$`).exec(help.split('\n')[0] ?? '');
    if (!usage) throw new Error(`${name} --help does not start with "Usage: parmanu ${name}"`);
    // The `Exit:` line and the lines after it, up to a blank line or the end.
    const exit = /(?:^|\n)Exit: (.+(?:\n(?![ \t]*(?:\n|$)).*)*)/.exec(help);
    if (!exit?.[1]) throw new Error(`${name} --help has no "Exit:" paragraph`);
    const args = usage[1] ? ` -- ${usage[1]}` : '';
    rows.push(`| \`${cell(`npm run ${name}${args}`)}\` | ${cell(entry.summary)} | ${cell(exit[1].replace(/\s+/g, ' ').trim().replace(/\.$/, ''))} |`);
  }
  return rows.join('\n');
}

/** `readme` with the command table between its markers regenerated. */
export async function withCommandTable(readme: string): Promise<string> {
  const a = readme.indexOf(COMMANDS_START);
  const b = readme.indexOf(COMMANDS_END);
  if (a < 0 || b < a) throw new Error('README.md has no command table markers');
  return `${readme.slice(0, a + COMMANDS_START.length)}\n${await commandTable()}\n${readme.slice(b)}`;
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
