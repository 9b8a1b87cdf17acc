/**
 * One sticky plan comment per merge request (GitLab) or pull request (GitHub). Posting is the
 * emitter's ensureComment (renovate's): found by its marker among the comments of the token's own
 * user, updated in place, created once; this module only finds the target and the credentials in
 * the CI's own variables: CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID (GitLab) or
 * GITHUB_API_URL, GITHUB_REPOSITORY and the pull request of GITHUB_EVENT_PATH (GitHub).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { CommentTarget, Emitter } from '../emitters/types.js';
import { redact } from '../policy/secrets.js';
import { COMMENT_MARKER } from './diff.js';

/** `config`: the CI environment lacks what --comment needs (bad input); `api`: the platform refused or failed. */
export class CommentError extends Error {
  constructor(message: string, readonly kind: 'config' | 'api' = 'config') {
    super(message);
    this.name = 'CommentError';
  }
}

export interface CommentResult {
  platform: 'gitlab' | 'github';
  action: 'created' | 'updated' | 'unchanged';
  id: number;
}

/** Where the comment of this CI run goes, and the credentials an emitter needs to put it there. */
export interface CommentContext {
  platform: 'gitlab' | 'github';
  /** GitLab: the instance's base URL; GitHub: the REST API base. */
  url: string;
  token: string;
  target: CommentTarget;
  /** GitHub: the bot whose comments are ours when the token is the workflow's GITHUB_TOKEN. */
  botLogin?: string;
  /** "merge request !7" / "pull request #12", for messages. */
  what: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The CI run's merge or pull request and its credentials; CommentError (config) when there is none. */
export function commentContext(env: Env): CommentContext {
  if (env.CI_MERGE_REQUEST_IID && env.CI_API_V4_URL && env.CI_PROJECT_ID) {
    const token = env.PARMANU_COMMENT_TOKEN ?? env.GITLAB_TOKEN;
    if (!token) throw new CommentError('--comment on GitLab needs PARMANU_COMMENT_TOKEN (or GITLAB_TOKEN): a token with api scope on the project');
    const iid = Number(env.CI_MERGE_REQUEST_IID);
    if (!Number.isInteger(iid) || iid <= 0) throw new CommentError(`--comment: CI_MERGE_REQUEST_IID must be a merge request number, not "${env.CI_MERGE_REQUEST_IID}"`);
    return { platform: 'gitlab', url: env.CI_API_V4_URL.replace(/\/api\/v4\/?$/, ''), token, target: { project: env.CI_PROJECT_ID, number: iid }, what: `merge request !${iid}` };
  }
  if (env.GITHUB_REPOSITORY) {
    const own = env.PARMANU_COMMENT_TOKEN;
    const token = own ?? env.GITHUB_TOKEN;
    if (!token) throw new CommentError('--comment on GitHub needs GITHUB_TOKEN with pull-requests: write (or PARMANU_COMMENT_TOKEN)');
    if (!/^[A-Za-z0-9-]+\/[A-Za-z0-9._-]+$/.test(env.GITHUB_REPOSITORY)) throw new CommentError(`--comment: GITHUB_REPOSITORY must be owner/repo, not "${env.GITHUB_REPOSITORY}"`);
    const number = pullNumber(env);
    // The workflow's GITHUB_TOKEN is an installation token of the GitHub Actions app: GET /user refuses it, its comments are github-actions[bot]'s.
    const botLogin = own ? env.PARMANU_COMMENT_AUTHOR : (env.PARMANU_COMMENT_AUTHOR ?? 'github-actions[bot]');
    return { platform: 'github', url: env.GITHUB_API_URL ?? 'https://api.github.com', token, target: { project: env.GITHUB_REPOSITORY, number }, ...(botLogin ? { botLogin } : {}), what: `pull request #${number}` };
  }
  throw new CommentError('--comment needs a merge request pipeline (CI_MERGE_REQUEST_IID, CI_API_V4_URL, CI_PROJECT_ID) or a GitHub pull request run (GITHUB_REPOSITORY, GITHUB_EVENT_PATH)');
}

function pullNumber(env: Env): number {
  if (env.PARMANU_PR_NUMBER) {
    const n = Number(env.PARMANU_PR_NUMBER);
    if (Number.isInteger(n) && n > 0) return n;
    throw new CommentError(`--comment: PARMANU_PR_NUMBER must be a pull request number, not "${env.PARMANU_PR_NUMBER}"`);
  }
  const m = /^refs\/pull\/(\d+)\//.exec(env.GITHUB_REF ?? '');
  if (m) return Number(m[1]);
  if (env.GITHUB_EVENT_PATH) {
    let event: unknown;
    try {
      event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8'));
    } catch {
      event = undefined;
    }
    const ev = z.object({ pull_request: z.object({ number: z.number() }).loose() }).loose().safeParse(event);
    if (ev.success) return ev.data.pull_request.number;
  }
  throw new CommentError('--comment on GitHub needs a pull_request event (GITHUB_EVENT_PATH), GITHUB_REF refs/pull/N/merge, or PARMANU_PR_NUMBER');
}

/** Posts or updates the sticky comment through the emitter; CommentError (api) when the platform refused or failed. */
export async function postStickyComment(emitter: Emitter, ctx: CommentContext, body: string): Promise<CommentResult> {
  if (!emitter.ensureComment) throw new CommentError(`the ${emitter.kind} emitter cannot comment`, 'config');
  try {
    const r = await emitter.ensureComment(ctx.target, COMMENT_MARKER, body.includes(COMMENT_MARKER) ? body : `${COMMENT_MARKER}\n${body}`);
    return { platform: ctx.platform, action: r.action, id: r.id };
  } catch (err) {
    throw new CommentError(`${ctx.platform === 'gitlab' ? 'GitLab' : 'GitHub'} ${ctx.what}: ${redact(String((err as Error).message), [ctx.token])}`, 'api');
  }
}
