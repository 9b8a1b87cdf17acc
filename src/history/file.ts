/**
 * The embedded history store: JSON files under `<PARMANU_STATE_DIR>/history/`, written atomically
 * (temp file + rename), one file per pool, samples as JSON lines per pool and day. It serves one
 * host (or several containers sharing the directory on one local file system).
 *
 * Leases and fencing, per pool, all under `history/leases/`:
 * - `<pool>.token` — the last fencing token handed out (a decimal integer). A new lease gets
 *   max(last + 1, the current lock's token + 1, wall-clock time in microseconds): strictly greater
 *   than every token before it, and — because it never falls behind the wall clock — still
 *   greater after the counter file or the whole state directory was deleted, unless more than one
 *   lease per microsecond was handed out on average or the clock was set back meanwhile.
 * - `<pool>.lock` — the current lease: owner, pid, host, token, expiry. A lease whose expiry passed,
 *   or whose process is gone on this host, may be taken over.
 * - `<pool>.mutex/` — a short mutex (held for a few file operations, never across an await) under
 *   which every lease change and every fenced write happens: read the token, compare, write
 *   (temp + rename). It is what makes takeover atomic, see `lockPool`.
 *
 * Torn writes: a line of a `.jsonl` file that does not parse or validate is skipped with a warning
 * naming the file and line, and an append first ends a torn last line, so it cannot swallow the
 * next record. A JSON file that does not parse or validate, and a `.jsonl` file with no readable
 * line, is set aside as `<file>.corrupt-<time>` with a warning and read as absent: the pool record
 * is rebuilt from Terraform state by the next cycle, samples and events start afresh.
 *
 * Fencing: a write fenced with a lease is accepted iff `<pool>.token` still holds that lease's
 * token, i.e. no later lease was handed out. A lease that merely expired, with nobody taking the
 * pool since, still writes (and renews): no other writer can exist without a larger token, so the
 * write is as safe as it was before the expiry. A released lease does not: release advances the
 * token, so the released lease's late writes are refused and it cannot be renewed.
 */
