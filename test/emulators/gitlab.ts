/**
 * A GitLab REST API v4 emulator, from GitLab's public API docs: jobs of projects (`scope[]`),
 * projects of groups (`include_subgroups`), pipeline jobs, runners of groups/projects/instance,
 * `POST /user/runners` (with `maintenance_note`), `GET /runners/:id` (the details: `maintenance_note`,
 * `contacted_at`, which the listings do not carry), `PUT /runners/:id`, `DELETE /runners/:id`,
 * `GET /runners/:id/jobs`; merge request notes (`GET|POST /projects/:id/merge_requests/:iid/notes`,
 * `PUT …/notes/:note_id`) with their `author` (a note is edited only by its author: 403 otherwise)
 * and `system` flag, and `GET /user` (the token's own user). A runner created through the API is `never_contacted` until `connect(name)`
 * (its machine booted and gitlab-runner checked in). Offset
 * pagination with `x-next-page`, `x-total` and `Link`; it also stands in for the public runner release
 * source (`runnerSource()`): gitlab.com's `GET /projects/gitlab-org%2Fgitlab-runner/releases` and the
 * download site's `/<bucket>/v<version>/release.sha256` (`<sha256>  binaries/gitlab-runner-<asset>`),
 * both answered without a token, as the public ones are (a token sent there is recorded in `tokenLeaks`); `RateLimit-*` headers; `PRIVATE-TOKEN` auth
 * with GitLab's error bodies (`{"message": "401 Unauthorized"}`). With `webhook` set, a group or project
 * webhook gets a Job Hook delivery (`X-Gitlab-Token`, `X-Gitlab-Event-UUID`) when a job is added
 * (pending, created, running) or finishes (`jobHook(job)` after a status set by hand);
 * `loseWebhooks` loses the next ones.
 *
 * Pipeline schedules (docs/api/pipeline_schedules.md): `GET /projects/:id/pipeline_schedules`
 * (`scope=active|inactive`; Entities::Ci::PipelineSchedule: no `last_pipeline`), `GET
 * …/pipeline_schedules/:id` (with `last_pipeline`: `id`, `sha`, `ref`, `status`, or null) and `GET
 * …/pipeline_schedules/:id/pipelines` (Entities::Ci::PipelineBasic, `sort=asc|desc`, default asc;
 * `ignoreScheduleSort` answers as a GitLab that predates `sort`, always ascending). `addSchedule`
 * sets `next_run_at` to the cron's next time after the emulator's clock in the schedule's timezone;
 * `runSchedule` is GitLab's schedule worker (or a "Run now"): a pipeline with `source: schedule`
 * and its jobs, the schedule's last pipeline, and — when it ran because it was due — `next_run_at`
 * moved to the cron's next time (`updated_at` with it).
 */
import { Cron } from 'croner';
import { Emulator, paginate, type EmuRequest, type EmuResponse } from './base.js';

export interface GlGroup { id: number; full_path: string; parent_id: number | null }
export interface GlProject { id: number; path_with_namespace: string; namespace_id: number }
export interface GlJob { id: number; project_id: number; pipeline_id: number; status: string; tag_list: string[]; created_at: string; started_at: string | null; runner: { id: number; description: string } | null; name: string }
export interface GlUser { id: number; username: string; name: string }
/** A merge request note as GitLab lists it (the fields Parmanu reads, and the author of every note). */
export interface GlNote { id: number; body: string; author: GlUser; system: boolean }
export interface GlRunner {
  id: number;
  description: string;
  tag_list: string[];
  paused: boolean;
  runner_type: 'instance_type' | 'group_type' | 'project_type';
  group_id?: number;
  project_id?: number;
  /** A runner created through the API stays `never_contacted` until its machine connects (`connect`). */
  status: 'online' | 'offline' | 'never_contacted';
  run_untagged: boolean;
  /** Shown only by GET /runners/:id (GitLab ≥ 16.10), never in the listings. */
  maintenance_note?: string | null;
  contacted_at?: string | null;
}

