/**
 * Job-to-pool matching with each platform's own semantics:
 * - GitLab: the job's tags ⊆ the runner's tags; untagged jobs only where the pool accepts them.
 * - GitHub: every `runs-on` label ⊆ the runner's labels, which include the defaults the runner adds
 *   (`self-hosted`, the OS, the architecture); compared case-insensitively, as GitHub does.
 * - Jenkins: the job's label expression (`&&`, `||`, `!`, `->`, `<->`, parentheses) holds over the
 *   pool's labels; a job without an expression takes pools that accept untagged work.
 * - replay: the job's labels ⊆ the pool's labels.
 * A job that fits several pools goes to exactly one: the most specific (fewest labels), then the
 * first in policy order. A running job goes to the pool of the node running it.
 */
import type { PoolConfig } from '../policy/types.js';
import type { EmitterKind, Job } from './types.js';

type Expr = { t: 'atom'; v: string } | { t: 'not'; e: Expr } | { t: 'and' | 'or' | 'implies' | 'iff'; a: Expr; b: Expr } | { t: 'true' };

export class LabelExpressionError extends Error {}

/** Parses a Jenkins label expression. Throws LabelExpressionError with the position on bad syntax. */
export function parseLabelExpression(text: string): Expr {
  const tokens: Array<{ v: string; pos: number }> = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const op = ['<->', '->', '&&', '||', '!', '(', ')'].find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ v: op, pos: i + 1 });
      i += op.length;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw new LabelExpressionError(`unterminated quote at ${i + 1} in "${text}"`);
      tokens.push({ v: text.slice(i, j + 1), pos: i + 1 });
      i = j + 1;
      continue;
    }
    if (c === '&' || c === '|' || c === '<') throw new LabelExpressionError(`unexpected "${c}" at ${i + 1} in "${text}"`);
    let j = i;
    while (j < text.length && !/[\s&|!()"]/.test(text[j] as string) && !text.startsWith('->', j) && !text.startsWith('<->', j)) j++;
    tokens.push({ v: text.slice(i, j), pos: i + 1 });
    i = j;
  }
  if (tokens.length === 0) return { t: 'true' };
  let k = 0;
  const peek = () => tokens[k]?.v;
  const fail = (what: string): never => {
    throw new LabelExpressionError(`${what} at ${tokens[k]?.pos ?? text.length + 1} in "${text}"`);
  };
  const primary = (): Expr => {
    const tok = peek();
    if (tok === undefined) return fail('expression ends early');
    if (tok === '!') {
      k++;
      return { t: 'not', e: primary() };
    }
    if (tok === '(') {
      k++;
      const e = iff();
      if (peek() !== ')') fail('missing ")"');
      k++;
      return e;
    }
    if (['&&', '||', ')', '->', '<->'].includes(tok)) fail(`unexpected "${tok}"`);
    k++;
    return { t: 'atom', v: tok.startsWith('"') ? tok.slice(1, -1).replace(/\\(.)/g, '$1') : tok };
  };
  const and = (): Expr => {
    let a = primary();
    while (peek() === '&&') {
      k++;
      a = { t: 'and', a, b: primary() };
    }
    return a;
  };
  const or = (): Expr => {
    let a = and();
    while (peek() === '||') {
      k++;
      a = { t: 'or', a, b: and() };
    }
    return a;
  };
  const implies = (): Expr => {
    const a = or();
    if (peek() === '->') {
      k++;
      return { t: 'implies', a, b: implies() };
    }
    return a;
  };
  const iff = (): Expr => {
    let a = implies();
    while (peek() === '<->') {
      k++;
      a = { t: 'iff', a, b: implies() };
    }
    return a;
  };
  const e = iff();
  if (k < tokens.length) fail(`unexpected "${peek()}"`);
  return e;
}

