/** The benchmark harness: cases add figures; the runner prints a table or one JSON object. */
import { spawnSync } from 'node:child_process';

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** What the figure is compared against, measured in the same run. */
  baseline?: { name: string; value: number };
  /** value ÷ baseline.value */
  ratio?: number;
  note?: string;
}

export interface BenchCase {
  name: string;
  /** Run only when named in --only (a long case: minutes of services under load). */
  optIn?: boolean;
  run: (ctx: BenchContext) => Promise<Figure[]>;
}

export interface BenchContext {
  root: string;
  /** Where the recorded job traces are (PARMANU_TRACES_DIR, default ../shared/traces beside the checkout); may not exist. */
  tracesDir: string;
  log: (line: string) => void;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Median wall times in ms of several commands, run in turn (A B C A B C …) after one warm-up
 * round, so that the machine's drift hits a figure and its baseline alike.
 */
export function timeCommands(cmds: Array<[string, string[]]>, n: number, cwd: string): number[] {
  const times: number[][] = cmds.map(() => []);
  for (let i = 0; i <= n; i++) {
    cmds.forEach(([cmd, args], k) => {
      const t0 = process.hrtime.bigint();
      const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
      const dt = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.status !== 0 && r.status !== 2) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString().slice(0, 200)}`);
      if (i > 0) times[k]?.push(dt);
    });
  }
  return times.map(median);
}

export function timeFn(fn: () => void, n: number): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

export const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;