/** A pipeline schedule as GitLab keeps it (the API shows `last_pipeline` only for one schedule). */
export interface GlSchedule {
  id: number;
  project_id: number;
  description: string;
  ref: string;
  cron: string;
  cron_timezone: string;
  next_run_at: string | null;
  active: boolean;
  created_at: string;
  updated_at: string;
  last_pipeline_id: number | null;
}
/** A pipeline (the fields of Entities::Ci::PipelineBasic); `schedule_id` when a schedule made it. */
export interface GlPipeline { id: number; iid: number; project_id: number; status: string; source: string; ref: string; sha: string; created_at: string; updated_at: string; schedule_id?: number }

/** A gitlab-runner release: its version (no `v`) and the SHA-256 of each binary by asset (`linux-amd64`, …). */
export interface GlRunnerRelease { version: string; sha256: Record<string, string> }

const RELEASES = /^\/api\/v4\/projects\/gitlab-org%2Fgitlab-runner\/releases$/;
const DOWNLOADS = /^\/gitlab-runner-downloads\/v([^/]+)\/release\.sha256$/;

export class GitlabEmulator extends Emulator {
  token = 'emulated-gitlab-token-0000000';
  /** gitlab-runner releases, in the order they were published. */
  runnerReleases: GlRunnerRelease[] = [];
  /** Requests to the public release source that carried the API token (must stay empty). */
  readonly tokenLeaks: string[] = [];
  groups: GlGroup[] = [];
  projects: GlProject[] = [];
  jobs: GlJob[] = [];
  runners: GlRunner[] = [];
  rateLimitRemaining = 2000;
  /** The user the API token belongs to (GET /user; the author of the notes it writes). */
  user: GlUser = { id: 7, username: 'parmanu-bot', name: 'Parmanu' };
  /** Merge request notes: `${project}/${iid}` → notes. */
  notes = new Map<string, GlNote[]>();
  schedules: GlSchedule[] = [];
  pipelines: GlPipeline[] = [];
  /** Answer schedule pipelines oldest first whatever `sort` says (a GitLab before `sort` was added). */
  ignoreScheduleSort = false;
  /** The emulator's clock (schedules' `next_run_at`, pipelines' times); tests may move it. */
  clock: () => number = Date.now;
  private nextId = 1000;