export function evalLabelExpression(e: Expr, labels: ReadonlySet<string>): boolean {
  switch (e.t) {
    case 'true':
      return true;
    case 'atom':
      return labels.has(e.v);
    case 'not':
      return !evalLabelExpression(e.e, labels);
    case 'and':
      return evalLabelExpression(e.a, labels) && evalLabelExpression(e.b, labels);
    case 'or':
      return evalLabelExpression(e.a, labels) || evalLabelExpression(e.b, labels);
    case 'implies':
      return !evalLabelExpression(e.a, labels) || evalLabelExpression(e.b, labels);
    case 'iff':
      return evalLabelExpression(e.a, labels) === evalLabelExpression(e.b, labels);
  }
}

const exprCache = new Map<string, Expr | LabelExpressionError>();
function cachedExpr(text: string): Expr | LabelExpressionError {
  let e = exprCache.get(text);
  if (e === undefined) {
    try {
      e = parseLabelExpression(text);
    } catch (err) {
      e = err instanceof LabelExpressionError ? err : new LabelExpressionError(String(err));
    }
    if (exprCache.size > 10_000) exprCache.clear();
    exprCache.set(text, e);
  }
  return e;
}

/** The labels a GitHub self-hosted runner of this pool carries: its own plus the runner's defaults. */
export function githubRunnerLabels(pool: Pick<PoolConfig, 'labels' | 'machine'>): Set<string> {
  const own = pool.labels.map((l) => l.toLowerCase());
  const arch = own.some((l) => l === 'arm64' || l === 'aarch64') ? 'arm64' : own.includes('arm') ? 'arm' : 'x64';
  return new Set([...own, 'self-hosted', pool.machine.os === 'windows' ? 'windows' : 'linux', arch]);
}

export function jobFitsPool(kind: EmitterKind, job: Job, pool: Pick<PoolConfig, 'labels' | 'machine' | 'acceptUntagged'>): boolean {
  switch (kind) {
    case 'gitlab': {
      if (job.labels.length === 0) return pool.acceptUntagged;
      const tags = new Set(pool.labels);
      return job.labels.every((l) => tags.has(l));
    }
    case 'github': {
      const have = githubRunnerLabels(pool);
      return job.labels.length > 0 && job.labels.every((l) => have.has(l.toLowerCase()));
    }
    case 'jenkins': {
      const text = job.labelExpression?.trim() ?? job.labels.join(' && ');
      if (text === '') return pool.acceptUntagged;
      const e = cachedExpr(text);
      return !(e instanceof LabelExpressionError) && evalLabelExpression(e, new Set(pool.labels));
    }
    case 'replay': {
      const have = new Set(pool.labels.map((l) => l.toLowerCase()));
      return job.labels.every((l) => have.has(l.toLowerCase()));
    }
  }
}

export interface Assignment {
  /** Pool name → its jobs, for every pool given (empty lists included). */
  byPool: Map<string, Job[]>;
  unmatched: Job[];
}

/**
 * Assigns each job to at most one pool. `pools` is in policy order; `nodeOwner` maps a node
 * (runner) name to its pool, so a running job stays with the pool whose node runs it.
 */
export function assignJobs(kind: EmitterKind, jobs: readonly Job[], pools: readonly PoolConfig[], nodeOwner: (runner: string) => string | undefined = () => undefined): Assignment {
  const byPool = new Map<string, Job[]>(pools.map((p) => [p.name, []]));
  const unmatched: Job[] = [];
  const ranked = pools.map((p, i) => ({ p, i })).sort((a, b) => a.p.labels.length - b.p.labels.length || a.i - b.i);
  for (const job of jobs) {
    const owner = job.runner ? nodeOwner(job.runner) : undefined;
    if (owner && byPool.has(owner)) {
      byPool.get(owner)?.push(job);
      continue;
    }
    const fit = ranked.find(({ p }) => jobFitsPool(kind, job, p));
    if (fit) byPool.get(fit.p.name)?.push(job);
    else unmatched.push(job);
  }
  return { byPool, unmatched };
}
