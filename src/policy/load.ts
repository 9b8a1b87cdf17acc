/**
 * Loading a policy, in the three steps of changesets' config parsing:
 *   1. schema: each file's YAML is read with positions, each entity checked against its zod schema;
 *   2. normalize: files are merged (names unique across files), durations become milliseconds;
 *   3. rules: checks that span fields and files (references, min ≤ max, cron, timezones, secrets).
 * Every problem is collected with its place; nothing throws for bad input.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, type Dirent } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { z } from 'zod';
import { parseDuration } from './duration.js';
import { issueToProblems } from './issues.js';
import { checkRules, type PartialPool, type RulesEnv } from './rules.js';
import { BudgetSchema, CURRENCY, EmitterSchema, HOOK_MAX_BYTES, PlatformSchema, PolicyFileSchema, PoolSchema, ScalingSchema, type BudgetInput, type EmitterInput, type PlatformInput, type PoolInput } from './schema.js';
import { findLiteralCredential } from './secrets.js';
import { withModulePath } from './module.js';
import { locate, readSource, stringScalars, type SourceFile } from './source.js';
import { suggestion } from './suggest.js';
import { codePoint, CONTROL_BUT_CRLF_TAB, CONTROL_BUT_NEWLINE_TAB } from './text.js';
import type { EmitterConfig, HookScript, PlatformConfig, Policy, PoolConfig, Problem, RunnerHooks, Scaling } from './types.js';

export const SECTIONS = ['emitters', 'platforms', 'pools', 'budgets'] as const;
/** Top-level keys that hold one value, not named entities. */
export const SCALARS = ['currency'] as const;
export type Section = (typeof SECTIONS)[number];

/** Where each named entity was defined, for messages that point back at it. */
export interface Origin {
  src: SourceFile;
  section: Section;
  name: string;
}

export interface LoadResult {
  /** Present only when there is no error (warnings allowed). */
  policy: Policy | undefined;
  problems: Problem[];
  files: string[];
  /** Where each entity was defined, keyed `section/name`. */
  origins: Map<string, Origin>;
}

export interface LoadOptions {
  /** Paths in messages are relative to this (default: process.cwd()). */
  cwd?: string;
  /** The environment the rules read (`CI`); default: process.env. */
  env?: RulesEnv;
}

/** Every `*.yaml`/`*.yml` below a directory, recursively, sorted; hidden entries skipped. */
export function policyFiles(paths: readonly string[], problems: Problem[], display: (f: string) => string): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push({ file: display(p), line: 1, col: 1, path: '', message: code === 'ENOENT' ? 'no such file or directory' : `cannot be read (${code ?? 'error'})`, severity: 'error' });
      continue;
    }
    if (!isDir) {
      out.push(p);
      continue;
    }
    const found: string[] = [];
    const walk = (dir: string) => {
      let entries: Dirent[];
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        problems.push({ file: display(dir), line: 1, col: 1, path: '', message: 'directory cannot be read', severity: 'error' });
        return;
      }
      for (const e of entries) {
        if (e.name.startsWith('.') || e.name === 'node_modules') continue;
        const full = join(dir, e.name);
        if (e.isDirectory()) walk(full);
        else if (/\.ya?ml$/.test(e.name)) found.push(full);
      }
    };
    walk(p);
    if (found.length === 0) problems.push({ file: display(p), line: 1, col: 1, path: '', message: 'no *.yaml or *.yml policy files in this directory', severity: 'error' });
    out.push(...found.sort());
  }
  return [...new Set(out)];
}

const ENTITY_SCHEMA: Record<Section, z.ZodType> = { emitters: EmitterSchema, platforms: PlatformSchema, pools: PoolSchema, budgets: BudgetSchema };

