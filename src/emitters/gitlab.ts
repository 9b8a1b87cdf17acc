/**
 * GitLab CI through @gitbeaker/rest (its resource layer, URL building and pagination) with
 * Parmanu's HTTP policy as the requester.
 *
 * Endpoints: GET /groups/:id (group path → id, cached), GET /groups/:id/projects?include_subgroups
 * (every project under the listed groups), GET /projects/:id/jobs?scope[]=pending&scope[]=running,
 * GET /projects/:id/pipelines/:pid/jobs?scope[]=created (upcoming jobs of running pipelines),
 * GET /groups/:id/runners | /projects/:id/runners | /runners/all, GET /runners/:id (the
 * `maintenance_note` that marks Parmanu's runners is only in a runner's details, GitLab ≥ 16.10; read
 * once per runner id and cached), POST /user/runners (with `maintenance_note`), PUT /runners/:id
 * (paused), DELETE /runners/:id, GET /runners/:id/jobs?status=running; for ensureComment GET /user,
 * GET/POST /projects/:id/merge_requests/:iid/notes, PUT …/notes/:note_id. For runnerRelease, the public
 * runner release source, never with the emitter's token: gitlab.com's GET /projects/gitlab-org%2Fgitlab-runner/releases
 * (the highest stable version, for `latest`) and the download site's `v<version>/release.sha256`
 * (GitlabRunnerSource; the same download site the bootstrap fetches the binary from).
 * Ownership: a runner is Parmanu's when its maintenance note carries the marker; pause, resume,
 * deregister and isIdle read the runner's details afresh and never act on an unmarked runner.
 * Token: `read_api` to probe; `create_runner` and Maintainer/Owner on the runner owner (or admin
 * for `instance`) to register, pause and delete node runners.
 */
import { createRequesterFn } from '@gitbeaker/requester-utils';
import { Gitlab } from '@gitbeaker/rest';
import { z } from 'zod';
import type { Job } from '../decide/types.js';
import { redact } from '../policy/secrets.js';
import type { EmitterConfig, RunnerCredential } from '../policy/types.js';
import { beginProbe, describeFailure, HttpClient, ProbeProblems, readJson } from './http.js';
import { GITLAB_ASSETS, parseGitlabChecksums, ReleaseCache, releaseVersion } from './release.js';
import { EmitterError, markerNote, poolFromNote, type CommentResult, type CommentTarget, type Emitter, type ProbeResult, type RegisterRequest, type RunnerInfo, type RunnerRelease } from './types.js';

type GitlabConfig = Extract<EmitterConfig, { type: 'gitlab' }>;

// ---------------------------------------------------------------- response schemas
const JobSchema = z.object({
  id: z.number(),
  status: z.string(),
  tag_list: z.array(z.string()).default([]),
  created_at: z.string(),
  started_at: z.string().nullable().optional(),
  pipeline: z.object({ id: z.number() }).loose().optional(),
  runner: z.object({ id: z.number(), description: z.string().nullable().optional() }).loose().nullable().optional(),
}).loose();
const ProjectSchema = z.object({ id: z.number(), path_with_namespace: z.string() }).loose();
const GroupSchema = z.object({ id: z.number(), full_path: z.string() }).loose();
const RunnerSchema = z.object({
  id: z.number(),
  description: z.string().nullable(),
  paused: z.boolean().optional(),
  active: z.boolean().optional(),
  status: z.string().optional(),
  online: z.boolean().nullable().optional(),
  tag_list: z.array(z.string()).optional(),
}).loose();
const RunnerDetailsSchema = RunnerSchema.extend({ maintenance_note: z.string().nullable().optional(), contacted_at: z.string().nullable().optional() }).loose();
type RunnerDetails = z.output<typeof RunnerDetailsSchema>;
const CreatedRunnerSchema = z.object({ id: z.number(), token: z.string().min(1) }).loose();
const NoteSchema = z.object({ id: z.number(), body: z.string(), system: z.boolean().optional(), author: z.object({ id: z.number() }).loose().nullable().optional() }).loose();
const UserSchema = z.object({ id: z.number(), username: z.string() }).loose();
const Paginated = <T extends z.ZodType>(item: T) => z.object({ data: z.array(item), paginationInfo: z.object({ total: z.number().nullable().optional(), totalPages: z.number().nullable().optional() }).loose() });

