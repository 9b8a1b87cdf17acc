/**
 * What the commands that act on a fleet share: loading the policy (problems printed as
 * FILE:LINE:COL), selecting pools with `--pool`, the state directory, and building the emitters
 * (secret references resolved, each emitter's preflight run). Every failure is a UsageError or a
 * printed problem list, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createEmitters, type Emitter } from '../emitters/index.js';
import { replayAnchor, traceAt, wallAt } from '../emitters/replay.js';
import { EmitterError } from '../emitters/types.js';
import { HistoryError, openHistory, type HistoryStore } from '../history/index.js';
import { loadPolicy } from '../policy/load.js';
import { formatProblem } from '../policy/types.js';
import { forTerminal } from '../policy/text.js';
import { secretProblems } from '../policy/secret-fields.js';
import { SecretResolutionError, type SecretEnv } from '../policy/secrets.js';
import type { Policy, PoolConfig } from '../policy/types.js';
import { UsageError, type Io } from './errors.js';

export interface FleetContext {
  policy: Policy;
  /** The pools `--pool` selected, or all. */
  pools: PoolConfig[];
  /** The `--pool` names, when given. */
  wanted: string[] | undefined;
  /** PARMANU_STATE_DIR (default .parmanu/), absolute. */
  stateDir: string;
}

/**
 * Loads `--policy` (default policies/); undefined after printing the problems (exit 2). With
 * `secrets`, the references of the selected pools' emitters must resolve too, each failure
 * printed at its FILE:LINE:COL like any other problem of the policy.
 */
export function loadFleet(command: string, io: Io, values: { policy?: string | undefined; pool?: string | undefined }, opts: { secrets?: boolean; warn?: (line: string) => void } = {}): FleetContext | undefined {
  const loaded = loadPolicy([resolve(io.cwd, values.policy ?? 'policies')], { cwd: io.cwd, env: io.env });
  const policy = loaded.policy;
  const wanted = values.pool?.split(',').map((s) => s.trim()).filter(Boolean);
  if (wanted?.length === 0) throw new UsageError(`${command}: --pool needs at least one pool name`);
  for (const w of wanted ?? []) if (policy && !policy.pools.some((p) => p.name === w)) throw new UsageError(`${command}: no pool named "${w}" (pools: ${policy.pools.map((p) => p.name).join(', ')})`);
  const pools = policy?.pools.filter((p) => !wanted || wanted.includes(p.name)) ?? [];
  const problems = [...loaded.problems];
  if (opts.secrets) problems.push(...secretProblems(loaded, secretEnv(io), new Set(pools.map((p) => p.emitter))));
  const errors = problems.filter((p) => p.severity === 'error').length;
  // A policy that loads: its warnings go to `warn` when given (a command's log), else to stderr.
  for (const p of problems) (opts.warn && !errors && policy ? opts.warn : io.err)(formatProblem(p));
  if (!policy || errors) {
    io.err(`${command}: ${errors} ${errors === 1 ? 'error' : 'errors'} in the policy; stopped before doing anything`);
    return undefined;
  }
  return { policy, pools, wanted, stateDir: stateDirOf(io) };
}

const secretEnvs = new WeakMap<Io, SecretEnv>();

/**
 * Secret references resolve against the command's environment, files relative to its directory.
 * One per command run: `loadFleet` checks the references and `openEmitters` resolves them, and a
 * `${file:}` is read once for both.
 */
export function secretEnv(io: Io): SecretEnv {
  let s = secretEnvs.get(io);
  if (!s) {
    const files = new Map<string, string>();
    s = {
      env: io.env,
      readFile: (p) => {
        const abs = resolve(io.cwd, p);
        const text = files.get(abs) ?? readFileSync(abs, 'utf8');
        files.set(abs, text);
        return text;
      },
    };
    secretEnvs.set(io, s);
  }
  return s;
}

/**
 * The history store for a command; a bad REDIS_URL or state directory is a UsageError. Its
 * warnings (history data skipped or set aside) go to `warn` (a command's log), else to stderr,
 * each once.
 */
export function openHistoryFor(command: string, io: Io, stateDir: string, clock?: (() => number) | FleetClock, warn?: (msg: string) => void): HistoryStore {
  try {
    // Leases stay on the wall clock when decide runs on a replay's virtual clock.
    return openHistory(io.env, stateDir, clock, warn ?? ((m) => io.err(forTerminal(`${command}: warning: ${m}`))), clock && 'rate' in clock ? clock.wall : undefined);
  } catch (err) {
    if (err instanceof HistoryError) throw new UsageError(`${command}: ${err.message}`);
    throw err;
  }
}

export function stateDirOf(io: Io): string {
  return resolve(io.cwd, io.env.PARMANU_STATE_DIR ?? '.parmanu');
}

/**
 * The emitters of the selected pools, with their secrets resolved from `io.env` (an emitter no
 * selected pool uses is not built, so its secrets need not be set); bad references and failed
 * preflights are UsageErrors.
 */