export function loadPolicy(paths: readonly string[], options: LoadOptions = {}): LoadResult {
  const cwd = options.cwd ?? process.cwd();
  const display = (f: string) => {
    const r = relative(cwd, f);
    return r && !r.startsWith('..') ? r : f;
  };
  const problems: Problem[] = [];
  const files = policyFiles(paths, problems, display);
  const origins = new Map<string, Origin>();
  /** Pools that failed the schema: their parts that did parse still go through the rules. */
  const partialPools: PartialPool[] = [];
  /** Each pool's hook scripts, read relative to its policy file. */
  const hooks = new Map<string, RunnerHooks>();
  const valid: { emitters: Map<string, EmitterInput>; platforms: Map<string, PlatformInput>; pools: Map<string, PoolInput>; budgets: Map<string, BudgetInput>; currency?: string } = {
    emitters: new Map(),
    platforms: new Map(),
    pools: new Map(),
    budgets: new Map(),
  };
  /** Where `currency` was first written, for a second file that writes another. */
  let currencyAt: { file: string; line: number; col: number } | undefined;

  for (const file of files) {
    const src = readSource(file, problems, display(file));
    if (src.data === undefined) continue;
    const data = src.data as Record<string, unknown>;

    // Literal credentials anywhere in the file, whatever field they sit in.
    const literalAt = new Set<string>();
    for (const s of stringScalars(src)) {
      const what = findLiteralCredential(s.value);
      if (!what) continue;
      literalAt.add(s.path);
      problems.push({ file: src.file, line: s.line, col: s.col, path: s.path, message: `looks like ${what}; a policy holds only \${env:NAME} or \${file:path} references`, severity: 'error' });
    }

    // Control characters in any string (tabs and newlines of block scalars excepted): they would
    // reach terminals, comments and scripts. The value itself is never echoed.
    for (const s of stringScalars(src)) {
      const ctl = CONTROL_BUT_NEWLINE_TAB.exec(s.value);
      if (ctl) problems.push({ file: src.file, line: s.line, col: s.col, path: s.path, message: `contains a control character (${codePoint(ctl[0])}); a policy string has none`, severity: 'error' });
    }

    for (const key of Object.keys(data)) {
      if (!(SECTIONS as readonly string[]).includes(key) && !(SCALARS as readonly string[]).includes(key)) {
        const pos = locate(src, [key], true);
        const keys = [...SECTIONS, ...SCALARS];
        problems.push({ file: src.file, line: pos.line, col: pos.col, path: key, message: `unknown key${suggestion(key, keys) || ` (allowed: ${keys.join(', ')})`}`, severity: 'error' });
      }
    }
    if (data.currency !== undefined && data.currency !== null) {
      const pos = locate(src, ['currency']);
      const c = data.currency;
      if (typeof c !== 'string' || !CURRENCY.test(c)) problems.push({ file: src.file, line: pos.line, col: pos.col, path: 'currency', message: 'must be a currency symbol such as $, €, £ or ¥, or a three-letter code such as USD, EUR or CHF', severity: 'error' });
      else if (valid.currency !== undefined && valid.currency !== c && currencyAt) problems.push({ file: src.file, line: pos.line, col: pos.col, path: 'currency', message: `"${c}" differs from "${valid.currency}" at ${currencyAt.file}:${currencyAt.line}:${currencyAt.col}: one currency for every policy file`, severity: 'error' });
      else if (valid.currency === undefined) {
        valid.currency = c;
        currencyAt = { file: src.file, ...pos };
      }
    }
    for (const section of SECTIONS) {
      const block = data[section];
      if (block === undefined || block === null) continue;
      if (typeof block !== 'object' || Array.isArray(block)) {
        const pos = locate(src, [section]);
        problems.push({ file: src.file, line: pos.line, col: pos.col, path: section, message: `must be a mapping of names to ${section.slice(0, -1)} settings`, severity: 'error' });
        continue;
      }
      for (const [name, value] of Object.entries(block as Record<string, unknown>)) {
        const id = `${section}/${name}`;
        const earlier = origins.get(id);
        if (earlier) {
          const here = locate(src, [section, name], true);
          const there = locate(earlier.src, [section, name], true);
          problems.push({
            file: src.file,
            line: here.line,
            col: here.col,
            path: `${section}.${name}`,
            message: `duplicate ${section.slice(0, -1)} name "${name}": also defined at ${earlier.src.file}:${there.line}:${there.col}; names are unique across files`,
            severity: 'error',
          });
          continue;
        }
        origins.set(id, { src, section, name });
        const parsed = ENTITY_SCHEMA[section].safeParse(value);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            for (const p of issueToProblems(issue, src, PolicyFileSchema, [section, name])) if (!literalAt.has(p.path)) problems.push(p);
          }
          if (section === 'pools') partialPools.push(partialPool(name, value));
          continue;
        }
        // A module platform's relative local source is resolved against this policy file's directory.
        (valid[section] as Map<string, unknown>).set(name, section === 'platforms' ? withModulePath(parsed.data as PlatformInput, file) : parsed.data);
        if (section === 'pools') {
          const pool = parsed.data as PoolInput;
          const read = readHooks(pool, file, (which, message) => {
            const pos = locate(src, [section, name, 'runner', 'hooks', which]);
            problems.push({ file: src.file, line: pos.line, col: pos.col, path: `${section}.${name}.runner.hooks.${which}`, message, severity: 'error' });
          });
          if (read) hooks.set(name, read);
        }
      }
    }
  }

  const policy = normalize(valid, hooks);
  problems.push(...checkRules(policy, origins, partialPools, options.env ?? process.env));
  const hasError = problems.some((p) => p.severity === 'error');
  return { policy: hasError ? undefined : policy, problems: sortProblems(problems), files: files.map(display), origins };
}