/** Where GitLab runner releases are published (public: no token is sent there). */
export interface GitlabRunnerSource {
  /** The REST API holding the gitlab-runner project's releases. */
  api: string;
  /** The project's path on it. */
  project: string;
  /** The download site: `<downloads>/v<version>/release.sha256` and `…/binaries/gitlab-runner-<asset>`. */
  downloads: string;
}
export const GITLAB_RUNNER_SOURCE: GitlabRunnerSource = { api: 'https://gitlab.com/api/v4', project: 'gitlab-org/gitlab-runner', downloads: 'https://gitlab-runner-downloads.s3.amazonaws.com' };
const ReleaseListSchema = z.array(z.object({ tag_name: z.string(), upcoming_release: z.boolean().optional() }).loose());
const STABLE = /^v?(\d+)\.(\d+)\.(\d+)$/;

/** Upcoming-job look-ups per probe at most (one per running pipeline). */
const MAX_PIPELINE_LOOKUPS = 100;

export class GitlabEmitter implements Emitter {
  readonly kind = 'gitlab' as const;
  readonly name: string;
  readonly http: HttpClient;
  private readonly api: InstanceType<typeof Gitlab>;
  private readonly groupIds = new Map<string, number>();
  /** Marker and tags of runners by id, read once from their details (kept for the ids still listed). */
  private readonly details = new Map<number, { pool: string | undefined; tags: string[] }>();
  private problems = new ProbeProblems((e) => this.reason(e));
  /** runnerRelease resolutions, reused for an hour. */
  readonly releases: ReleaseCache;

  constructor(
    private readonly cfg: GitlabConfig,
    private readonly token: string,
    http?: HttpClient,
    private readonly clock: () => number = Date.now,
    /** Where runner releases are looked up (tests point it at an emulator on 127.0.0.1). */
    private readonly runnerSource: GitlabRunnerSource = GITLAB_RUNNER_SOURCE,
  ) {
    this.name = cfg.name;
    this.http = http ?? HttpClient.forEmitter(cfg);
    this.releases = new ReleaseCache(clock);
    // createRequesterFn applies gitbeaker's default options handler itself (auth header, JSON body,
    // query string); the handler given here post-processes its result: nothing to add.
    const requesterFn = createRequesterFn((_, requestOptions) => Promise.resolve(requestOptions), async (endpoint, options) => {
      const o = (options ?? {}) as { prefixUrl?: string; searchParams?: string; method?: string; headers?: Record<string, string>; body?: string };
      const url = new URL(endpoint, o.prefixUrl?.endsWith('/') ? o.prefixUrl : `${o.prefixUrl ?? ''}/`);
      url.search = o.searchParams ?? '';
      const method = o.method ?? 'GET';
      const res = await this.http.fetch(url, { method, headers: o.headers ?? {}, ...(o.body !== undefined ? { body: o.body } : {}) });
      const what = `${method} ${url.pathname}`;
      if (!res.ok) throw await describeFailure(res, what);
      const headers = Object.fromEntries(res.headers.entries());
      if (res.status === 204) return { body: null, headers, status: res.status };
      return { body: (await readJson(res, what)) as Record<string, unknown>, headers, status: res.status };
    });
    this.api = new Gitlab({ host: cfg.url.replace(/\/$/, ''), token, requesterFn, queryTimeout: null });
  }