export function openEmitters(command: string, io: Io, fleet: Pick<FleetContext, 'policy' | 'pools'>, clock?: (() => number) | FleetClock): Map<string, Emitter> {
  let emitters: Map<string, Emitter>;
  try {
    // Replay emitters keep their place and their runners in the state directory.
    const replay = clock && 'rate' in clock ? clock.replay : { stateDir: stateDirOf(io), wall: clock ?? Date.now, read: readFrom(io) };
    emitters = createEmitters(fleet.policy, secretEnv(io), clock, new Set(fleet.pools.map((p) => p.emitter)), replay);
  } catch (err) {
    if (err instanceof SecretResolutionError) throw new UsageError(`${command}: ${err.message}`);
    throw err;
  }
  const problems = [...emitters.values()].flatMap((e) => (e.preflight?.() ?? []).map((m) => `${command}: emitter ${e.name}: ${m}`));
  if (problems.length) throw new UsageError(problems.join('\n'));
  return emitters;
}

/**
 * The clock a command acting on a fleet runs on (`clock()`), with what replay emitters need.
 * - Real CI platforms only: the wall clock, or `--now`.
 * - Replay emitters only: a virtual clock, trace time advancing `speed` times the wall clock from
 *   the first replay emitter's anchor (kept in the state directory: it continues between runs);
 *   decide's timers, the history's samples and the emitters' reports all run on it, leases stay on
 *   the wall clock (`wall`). `--now` fixes it at a trace time. Replay emitters must share a speed.
 * - Both: the wall clock; a replay then must run at speed 1 (a real platform's time cannot run faster).
 */
export interface FleetClock {
  (): number;
  /** How many times faster than the wall clock `clock()` runs. */
  rate: number;
  /** The wall clock (with `--now`: the wall instant that maps to it). */
  wall: () => number;
  replay: { stateDir: string; wall: () => number; domain: (wall: number) => number; read: (path: string) => string };
}

/** A replay's trace path is relative to the command's working directory. */
const readFrom = (io: Io) => (p: string) => readFileSync(resolve(io.cwd, p), 'utf8');

/** `warn`: where a replay state that had to be set aside is reported (a command's log), else stderr. */
export function fleetClock(command: string, io: Io, fleet: Pick<FleetContext, 'policy' | 'pools' | 'stateDir'>, fixed?: number, warn?: (msg: string) => void): FleetClock {
  const used = [...new Set(fleet.pools.map((p) => p.emitter))].map((n) => fleet.policy.emitters[n]).filter((e) => e !== undefined);
  const replays = used.flatMap((e) => (e.type === 'replay' ? [e] : []));
  const real = used.find((e) => e.type !== 'replay');
  const make = (clock: () => number, rate: number, wall: () => number, domain: (w: number) => number): FleetClock => Object.assign(() => clock(), { rate, wall, replay: { stateDir: fleet.stateDir, wall, domain, read: readFrom(io) } });
  const wallClock = fixed !== undefined ? () => fixed : Date.now;
  const first = replays[0];
  if (!first) return make(wallClock, 1, wallClock, (w) => w);
  if (real) {
    const fast = replays.find((e) => e.speed !== 1);
    if (fast) throw new UsageError(`${command}: replay emitter ${fast.name} runs at speed ${fast.speed}, but emitter ${real.name} is a real CI platform, whose time cannot run faster: give ${fast.name} speed 1, or replay it in a policy of its own`);
    return make(wallClock, 1, wallClock, (w) => w);
  }
  const other = replays.find((e) => e.speed !== first.speed);
  if (other) throw new UsageError(`${command}: replay emitters ${first.name} (speed ${first.speed}) and ${other.name} (speed ${other.speed}) must run at the same speed: they share one clock`);
  let anchored: ReturnType<typeof replayAnchor>;
  try {
    anchored = replayAnchor(first, fleet.stateDir, Date.now(), readFrom(io));
  } catch (err) {
    // The state directory is checked here first (the history store would say the same).
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'EEXIST' || code === 'EACCES') throw new UsageError(`${command}: cannot use ${fleet.stateDir} as the state directory (PARMANU_STATE_DIR): ${code === 'EACCES' ? 'permission denied' : 'a file is in the way'}`);
    if (err instanceof EmitterError) throw new UsageError(`${command}: emitter ${first.name}: ${err.message}`);
    throw err;
  }
  if (anchored.problem) (warn ?? ((m: string) => io.err(forTerminal(`${command}: warning: ${m}`))))(anchored.problem);
  const a = anchored.anchor;
  const domain = (w: number) => traceAt(a, w);
  if (fixed !== undefined) return make(() => fixed, first.speed, () => wallAt(a, fixed), domain);
  return make(() => traceAt(a, Date.now()), first.speed, Date.now, domain);
}