/** The real directory of a policy file (symlinks resolved), or its lexical one if that fails. */
function realDir(policyFile: string): string {
  const dir = resolve(dirname(policyFile));
  try {
    return realpathSync(dir);
  } catch {
    return dir;
  }
}

/**
 * The repository a policy file belongs to: the nearest directory above it (its own included) that
 * holds a `.git` entry (a directory, or the file of a worktree or submodule); without one, the
 * policy file's own directory. A real path (symlinks resolved).
 */
export function policyRoot(policyFile: string): string {
  const dir = realDir(policyFile);
  for (let d = dir; ; ) {
    if (existsSync(join(d, '.git'))) return d;
    const up = dirname(d);
    if (up === d) return dir;
    d = up;
  }
}

/** Whether `path` is `root` or lies below it. */
function isWithin(root: string, path: string): boolean {
  const r = relative(root, path);
  return r === '' || (r !== '..' && !r.startsWith(`..${sep}`) && !isAbsolute(r));
}

/**
 * Reads a pool's `runner.hooks` scripts, relative to the policy file: files of the policy's
 * repository (see policyRoot: neither `..` nor a symlink may lead out of it, so that a policy
 * cannot ship a file of the machine that loads it to its nodes), regular files of text (UTF-8, no
 * NUL or other control characters but tab and newline; CR only on Windows) of at most
 * HOOK_MAX_BYTES. A Windows hook cannot hold `</powershell>` (it would end EC2Launch's block).
 */
export function readHooks(pool: PoolInput, policyFile: string, problem: (which: 'before' | 'after', message: string) => void): RunnerHooks | undefined {
  const h = pool.runner.hooks;
  if (!h) return undefined;
  const out: RunnerHooks = {};
  const base = realDir(policyFile);
  const root = policyRoot(policyFile);
  const outside = (path: string, how: string) =>
    `${path} ${how} outside the policy's repository: a hook is a file of the repository the policy is in (the nearest directory above the policy file with a .git entry; without one, the policy file's directory)`;
  for (const which of ['before', 'after'] as const) {
    const path = h[which];
    if (path === undefined) continue;
    // Checked before the file is touched: nothing is said about a file outside, not even whether it exists.
    if (!isWithin(root, resolve(base, path))) {
      problem(which, outside(path, 'leads'));
      continue;
    }
    let bytes: Buffer;
    try {
      const full = realpathSync(resolve(base, path));
      if (!isWithin(root, full)) {
        problem(which, outside(path, 'leads through a symlink'));
        continue;
      }
      const st = statSync(full);
      if (!st.isFile()) {
        problem(which, `${path} is not a file (paths are relative to the policy file)`);
        continue;
      }
      if (st.size > HOOK_MAX_BYTES) {
        problem(which, `${path} is ${st.size} bytes; a hook is at most ${HOOK_MAX_BYTES} bytes (${HOOK_MAX_BYTES / 1024} KiB): it travels in the node's user-data`);
        continue;
      }
      bytes = readFileSync(full);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problem(which, code === 'ENOENT' ? `${path}: no such file (paths are relative to the policy file)` : `${path} cannot be read (${code ?? 'error'})`);
      continue;
    }
    let script: string;
    try {
      script = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      problem(which, `${path} is not valid UTF-8 text: a hook is a script`);
      continue;
    }
    const windows = pool.machine.os === 'windows';
    const ctl = (windows ? CONTROL_BUT_CRLF_TAB : CONTROL_BUT_NEWLINE_TAB).exec(script);
    if (ctl) {
      problem(which, `${path} contains ${ctl[0] === '\r' ? 'a carriage return (CRLF line endings: the interpreter would see a stray \\r on every line; save it with LF endings)' : `a control character (${codePoint(ctl[0])}): a hook is text`}`);
      continue;
    }
    if (script.trim() === '') {
      problem(which, `${path} is empty`);
      continue;
    }
    if (windows && /<\/powershell/i.test(script)) {
      problem(which, `${path} contains "</powershell": it would end the user-data's <powershell> block`);
      continue;
    }
    const hook: HookScript = { path, sha256: createHash('sha256').update(script).digest('hex'), script };
    out[which] = hook;
  }
  return out;
}

