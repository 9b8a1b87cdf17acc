/**
 * Logging for long-running commands: structured JSON lines (pino) on stderr when stderr is not a
 * terminal or with --json; on a terminal, short progress lines for the slow steps. --verbose shows
 * debug events, --quiet only warnings and errors.
 */
import { destination, pino, type Logger } from 'pino';
import type { CycleEvent } from '../reconcile/cycle.js';
import { forTerminal } from '../policy/text.js';
import type { Io } from './errors.js';

const RANK = { debug: 10, info: 20, warn: 30, error: 40 } as const;

export function cycleLogger(io: Io, opts: { json: boolean; verbose: boolean; quiet: boolean; stderrIsTTY: boolean }): (e: CycleEvent) => void {
  const min = opts.verbose ? 'debug' : opts.quiet ? 'warn' : 'info';
  if (opts.json || !opts.stderrIsTTY) {
    const logger: Logger = pino({ level: min, base: { name: 'parmanu' }, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, destination({ fd: 2, sync: true }));
    return ({ level, msg, ...fields }) => logger[level](fields, msg);
  }
  return (e) => {
    if (RANK[e.level] < RANK[min]) return;
    const who = e.pool ?? e.emitter ?? 'parmanu';
    const took = e.durationMs !== undefined ? ` (${(e.durationMs / 1000).toFixed(1)}s)` : '';
    // Messages carry runner names, reasons and probe errors from the CI platforms: printed without control characters.
    io.err(forTerminal(`${e.level === 'error' ? '✖ ' : e.level === 'warn' ? '! ' : '  '}${who}: ${e.msg}${took}`));
  };
}
