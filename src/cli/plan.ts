import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { createCommentEmitter } from '../emitters/index.js';
import { commentContext, postStickyComment, CommentError, type CommentContext } from '../gitops/comment.js';
import { diffPolicies, planMarkdown, type DiffOptions, type LatestObservation, type RecentJobs } from '../gitops/diff.js';
import { budgetContext } from '../reconcile/budget.js';
import { loadPolicy } from '../policy/load.js';
import { forTerminal } from '../policy/text.js';
import { formatProblem, type Policy, type Problem, type PoolConfig } from '../policy/types.js';
import { parse } from './args.js';
import { openHistoryFor } from './context.js';
import { UsageError, writeOrExplain, type Io } from './errors.js';

const HELP = `Usage: parmanu plan [--policy PATH] [--base PATH|REF] [--format markdown|json] [--report FILE] [--comment]

What a policy change would do: pools added, removed and changed (old → new for each setting), and
for each pool what the new policy would decide now from the latest history (nodes now, desired,
create, destroy), what that costs per hour (pools with machine.hourlyCost: "+3 nodes ≈ +$1.50/h"),
and each cost budget against it (the pools it holds back, a budget it would exceed). Nothing is
applied.

Options:
  --policy PATH   the new policies (default policies/)
  --base PATH|REF the old policies: a directory, or a git ref whose copy of --policy is read
                  (wherever it is in the repository; a ref without it: every pool is new)
                  (default: none, every pool counts as added)
  --format F      markdown (default) or json
  --report FILE   also write a GitLab terraform report {"create","update","delete"} for the
                  merge request widget (artifacts:reports:terraform)
  --comment       post or update one sticky comment on the merge/pull request of this CI run
                  (outside one, plan stops before printing anything: exit 2)
  -h, --help      this help

Exit: 0; 1 the comment could not be posted (the platform refused or failed); 2 bad input,
including a CI environment that --comment cannot use.`;

const git = (args: string[], cwd: string) => execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 1024 * 1024 });

/**
 * The policies at a git ref, wherever they are in the repository and wherever plan runs from:
 * their path in the repository comes from git (`rev-parse --show-prefix` where they are), and
 * their files at the ref are copied to a temporary directory at the same path (with a `.git`
 * entry: hooks resolve inside it as in the repository). `path` is undefined when the ref has no
 * such path (the policies are new: every pool counts as added).
 */
