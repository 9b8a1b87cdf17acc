import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** node:util parseArgs with our error style: unknown flags and missing values are usage errors. */
export function parse<O extends Options>(command: string, argv: string[], options: O, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (err) {
    const msg = (err as Error).message
      .replace(/\. To specify a positional argument.*$/s, '')
      .replace(/^Unknown option '(.*?)'.*$/s, "unknown option '$1'")
      .replace(/^Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument is ambiguous.*$/s, 'the value after $1 starts with "-": write $1=VALUE if that is the value');
    throw new UsageError(`${command}: ${msg} (see --help)`);
  }
}

export function durationArg(command: string, flag: string, value: string | undefined, parse: (s: string) => number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parse(value);
  if (ms === undefined) throw new UsageError(`${command}: --${flag} must be a duration such as 30s, 2m or 1h, not "${value}"`);
  return ms;
}