  constructor() {
    super();
    const api = '/api/v4';
    this.route('GET', new RegExp(`^${api}/groups/([^/]+)$`), (r) => this.withGroup(r, (g) => ({ status: 200, body: g })));
    this.route('GET', new RegExp(`^${api}/groups/([^/]+)/projects$`), (r) =>
      this.withGroup(r, (g) => {
        const sub = r.query.get('include_subgroups') === 'true';
        const ids = new Set([g.id, ...(sub ? this.descendants(g.id) : [])]);
        return this.page(r, this.projects.filter((p) => ids.has(p.namespace_id)));
      }),
    );
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/jobs$`), (r) =>
      this.withProject(r, (p) => {
        const scopes = r.query.getAll('scope[]');
        return this.page(r, this.jobs.filter((j) => j.project_id === p.id && (scopes.length === 0 || scopes.includes(j.status))).map((j) => this.jobBody(j)));
      }),
    );
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/pipelines/(\\d+)/jobs$`), (r) =>
      this.withProject(r, (p) => {
        const scopes = r.query.getAll('scope[]');
        return this.page(r, this.jobs.filter((j) => j.project_id === p.id && j.pipeline_id === Number(r.params[1]) && (scopes.length === 0 || scopes.includes(j.status))).map((j) => this.jobBody(j)));
      }),
    );
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/pipeline_schedules$`), (r) =>
      this.withProject(r, (p) => {
        const scope = r.query.get('scope');
        if (scope !== null && scope !== 'active' && scope !== 'inactive') return { status: 400, body: { error: 'scope does not have a valid value' } };
        return this.page(r, this.schedules.filter((x) => x.project_id === p.id && (scope === null || x.active === (scope === 'active'))).map((x) => this.scheduleBody(x)));
      }),
    );
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/pipeline_schedules/(\\d+)$`), (r) =>
      this.withProject(r, (p) => {
        const x = this.schedules.find((y) => y.project_id === p.id && y.id === Number(r.params[1]));
        if (!x) return { status: 404, body: { message: '404 Pipeline Schedule Not Found' } };
        const last = this.pipelines.find((y) => y.id === x.last_pipeline_id);
        return { status: 200, body: { ...this.scheduleBody(x), last_pipeline: last ? { id: last.id, sha: last.sha, ref: last.ref, status: last.status } : null, variables: [] } };
      }),
    );
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/pipeline_schedules/(\\d+)/pipelines$`), (r) =>
      this.withProject(r, (p) => {
        const x = this.schedules.find((y) => y.project_id === p.id && y.id === Number(r.params[1]));
        if (!x) return { status: 404, body: { message: '404 Pipeline Schedule Not Found' } };
        const sort = r.query.get('sort') ?? 'asc';
        if (sort !== 'asc' && sort !== 'desc') return { status: 400, body: { error: 'sort does not have a valid value' } };
        const runs = this.pipelines.filter((y) => y.schedule_id === x.id).sort((a, b) => (sort === 'desc' && !this.ignoreScheduleSort ? b.id - a.id : a.id - b.id));
        return this.page(r, runs.map(({ schedule_id: _, ...basic }) => ({ ...basic, web_url: `${this.url}/pipelines/${basic.id}` })));
      }),
    );
    this.route('GET', new RegExp(`^${api}/groups/([^/]+)/runners$`), (r) => this.withGroup(r, (g) => this.page(r, this.runners.filter((x) => x.group_id === g.id).map((x) => this.runnerBody(x)))));
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/runners$`), (r) => this.withProject(r, (p) => this.page(r, this.runners.filter((x) => x.project_id === p.id).map((x) => this.runnerBody(x)))));
    this.route('GET', new RegExp(`^${api}/runners/all$`), (r) => this.page(r, this.runners.filter((x) => !r.query.get('type') || x.runner_type === r.query.get('type')).map((x) => this.runnerBody(x))));
    this.route('POST', new RegExp(`^${api}/user/runners$`), (r) => this.createRunner(r));
    this.route('GET', new RegExp(`^${api}/runners/(\\d+)$`), (r) => {
      const runner = this.runners.find((x) => x.id === Number(r.params[0]));
      if (!runner) return { status: 404, body: { message: '404 Not found' } };
      return { status: 200, body: this.runnerDetails(runner) };
    });
    this.route('PUT', new RegExp(`^${api}/runners/(\\d+)$`), (r) => {
      const runner = this.runners.find((x) => x.id === Number(r.params[0]));
      if (!runner) return { status: 404, body: { message: '404 Not found' } };
      this.touch(runner.description, r);
      const b = (r.body ?? {}) as Record<string, unknown>;
      if (b.paused !== undefined) runner.paused = b.paused === true || b.paused === 'true';
      return { status: 200, body: this.runnerBody(runner) };
    });
    this.route('DELETE', new RegExp(`^${api}/runners/(\\d+)$`), (r) => {
      const i = this.runners.findIndex((x) => x.id === Number(r.params[0]));
      if (i < 0) return { status: 404, body: { message: '404 Not found' } };
      const runner = this.runners[i] as GlRunner;
      this.touch(runner.description, r);
      this.recordRemoval(runner.description, this.jobs.filter((j) => j.status === 'running' && j.runner?.id === runner.id).map((j) => String(j.id)));
      this.runners.splice(i, 1);
      return { status: 204 };
    });
    this.route('GET', new RegExp(`^${api}/projects/([^/]+)/merge_requests/(\\d+)/notes$`), (r) => this.withProject(r, (p) => this.page(r, this.notes.get(`${p.id}/${r.params[1]}`) ?? [])));
    this.route('POST', new RegExp(`^${api}/projects/([^/]+)/merge_requests/(\\d+)/notes$`), (r) =>
      this.withProject(r, (p) => {
        const body = String((r.body as { body?: string } | undefined)?.body ?? '');
        if (!body) return { status: 400, body: { message: { body: ["can't be blank"] } } };
        const key = `${p.id}/${r.params[1]}`;
        const note: GlNote = { id: this.nextId++, body, author: { ...this.user }, system: false };
        this.notes.set(key, [...(this.notes.get(key) ?? []), note]);
        return { status: 201, body: note };
      }),
    );
    this.route('PUT', new RegExp(`^${api}/projects/([^/]+)/merge_requests/(\\d+)/notes/(\\d+)$`), (r) =>
      this.withProject(r, (p) => {
        const note = (this.notes.get(`${p.id}/${r.params[1]}`) ?? []).find((n) => n.id === Number(r.params[2]));
        if (!note) return { status: 404, body: { message: '404 Note Not Found' } };
        if (note.author.id !== this.user.id) return { status: 403, body: { message: '403 Forbidden' } };
        note.body = String((r.body as { body?: string } | undefined)?.body ?? note.body);
        return { status: 200, body: note };
      }),
    );
    this.route('GET', RELEASES, (r) => this.page(r, [...this.runnerReleases].reverse().map((x) => ({ name: `v${x.version}`, tag_name: `v${x.version}`, description: `See [the changelog](https://gitlab.com/gitlab-org/gitlab-runner/blob/v${x.version}/CHANGELOG.md)`, released_at: new Date().toISOString(), upcoming_release: false }))));
    this.route('GET', DOWNLOADS, (r) => {
      const rel = this.runnerReleases.find((x) => x.version === r.params[0]);
      if (!rel) return { status: 404, headers: { 'content-type': 'application/xml' }, body: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>' };
      const files = Object.entries(rel.sha256).map(([asset, sum]) => `${sum}  binaries/gitlab-runner-${asset}${asset.startsWith('windows-') ? '.exe' : ''}`);
      const deb = `${'0'.repeat(63)}1  deb/gitlab-runner_${rel.version}_amd64.deb`;
      return { status: 200, headers: { 'content-type': 'binary/octet-stream' }, body: [deb, ...files, `${'f'.repeat(64)}  index.html`, ''].join('\n') };
    });
    this.route('GET', new RegExp(`^${api}/user$`), () => ({ status: 200, body: { ...this.user, state: 'active', locked: false, bot: false } }));
    this.route('GET', new RegExp(`^${api}/runners/(\\d+)/jobs$`), (r) => {
      const runner = this.runners.find((x) => x.id === Number(r.params[0]));
      if (!runner) return { status: 404, body: { message: '404 Not found' } };
      const status = r.query.get('status');
      return this.page(r, this.jobs.filter((j) => j.runner?.id === runner.id && (!status || j.status === status)).map((j) => this.jobBody(j)));
    });
  }

  /** The public runner release source's base URLs on this emulator (GitlabEmitter's runnerSource). */
  runnerSource(): { api: string; project: string; downloads: string } {
    return { api: `${this.url}/api/v4`, project: 'gitlab-org/gitlab-runner', downloads: `${this.url}/gitlab-runner-downloads` };
  }

  protected authorize(req: EmuRequest): EmuResponse | undefined {
    if (RELEASES.test(req.path) || DOWNLOADS.test(req.path)) {
      if (req.headers['private-token'] !== undefined || req.headers.authorization !== undefined) this.tokenLeaks.push(`${req.method} ${req.path}`);
      return undefined;
    }
    if (req.headers['private-token'] !== this.token) return { status: 401, body: { message: '401 Unauthorized' } };
    this.rateLimitRemaining = Math.max(0, this.rateLimitRemaining - 1);
    return undefined;
  }

  protected override commonHeaders(): Record<string, string> {
    return { 'ratelimit-limit': '2000', 'ratelimit-remaining': String(this.rateLimitRemaining), 'ratelimit-reset': String(Math.floor(Date.now() / 1000) + 60) };
  }

  // ------------------------------------------------------------------ state helpers for tests
  addGroup(full_path: string, parent?: GlGroup): GlGroup {
    const g = { id: this.nextId++, full_path: parent ? `${parent.full_path}/${full_path}` : full_path, parent_id: parent?.id ?? null };
    this.groups.push(g);
    return g;
  }
  addProject(name: string, group: GlGroup): GlProject {
    const p = { id: this.nextId++, path_with_namespace: `${group.full_path}/${name}`, namespace_id: group.id };
    this.projects.push(p);
    return p;
  }
  addJob(project: GlProject, status: string, tags: string[], extra: Partial<GlJob> = {}): GlJob {
    const j: GlJob = { id: this.nextId++, project_id: project.id, pipeline_id: extra.pipeline_id ?? 1, status, tag_list: tags, created_at: new Date(Date.now() - 60_000).toISOString(), started_at: status === 'running' ? new Date().toISOString() : null, runner: null, name: `job-${this.nextId}`, ...extra };
    this.jobs.push(j);
    this.jobHook(j);
    return j;
  }
  /** The job's tags go in the Job Hook payload's `tags` (newer GitLab versions); false: left out, as older versions do. */
  webhookJobTags = true;
  /** The Job Hook delivery GitLab makes when a job's status changes (`X-Gitlab-Token`: the webhook's secret token). */
  jobHook(j: GlJob): void {
    if (!this.webhook) return;
    const project = this.projects.find((p) => p.id === j.project_id);
    const runner = j.runner ? this.runners.find((r) => r.id === j.runner?.id) : undefined;
    const gitlabTime = (iso: string | null) => (iso ? `${iso.slice(0, 19).replace('T', ' ')} UTC` : null);
    const payload = {
      object_kind: 'build', ref: 'main', tag: false, before_sha: '0'.repeat(40), sha: 'f'.repeat(40), retries_count: 0,
      build_id: j.id, build_name: j.name, build_stage: 'test', build_status: j.status, build_created_at: gitlabTime(j.created_at), build_started_at: gitlabTime(j.started_at), build_finished_at: null,
      build_created_at_iso: j.created_at, build_started_at_iso: j.started_at, build_finished_at_iso: null, build_duration: null, build_queued_duration: 1.2, build_allow_failure: false, build_failure_reason: 'unknown_failure',
      pipeline_id: j.pipeline_id, runner: runner ? { id: runner.id, description: runner.description, runner_type: runner.runner_type, active: !runner.paused, is_shared: runner.runner_type === 'instance_type', tags: runner.tag_list } : null,
      project_id: j.project_id, project_name: project?.path_with_namespace.split('/').join(' / ') ?? '', user: { id: 3, name: 'User', username: 'user', avatar_url: null, email: '[REDACTED]' },
      commit: { id: j.pipeline_id, name: null, sha: 'f'.repeat(40), message: 'test\n', author_name: 'User', author_email: '[REDACTED]', author_url: `${this.url}/user`, status: 'running', duration: null, started_at: null, finished_at: null },
      repository: { name: project?.path_with_namespace.split('/').at(-1) ?? '', url: '', description: '', homepage: `${this.url}/${project?.path_with_namespace ?? ''}`, git_http_url: '', git_ssh_url: '', visibility_level: 0 },
      project: { id: j.project_id, name: project?.path_with_namespace.split('/').at(-1) ?? '', web_url: `${this.url}/${project?.path_with_namespace ?? ''}`, path_with_namespace: project?.path_with_namespace ?? '', default_branch: 'main', ci_config_path: '' },
      environment: null,
      ...(this.webhookJobTags ? { tags: j.tag_list } : {}),
    };
    this.sendWebhook('Job Hook', payload, (_body, id, secret) => ({ 'user-agent': 'GitLab/17.6.0', 'x-gitlab-event': 'Job Hook', 'x-gitlab-token': secret, 'x-gitlab-event-uuid': id, 'x-gitlab-webhook-uuid': '0b6a3c8e-4f0d-4c55-9a7e-2f1f4f6c7d10', 'x-gitlab-instance': this.url }));
  }
  /** A pipeline schedule of the project, due at its cron's next time after the emulator's clock (or at `next_run_at` when given). */
  addSchedule(project: GlProject, s: { description: string; cron: string; cron_timezone?: string; active?: boolean; ref?: string; next_run_at?: string }): GlSchedule {
    const at = new Date(this.clock()).toISOString();
    const x: GlSchedule = { id: this.nextId++, project_id: project.id, description: s.description, ref: s.ref ?? 'refs/heads/main', cron: s.cron, cron_timezone: s.cron_timezone ?? 'UTC', next_run_at: null, active: s.active ?? true, created_at: at, updated_at: at, last_pipeline_id: null };
    x.next_run_at = s.next_run_at ?? this.nextCronTime(x, this.clock());
    this.schedules.push(x);
    return x;
  }
  /**
   * The schedule runs (GitLab's schedule worker when it is due, or "Run now" with `due: false`): a
   * pipeline with `source: schedule` whose jobs have these tags (pending unless a status is given),
   * the schedule's last pipeline; a due run moves `next_run_at` to the cron's next time.
   */
  runSchedule(x: GlSchedule, jobs: Array<{ tags: string[]; status?: string }>, o: { due?: boolean; status?: string } = {}): GlPipeline {
    const project = this.projects.find((p) => p.id === x.project_id);
    if (!project) throw new Error(`gitlab emulator: no project ${x.project_id}`);
    const now = this.clock();
    const at = new Date(now).toISOString();
    const p: GlPipeline = { id: this.nextId++, iid: this.pipelines.filter((y) => y.project_id === x.project_id).length + 1, project_id: x.project_id, status: o.status ?? 'pending', source: 'schedule', ref: x.ref.replace(/^refs\/heads\//, ''), sha: 'a'.repeat(40), created_at: at, updated_at: at, schedule_id: x.id };
    this.pipelines.push(p);
    for (const j of jobs) this.addJob(project, j.status ?? 'pending', j.tags, { pipeline_id: p.id, created_at: at });
    x.last_pipeline_id = p.id;
    if (o.due !== false) {
      x.next_run_at = this.nextCronTime(x, Math.max(now, x.next_run_at ? Date.parse(x.next_run_at) : -Infinity));
      x.updated_at = at;
    }
    return p;
  }
  /** Edits a schedule as `PUT …/pipeline_schedules/:id` does (rescheduled from its cron). */
  editSchedule(x: GlSchedule, change: Partial<Pick<GlSchedule, 'description' | 'cron' | 'cron_timezone' | 'active'>>): void {
    Object.assign(x, change);
    x.next_run_at = this.nextCronTime(x, this.clock());
    x.updated_at = new Date(this.clock()).toISOString();
  }
  /** A pipeline ends: its jobs that have not finished end with it (recorded), as `status`. */
  finishPipeline(p: GlPipeline, status = 'success'): void {
    for (const j of this.jobs) {
      if (j.pipeline_id !== p.id || !['created', 'pending', 'running'].includes(j.status)) continue;
      const wasRunning = j.status === 'running';
      j.status = status;
      if (wasRunning) this.recordEnd(j.id);
      this.jobHook(j);
    }
    p.status = status;
    p.updated_at = new Date(this.clock()).toISOString();
  }
  /** A pending job is picked by the runner of that name: running on it (recorded with its start). */
  takeJob(job: GlJob, description: string): GlJob {
    const r = this.runnerNamed(description);
    if (!r) throw new Error(`gitlab emulator: no runner ${description}`);
    if (job.status !== 'pending') throw new Error(`gitlab emulator: job ${job.id} is ${job.status}, not pending`);
    job.status = 'running';
    job.started_at = new Date(this.clock()).toISOString();
    job.runner = { id: r.id, description };
    this.recordStart(job.id, description);
    this.jobHook(job);
    return job;
  }
  runnerNamed(description: string): GlRunner | undefined {
    return this.runners.find((r) => r.description === description);
  }
  /** The machine of the runner booted and gitlab-runner checked in: `online`, `contacted_at` set. */
  connect(description: string): GlRunner {
    const r = this.runnerNamed(description);
    if (!r) throw new Error(`gitlab emulator: no runner ${description}`);
    r.status = 'online';
    r.contacted_at = new Date().toISOString();
    return r;
  }
  /**
   * The runner's machine stopped (standby): `offline`; it keeps its registration and its paused
   * flag, and `connect` brings the same runner back when the machine starts again.
   */
  disconnect(description: string): GlRunner {
    const r = this.runnerNamed(description);
    if (!r) throw new Error(`gitlab emulator: no runner ${description}`);
    r.status = 'offline';
    return r;
  }
  /** A runner someone made by hand (no maintenance note unless given), already online. */
  addRunner(description: string, extra: Partial<GlRunner> = {}): GlRunner {
    const group = this.groups[0];
    const r: GlRunner = { id: this.nextId++, description, tag_list: [], paused: false, runner_type: group ? 'group_type' : 'instance_type', ...(group ? { group_id: group.id } : {}), status: 'online', run_untagged: false, maintenance_note: null, contacted_at: new Date().toISOString(), ...extra };
    this.runners.push(r);
    return r;
  }
  /** Starts a running job on the runner of that name (recorded with its start). */
  startJob(description: string, project?: GlProject, tags: string[] = []): GlJob {
    const r = this.runnerNamed(description);
    if (!r) throw new Error(`gitlab emulator: no runner ${description}`);
    const p = project ?? this.projects[0];
    if (!p) throw new Error('gitlab emulator: no project');
    const j = this.addJob(p, 'running', tags, { runner: { id: r.id, description } });
    this.recordStart(j.id, description);
    return j;
  }
  /** Ends a running job (by id), or every running job of the runner of that name. */
  finishJob(jobOrRunner: number | string, status = 'success'): void {
    for (const j of this.jobs) {
      if (j.status !== 'running') continue;
      if (typeof jobOrRunner === 'number' ? j.id !== jobOrRunner : j.runner?.description !== jobOrRunner) continue;
      j.status = status;
      this.recordEnd(j.id);
      this.jobHook(j);
    }
  }
  /** The jobs running on the runner of that name now (from the platform's state). */
  runningOn(description: string): GlJob[] {
    return this.jobs.filter((j) => j.status === 'running' && j.runner?.description === description);
  }

  /** The cron's next time after `after` (epoch ms) in the schedule's timezone, as GitLab's `next_run_at` (set whether or not the schedule is active). */
  private nextCronTime(x: Pick<GlSchedule, 'cron' | 'cron_timezone'>, after: number): string | null {
    return new Cron(x.cron, { timezone: x.cron_timezone, paused: true }).nextRun(new Date(after))?.toISOString() ?? null;
  }
  /** Entities::Ci::PipelineSchedule (the listing's entity). */
  private scheduleBody(x: GlSchedule) {
    return { id: x.id, description: x.description, ref: x.ref, cron: x.cron, cron_timezone: x.cron_timezone, next_run_at: x.next_run_at, active: x.active, created_at: x.created_at, updated_at: x.updated_at, owner: { id: this.user.id, username: this.user.username, name: this.user.name, state: 'active', avatar_url: null, web_url: `${this.url}/${this.user.username}` } };
  }
  private descendants(id: number): number[] {
    const kids = this.groups.filter((g) => g.parent_id === id).map((g) => g.id);
    return [...kids, ...kids.flatMap((k) => this.descendants(k))];
  }
  private page(r: EmuRequest, items: unknown[]): EmuResponse {
    const { page, headers } = paginate(items, r, this.url);
    return { status: 200, body: page, headers };
  }
  private withGroup(r: EmuRequest, f: (g: GlGroup) => EmuResponse): EmuResponse {
    const key = r.params[0] ?? '';
    const g = this.groups.find((x) => String(x.id) === key || x.full_path === key);
    return g ? f(g) : { status: 404, body: { message: '404 Group Not Found' } };
  }
  private withProject(r: EmuRequest, f: (p: GlProject) => EmuResponse): EmuResponse {
    const key = r.params[0] ?? '';
    const p = this.projects.find((x) => String(x.id) === key || x.path_with_namespace === key);
    return p ? f(p) : { status: 404, body: { message: '404 Project Not Found' } };
  }
  private jobBody(j: GlJob) {
    return { id: j.id, status: j.status, stage: 'test', name: j.name, tag_list: j.tag_list, created_at: j.created_at, started_at: j.started_at, pipeline: { id: j.pipeline_id, project_id: j.project_id, status: 'running' }, runner: j.runner ? { id: j.runner.id, description: j.runner.description, active: true, paused: false, is_shared: false, name: 'gitlab-runner' } : null, web_url: `${this.url}/job/${j.id}` };
  }
  /** A listing's runner (GitLab's Entities::Ci::Runner): no tags, no maintenance note, no contacted_at. */
  private runnerBody(x: GlRunner) {
    return { id: x.id, description: x.description, paused: x.paused, active: !x.paused, is_shared: x.runner_type === 'instance_type', runner_type: x.runner_type, name: 'gitlab-runner', online: x.status === 'online', status: x.status, ip_address: null };
  }
  /** GET /runners/:id (Entities::Ci::RunnerDetails). */
  private runnerDetails(x: GlRunner) {
    return { ...this.runnerBody(x), tag_list: x.tag_list, run_untagged: x.run_untagged, locked: false, maximum_timeout: null, access_level: 'not_protected', version: null, revision: null, platform: null, architecture: null, contacted_at: x.contacted_at ?? null, maintenance_note: x.maintenance_note ?? null, projects: [], groups: [] };
  }
  private createRunner(r: EmuRequest): EmuResponse {
    const b = (r.body ?? {}) as Record<string, unknown>;
    const type = String(b.runner_type ?? '');
    if (!['instance_type', 'group_type', 'project_type'].includes(type)) return { status: 400, body: { error: 'runner_type does not have a valid value' } };
    const runner: GlRunner = {
      id: this.nextId++,
      description: String(b.description ?? ''),
      tag_list: Array.isArray(b.tag_list) ? (b.tag_list as string[]) : String(b.tag_list ?? '').split(',').filter(Boolean),
      paused: b.paused === true || b.paused === 'true',
      runner_type: type as GlRunner['runner_type'],
      status: 'never_contacted',
      run_untagged: b.run_untagged === true || b.run_untagged === 'true',
      maintenance_note: typeof b.maintenance_note === 'string' ? b.maintenance_note.slice(0, 1024) : null,
      contacted_at: null,
    };
    if (type === 'group_type') {
      const g = this.groups.find((x) => x.id === Number(b.group_id));
      if (!g) return { status: 403, body: { message: '403 Forbidden' } };
      runner.group_id = g.id;
    }
    if (type === 'project_type') {
      const p = this.projects.find((x) => x.id === Number(b.project_id));
      if (!p) return { status: 403, body: { message: '403 Forbidden' } };
      runner.project_id = p.id;
    }
    this.runners.push(runner);
    return { status: 201, body: { id: runner.id, token: this.issue(`glrt-${runner.id}EMULATED0000000000`, runner.description), token_expires_at: null } };
  }
}
