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
 * (paused), DELETE /runners/:id, GET /runners/:id/jobs?status=running; for pre-warming (decide/prewarm.ts) GET
 * /projects/:id/pipeline_schedules?scope=active (at most every SCHEDULE_TTL_MS per project), and only
 * when a schedule due within SCHEDULE_HORIZON_MS changed since it was last read: GET
 * /projects/:id/pipeline_schedules/:sid (its `last_pipeline`, which the list does not carry), then
 * when that changed GET …/pipeline_schedules/:sid/pipelines?sort=desc (its last runs) and GET
 * /projects/:id/pipelines/:pid/jobs for each run not read before; for ensureComment GET /user,
 * GET/POST /projects/:id/merge_requests/:iid/notes, PUT …/notes/:note_id. For runnerRelease, the public
 * runner release source, never with the emitter's token: gitlab.com's GET /projects/gitlab-org%2Fgitlab-runner/releases
 * (the highest stable version, for `latest`) and the download site's `v<version>/release.sha256`
 * (GitlabRunnerSource; the same download site the bootstrap fetches the binary from).
 * Ownership: a runner is Parmanu's when its maintenance note carries the marker; pause, resume,
 * deregister and isIdle read the runner's details afresh and never act on an unmarked runner.
 * Token: `read_api` to probe (and the Developer role on a project for its pipeline schedules: without
 * it, GitLab answers 403 and that project's schedules are not pre-warmed — said once, not every probe); `create_runner` and Maintainer/Owner on the runner owner (or admin
 * for `instance`) to register, pause and delete node runners.
 */
import { createRequesterFn } from '@gitbeaker/requester-utils';
import { Gitlab } from '@gitbeaker/rest';
import { z } from 'zod';
import type { Job, ScheduledRun } from '../decide/types.js';
import { redact } from '../policy/secrets.js';
import type { EmitterConfig, RunnerCredential } from '../policy/types.js';
import { beginProbe, describeFailure, HttpClient, LruCache, ProbeProblems, readJson } from './http.js';
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
/** GET /projects/:id/pipeline_schedules (Entities::Ci::PipelineSchedule: no `last_pipeline`). */
const PipelineScheduleSchema = z.object({
  id: z.number(),
  description: z.string().nullable().optional(),
  cron: z.string().optional(),
  cron_timezone: z.string().optional(),
  next_run_at: z.string().nullable(),
  active: z.boolean(),
  updated_at: z.string().nullable().optional(),
}).loose();
type PipelineSchedule = z.output<typeof PipelineScheduleSchema>;
/** GET /projects/:id/pipeline_schedules/:sid (Entities::Ci::PipelineScheduleDetails). */
const PipelineScheduleDetailsSchema = PipelineScheduleSchema.extend({ last_pipeline: z.object({ id: z.number(), status: z.string().optional() }).loose().nullable().optional() }).loose();
/** GET …/pipeline_schedules/:sid/pipelines (Entities::Ci::PipelineBasic). */
const PipelineBasicSchema = z.object({ id: z.number(), status: z.string(), source: z.string().optional() }).loose();
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

/**
 * A project's schedule list is read again after this long at most (next_run_at moves only when a
 * schedule runs or is edited), and also soon after the earliest next_run_at it listed has passed.
 */
export const SCHEDULE_TTL_MS = 5 * 60_000;
/** Schedules due within this long are reported (their previous runs read). */
export const SCHEDULE_HORIZON_MS = 60 * 60_000;
/** The previous runs of a schedule its estimate rests on (the most jobs per label set among them). */
export const SCHEDULE_RUNS = 3;
/** After a 403 on a project's schedules, they are asked again after this long (silently). */
const SCHEDULE_FORBIDDEN_RETRY_MS = 60 * 60_000;
/** Job statuses that never reached a runner and never will in that run. */
const NEVER_RAN = new Set(['skipped', 'manual']);
/** Finished pipelines: their job counts no longer change. */
const FINISHED = new Set(['success', 'failed', 'canceled', 'skipped']);

