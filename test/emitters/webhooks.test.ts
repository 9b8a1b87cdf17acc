/** Webhook verification (GitHub HMAC signatures, GitLab tokens) and payload reading, as tables. */
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { credentialPlausible, githubSignature, readDelivery, verifyDelivery, verifyGithubSignature, verifyGitlabToken } from '../../src/emitters/webhooks.js';
import { EmitterSchema } from '../../src/policy/schema.js';
import type { EmitterConfig } from '../../src/policy/types.js';

const SECRET = 'It\'s a Secret to Everybody';
const body = Buffer.from('Hello, World!');
// GitHub's documented example: this secret and body give this signature.
const GITHUB_EXAMPLE = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

describe('GitHub signatures (X-Hub-Signature-256)', () => {
  it.each([
    ['GitHub\'s documented example', GITHUB_EXAMPLE, true],
    ['the same in upper-case hex', `sha256=${GITHUB_EXAMPLE.slice('sha256='.length).toUpperCase()}`, true],
    ['one hex digit changed', GITHUB_EXAMPLE.replace(/7$/, '8'), false],
    ['the sha1 form (X-Hub-Signature)', `sha1=${createHmac('sha1', SECRET).update(body).digest('hex')}`, false],
    ['no prefix', GITHUB_EXAMPLE.slice('sha256='.length), false],
    ['too short', GITHUB_EXAMPLE.slice(0, -2), false],
    ['too long', `${GITHUB_EXAMPLE}00`, false],
    ['not hex', `sha256=${'z'.repeat(64)}`, false],
    ['empty', '', false],
    ['absent', undefined, false],
  ])('%s → %s', (_what, header, ok) => {
    expect(verifyGithubSignature(SECRET, body, header)).toBe(ok);
  });

  it('signs what it verifies, and a signature is for one body and one secret', () => {
    expect(githubSignature(SECRET, body)).toBe(GITHUB_EXAMPLE);
    expect(verifyGithubSignature(SECRET, Buffer.from('Hello, World?'), GITHUB_EXAMPLE)).toBe(false);
    expect(verifyGithubSignature(`${SECRET}!`, body, GITHUB_EXAMPLE)).toBe(false);
  });
});

describe('GitLab tokens (X-Gitlab-Token)', () => {
  it.each([
    ['the secret', SECRET, true],
    ['a prefix of it', SECRET.slice(0, -1), false],
    ['it and more', `${SECRET}x`, false],
    ['another case', SECRET.toUpperCase(), false],
    ['empty', '', false],
    ['absent', undefined, false],
  ])('%s → %s', (_what, header, ok) => {
    expect(verifyGitlabToken(SECRET, header)).toBe(ok);
  });

  it('verifyDelivery reads the header of the emitter kind', () => {
    expect(verifyDelivery('gitlab', SECRET, { 'x-gitlab-token': SECRET }, body)).toBe(true);
    expect(verifyDelivery('gitlab', SECRET, { 'x-hub-signature-256': GITHUB_EXAMPLE }, body)).toBe(false);
    expect(verifyDelivery('github', SECRET, { 'x-hub-signature-256': GITHUB_EXAMPLE }, body)).toBe(true);
    expect(verifyDelivery('github', SECRET, { 'x-gitlab-token': SECRET }, body)).toBe(false);
  });
});

describe('the credential header, before the body is read', () => {
  it.each<[string, 'github' | 'gitlab', Record<string, string>, boolean]>([
    ['a GitHub signature header of the right form (whatever body it signs)', 'github', { 'x-hub-signature-256': GITHUB_EXAMPLE.replace(/7$/, '8') }, true],
    ['a GitHub signature header in upper-case hex', 'github', { 'x-hub-signature-256': GITHUB_EXAMPLE.toUpperCase().replace('SHA256=', 'sha256=') }, true],
    ['no GitHub signature header', 'github', {}, false],
    ['only the sha1 header', 'github', { 'x-hub-signature': `sha1=${'0'.repeat(40)}` }, false],
    ['a GitHub signature too short', 'github', { 'x-hub-signature-256': GITHUB_EXAMPLE.slice(0, -1) }, false],
    ['a GitHub signature that is not hex', 'github', { 'x-hub-signature-256': `sha256=${'g'.repeat(64)}` }, false],
    ['the GitLab token', 'gitlab', { 'x-gitlab-token': SECRET }, true],
    ['a wrong GitLab token', 'gitlab', { 'x-gitlab-token': `${SECRET}x` }, false],
    ['no GitLab token', 'gitlab', {}, false],
  ])('%s → %s', (_what, kind, headers, ok) => {
    expect(credentialPlausible(kind, SECRET, headers)).toBe(ok);
  });
});