function partialPool(name: string, value: unknown): PartialPool {
  const v = (value && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const scaling = ScalingSchema.safeParse(v.scaling ?? {});
  return {
    name,
    emitter: typeof v.emitter === 'string' ? v.emitter : undefined,
    platform: typeof v.platform === 'string' ? v.platform : undefined,
    scaling: scaling.success ? normalizeScaling(scaling.data) : undefined,
  };
}

/** Requests in flight per emitter when the policy does not say. */
export const DEFAULT_CONCURRENCY = { gitlab: 16, github: 4, jenkins: 4, replay: 1 } as const;

function ms(d: string): number {
  const v = parseDuration(d);
  if (v === undefined) throw new Error(`unreachable: duration ${d} passed the schema`);
  return v;
}

/**
 * `runner.ephemeral` when the policy does not write it: GitHub pools on Linux get just-in-time
 * runners (the JIT config is single-use and the runner's session lasts one job, so no long-lived
 * runner credential is on the node for a job to read). On Windows a JIT runner runs its jobs as
 * SYSTEM outside the firewall rule that keeps the registered runner service from instance metadata,
 * so Windows GitHub pools keep the registered service unless the policy says otherwise; the other
 * kinds keep one runner per node.
 */
export function defaultEphemeral(kind: EmitterInput['type'] | undefined, os: 'linux' | 'windows' | undefined): boolean {
  return kind === 'github' && os !== 'windows';
}

/** Step 2: merged, typed, durations in milliseconds, `runner.ephemeral` decided. Only entities that passed step 1. */
export function normalize(valid: { emitters: Map<string, EmitterInput>; platforms: Map<string, PlatformInput>; pools: Map<string, PoolInput>; budgets?: Map<string, BudgetInput>; currency?: string }, hooks: ReadonlyMap<string, RunnerHooks> = new Map()): Policy {
  const emitters: Record<string, EmitterConfig> = {};
  for (const [name, e] of valid.emitters) emitters[name] = { ...e, name, concurrency: e.concurrency ?? DEFAULT_CONCURRENCY[e.type], probeIntervalMs: ms(e.probeInterval), requestTimeoutMs: ms(e.requestTimeout) };
  const platforms: Record<string, PlatformConfig> = {};
  for (const [name, p] of valid.platforms) platforms[name] = { ...p, name };
  const pools: PoolConfig[] = [];
  for (const [name, p] of valid.pools) {
    const { hooks: _paths, ephemeral, ...rest } = p.runner;
    const runner = { ...rest, ephemeral: ephemeral ?? defaultEphemeral(valid.emitters.get(p.emitter)?.type, p.machine?.os) };
    const read = hooks.get(name);
    pools.push({
      name,
      emitter: p.emitter,
      platform: p.platform,
      labels: p.labels,
      acceptUntagged: p.acceptUntagged,
      machine: p.machine,
      runner: read ? { ...runner, hooks: read } : runner,
      scaling: normalizeScaling(p.scaling),
      failover: (p.failover ?? []).map((f) => (typeof f === 'string' ? { platform: f } : { platform: f.platform, ...(f.machine ? { machine: f.machine } : {}) })),
      failoverAfter: p.failoverAfter,
      failbackAfterMs: ms(p.failbackAfter),
    });
  }
  const budgets = [...(valid.budgets ?? new Map<string, BudgetInput>())].map(([name, b]) => ({ ...b, name }));
  return { emitters, platforms, pools, ...(budgets.length ? { budgets } : {}), ...(valid.currency !== undefined ? { currency: valid.currency } : {}) };
}

function normalizeScaling(s: PoolInput['scaling']): Scaling {
  return {
    min: s.min,
    max: s.max,
    spare: s.spare,
    maxStep: s.maxStep,
    scaleDownAfterMs: ms(s.scaleDownAfter),
    minLifetimeMs: ms(s.minLifetime),
    bootTimeoutMs: ms(s.bootTimeout),
    predict: s.predict,
    disruptionBudget: s.disruptionBudget,
    rollout: { maxUnavailable: typeof s.rollout.maxUnavailable === 'number' ? { count: s.rollout.maxUnavailable } : { percent: Number(s.rollout.maxUnavailable.slice(0, -1)) } },
    maxLifetimeMs: s.maxLifetime === undefined ? undefined : ms(s.maxLifetime),
    schedules: s.schedules.map((x) => ({ cron: x.cron, durationMs: ms(x.duration), min: x.min, timezone: x.timezone })),
    standby: s.standby,
    prewarm: { schedules: s.prewarm.schedules, leadMs: s.prewarm.lead === undefined ? undefined : ms(s.prewarm.lead), graceMs: ms(s.prewarm.grace) },
  };
}

function sortProblems(problems: Problem[]): Problem[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.file < b.p.file ? -1 : a.p.file > b.p.file ? 1 : a.p.line - b.p.line || a.p.col - b.p.col || a.i - b.i))
    .map((x) => x.p);
}