  // ---------------------------------------------------------------- probe
  async probe(): Promise<ProbeResult> {
    const begun = beginProbe(this.name, this.clock, this.http, (e) => this.reason(e));
    const done = begun.done;
    this.problems = begun.problems;
    try {
      // Independent of the jobs: listed while they are read.
      const runnerList = this.runnerList();
      runnerList.catch(() => undefined);
      const projects = await this.projectIds();
      let lookups = 0;
      // Each project's upcoming jobs are looked up as soon as its own jobs are in.
      const perProject = await Promise.allSettled(
        projects.map(async (id) => {
          const jobs = await this.list(`jobs of project ${id}`, JobSchema, () => this.api.Jobs.all(id, { scope: ['pending', 'running'] as never, perPage: 100, showExpanded: true }));
          const pipelines = [...new Set(jobs.flatMap((j) => (j.pipeline ? [j.pipeline.id] : [])))].filter(() => lookups++ < MAX_PIPELINE_LOOKUPS);
          const upcoming = await Promise.allSettled(pipelines.map((pid) => this.list(`jobs of pipeline ${pid}`, JobSchema, () => this.api.Jobs.all(id, { pipelineId: pid, scope: ['created'] as never, perPage: 100, showExpanded: true }))));
          return { jobs, upcoming };
        }),
      );
      const jobs: Job[] = [];
      const { values, failed } = this.problems.settle(perProject);
      for (const v of values) {
        for (const j of v.jobs) jobs.push(this.toJob(j));
        for (const j of this.problems.settle(v.upcoming).values.flat()) jobs.push({ ...this.toJob(j), status: 'upcoming' });
      }
      const none = this.problems.allFailed(projects.length, failed, 'project');
      if (none) return done(none);
      return done(this.problems.ok(jobs, await this.ownRunners(await runnerList, jobs)));
    } catch (err) {
      return done({ ok: false, partial: false, reason: this.reason(err), jobs: [], runners: [] });
    }
  }

  private reason(err: unknown): string {
    if (err instanceof EmitterError) return err.message;
    if (err instanceof z.ZodError) return `unexpected response shape: ${err.issues[0]?.path.join('.') ?? ''} ${err.issues[0]?.message ?? ''}`.trim();
    const e = err as Error;
    return e.message ? redact(e.message, [this.token]) : String(err);
  }

  /**
   * All pages of a list, validated; a short list (an empty page in the middle) marks the probe
   * partial, or with `strict` (look-ups that act on a runner) is an error: a runner on a missing
   * page must not be taken for gone.
   */
  private async list<T extends z.ZodType>(what: string, item: T, call: () => Promise<unknown>, strict = false): Promise<Array<z.output<T>>> {
    const raw = await call();
    const parsed = Paginated(item).parse(raw);
    const total = parsed.paginationInfo.total;
    if (typeof total === 'number' && parsed.data.length < total) {
      const problem = `${what}: ${parsed.data.length} of ${total} items came back`;
      if (strict) throw new EmitterError(problem);
      this.problems.add(problem);
    }
    return parsed.data;
  }

  private async groupId(path: string): Promise<number> {
    const cached = this.groupIds.get(path);
    if (cached !== undefined) return cached;
    const g = GroupSchema.parse(await this.api.Groups.show(path));
    this.groupIds.set(path, g.id);
    return g.id;
  }

  private async projectIds(): Promise<Array<number | string>> {
    const ids = new Set<number | string>(this.cfg.projects ?? []);
    for (const group of this.cfg.groups ?? []) {
      const gid = await this.groupId(group);
      const projects = await this.list(`projects of group ${group}`, ProjectSchema, () => this.api.Groups.allProjects(gid, { includeSubgroups: true, perPage: 100, showExpanded: true, archived: false } as never));
      for (const p of projects) {
        ids.delete(p.path_with_namespace);
        ids.add(p.id);
      }
    }
    return [...ids];
  }

  private toJob(j: z.output<typeof JobSchema>): Job {
    const job: Job = { id: String(j.id), labels: j.tag_list, status: j.status === 'running' ? 'running' : 'queued', queuedAt: Date.parse(j.created_at) };
    if (j.started_at) job.startedAt = Date.parse(j.started_at);
    if (j.runner?.description) job.runner = j.runner.description;
    return job;
  }

  private async runnerList(strict = false): Promise<Array<z.output<typeof RunnerSchema>>> {
    const o = this.cfg.runnerOwner;
    if (o === 'instance') return this.list('instance runners', RunnerSchema, () => this.api.Runners.all({ type: 'instance_type', perPage: 100, showExpanded: true } as never), strict);
    if ('group' in o) {
      const gid = await this.groupId(o.group);
      return this.list('group runners', RunnerSchema, () => this.api.Runners.all({ groupId: gid, type: 'group_type', perPage: 100, showExpanded: true } as never), strict);
    }
    return this.list('project runners', RunnerSchema, () => this.api.Runners.all({ projectId: o.project, type: 'project_type', perPage: 100, showExpanded: true } as never), strict);
  }