const emitter = (e: Record<string, unknown>): EmitterConfig => ({ ...EmitterSchema.parse(e), name: 'ci', concurrency: 4, probeIntervalMs: 30_000, requestTimeoutMs: 10_000 }) as EmitterConfig;
const github = emitter({ type: 'github', owner: 'acme', repos: ['api', 'web'], token: '${env:T}', webhook: { secret: '${env:S}' } });
const gitlab = emitter({ type: 'gitlab', url: 'https://gitlab.example.com', token: '${env:T}', projects: ['platform/api', '1234'], groups: ['tools'], runnerOwner: 'instance', webhook: { secret: '${env:S}' } });
const NOW = Date.parse('2026-11-30T10:00:00Z');

/** A workflow_job delivery as GitHub sends it (the fields read, and a few others). */
function workflowJob(action: string, extra: Record<string, unknown> = {}, job: Record<string, unknown> = {}) {
  return {
    action,
    workflow_job: { id: 29679449, run_id: 10921465, run_attempt: 1, status: action === 'completed' ? 'completed' : action, conclusion: null, labels: ['self-hosted', 'linux'], created_at: '2026-11-30T09:59:50Z', started_at: '2026-11-30T09:59:50Z', runner_id: null, runner_name: null, name: 'build', steps: [], ...job },
    repository: { id: 1, name: 'api', full_name: 'acme/api', owner: { login: 'acme', id: 2 } },
    organization: { login: 'acme' },
    sender: { login: 'octocat' },
    ...extra,
  };
}

/** A Job Hook delivery as GitLab sends it (docs' example fields). */
function jobHook(status: string, extra: Record<string, unknown> = {}) {
  return {
    object_kind: 'build', ref: 'main', tag: false, before_sha: '0'.repeat(40), sha: '2293ada6b400935a1378653304eaf6221e0fdb8f', retries_count: 0,
    build_id: 1977, build_name: 'test', build_stage: 'test', build_status: status, build_created_at: '2026-11-30 09:59:40 UTC', build_started_at: null, build_finished_at: null,
    build_duration: null, build_queued_duration: 1.5, build_allow_failure: false, build_failure_reason: 'unknown_failure', pipeline_id: 2366, runner: null,
    project_id: 380, project_name: 'Platform / API', user: { id: 3, name: 'User' }, commit: { id: 2366, sha: '2293ada6', status: 'created' },
    repository: { name: 'api', homepage: 'https://gitlab.example.com/platform/api' },
    project: { id: 380, path_with_namespace: 'platform/api' }, environment: null,
    tags: ['linux', 'docker'],
    ...extra,
  };
}

const gh = (event: string, payload: unknown, delivery = '72d3162e-cc78-11e3-81ab-4c9367dc0958') => ({ headers: { 'x-github-event': event, 'x-github-delivery': delivery }, body: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)) });
const gl = (event: string, payload: unknown, delivery: string | undefined = 'b3c1a3a4-5d4e-4a1c-9a2f-3b0a8d1e2f10') => ({ headers: { 'x-gitlab-event': event, ...(delivery ? { 'x-gitlab-event-uuid': delivery } : {}) }, body: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)) });

