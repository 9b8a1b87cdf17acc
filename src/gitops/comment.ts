/**
 * One sticky plan comment per merge request (GitLab, via gitbeaker) or pull request (GitHub, via
 * octokit): found by its marker, updated in place, created once. The target comes from the CI's
 * own variables: CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID (GitLab) or GITHUB_API_URL,
 * GITHUB_REPOSITORY and the pull request of GITHUB_EVENT_PATH (GitHub).
 */
import { readFileSync } from 'node:fs';
import { Gitlab } from '@gitbeaker/rest';
import { Octokit } from '@octokit/rest';
import { z } from 'zod';
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
  action: 'created' | 'updated';
  id: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const NoteSchema = z.array(z.object({ id: z.number(), body: z.string() }).loose());

export async function postStickyComment(body: string, env: Env): Promise<CommentResult> {
  if (env.CI_MERGE_REQUEST_IID && env.CI_API_V4_URL && env.CI_PROJECT_ID) return gitlab(body, env);
  if (env.GITHUB_REPOSITORY) return github(body, env);
  throw new CommentError('--comment needs a merge request pipeline (CI_MERGE_REQUEST_IID, CI_API_V4_URL, CI_PROJECT_ID) or a GitHub pull request run (GITHUB_REPOSITORY, GITHUB_EVENT_PATH)');
}

async function gitlab(body: string, env: Env): Promise<CommentResult> {
  const token = env.PARMANU_COMMENT_TOKEN ?? env.GITLAB_TOKEN;
  if (!token) throw new CommentError('--comment on GitLab needs PARMANU_COMMENT_TOKEN (or GITLAB_TOKEN): a token with api scope on the project');
  const host = (env.CI_API_V4_URL as string).replace(/\/api\/v4\/?$/, '');
  const api = new Gitlab({ host, token });
  const project = env.CI_PROJECT_ID as string;
  const iid = Number(env.CI_MERGE_REQUEST_IID);
  try {
    const notes = NoteSchema.parse(await api.MergeRequestNotes.all(project, iid, { perPage: 100 } as never));
    const mine = notes.find((n) => n.body.includes(COMMENT_MARKER));
    if (mine) {
      await api.MergeRequestNotes.edit(project, iid, mine.id, { body } as never);
      return { platform: 'gitlab', action: 'updated', id: mine.id };
    }
    const created = z.object({ id: z.number() }).loose().parse(await api.MergeRequestNotes.create(project, iid, body));
    return { platform: 'gitlab', action: 'created', id: created.id };
  } catch (err) {
    if (err instanceof CommentError) throw err;
    throw new CommentError(`GitLab merge request !${iid}: ${redact(String((err as Error).message), [token])}`, 'api');
  }
}

function pullNumber(env: Env): number {
  if (env.PARMANU_PR_NUMBER) return Number(env.PARMANU_PR_NUMBER);
  const m = /^refs\/pull\/(\d+)\//.exec(env.GITHUB_REF ?? '');
  if (m) return Number(m[1]);
  if (env.GITHUB_EVENT_PATH) {
    const ev = z.object({ pull_request: z.object({ number: z.number() }).loose() }).loose().safeParse(JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')));
    if (ev.success) return ev.data.pull_request.number;
  }
  throw new CommentError('--comment on GitHub needs a pull_request event (GITHUB_EVENT_PATH), GITHUB_REF refs/pull/N/merge, or PARMANU_PR_NUMBER');
}

async function github(body: string, env: Env): Promise<CommentResult> {
  const token = env.PARMANU_COMMENT_TOKEN ?? env.GITHUB_TOKEN;
  if (!token) throw new CommentError('--comment on GitHub needs GITHUB_TOKEN with pull-requests: write (or PARMANU_COMMENT_TOKEN)');
  const [owner, repo] = (env.GITHUB_REPOSITORY as string).split('/') as [string, string];
  const issue = pullNumber(env);
  const octokit = new Octokit({ auth: token, baseUrl: env.GITHUB_API_URL ?? 'https://api.github.com', log: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined } });
  try {
    const comments = NoteSchema.parse(await octokit.paginate(octokit.rest.issues.listComments, { owner, repo, issue_number: issue, per_page: 100 }));
    const mine = comments.find((c) => c.body.includes(COMMENT_MARKER));
    if (mine) {
      await octokit.rest.issues.updateComment({ owner, repo, comment_id: mine.id, body });
      return { platform: 'github', action: 'updated', id: mine.id };
    }
    const res = await octokit.rest.issues.createComment({ owner, repo, issue_number: issue, body });
    return { platform: 'github', action: 'created', id: res.data.id };
  } catch (err) {
    throw new CommentError(`GitHub pull request #${issue}: ${redact(String((err as Error).message), [token])}`, 'api');
  }
}
