/**
 * What the commands that act on a fleet share: loading the policy (problems printed as
 * FILE:LINE:COL), selecting pools with `--pool`, the state directory, and building the emitters
 * (secret references resolved, each emitter's preflight run). Every failure is a UsageError or a
 * printed problem list, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createEmitters, type Emitter } from '../emitters/index.js';
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
export function loadFleet(command: string, io: Io, values: { policy?: string | undefined; pool?: string | undefined }, opts: { secrets?: boolean } = {}): FleetContext | undefined {
  const loaded = loadPolicy([resolve(io.cwd, values.policy ?? 'policies')], { cwd: io.cwd, env: io.env });
  const policy = loaded.policy;
  const wanted = values.pool?.split(',').map((s) => s.trim()).filter(Boolean);
  if (wanted?.length === 0) throw new UsageError(`${command}: --pool needs at least one pool name`);
  for (const w of wanted ?? []) if (policy && !policy.pools.some((p) => p.name === w)) throw new UsageError(`${command}: no pool named "${w}" (pools: ${policy.pools.map((p) => p.name).join(', ')})`);
  const pools = policy?.pools.filter((p) => !wanted || wanted.includes(p.name)) ?? [];
  const problems = [...loaded.problems];
  if (opts.secrets) problems.push(...secretProblems(loaded, secretEnv(io), new Set(pools.map((p) => p.emitter))));
  for (const p of problems) io.err(formatProblem(p));
  const errors = problems.filter((p) => p.severity === 'error').length;
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
function secretEnv(io: Io): SecretEnv {
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
 * warnings (history data skipped or set aside) go to stderr, each once.
 */
export function openHistoryFor(command: string, io: Io, stateDir: string, clock?: () => number): HistoryStore {
  try {
    return openHistory(io.env, stateDir, clock, (m) => io.err(forTerminal(`${command}: warning: ${m}`)));
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
export function openEmitters(command: string, io: Io, fleet: Pick<FleetContext, 'policy' | 'pools'>, clock?: () => number): Map<string, Emitter> {
  let emitters: Map<string, Emitter>;
  try {
    emitters = createEmitters(fleet.policy, secretEnv(io), clock, new Set(fleet.pools.map((p) => p.emitter)));
  } catch (err) {
    if (err instanceof SecretResolutionError) throw new UsageError(`${command}: ${err.message}`);
    throw err;
  }
  const problems = [...emitters.values()].flatMap((e) => (e.preflight?.() ?? []).map((m) => `${command}: emitter ${e.name}: ${m}`));
  if (problems.length) throw new UsageError(problems.join('\n'));
  return emitters;
}
