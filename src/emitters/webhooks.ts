/**
 * Webhook events of the CI platforms, verified and read into a Job (what `decide/match.ts`
 * matches against pools). Everything here is untrusted input: nothing is read before the
 * signature or token was checked, every body is parsed with zod, and nothing of the secret or of
 * the body reaches a message.
 *
 * - GitHub `workflow_job` (`X-GitHub-Event`): `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of
 *   the raw body with the webhook's secret. `action` is `queued`, `in_progress`, `completed` (also
 *   `waiting`: held by a deployment protection rule); only `queued` and `in_progress` are read into
 *   a Job, the others are ignored; `workflow_job.labels` are the job's `runs-on` labels; `ping` is GitHub's test
 *   delivery. The delivery id is `X-GitHub-Delivery`.
 * - GitLab job events (`X-Gitlab-Event: Job Hook`, `object_kind: build`): `X-Gitlab-Token` is the
 *   webhook's secret token itself. `build_status` is `created`, `pending` (queued), `running`, then
 *   a final status; the job's tags are the top-level `tags` where GitLab sends them (newer
 *   versions), else unknown (the event then wakes every pool of the emitter: the probe decides).
 *   `runner.tags` are the tags of the runner that took it, not the job's, and are not used. The
 *   delivery id is `X-Gitlab-Event-UUID`.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Job } from '../decide/types.js';
import type { EmitterConfig } from '../policy/types.js';

export type WebhookKind = 'github' | 'gitlab';
export type Headers = Readonly<Record<string, string | string[] | undefined>>;

/** Longest delivery id accepted (history's DELIVERY_ID_MAX). */
export const MAX_DELIVERY_ID = 200;

/** What a verified, parsed delivery means. */
export type WebhookEvent =
  /** A job event: `job.status` queued (GitHub `queued`, GitLab `pending`) is the one that wakes a cycle. */
  | { type: 'job'; delivery: string; job: Job; labelsKnown: boolean; action: string }
  /** Verified but nothing to do (a ping, another event, a job outside the emitter's scope); `reason` for the log. */
  | { type: 'ignored'; delivery: string | undefined; reason: string; ping?: boolean }
  /** Verified, but the body is not JSON or not the event's shape (400). */
  | { type: 'malformed'; reason: string };