/** A schedule's estimate as read: the list entry it was read for, its last pipeline, the jobs by label set. */
interface ScheduleEstimate {
  /** `next_run_at` and `updated_at` of the list entry it was made for: another value means read again. */
  version: string;
  lastPipeline: number | null;
  jobs: Array<{ labels: string[]; count: number }>;
  runs: number;
}

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
  /** Each project's active pipeline schedules as last listed, and until when that listing stands. */
  private readonly scheduleLists = new Map<string, { until: number; items: PipelineSchedule[] }>();
  /** Each schedule's estimate (`<project>#<schedule id>`), made again only when its last pipeline changed. */
  private readonly estimates = new Map<string, ScheduleEstimate>();
  /** Job counts by label set of finished pipelines (`<project>#<pipeline id>`): read once. */
  private readonly pipelineJobs = new LruCache<string, Map<string, number>>(1000);
  /** Projects whose schedules answered 403: not asked again before the time given; said once. */
  private readonly schedulesForbidden = new Map<string, number>();
  private readonly forbiddenSaid = new Set<string>();
  /** The path of each project listed through a group (for the schedules' reasons). */
  private readonly projectPaths = new Map<string, string>();

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
      // Independent of the jobs too; its problems make the probe partial, never failed.
      const notes: string[] = [];
      const scheduled = this.scheduledRuns(projects, notes);
      scheduled.catch(() => undefined);
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
      const runners = await this.ownRunners(await runnerList, jobs);
      const runs = await scheduled;
      const body = this.problems.ok(jobs, runners);
      // A token without access to schedules is configuration, not missing data: said once, in the
      // reason, without making the probe partial.
      if (notes.length) body.reason = [body.reason, ...notes].filter(Boolean).join('; ');
      return done({ ...body, ...(runs.length ? { scheduled: runs } : {}) });
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
        this.projectPaths.set(String(p.id), p.path_with_namespace);
      }
    }
    return [...ids];
  }

  // ---------------------------------------------------------------- pipeline schedules
  /**
   * The active schedules of `projects` due within SCHEDULE_HORIZON_MS (or past due by less than
   * that: GitLab has not run them yet, or the listing is from before), each with the jobs its last
   * SCHEDULE_RUNS runs had. Never rejects: a failure is a note of the probe (`notes`: its reason,
   * never partial — the jobs and runners are whole), a 403 a note said once.
   */
  private async scheduledRuns(projects: ReadonlyArray<number | string>, notes: string[]): Promise<ScheduledRun[]> {
    const now = this.clock();
    const keys = new Set(projects.map(String));
    for (const k of this.scheduleLists.keys()) if (!keys.has(k)) this.scheduleLists.delete(k);
    for (const k of this.estimates.keys()) if (!keys.has(k.slice(0, k.lastIndexOf('#')))) this.estimates.delete(k);
    const per = await Promise.allSettled(projects.map((id) => this.projectSchedules(id, now, notes)));
    return this.problems.settle(per).values.flat();
  }

  private async projectSchedules(id: number | string, now: number, notes: string[]): Promise<ScheduledRun[]> {
    const key = String(id);
    const name = this.projectPaths.get(key) ?? key;
    const forbiddenUntil = this.schedulesForbidden.get(key);
    if (forbiddenUntil !== undefined && now < forbiddenUntil) return [];
    let listed = this.scheduleLists.get(key);
    if (!listed || now >= listed.until) {
      try {
        const items = await this.list(`pipeline schedules of project ${name}`, PipelineScheduleSchema, () => this.api.PipelineSchedules.all(id, { scope: 'active', perPage: 100, showExpanded: true }));
        const soonest = Math.min(...items.map((s) => (s.next_run_at ? Date.parse(s.next_run_at) : Infinity)).filter((t) => t > now));
        listed = { until: Math.min(now + SCHEDULE_TTL_MS, Math.max(now + 60_000, soonest + 60_000)), items };
        this.scheduleLists.set(key, listed);
        // Schedules gone from the listing take their estimates with them.
        const ids = new Set(items.map((x) => `${key}#${x.id}`));
        for (const k of this.estimates.keys()) if (k.startsWith(`${key}#`) && !ids.has(k)) this.estimates.delete(k);
        this.schedulesForbidden.delete(key);
      } catch (err) {
        if (err instanceof EmitterError && err.status === 403) {
          this.schedulesForbidden.set(key, now + SCHEDULE_FORBIDDEN_RETRY_MS);
          this.scheduleLists.delete(key);
          if (!this.forbiddenSaid.has(key)) {
            this.forbiddenSaid.add(key);
            notes.push(`${this.reason(err)}: no pre-warming before the pipeline schedules of project ${name} (the token needs the Developer role there; not said again)`);
          }
          return [];
        }
        // A listing that failed: the last one stands (it was right a few minutes ago). Said, but the
        // probe is not partial: its jobs and runners are whole, and a partial probe would hold the
        // scale-down of every pool of the emitter for schedules only pre-warming reads.
        notes.push(`${this.reason(err)}${listed ? ' (pre-warming goes on from the last listing)' : ' (no pre-warming from them this probe)'}`);
        if (!listed) return [];
      }
    }
    const due = listed.items.filter((s) => {
      const at = s.next_run_at ? Date.parse(s.next_run_at) : NaN;
      return s.active && Number.isFinite(at) && Math.abs(at - now) <= SCHEDULE_HORIZON_MS;
    });
    const read = await Promise.allSettled(due.map((s) => this.estimate(id, name, s)));
    const out: ScheduledRun[] = [];
    for (const [i, r] of read.entries()) {
      const s = due[i] as PipelineSchedule;
      if (r.status === 'rejected') {
        notes.push(`${this.reason(r.reason)} (no pre-warming from it this probe)`);
        continue;
      }
      if (!r.value || r.value.runs === 0 || !r.value.jobs.length) continue;
      out.push({ id: String(s.id), project: name, description: s.description ?? '', nextRunAt: Date.parse(s.next_run_at as string), jobs: r.value.jobs, runs: r.value.runs });
    }
    return out;
  }

  /**
   * A schedule's jobs by label set, the most of each over its last SCHEDULE_RUNS runs. Reused as long
   * as the list entry is unchanged; when it changed, its details tell whether its last pipeline did
   * (an edit does not make one); only then are its runs listed and the jobs of runs not read before.
   * Undefined: the schedule is gone.
   */
  private async estimate(id: number | string, name: string, s: PipelineSchedule): Promise<ScheduleEstimate | undefined> {
    const key = `${String(id)}#${s.id}`;
    const version = `${s.next_run_at ?? ''}|${s.updated_at ?? ''}`;
    const cached = this.estimates.get(key);
    if (cached?.version === version) return cached;
    let details: z.output<typeof PipelineScheduleDetailsSchema>;
    try {
      details = PipelineScheduleDetailsSchema.parse(await this.api.PipelineSchedules.show(id, s.id));
    } catch (err) {
      if (err instanceof EmitterError && err.status === 404) {
        this.estimates.delete(key);
        return undefined;
      }
      throw new EmitterError(`pipeline schedule ${s.id} of project ${name}: ${this.reason(err)}`);
    }
    const last = details.last_pipeline?.id ?? null;
    if (cached && cached.lastPipeline === last) {
      const same = { ...cached, version };
      this.estimates.set(key, same);
      return same;
    }
    const runs = last === null ? [] : await this.lastRuns(id, name, s.id, last);
    const counts = await Promise.all(runs.map((p) => this.jobsOfRun(id, name, p)));
    const most = new Map<string, number>();
    for (const c of counts) for (const [labels, n] of c) most.set(labels, Math.max(most.get(labels) ?? 0, n));
    const est: ScheduleEstimate = { version, lastPipeline: last, runs: runs.length, jobs: [...most].map(([labels, count]) => ({ labels: labels === '' ? [] : labels.split('\n'), count })) };
    this.estimates.set(key, est);
    return est;
  }

  /**
   * The schedule's last SCHEDULE_RUNS pipelines, newest first. `sort` came after the endpoint
   * (GitLab 15.3): a GitLab that ignores it answers oldest first, and then the last pages are read.
   */
  private async lastRuns(id: number | string, name: string, sid: number, last: number): Promise<Array<z.output<typeof PipelineBasicSchema>>> {
    const what = `pipelines of schedule ${sid} of project ${name}`;
    const page = async (n: number) => {
      try {
        return Paginated(PipelineBasicSchema).parse(await this.api.PipelineSchedules.allTriggeredPipelines(id, sid, { sort: 'desc', perPage: SCHEDULE_RUNS, page: n, showExpanded: true } as never));
      } catch (err) {
        throw new EmitterError(`${what}: ${this.reason(err)}`);
      }
    };
    const first = await page(1);
    let runs = first.data;
    const pages = first.paginationInfo.totalPages ?? 1;
    if (!runs.some((p) => p.id === last) && pages > 1) {
      const tail = await page(pages);
      const before = tail.data.length < SCHEDULE_RUNS && pages > 2 ? (await page(pages - 1)).data : [];
      runs = [...before, ...tail.data];
    }
    return [...runs].sort((a, b) => b.id - a.id).slice(0, SCHEDULE_RUNS);
  }

  /** A run's jobs that reached (or will reach) a runner, counted by label set (sorted tags, `\n`-joined); a finished run's are kept. */
  private async jobsOfRun(id: number | string, name: string, p: z.output<typeof PipelineBasicSchema>): Promise<Map<string, number>> {
    const key = `${String(id)}#${p.id}`;
    const cached = this.pipelineJobs.get(key);
    if (cached) return cached;
    const jobs = await this.list(`jobs of pipeline ${p.id} of project ${name}`, JobSchema, () => this.api.Jobs.all(id, { pipelineId: p.id, perPage: 100, showExpanded: true }));
    const counts = new Map<string, number>();
    for (const j of jobs) {
      if (NEVER_RAN.has(j.status) || (j.status === 'canceled' && !j.started_at)) continue;
      const labels = [...new Set(j.tag_list)].sort().join('\n');
      counts.set(labels, (counts.get(labels) ?? 0) + 1);
    }
    if (FINISHED.has(p.status)) this.pipelineJobs.set(key, counts);
    return counts;
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