describe('reading GitHub deliveries', () => {
  it.each<[string, { headers: Record<string, string>; body: Buffer }, Record<string, unknown>]>([
    ['a queued job', gh('workflow_job', workflowJob('queued')), { type: 'job', delivery: '72d3162e-cc78-11e3-81ab-4c9367dc0958', labelsKnown: true, action: 'queued', job: { id: '29679449', labels: ['self-hosted', 'linux'], status: 'queued', queuedAt: Date.parse('2026-11-30T09:59:50Z') } }],
    ['a job in progress', gh('workflow_job', workflowJob('in_progress', {}, { runner_name: 'p-n000' })), { type: 'job', action: 'in_progress', job: { status: 'running', runner: 'p-n000' } }],
    // Neither a finished job nor one held for a deployment approval is a Job to act on (never `running`).
    ['a completed job', gh('workflow_job', workflowJob('completed', {}, { conclusion: 'success', runner_name: 'p-n000' })), { type: 'ignored', reason: 'the job completed' }],
    ['a job waiting for a deployment approval', gh('workflow_job', workflowJob('waiting')), { type: 'ignored', reason: 'the job waits for a deployment approval' }],
    ['an action GitHub may add later', gh('workflow_job', workflowJob('requeued')), { type: 'ignored', reason: 'action requeued is not queued or in_progress' }],
    ['a ping', gh('ping', { zen: 'Design for failure.', hook_id: 1 }), { type: 'ignored', ping: true }],
    ['another event', gh('push', { ref: 'refs/heads/main' }), { type: 'ignored', reason: 'event push is not workflow_job' }],
    ['no event header', { headers: {}, body: Buffer.from('{}') }, { type: 'ignored' }],
    ['a repository of another owner', gh('workflow_job', workflowJob('queued', { repository: { name: 'api', owner: { login: 'evil' } } })), { type: 'ignored', reason: 'a repository of another owner' }],
    ['a repository the emitter does not read', gh('workflow_job', workflowJob('queued', { repository: { name: 'docs', owner: { login: 'ACME' } } })), { type: 'ignored', reason: 'a repository the emitter does not read' }],
    ['not JSON', gh('workflow_job', '{"action": "queued",'), { type: 'malformed', reason: 'the body is not JSON' }],
    ['JSON of another shape', gh('workflow_job', { action: 'queued', workflow_job: { id: 'seven' } }), { type: 'malformed' }],
    ['labels that are not strings', gh('workflow_job', workflowJob('queued', {}, { labels: [1, 2] })), { type: 'malformed' }],
    ['no delivery header: the job and its action stand in', { headers: { 'x-github-event': 'workflow_job' }, body: Buffer.from(JSON.stringify(workflowJob('queued'))) }, { type: 'job', delivery: 'job-29679449-queued' }],
    ['a delivery id with control characters', gh('workflow_job', workflowJob('queued'), 'abc\u0007def'), { type: 'malformed' }],
    ['an overlong delivery id', gh('workflow_job', workflowJob('queued'), 'x'.repeat(201)), { type: 'malformed' }],
  ])('%s', (_what, d, expected) => {
    expect(readDelivery(github, d.headers, d.body, NOW)).toMatchObject(expected);
  });
});

describe('reading GitLab deliveries', () => {
  it.each<[string, { headers: Record<string, string>; body: Buffer }, Record<string, unknown>]>([
    ['a pending job (queued), its tags known', gl('Job Hook', jobHook('pending')), { type: 'job', delivery: 'b3c1a3a4-5d4e-4a1c-9a2f-3b0a8d1e2f10', labelsKnown: true, action: 'pending', job: { id: '1977', labels: ['linux', 'docker'], status: 'queued', queuedAt: Date.parse('2026-11-30T09:59:40Z') } }],
    ['a pending job without tags in the payload (older GitLab): labels unknown', gl('Job Hook', { ...jobHook('pending'), tags: undefined }), { type: 'job', labelsKnown: false, job: { labels: [], status: 'queued' } }],
    ['an untagged job', gl('Job Hook', jobHook('pending', { tags: [] })), { type: 'job', labelsKnown: true, job: { labels: [] } }],
    ['a created job (upcoming)', gl('Job Hook', jobHook('created')), { type: 'job', job: { status: 'upcoming' } }],
    ['a running job', gl('Job Hook', jobHook('running', { build_started_at: '2026-11-30T10:00:00.000Z' })), { type: 'job', job: { status: 'running', startedAt: NOW } }],
    // A finished (or canceled, skipped, manual) job is no Job to act on (never `running`).
    ['a finished job', gl('Job Hook', jobHook('success')), { type: 'ignored', reason: 'the job is success' }],
    ['a canceled job', gl('Job Hook', jobHook('canceled')), { type: 'ignored', reason: 'the job is canceled' }],
    ['a project given by id', gl('Job Hook', jobHook('pending', { project_id: 1234, project: { path_with_namespace: 'other/thing' } })), { type: 'job' }],
    ['a project below a group', gl('Job Hook', jobHook('pending', { project_id: 9, project: { path_with_namespace: 'tools/sub/x' } })), { type: 'job' }],
    ['a project the emitter does not read', gl('Job Hook', jobHook('pending', { project_id: 9, project: { path_with_namespace: 'toolsmith/x' } })), { type: 'ignored', reason: 'a project the emitter does not read' }],
    ['a pipeline event', gl('Pipeline Hook', { object_kind: 'pipeline' }), { type: 'ignored', reason: 'event Pipeline Hook is not Job Hook' }],
    ['not JSON', gl('Job Hook', 'object_kind=build'), { type: 'malformed', reason: 'the body is not JSON' }],
    ['another object kind', gl('Job Hook', { ...jobHook('pending'), object_kind: 'pipeline' }), { type: 'malformed' }],
    ['no build id', gl('Job Hook', { ...jobHook('pending'), build_id: undefined }), { type: 'malformed' }],
    ['no delivery header: the job and its status stand in', gl('Job Hook', jobHook('pending'), ''), { type: 'job', delivery: 'job-1977-pending' }],
  ])('%s', (_what, d, expected) => {
    expect(readDelivery(gitlab, d.headers, d.body, NOW)).toMatchObject(expected);
  });
});