const one = (h: Headers, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** Constant time, whatever the lengths: both sides are hashed to 32 bytes first. */
function sameSecret(a: string | Buffer, b: string | Buffer): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;

/**
 * Whether a delivery's credential header can be right before its body is read: GitLab's token is
 * the secret itself (checked in full here), GitHub's signature must at least be `sha256=<64 hex>`.
 * A delivery failing this is refused without reading its body.
 */
export function credentialPlausible(kind: WebhookKind, secret: string, headers: Headers): boolean {
  return kind === 'github' ? SIGNATURE.test(one(headers, 'x-hub-signature-256')?.trim() ?? '') : verifyGitlabToken(secret, one(headers, 'x-gitlab-token'));
}

/** GitHub: `sha256=<64 hex>` is the HMAC-SHA256 of the raw body with the secret. */
export function verifyGithubSignature(secret: string, body: Buffer, header: string | undefined): boolean {
  const m = SIGNATURE.exec(header?.trim() ?? '');
  const expected = createHmac('sha256', secret).update(body).digest();
  // A missing or misshapen header is compared too (with a value that cannot match), so that it costs the same.
  const given = m ? Buffer.from(m[1] as string, 'hex') : Buffer.alloc(32);
  return timingSafeEqual(expected, given) && m !== null;
}

/** GitLab: `X-Gitlab-Token` is the secret token itself. */
export function verifyGitlabToken(secret: string, header: string | undefined): boolean {
  return sameSecret(secret, header ?? '') && header !== undefined;
}

/** The signature header GitHub sends for `body` (emulators, tests and the bench sign with it). */
export function githubSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Checks the delivery's credential for the emitter's kind. */
export function verifyDelivery(kind: WebhookKind, secret: string, headers: Headers, body: Buffer): boolean {
  return kind === 'github' ? verifyGithubSignature(secret, body, one(headers, 'x-hub-signature-256')) : verifyGitlabToken(secret, one(headers, 'x-gitlab-token'));
}

// ---------------------------------------------------------------- payloads

const time = z.string().nullish();
/** The fields of a `workflow_job` event Parmanu reads (GitHub sends many more). */
export const GithubWorkflowJobEvent = z.object({
  action: z.string().min(1),
  workflow_job: z.object({
    id: z.number().int().nonnegative(),
    run_id: z.number().int().nonnegative(),
    status: z.string().optional(),
    labels: z.array(z.string()),
    created_at: time,
    started_at: time,
    runner_name: z.string().nullish(),
  }),
  repository: z.object({ name: z.string(), owner: z.object({ login: z.string() }) }).optional(),
  organization: z.object({ login: z.string() }).optional(),
});

/** The fields of a GitLab Job Hook event Parmanu reads. */
export const GitlabJobEvent = z.object({
  object_kind: z.literal('build'),
  build_id: z.number().int().nonnegative(),
  build_status: z.string().min(1),
  build_created_at: time,
  build_started_at: time,
  project_id: z.number().int().nonnegative(),
  /** The job's own tags (newer GitLab versions); absent: unknown. */
  tags: z.array(z.string()).optional(),
  project: z.object({ path_with_namespace: z.string() }).partial().optional(),
  runner: z.object({ description: z.string().nullish() }).partial().nullish(),
});

/** GitLab's timestamps are ISO-8601 (`2021-02-23T02:41:37.886Z`) or `2021-02-23 02:41:37 UTC`. */
function parseTime(text: string | null | undefined, fallback: number): number {
  if (!text) return fallback;
  const t = Date.parse(text.replace(/^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC$/, '$1T$2Z'));
  return Number.isNaN(t) ? fallback : t;
}

function json(body: Buffer): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) as unknown };
  } catch {
    return { ok: false };
  }
}

const issue = (e: z.ZodError) => {
  const i = e.issues[0];
  return i ? `${i.path.join('.') || 'body'}: ${i.message}` : 'not the expected shape';
};

/**
 * Reads a delivery whose credential was verified. `now` dates a job without a creation time.
 * The emitter's scope (GitHub owner and repos, GitLab projects and groups) is checked where the
 * event names it; an event outside it is ignored.
 */
