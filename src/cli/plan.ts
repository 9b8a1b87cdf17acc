import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createCommentEmitter } from '../emitters/index.js';
import { commentContext, postStickyComment, CommentError } from '../gitops/comment.js';
import { diffPolicies, planMarkdown, type LatestObservation, type RecentJobs } from '../gitops/diff.js';
import { loadPolicy } from '../policy/load.js';
import { forTerminal } from '../policy/text.js';
import { formatProblem, type Policy, type PoolConfig } from '../policy/types.js';
import { parse } from './args.js';
import { openHistoryFor } from './context.js';
import { UsageError, writeOrExplain, type Io } from './errors.js';

const HELP = `Usage: parmanu plan [--policy PATH] [--base PATH|REF] [--format markdown|json] [--report FILE] [--comment]

What a policy change would do: pools added, removed and changed (old → new for each setting), and
for each pool what the new policy would decide now from the latest history (nodes now, desired,
create, destroy). Nothing is applied.

Options:
  --policy PATH   the new policies (default policies/)
  --base PATH|REF the old policies: a directory, or a git ref whose copy of --policy is read
                  (default: none, every pool counts as added)
  --format F      markdown (default) or json
  --report FILE   also write a GitLab terraform report {"create","update","delete"} for the
                  merge request widget (artifacts:reports:terraform)
  --comment       post or update one sticky comment on the merge/pull request of this CI run
  -h, --help      this help

Exit: 0; 1 the comment could not be posted (the platform refused or failed); 2 bad input,
including a CI environment that --comment cannot use.`;

/** The policies at a git ref, copied into a temporary directory. */
function checkoutPolicies(ref: string, policyPath: string, cwd: string): string {
  let top: string;
  try {
    top = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    throw new UsageError(`plan: --base ${ref} is neither a directory nor a git ref here (not in a git repository)`);
  }
  const rel = relative(top, policyPath) || '.';
  let files: string[];
  try {
    files = execFileSync('git', ['ls-tree', '-r', '--name-only', ref, '--', rel], { cwd: top, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n').filter((f) => /\.ya?ml$/.test(f));
  } catch {
    throw new UsageError(`plan: --base ${ref} is neither a directory nor a git ref`);
  }
  const out = mkdtempSync(join(tmpdir(), 'parmanu-base-'));
  for (const f of files) {
    const dest = join(out, relative(rel, f));
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, execFileSync('git', ['show', `${ref}:${f}`], { cwd: top }));
  }
  return out;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('plan', argv, { policy: { type: 'string' }, base: { type: 'string' }, format: { type: 'string' }, report: { type: 'string' }, comment: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  const format = values.format ?? 'markdown';
  if (format !== 'markdown' && format !== 'json') throw new UsageError(`plan: --format must be markdown or json, not "${format}"`);
  const policyPath = resolve(io.cwd, values.policy ?? 'policies');
  const head = loadPolicy([policyPath], { cwd: io.cwd });
  if (!head.policy) {
    for (const p of head.problems) io.err(formatProblem(p));
    return 2;
  }
  let base: Policy | undefined;
  if (values.base) {
    const asPath = resolve(io.cwd, values.base);
    const dir = existsSync(asPath) ? asPath : checkoutPolicies(values.base, policyPath, io.cwd);
    const loaded = loadPolicy([dir], { cwd: io.cwd });
    if (dir !== asPath) rmSync(dir, { recursive: true, force: true });
    if (!loaded.policy) io.err(`plan: the base policies do not validate (${loaded.problems.filter((p) => p.severity === 'error').length} errors); comparing against none`);
    base = loaded.policy;
  }
  const stateDir = resolve(io.cwd, io.env.PARMANU_STATE_DIR ?? '.parmanu');
  const history = openHistoryFor('plan', io, stateDir);
  const latest = new Map<string, LatestObservation>();
  const recentJobs = new Map<string, RecentJobs>();
  const known: string[] = [];
  try {
    // Pools Parmanu manages that the policy no longer names are drained and destroyed by the next reconcile.
    for (const name of await history.listPools()) if (!head.policy.pools.some((p) => p.name === name) && (await history.getPool(name))?.config) known.push(name);
    for (const name of Object.keys(head.policy.emitters)) {
      const labels = await history.getJobLabels(name);
      if (labels) recentJobs.set(name, { kind: labels.kind, sets: labels.sets });
    }
    for (const name of new Set([...[...head.policy.pools, ...(base?.pools ?? [])].map((p) => p.name), ...known])) {
      const rec = await history.getPool(name);
      if (!rec) continue;
      const samples = await history.samples(name, 0);
      const last = samples[samples.length - 1];
      latest.set(name, { nodes: rec.nodes.map((n) => n.name), at: last?.at ?? rec.applied?.at ?? 0, queued: last?.queued ?? 0, running: last?.running ?? 0 });
    }
  } catch (err) {
    io.err(`plan: no history (${(err as Error).message}); showing setting changes only`);
  } finally {
    await history.close();
  }
  const { nodeSpec } = await import('../../stacks/spec.js');
  const headPolicy = head.policy;
  const specChanged = (a: PoolConfig, b: PoolConfig) => nodeSpec(a, base?.emitters[a.emitter]) !== nodeSpec(b, headPolicy.emitters[b.emitter]);
  const diff = diffPolicies(base, head.policy, (p) => latest.get(p), recentJobs, { specChanged, known });
  if (values.report) {
    const file = resolve(io.cwd, values.report);
    writeOrExplain('plan', '--report', file, () => writeFileSync(file, JSON.stringify(diff.report) + '\n'));
  }
  const markdown = planMarkdown(diff);
  io.out(format === 'json' ? JSON.stringify(diff) : forTerminal(markdown));
  if (values.comment) {
    try {
      const ctx = commentContext(io.env);
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