  /** The marked runners of the listing; a runner whose details cannot be read is left out and the probe is partial. */
  private async ownRunners(list: Array<z.output<typeof RunnerSchema>>, jobs: Job[]): Promise<RunnerInfo[]> {
    const busy = new Set(jobs.filter((j) => j.status === 'running' && j.runner).map((j) => j.runner as string));
    const listed = new Set(list.map((r) => r.id));
    for (const id of this.details.keys()) if (!listed.has(id)) this.details.delete(id);
    const unknown = list.filter((r) => !this.details.has(r.id));
    const read = await Promise.allSettled(unknown.map(async (r) => this.remember(await this.runnerDetails(r.id))));
    this.problems.settle(read);
    const out: RunnerInfo[] = [];
    for (const r of list) {
      const d = this.details.get(r.id);
      if (!d?.pool) continue;
      const name = r.description ?? '';
      const info: RunnerInfo = { id: String(r.id), name, labels: d.tags, pool: d.pool, online: r.status === 'online' || r.online === true, busy: busy.has(name), paused: r.paused ?? r.active === false };
      if (r.status !== undefined) info.contacted = r.status !== 'never_contacted';
      out.push(info);
    }
    return out;
  }

  private remember(d: RunnerDetails | undefined): void {
    if (d) this.details.set(d.id, { pool: poolFromNote(d.maintenance_note), tags: d.tag_list ?? [] });
  }

  /** GET /runners/:id, fresh (undefined: no such runner). */
  private async runnerDetails(id: number): Promise<RunnerDetails | undefined> {
    try {
      return RunnerDetailsSchema.parse(await this.api.Runners.show(id));
    } catch (err) {
      if (err instanceof EmitterError && err.status === 404) return undefined;
      throw err instanceof EmitterError ? err : new EmitterError(this.reason(err));
    }
  }

  // ---------------------------------------------------------------- registration
  async register(req: RegisterRequest): Promise<RunnerCredential> {
    const o = this.cfg.runnerOwner;
    const owner = o === 'instance' ? {} : 'group' in o ? { groupId: await this.wrap(() => this.groupId(o.group)) } : { projectId: await this.projectNumericId(o.project) };
    const type = o === 'instance' ? 'instance_type' : 'group' in o ? 'group_type' : 'project_type';
    const created = await this.wrap(async () =>
      CreatedRunnerSchema.parse(await this.api.Users.createCIRunner(type, { ...owner, description: req.node, maintenanceNote: markerNote(req.pool), tagList: req.labels, runUntagged: req.acceptUntagged, paused: false } as never)),
    );
    return { kind: 'gitlab', url: this.cfg.url, token: created.token };
  }

  private async projectNumericId(project: string): Promise<number> {
    if (/^\d+$/.test(project)) return Number(project);
    return this.wrap(async () => ProjectSchema.parse(await this.api.Projects.show(project)).id);
  }

  async pause(node: string): Promise<void> {
    const r = await this.ownRunner(node);
    if (!r || r.paused === true) return;
    await this.wrap(() => this.api.Runners.edit(r.id, { paused: true } as never), [404]);
  }

  async resume(node: string): Promise<void> {
    const r = await this.ownRunner(node);
    if (!r || r.paused === false) return;
    await this.wrap(() => this.api.Runners.edit(r.id, { paused: false } as never), [404]);
  }

  async deregister(node: string): Promise<void> {
    const r = await this.ownRunner(node);
    if (!r) return;
    await this.wrap(() => this.api.Runners.remove({ runnerId: r.id }), [404]);
    this.details.delete(r.id);
  }

  /** GitLab's strongest signal: the runner's running jobs, asked afresh (not the probe's view). */
  async isIdle(node: string): Promise<boolean> {
    const r = await this.ownRunner(node);
    if (!r) return true;
    try {
      const running = await this.list(`running jobs of runner ${r.id}`, JobSchema, () => this.api.Runners.allJobs(r.id, { status: 'running', perPage: 100, showExpanded: true } as never), true);
      return running.length === 0;
    } catch (err) {
      if (err instanceof EmitterError && err.status === 404) return true;
      throw err instanceof EmitterError ? err : new EmitterError(this.reason(err));
    }
  }