export function readDelivery(emitter: EmitterConfig, headers: Headers, body: Buffer, now: number): WebhookEvent {
  const kind = emitter.type;
  if (kind !== 'github' && kind !== 'gitlab') return { type: 'ignored', delivery: undefined, reason: `emitter type ${kind} has no webhooks` };
  const delivery = one(headers, kind === 'github' ? 'x-github-delivery' : 'x-gitlab-event-uuid')?.trim() || undefined;
  if (delivery !== undefined && (delivery.length > MAX_DELIVERY_ID || !/^[\x21-\x7e]+$/.test(delivery))) return { type: 'malformed', reason: 'the delivery id is not printable ASCII of at most 200 characters' };
  if (kind === 'github') {
    const event = one(headers, 'x-github-event') ?? '';
    if (event === 'ping') return { type: 'ignored', delivery, reason: 'ping', ping: true };
    if (event !== 'workflow_job') return { type: 'ignored', delivery, reason: `event ${event || '(none)'} is not workflow_job` };
    const j = json(body);
    if (!j.ok) return { type: 'malformed', reason: 'the body is not JSON' };
    const p = GithubWorkflowJobEvent.safeParse(j.value);
    if (!p.success) return { type: 'malformed', reason: `not a workflow_job event (${issue(p.error)})` };
    const { action, workflow_job: wj, repository } = p.data;
    if (emitter.type === 'github' && repository) {
      if (repository.owner.login.toLowerCase() !== emitter.owner.toLowerCase()) return { type: 'ignored', delivery, reason: 'a repository of another owner' };
      if (emitter.repos && !emitter.repos.some((r) => r.toLowerCase() === repository.name.toLowerCase())) return { type: 'ignored', delivery, reason: 'a repository the emitter does not read' };
    }
    // `queued`: waits for a runner; `in_progress`: a runner has it. `completed` is a finished job and
    // `waiting` one held by a deployment protection rule (not yet runnable): neither is a Job to act on.
    if (action === 'completed') return { type: 'ignored', delivery, reason: 'the job completed' };
    if (action === 'waiting') return { type: 'ignored', delivery, reason: 'the job waits for a deployment approval' };
    if (action !== 'queued' && action !== 'in_progress') return { type: 'ignored', delivery, reason: `action ${action} is not queued or in_progress` };
    const status: Job['status'] = action === 'queued' ? 'queued' : 'running';
    const job: Job = { id: String(wj.id), labels: wj.labels, status, queuedAt: parseTime(wj.created_at, now), ...(wj.started_at ? { startedAt: parseTime(wj.started_at, now) } : {}), ...(wj.runner_name ? { runner: wj.runner_name } : {}) };
    return { type: 'job', delivery: delivery ?? `job-${wj.id}-${action}`, job, labelsKnown: true, action };
  }
  const event = one(headers, 'x-gitlab-event') ?? '';
  if (event !== 'Job Hook') return { type: 'ignored', delivery, reason: `event ${event || '(none)'} is not Job Hook` };
  const j = json(body);
  if (!j.ok) return { type: 'malformed', reason: 'the body is not JSON' };
  const p = GitlabJobEvent.safeParse(j.value);
  if (!p.success) return { type: 'malformed', reason: `not a job event (${issue(p.error)})` };
  const e = p.data;
  if (emitter.type === 'gitlab' && !gitlabInScope(emitter, e.project_id, e.project?.path_with_namespace)) return { type: 'ignored', delivery, reason: 'a project the emitter does not read' };
  // `pending`: waits for a runner; `created`: waits on earlier stages; `running`: a runner has it.
  // Every other status (success, failed, canceled, skipped, manual, …) is no Job to act on.
  if (!['pending', 'created', 'running'].includes(e.build_status)) return { type: 'ignored', delivery, reason: `the job is ${e.build_status}` };
  const status: Job['status'] = e.build_status === 'pending' ? 'queued' : e.build_status === 'created' ? 'upcoming' : 'running';
  const job: Job = { id: String(e.build_id), labels: e.tags ?? [], status, queuedAt: parseTime(e.build_created_at, now), ...(e.build_started_at ? { startedAt: parseTime(e.build_started_at, now) } : {}) };
  return { type: 'job', delivery: delivery ?? `job-${e.build_id}-${e.build_status}`, job, labelsKnown: e.tags !== undefined, action: e.build_status };
}

/**
 * A project the emitter reads: its id or path among `projects`, or its path below one of `groups`.
 * Without a path in the event (or with a group given by id) it cannot be told: the event counts.
 */
function gitlabInScope(emitter: Extract<EmitterConfig, { type: 'gitlab' }>, id: number, path: string | undefined): boolean {
  const projects = emitter.projects ?? [];
  const groups = emitter.groups ?? [];
  if (projects.some((p) => p === String(id))) return true;
  // A group given by its numeric id cannot be matched against a path.
  if (groups.some((g) => /^\d+$/.test(g))) return true;
  if (path === undefined) return projects.some((p) => !/^\d+$/.test(p)) || groups.length > 0;
  const lower = path.toLowerCase();
  return projects.some((p) => p.toLowerCase() === lower) || groups.some((g) => lower.startsWith(`${g.toLowerCase()}/`));
}