function checkoutPolicies(ref: string, policyPath: string): { root: string; rel: string; path: string | undefined } {
  const isDir = statSync(policyPath).isDirectory();
  const where = isDir ? policyPath : dirname(policyPath);
  let prefix: string;
  let top: string;
  try {
    prefix = git(['rev-parse', '--show-prefix'], where).trim();
    top = git(['rev-parse', '--show-toplevel'], where).trim();
  } catch {
    throw new UsageError(`plan: --base ${ref} is neither a directory nor a git ref here (${policyPath} is not in a git repository)`);
  }
  try {
    git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], top);
  } catch {
    throw new UsageError(`plan: --base ${ref} is neither a directory nor a git ref`);
  }
  const rel = (prefix + (isDir ? '' : basename(policyPath))).replace(/\/$/, '');
  // A dedicated policy directory is copied whole (hook scripts included); the repository's root, its YAML files only.
  const files = git(['ls-tree', '-r', '-z', '--name-only', ref, '--', rel || '.'], top)
    .split('\0')
    .filter((f) => f && (rel !== '' || /\.ya?ml$/.test(f)));
  const root = mkdtempSync(join(tmpdir(), 'parmanu-base-'));
  mkdirSync(join(root, '.git'));
  for (const f of files) {
    const dest = join(root, f);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, execFileSync('git', ['show', `${ref}:${f}`], { cwd: top, maxBuffer: 64 * 1024 * 1024 }));
  }
  return { root, rel: rel || '.', path: files.length ? join(root, rel) : undefined };
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('plan', argv, { policy: { type: 'string' }, base: { type: 'string' }, format: { type: 'string' }, report: { type: 'string' }, comment: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const format = values.format ?? 'markdown';
  if (format !== 'markdown' && format !== 'json') throw new UsageError(`plan: --format must be markdown or json, not "${format}"`);
  // --comment needs a merge or pull request of this CI run: without one, nothing is printed (exit 2).
  let ctx: CommentContext | undefined;
  if (values.comment) {
    try {
      ctx = commentContext(io.env);
    } catch (err) {
      if (err instanceof CommentError) throw new UsageError(forTerminal(`plan: ${err.message}`), 2);
      throw err;
    }
  }
  const policyPath = resolve(io.cwd, values.policy ?? 'policies');
  const head = loadPolicy([policyPath], { cwd: io.cwd });
  if (!head.policy) {
    for (const p of head.problems) io.err(formatProblem(p));
    return 2;
  }
  let base: Policy | undefined;
  if (values.base) {
    const asPath = resolve(io.cwd, values.base);
    if (existsSync(asPath)) {
      const loaded = loadPolicy([asPath], { cwd: io.cwd });
      if (!loaded.policy) io.err(baseInvalid(loaded.problems, (m) => m));
      base = loaded.policy;
    } else {
      const at = checkoutPolicies(values.base, policyPath);
      try {
        if (!at.path) io.err(forTerminal(`plan: ${values.base} has no ${at.rel}: every pool counts as added`));
        else {
          const loaded = loadPolicy([at.path], { cwd: at.root });
          if (!loaded.policy) io.err(forTerminal(baseInvalid(loaded.problems, (m) => m.split(`${at.root}/`).join(`${values.base}:`))));
          base = loaded.policy ?? undefined;
        }
      } finally {
        rmSync(at.root, { recursive: true, force: true });
      }
    }
  }
  const stateDir = resolve(io.cwd, io.env.PARMANU_STATE_DIR ?? '.parmanu');
  const history = openHistoryFor('plan', io, stateDir);
  const latest = new Map<string, LatestObservation>();
  const recentJobs = new Map<string, RecentJobs>();
  const known: string[] = [];
  let spend: DiffOptions['spend'];
  try {
    // Pools Parmanu manages that the policy no longer names are drained and destroyed by the next reconcile.
    // (`<pool>@<platform>` records are a failover stack of their pool, not a pool.)
    for (const name of await history.listPools()) if (!name.includes('@') && !head.policy.pools.some((p) => p.name === name) && (await history.getPool(name))?.config) known.push(name);
    for (const name of Object.keys(head.policy.emitters)) {
      const labels = await history.getJobLabels(name);
      if (labels) recentJobs.set(name, { kind: labels.kind, sets: labels.sets });
    }
    for (const name of new Set([...[...head.policy.pools, ...(base?.pools ?? [])].map((p) => p.name), ...known])) {
      const rec = await history.getPool(name);
      if (!rec) continue;
      const samples = await history.samples(name, 0);
      const last = samples[samples.length - 1];
      // (A pool with failover stacks: the nodes of its other stacks count too; where it ran last, and its platforms' health.)
      const others = await Promise.all((rec.failover?.stacks ?? []).map((stack) => history.getPool(stack).then((r) => r?.nodes.map((n) => n.name) ?? [])));
      latest.set(name, { nodes: [...rec.nodes.map((n) => n.name), ...others.flat()], ownNodes: rec.nodes.length, at: last?.at ?? rec.applied?.at ?? 0, queued: last?.queued ?? 0, running: last?.running ?? 0, ...(rec.failover ? { active: rec.failover.active, health: rec.failover.health } : {}) });
    }
    // Cost budgets of the new policy: the month's spend so far, per stack, as of the latest
    // observation (the time decide is run at for the plan; a replay's trace time).
    if (head.policy.budgets?.length) {
      const ctx = await budgetContext(history, head.policy, Math.max(0, ...[...latest.values()].map((o) => o.at)) || Date.now());
      spend = { monthToDate: new Map(ctx.stacks.map((s) => [s.stack, s.monthToDate])), monthKnown: ctx.monthKnown };
    }
  } catch (err) {
    io.err(`plan: no history (${(err as Error).message}); showing setting changes only`);
  } finally {
    await history.close();
  }
  const { nodeSpec } = await import('../../stacks/spec.js');
  const headPolicy = head.policy;
  const specChanged = (a: PoolConfig, b: PoolConfig) => nodeSpec(a, base?.emitters[a.emitter], base?.platforms[a.platform]) !== nodeSpec(b, headPolicy.emitters[b.emitter], headPolicy.platforms[b.platform]);
  const diff = diffPolicies(base, head.policy, (p) => latest.get(p), recentJobs, { specChanged, known, now: Date.now(), ...(spend ? { spend } : {}) });
  if (values.report) {
    const file = resolve(io.cwd, values.report);
    writeOrExplain('plan', '--report', file, () => writeFileSync(file, JSON.stringify(diff.report) + '\n'));
  }
  const markdown = planMarkdown(diff);
  io.out(format === 'json' ? JSON.stringify(diff) : forTerminal(markdown));
  if (ctx) {
    try {
      const r = await postStickyComment(createCommentEmitter(ctx), ctx, markdown);
      const where = r.platform === 'gitlab' ? 'the merge request' : 'the pull request';
      io.err(r.action === 'unchanged' ? `plan: the plan comment on ${where} is up to date` : `plan: ${r.action} the plan comment on ${where}`);
    } catch (err) {
      // The platform's answer is quoted in the message: printed without control characters.
      if (err instanceof CommentError) throw new UsageError(forTerminal(`plan: ${err.message}`), err.kind === 'config' ? 2 : 1);
      throw err;
    }
  }
  return 0;
}

/** One line: the base policies do not validate, with their first error. */
function baseInvalid(problems: readonly Problem[], where: (m: string) => string): string {
  const errors = problems.filter((p) => p.severity === 'error');
  const first = errors[0];
  return `plan: the base policies do not validate (${errors.length} error${errors.length === 1 ? '' : 's'}${first ? `, first: ${where(formatProblem(first))}` : ''}); comparing against none`;
}