  /**
   * The node's runner, read afresh: a runner named `node` whose details carry Parmanu's marker
   * (undefined when there is none; an unmarked runner of that name is never returned).
   */
  private async ownRunner(node: string): Promise<RunnerDetails | undefined> {
    const list = await this.wrap(() => this.runnerList(true));
    for (const candidate of list.filter((r) => r.description === node)) {
      const d = await this.runnerDetails(candidate.id);
      this.remember(d);
      if (d && d.description === node && poolFromNote(d.maintenance_note)) return d;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- comments
  /**
   * The sticky comment on a merge request: among the notes written by the token's own user
   * (GET /user, matched on note.author.id), the one carrying `marker`; a note by anyone else is
   * never edited, whatever it contains.
   */
  async ensureComment(target: CommentTarget, marker: string, body: string): Promise<CommentResult> {
    if (!body.includes(marker)) throw new EmitterError('ensureComment: the body must contain the marker');
    const { project, number: iid } = target;
    const me = await this.wrap(async () => UserSchema.parse(await this.api.Users.showCurrentUser()));
    const notes = await this.wrap(() => this.list(`notes of merge request !${iid}`, NoteSchema, () => this.api.MergeRequestNotes.all(project, iid, { perPage: 100, showExpanded: true } as never), true));
    const mine = notes.find((n) => !n.system && n.author?.id === me.id && n.body.includes(marker));
    if (mine) {
      if (mine.body === body) return { action: 'unchanged', id: mine.id };
      await this.wrap(() => this.api.MergeRequestNotes.edit(project, iid, mine.id, { body } as never));
      return { action: 'updated', id: mine.id };
    }
    const created = await this.wrap(async () => z.object({ id: z.number() }).loose().parse(await this.api.MergeRequestNotes.create(project, iid, body)));
    return { action: 'created', id: created.id };
  }

  private async wrap<T>(f: () => Promise<T>, okStatuses: number[] = []): Promise<T> {
    try {
      return await f();
    } catch (err) {
      if (err instanceof EmitterError && err.status !== undefined && okStatuses.includes(err.status)) return undefined as T;
      throw err instanceof EmitterError ? err : new EmitterError(this.reason(err));
    }
  }

  // ---------------------------------------------------------------- runner release
  /**
   * The GitLab runner release `version` names: for `latest`, the highest stable version among the
   * gitlab-runner project's recent releases (GitLab also publishes patches of older lines, so the
   * newest release is not always the latest version); its checksums from the download site's
   * `release.sha256`. Public sources: the emitter's token is not sent.
   */
  runnerRelease(version: string): Promise<RunnerRelease> {
    return this.releases.get(version, async (v) => {
      const concrete = v === 'latest' ? await this.latestRunnerVersion() : releaseVersion(v, 'runner version');
      const url = `${this.runnerSource.downloads.replace(/\/$/, '')}/v${concrete}/release.sha256`;
      const what = `GET ${new URL(url).pathname}`;
      const res = await this.http.fetch(url, { headers: { accept: 'text/plain' } });
      if (!res.ok) throw await describeFailure(res, what);
      return { version: concrete, sha256: parseGitlabChecksums(await res.text(), GITLAB_ASSETS, what) };
    });
  }

  private async latestRunnerVersion(): Promise<string> {
    const src = this.runnerSource;
    const url = `${src.api.replace(/\/$/, '')}/projects/${encodeURIComponent(src.project)}/releases?per_page=20&order_by=released_at&sort=desc`;
    const what = `GET ${new URL(url).pathname}`;
    const res = await this.http.fetch(url, { headers: { accept: 'application/json' } });
    if (!res.ok) throw await describeFailure(res, what);
    const list = ReleaseListSchema.safeParse(await readJson(res, what));
    if (!list.success) throw new EmitterError(`${what}: unexpected response shape`);
    const stable = list.data
      .filter((r) => r.upcoming_release !== true)
      .map((r) => STABLE.exec(r.tag_name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [Number(m[1]), Number(m[2]), Number(m[3])] as const)
      .sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]);
    const top = stable[0];
    if (!top) throw new EmitterError(`${what}: no stable release listed`);
    return top.join('.');
  }
}