import { appendFileSync, closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import {
  checkLease,
  DELIVERY_ID_MAX,
  DELIVERY_LIMIT,
  EVENT_LIMIT,
  EventSchema,
  HistoryError,
  JobLabelsSchema,
  LeaseLostError,
  ObservationSchema,
  ofLeasedPool,
  PoolRecordSchema,
  SAMPLE_RETENTION_MS,
  SampleSchema,
  SpendRecordSchema,
  Warnings,
  type HistoryEvent,
  type HistoryStore,
  type HistoryWarn,
  type JobLabels,
  type Lease,
  type LeaseHolder,
  type Observation,
  type PoolRecord,
  type Sample,
  type SpendRecord,
  type StoredObservation,
} from './types.js';

/** A lock file; `token` is absent in lock files written before fencing tokens existed. */
const LockSchema = z.object({ owner: z.string(), pid: z.number(), host: z.string(), expiresAt: z.number(), token: z.number().int().positive().optional() });
type Lock = z.output<typeof LockSchema>;
/** `observations/<emitter>.json`: an emitter's latest observation (services mode). */
const StoredObservationSchema = z.object({ version: z.number().int().positive(), digest: z.string(), prober: z.string(), observation: ObservationSchema });
const MutexOwnerSchema = z.object({ pid: z.number(), host: z.string(), at: z.number() });
/** An emitter's claimed webhook deliveries: id → when the claim expires (wall clock, ms). */
const DeliveriesSchema = z.record(z.string(), z.number());
const TokenSchema = z.string().trim().regex(/^[1-9][0-9]{0,15}$/).transform(Number).pipe(z.number().int().positive().max(Number.MAX_SAFE_INTEGER));

const DAY = 86_400_000;
/**
 * A mutex older than this is broken even if its holder may be alive (another host's process,
 * whose liveness cannot be checked, or a reused pid). The mutex is held for a few file
 * operations; a holder paused longer than this inside them is the one case fencing does not cover.
 */
const MUTEX_STALE_MS = 30_000;
/** How long a caller waits for a pool's mutex before giving up with a HistoryError. */
const MUTEX_WAIT_MS = 10_000;
const safe = (name: string) => name.replace(/[^a-zA-Z0-9_.-]/g, '_');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const code = (err: unknown) => (err as NodeJS.ErrnoException).code;
/** `<day>.jsonl`, the only files of a pool's sample directory that are read. */
const DAY_FILE = /^(\d+)\.jsonl$/;

export class FileHistoryStore implements HistoryStore {
  readonly kind = 'file' as const;
  private readonly dir: string;
  private readonly warnings = new Warnings();

  /**
   * `clock` dates samples and set-aside files; `leaseClock` (default: `clock`) dates leases, which
   * stay on the wall clock when decide runs on a replay's virtual clock (Redis expires them on its own).
   */
  constructor(
    stateDir: string,
    private readonly clock: () => number = Date.now,
    onWarning?: HistoryWarn,
    private readonly leaseClock: () => number = clock,
  ) {
    this.dir = join(stateDir, 'history');
    this.warnings.sink = onWarning;
    for (const d of ['pools', 'samples', 'leases']) mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
  }

  get onWarning(): HistoryWarn | undefined {
    return this.warnings.sink;
  }

  set onWarning(f: HistoryWarn | undefined) {
    this.warnings.sink = f;
  }

  /**
   * Renames a corrupt file to `<file>.corrupt-<time>` if it still holds `text` (nobody rewrote it
   * since it was read); the new name, or undefined when it changed or is gone.
   */
  private setAside(file: string, text: string): string | undefined {
    if (this.readTextQuiet(file) !== text) return undefined;
    const to = this.asideName(file);
    try {
      renameSync(file, to);
      return to;
    } catch {
      return undefined;
    }
  }

  /** `<file>.corrupt-<time>`; a fixed clock (`--now`) that would reuse a name gets a random suffix. */
  private asideName(file: string): string {
    const to = `${file}.corrupt-${new Date(this.clock()).toISOString().replace(/[-:]/g, '').replace('.', '')}`;
    return existsSync(to) ? `${to}-${randomBytes(3).toString('hex')}` : to;
  }

  /**
   * Rewrites `file` without its `bad` lines (1-based) if it still holds `text`, the bad lines kept in
   * `<file>.corrupt-<time>`; that name, or undefined when the file changed or cannot be rewritten.
   */
  private repair(file: string, text: string, bad: number[]): string | undefined {
    if (this.readTextQuiet(file) !== text) return undefined;
    const to = this.asideName(file);
    const lines = text.split('\n');
    try {
      this.writeAtomic(to, bad.map((n) => lines[n - 1]).join('\n') + '\n');
      this.writeAtomic(file, lines.filter((_, i) => !bad.includes(i + 1)).join('\n'));
      return to;
    } catch {
      return undefined;
    }
  }

  /**
   * The records of a JSON-lines file: bad lines skipped with a warning naming them; a file with no
   * good line at all set aside (under `mutexOf`'s mutex when given). `aside` says what happens next.
   */
  private async readLines<T>(file: string, schema: z.ZodType<T>, what: string, aside: string, mutexOf?: string): Promise<T[]> {
    const text = this.readText(file);
    if (!text) return [];
    const out: T[] = [];
    const bad: number[] = [];
    text.split('\n').forEach((line, i) => {
      if (!line) return;
      const r = schema.safeParse(parseQuiet(line));
      if (r.success) out.push(r.data);
      else bad.push(i + 1);
    });
    if (!bad.length) return out;
    if (out.length) {
      const lines = bad.length > 5 ? `lines ${bad.slice(0, 5).join(', ')} and ${bad.length - 5} more` : `line${bad.length > 1 ? 's' : ''} ${bad.join(', ')}`;
      const all = text.split('\n');
      const lastLine = all.length - (all.at(-1) === '' ? 1 : 0);
      // A pool's file whose last line reads is repaired once: the bad lines move to a
      // `.corrupt-<time>` file beside it, so the next process does not warn about them again. A bad
      // last line may be an append in progress, and a file without a pool mutex (events) may be
      // appended to by another process at any moment: those are only skipped.
      const moved = mutexOf !== undefined && !bad.includes(lastLine) ? await this.withPoolMutex(mutexOf, () => this.repair(file, text, bad)).catch(() => undefined) : undefined;
      this.warnings.warn(`${file}: skipped ${bad.length} unreadable ${what}${bad.length > 1 ? 's' : ''} (${lines})${moved ? `; moved to ${moved}` : ''}`);
      return out;
    }
    // Best effort: a read-only state directory or a busy mutex leaves the file as it is (skipped).
    const to = mutexOf === undefined ? this.setAside(file, text) : await this.withPoolMutex(mutexOf, () => this.setAside(file, text)).catch(() => undefined);
    if (to) this.warnings.warn(`${file}: no readable ${what} in it; set aside as ${to}, ${aside}`);
    else this.warnings.warn(`${file}: no readable ${what} in it; skipped (it could not be set aside)`);
    return out;
  }

  /**
   * Appends `text` to a JSON-lines file; a torn last line (no newline: a crash mid-append) is ended
   * first, so it stays one bad line instead of swallowing this record.
   */
  private appendLine(file: string, text: string): void {
    let torn = false;
    try {
      const fd = openSync(file, 'r');
      try {
        const size = fstatSync(fd).size;
        const last = Buffer.alloc(1);
        torn = size > 0 && readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
    }
    appendFileSync(file, (torn ? '\n' : '') + text, { mode: 0o600 });
  }

  private writeAtomic(file: string, text: string): void {
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new HistoryError(`cannot write ${file}: ${code(err) ?? (err as Error).message}`);
    }
  }

  private readText(file: string): string | undefined {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      if (code(err) === 'ENOENT') return undefined;
      throw new HistoryError(`cannot read ${file}: ${code(err)}`);
    }
  }

  /**
   * A JSON document checked against `schema`; one that does not parse or validate is set aside
   * (under `mutexOf`'s mutex when given) with a warning, and read as absent.
   */
  private async readDoc<T>(file: string, schema: z.ZodType<T>, what: string, aside: string, mutexOf?: string): Promise<T | undefined> {
    const text = this.readText(file);
    if (text === undefined) return undefined;
    const raw = parseQuiet(text);
    const parsed = schema.safeParse(raw);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const why = raw === undefined ? 'not JSON' : `invalid (${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message})`;
    // Best effort: a read-only state directory or a busy mutex leaves the file as it is (skipped).
    const to = mutexOf === undefined ? this.setAside(file, text) : await this.withPoolMutex(mutexOf, () => this.setAside(file, text)).catch(() => undefined);
    if (to) this.warnings.warn(`${what} ${file} is ${why}: set aside as ${to}, ${aside}`);
    else this.warnings.warn(`${what} ${file} is ${why}: read as absent (it could not be set aside)`);
    return undefined;
  }

  private poolFile(pool: string): string {
    return join(this.dir, 'pools', `${safe(pool)}.json`);
  }

  private leaseFile(pool: string, ext: 'lock' | 'token' | 'mutex'): string {
    return join(this.dir, 'leases', `${safe(pool)}.${ext}`);
  }

  async getPool(pool: string): Promise<PoolRecord | undefined> {
    return this.readPool(this.poolFile(pool), pool);
  }

  /** `pool` names the mutex: safe() is idempotent, so a file's stem does too. */
  private async readPool(file: string, pool: string): Promise<PoolRecord | undefined> {
    return this.readDoc(file, PoolRecordSchema, `the history record of pool ${pool}`, 'the next cycle rebuilds it from Terraform state', pool);
  }

  async putPool(record: PoolRecord, fence: Lease): Promise<void> {
    const text = JSON.stringify(PoolRecordSchema.parse(record));
    await this.fenced(record.pool, fence, 'write the record', () => {
      mkdirSync(join(this.dir, 'pools'), { recursive: true, mode: 0o700 });
      this.writeAtomic(this.poolFile(record.pool), text);
    });
  }

  async deletePool(pool: string, fence: Lease): Promise<void> {
    await this.fenced(pool, fence, 'delete the record', () => rmSync(this.poolFile(pool), { force: true }));
  }

  /** The `.json` files of one of the store's directories (none when it does not exist yet). */
  private jsonFiles(dir: string): string[] {
    try {
      return readdirSync(dir).filter((x) => x.endsWith('.json'));
    } catch (err) {
      if (code(err) === 'ENOENT') return [];
      throw new HistoryError(`cannot list ${dir}: ${code(err)}`);
    }
  }

  async listPools(): Promise<string[]> {
    const dir = join(this.dir, 'pools');
    const files = this.jsonFiles(dir);
    // The name is read from the record, not the file name (safe() is not reversible).
    const names: string[] = [];
    for (const f of files) {
      const rec = await this.readPool(join(dir, f), f.slice(0, -'.json'.length));
      if (rec) names.push(rec.pool);
    }
    return [...new Set(names)].sort();
  }

  async addSample(pool: string, sample: Sample, fence?: Lease): Promise<void> {
    const line = JSON.stringify(SampleSchema.parse(sample)) + '\n';
    const write = () => {
      const day = Math.floor(sample.at / DAY);
      const dir = join(this.dir, 'samples', safe(pool));
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        this.appendLine(join(dir, `${day}.jsonl`), line);
        const oldest = Math.floor((this.clock() - SAMPLE_RETENTION_MS) / DAY);
        // Files set aside (`<day>.jsonl.corrupt-…`) age out with their day.
        for (const f of readdirSync(dir)) if (Number(f.split('.')[0]) < oldest) rmSync(join(dir, f), { force: true });
      } catch (err) {
        throw new HistoryError(`cannot write a sample of pool ${pool}: ${code(err) ?? (err as Error).message}`);
      }
    };
    // Under the pool's mutex either way: a bad line is moved out of this file under it (readLines).
    if (fence) await this.fenced(pool, fence, 'add a sample', write);
    else await this.withPoolMutex(pool, write);
  }

  async samples(pool: string, sinceMs: number): Promise<Sample[]> {
    const dir = join(this.dir, 'samples', safe(pool));
    let files: string[];
    try {
      files = readdirSync(dir);
    } catch {
      return [];
    }
    const out: Sample[] = [];
    const days = files.flatMap((f) => (DAY_FILE.test(f) ? [Number(DAY_FILE.exec(f)?.[1])] : [])).filter((d) => d >= Math.floor(sinceMs / DAY));
    for (const d of days.sort((a, b) => a - b)) {
      const got = await this.readLines(join(dir, `${d}.jsonl`), SampleSchema, `sample of pool ${pool}`, 'new samples start a new file', pool);
      out.push(...got.filter((s) => s.at >= sinceMs));
    }
    return out;
  }

  async addEvent(event: HistoryEvent): Promise<void> {
    const file = join(this.dir, 'events.jsonl');
    const line = JSON.stringify(EventSchema.parse(event)) + '\n';
    try {
      this.appendLine(file, line);
    } catch (err) {
      throw new HistoryError(`cannot write an event: ${code(err) ?? (err as Error).message}`);
    }
  }

  async events(sinceMs: number): Promise<HistoryEvent[]> {
    const out = await this.readLines(join(this.dir, 'events.jsonl'), EventSchema, 'event', 'new events start a new file');
    return out.filter((e) => e.at >= sinceMs).slice(-EVENT_LIMIT);
  }

  async putJobLabels(emitter: string, labels: JobLabels): Promise<void> {
    this.writeAtomic(join(this.dir, `labels-${safe(emitter)}.json`), JSON.stringify(JobLabelsSchema.parse(labels)));
  }

  async getJobLabels(emitter: string): Promise<JobLabels | undefined> {
    return this.readDoc(join(this.dir, `labels-${safe(emitter)}.json`), JobLabelsSchema, `the recent job labels of emitter ${emitter}`, 'the next probe writes them again');
  }

  /**
   * `history/deliveries-<emitter>.json` (id → expiry), read and replaced under its own mutex
   * (`leases/_deliveries-<emitter>.mutex`, a name no pool can have): expired claims are pruned on
   * every write, and past DELIVERY_LIMIT the claims expiring first go. Claims made in this process
   * while one is being written wait and go together (one read and one write for the batch). A file
   * that does not parse starts afresh (a duplicate may then pass once; the probe stays the truth).
   */
  async claimDelivery(emitter: string, id: string, ttlMs: number): Promise<boolean> {
    if (id.length === 0 || id.length > DELIVERY_ID_MAX) throw new HistoryError(`a webhook delivery id has 1 to ${DELIVERY_ID_MAX} characters, not ${id.length}`);
    return new Promise<boolean>((resolve, reject) => {
      const q = this.claims.get(emitter) ?? [];
      q.push({ id, ttlMs, resolve, reject });
      this.claims.set(emitter, q);
      if (q.length === 1 && !this.claiming.has(emitter)) void this.writeClaims(emitter);
    });
  }

  private readonly claims = new Map<string, Array<{ id: string; ttlMs: number; resolve: (first: boolean) => void; reject: (err: Error) => void }>>();
  private readonly claiming = new Set<string>();

  private async nextClaims(emitter: string): Promise<Array<{ id: string; ttlMs: number; resolve: (first: boolean) => void; reject: (err: Error) => void }>> {
    await new Promise<void>((r) => setImmediate(r));
    return this.claims.get(emitter)?.splice(0) ?? [];
  }

  /** Writes the waiting claims of an emitter, batch after batch, until none waits. */
  private async writeClaims(emitter: string): Promise<void> {
    this.claiming.add(emitter);
    const file = join(this.dir, `deliveries-${safe(emitter)}.json`);
    try {
      // Each batch waits for the I/O at hand, so that deliveries arriving together are written together.
      for (let batch = await this.nextClaims(emitter); batch.length; batch = await this.nextClaims(emitter)) {
        try {
          const results = await this.withPoolMutex(`@deliveries-${emitter}`, (stillHeld) => {
            const now = this.leaseClock();
            const text = this.readText(file);
            const parsed = text === undefined ? undefined : DeliveriesSchema.safeParse(parseQuiet(text));
            const kept = new Map(Object.entries(parsed?.success ? parsed.data : {}).filter(([, exp]) => exp > now));
            const out = batch.map((c) => {
              if (kept.has(c.id)) return false;
              kept.set(c.id, now + c.ttlMs);
              return true;
            });
            let entries = [...kept];
            if (entries.length > DELIVERY_LIMIT) entries = entries.sort((a, b) => b[1] - a[1]).slice(0, DELIVERY_LIMIT);
            stillHeld();
            this.writeAtomic(file, JSON.stringify(Object.fromEntries(entries)));
            return out;
          });
          batch.forEach((c, i) => c.resolve(results[i] === true));
        } catch (err) {
          for (const c of batch) c.reject(err instanceof Error ? err : new HistoryError(String(err)));
        }
      }
    } finally {
      this.claiming.delete(emitter);
    }
  }

  // ------------------------------------------------------------------ leases

  /** The last token handed out for the pool; undefined when the counter is missing or unreadable. */
  private lastToken(pool: string): number | undefined {
    const text = this.readText(this.leaseFile(pool, 'token'));
    if (text === undefined) return undefined;
    const t = TokenSchema.safeParse(text);
    return t.success ? t.data : undefined;
  }

  private readLock(pool: string): Lock | undefined {
    const text = this.readText(this.leaseFile(pool, 'lock'));
    if (text === undefined) return undefined;
    const lock = LockSchema.safeParse(parseQuiet(text));
    return lock.success ? lock.data : undefined;
  }

  async acquireLease(pool: string, owner: string, ttlMs: number): Promise<Lease | undefined> {
    return this.withPoolMutex(pool, (stillHeld) => {
      const now = this.leaseClock();
      const held = this.readLock(pool);
      // An unreadable lock file is stale (as before): a lease is only ever written whole (rename).
      if (held && held.owner !== owner && held.expiresAt > now && !(held.host === hostname() && !alive(held.pid))) return undefined;
      const token = Math.max((this.lastToken(pool) ?? 0) + 1, (held?.token ?? 0) + 1, wallMicros());
      // A lock file left behind (release removes it) by another owner: its lease expired unreleased.
      const takenOverFrom = held && held.owner !== owner ? held.owner : undefined;
      stillHeld();
      // The counter first: a crash between the two writes leaves a lock whose token is behind
      // the counter, which fences nothing.
      this.writeAtomic(this.leaseFile(pool, 'token'), String(token));
      this.writeAtomic(this.leaseFile(pool, 'lock'), JSON.stringify({ owner, pid: process.pid, host: hostname(), token, expiresAt: now + ttlMs } satisfies Lock));
      return { pool, owner, token, ...(takenOverFrom !== undefined ? { takenOverFrom } : {}) };
    });
  }

  async leaseHolder(pool: string): Promise<LeaseHolder | undefined> {
    const held = this.readLock(pool);
    const left = held ? held.expiresAt - this.leaseClock() : 0;
    if (!held || left <= 0 || held.token === undefined || (held.host === hostname() && !alive(held.pid))) return undefined;
    return { owner: held.owner, token: held.token, expiresInMs: left };
  }

  private observationFile(emitter: string): string {
    return join(this.dir, 'observations', `${safe(emitter)}.json`);
  }

  async putObservation(o: { observation: Observation; digest: string; prober: string }): Promise<{ version: number; changed: boolean; written: boolean }> {
    const observation = ObservationSchema.parse(o.observation);
    const file = this.observationFile(observation.emitter);
    mkdirSync(join(this.dir, 'observations'), { recursive: true, mode: 0o700 });
    return this.withPoolMutex(`@observation-${observation.emitter}`, (stillHeld) => {
      const text = this.readText(file);
      const cur = text === undefined ? undefined : StoredObservationSchema.safeParse(parseQuiet(text));
      const prev = cur?.success ? cur.data : undefined;
      if (prev && prev.observation.at >= observation.at) return { version: prev.version, changed: false, written: false };
      const changed = prev?.digest !== o.digest;
      const version = changed ? Math.max((prev?.version ?? 0) + 1, wallMicros()) : (prev?.version ?? wallMicros());
      stillHeld();
      this.writeAtomic(file, JSON.stringify({ version, digest: o.digest, prober: o.prober, observation } satisfies StoredObservation));
      return { version, changed, written: true };
    });
  }

  async getObservation(emitter: string): Promise<StoredObservation | undefined> {
    return this.readDoc(this.observationFile(emitter), StoredObservationSchema, `the observation of emitter ${emitter}`, 'the next probe writes it again', `@observation-${emitter}`);
  }

  /** `spend/<pool>.json`: a stack's spend record (cost budgets). */
  private spendFile(pool: string): string {
    return join(this.dir, 'spend', `${safe(pool)}.json`);
  }

  async getSpend(pool: string): Promise<SpendRecord | undefined> {
    const r = await this.readDoc(this.spendFile(pool), SpendRecordSchema, `the spend record of pool ${pool}`, 'its spend is counted afresh from the next cycle', pool);
    return r?.pool === pool ? r : undefined;
  }

  async putSpend(record: SpendRecord, fence: Lease): Promise<void> {
    const text = JSON.stringify(SpendRecordSchema.parse(record));
    await this.fenced(record.pool, fence, `record spend of ${record.pool}`, () => {
      mkdirSync(join(this.dir, 'spend'), { recursive: true, mode: 0o700 });
      this.writeAtomic(this.spendFile(record.pool), text);
    });
  }

  async listSpend(): Promise<SpendRecord[]> {
    const dir = join(this.dir, 'spend');
    const out: SpendRecord[] = [];
    for (const f of this.jsonFiles(dir).sort()) {
      const r = await this.readDoc(join(dir, f), SpendRecordSchema, `the spend record ${f}`, 'its spend is counted afresh from the next cycle', f.slice(0, -'.json'.length));
      if (r) out.push(r);
    }
    return out.sort((a, b) => (a.pool < b.pool ? -1 : a.pool > b.pool ? 1 : 0));
  }

  /** `spend-ledger.json`, created once (exclusive create: of concurrent callers the first wins). */
  async spendLedger(startAt?: number): Promise<number | undefined> {
    const file = join(this.dir, 'spend-ledger.json');
    if (startAt !== undefined) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        try {
          writeSync(fd, JSON.stringify({ since: startAt }));
        } finally {
          closeSync(fd);
        }
      } catch (err) {
        if (code(err) !== 'EEXIST') throw new HistoryError(`cannot write ${file}: ${code(err) ?? (err as Error).message}`);
      }
    }
    const r = await this.readDoc(file, z.object({ since: z.number() }), 'the spend ledger', 'the month\'s spend is unknown until the next month');
    return r?.since;
  }

  async ping(): Promise<void> {
    try {
      statSync(join(this.dir, 'leases'));
    } catch (err) {
      throw new HistoryError(`cannot read ${this.dir}: ${code(err) ?? (err as Error).message}`);
    }
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<boolean> {
    const l = checkLease(lease);
    return this.withPoolMutex(l.pool, (stillHeld) => {
      if (this.lastToken(l.pool) !== l.token) return false;
      const held = this.readLock(l.pool);
      if (held && (held.token !== l.token || held.owner !== l.owner)) return false;
      stillHeld();
      this.writeAtomic(this.leaseFile(l.pool, 'lock'), JSON.stringify({ owner: l.owner, pid: process.pid, host: hostname(), token: l.token, expiresAt: this.leaseClock() + ttlMs } satisfies Lock));
      return true;
    });
  }

  async releaseLease(lease: Lease): Promise<void> {
    const l = checkLease(lease);
    await this.withPoolMutex(l.pool, (stillHeld) => {
      if (this.lastToken(l.pool) !== l.token) return; // a later lease exists: not ours to release
      const held = this.readLock(l.pool);
      if (held && (held.token !== l.token || held.owner !== l.owner)) return;
      stillHeld();
      // Advance the token past a released lease: its late writes are refused and it cannot be renewed.
      this.writeAtomic(this.leaseFile(l.pool, 'token'), String(l.token + 1));
      rmSync(this.leaseFile(l.pool, 'lock'), { force: true });
    });
  }

  /** Runs `write` under the pool's mutex iff `fence` is still the pool's latest lease. */
  private async fenced(target: string, fence: Lease, what: string, write: () => void): Promise<void> {
    const l = checkLease(fence);
    // A failover stack's record (`<pool>@<platform>`) is written under its pool's lease.
    const pool = l.pool;
    if (!ofLeasedPool(target, pool)) throw new HistoryError(`cannot ${what} of pool ${target} under the lease of pool ${l.pool}`);
    await this.withPoolMutex(pool, (stillHeld) => {
      const last = this.lastToken(pool);
      if (last !== l.token) {
        throw new LeaseLostError(`pool ${pool}: lease ${l.token} of ${l.owner} was superseded (${last === undefined ? 'no lease is on record' : `latest lease ${last}`}); refusing to ${what}`);
      }
      stillHeld();
      write();
    });
  }

  /**
   * Runs `f` (synchronous: the mutex is never held across an await) holding the pool's mutex.
   *
   * The mutex is the directory `<pool>.mutex`, and it is held iff it contains a holder file (named
   * by a random nonce, holding pid, host and time). To take it, a process makes a private
   * directory with its holder file already inside and rename()s it onto `<pool>.mutex`: rename
   * is atomic and replaces the target only when it is absent or an *empty* directory, so it fails
   * (EEXIST/ENOTEMPTY) while anyone holds the mutex, and of several racers exactly one succeeds.
   * Releasing unlinks the holder file (the directory is then empty, i.e. free) and removes the
   * directory if it is still empty.
   *
   * A holder that died (pid gone on this host) or held it longer than MUTEX_STALE_MS is broken by
   * unlinking *its* holder file by name. That is a compare-and-delete: unlink of a name that
   * includes the stale holder's nonce can only remove that holder, never a newer one, and of
   * several breakers only one succeeds (the others get ENOENT). This is why the naive
   * "see it expired, unlink the lock, create it" is not used: two processes that both saw the stale
   * lock could each unlink the other's fresh one. The pool's lease file itself is then only read
   * and replaced (temp + rename) under this mutex, so a takeover is read-compare-write in one
   * critical section.
   *
   * `stillHeld()` re-checks, right before a write, that the holder file was not broken meanwhile
   * (a pause of MUTEX_STALE_MS inside the critical section); it narrows that window, which cannot
   * be closed without kernel locks (fcntl/flock), which Node does not offer.
   */
  private async withPoolMutex<T>(pool: string, f: (stillHeld: () => void) => T): Promise<T> {
    const mutex = this.leaseFile(pool, 'mutex');
    const nonce = `${Date.now()}-${process.pid}-${randomBytes(8).toString('hex')}`;
    const mine = join(mutex, nonce);
    const deadline = Date.now() + MUTEX_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      if (this.lockPool(mutex, nonce)) break;
      if (Date.now() > deadline) throw new HistoryError(`pool ${pool}: cannot take ${mutex} within ${MUTEX_WAIT_MS / 1000}s (held by a live process; remove it if none is running)`);
      await sleep(Math.min(50, 1 + attempt) * Math.random());
    }
    try {
      return f(() => {
        if (!existsSync(mine)) throw new HistoryError(`pool ${pool}: lost ${mutex} (held longer than ${MUTEX_STALE_MS / 1000}s); nothing written`);
      });
    } finally {
      try {
        unlinkSync(mine);
        rmdirSync(mutex);
      } catch {
        /* broken by another process, or already taken again (not empty): not ours any more */
      }
    }
  }

  /** One attempt to take the mutex directory (see withPoolMutex); breaks a stale holder when it finds one. */
  private lockPool(mutex: string, nonce: string): boolean {
    const staging = `${mutex}.${nonce}.tmp`;
    try {
      mkdirSync(join(this.dir, 'leases'), { recursive: true, mode: 0o700 });
      mkdirSync(staging, { mode: 0o700 });
      const fd = openSync(join(staging, nonce), 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify({ pid: process.pid, host: hostname(), at: Date.now() }));
      } finally {
        closeSync(fd);
      }
      renameSync(staging, mutex);
      return true;
    } catch (err) {
      const c = code(err);
      rmSync(staging, { recursive: true, force: true });
      if (c !== 'EEXIST' && c !== 'ENOTEMPTY' && c !== 'ENOENT') throw new HistoryError(`cannot take ${mutex}: ${c ?? (err as Error).message}`);
    }
    this.breakStaleHolder(mutex);
    return false;
  }

  private breakStaleHolder(mutex: string): void {
    let holders: string[];
    try {
      holders = readdirSync(mutex);
    } catch {
      return;
    }
    for (const h of holders) {
      const file = join(mutex, h);
      let stale: boolean;
      const text = this.readTextQuiet(file);
      if (text === undefined) continue;
      const owner = MutexOwnerSchema.safeParse(parseQuiet(text));
      if (owner.success) stale = (owner.data.host === hostname() && !alive(owner.data.pid)) || Date.now() - owner.data.at > MUTEX_STALE_MS;
      else stale = Date.now() - (statQuiet(file) ?? Date.now()) > MUTEX_STALE_MS;
      if (!stale) continue;
      try {
        unlinkSync(file);
      } catch {
        /* another process broke it first */
      }
    }
  }

  private readTextQuiet(file: string): string | undefined {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  }

  async clear(): Promise<void> {
    // Leases and their token counters stay: tokens must keep growing across a reset.
    for (const d of ['pools', 'samples', 'observations', 'spend']) {
      rmSync(join(this.dir, d), { recursive: true, force: true });
      mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
    }
    rmSync(join(this.dir, 'events.jsonl'), { force: true });
    rmSync(join(this.dir, 'spend-ledger.json'), { force: true });
    for (const f of readdirSync(this.dir)) if (/^deliveries-.*\.json$/.test(f)) rmSync(join(this.dir, f), { force: true });
  }

  async close(): Promise<void> {}
}

/** Wall-clock time in whole microseconds (a safe integer until the year 2255). */
function wallMicros(): number {
  return Math.floor((performance.timeOrigin + performance.now()) * 1000);
}

function parseQuiet(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function statQuiet(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return code(err) === 'EPERM';
  }
}
