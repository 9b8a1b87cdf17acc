/**
 * The embedded history store: JSON files under `<PARMANU_STATE_DIR>/history/`, written atomically
 * (temp file + rename), one file per pool, samples as JSON lines per pool and day. It serves one
 * host: leases are exclusive lock files (`O_EXCL`) holding owner, pid and expiry; a lock whose
 * expiry passed, or whose process is gone on this host, is stale and taken over.
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync, appendFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { EVENT_LIMIT, EventSchema, HistoryError, JobLabelsSchema, PoolRecordSchema, SAMPLE_RETENTION_MS, SampleSchema, type HistoryEvent, type HistoryStore, type JobLabels, type PoolRecord, type Sample } from './types.js';

const LeaseSchema = z.object({ owner: z.string(), pid: z.number(), host: z.string(), expiresAt: z.number() });
const DAY = 86_400_000;
const safe = (name: string) => name.replace(/[^a-zA-Z0-9_.-]/g, '_');

export class FileHistoryStore implements HistoryStore {
  readonly kind = 'file' as const;
  private readonly dir: string;

  constructor(stateDir: string, private readonly clock: () => number = Date.now) {
    this.dir = join(stateDir, 'history');
    for (const d of ['pools', 'samples', 'leases']) mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
  }

  private writeAtomic(file: string, text: string): void {
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    try {
      const fd = openSync(tmp, 'w', 0o600);
      writeSync(fd, text);
      closeSync(fd);
      renameSync(tmp, file);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw new HistoryError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }

  private readJson(file: string): unknown {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new HistoryError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new HistoryError(`${file}: not JSON (remove it: the next cycle rebuilds it from Terraform state)`);
    }
  }

  async getPool(pool: string): Promise<PoolRecord | undefined> {
    const raw = this.readJson(join(this.dir, 'pools', `${safe(pool)}.json`));
    if (raw === undefined) return undefined;
    const parsed = PoolRecordSchema.safeParse(raw);
    if (!parsed.success) throw new HistoryError(`history of pool ${pool} is invalid: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  async putPool(record: PoolRecord): Promise<void> {
    this.writeAtomic(join(this.dir, 'pools', `${safe(record.pool)}.json`), JSON.stringify(PoolRecordSchema.parse(record)));
  }

  async addSample(pool: string, sample: Sample): Promise<void> {
    const day = Math.floor(sample.at / DAY);
    const dir = join(this.dir, 'samples', safe(pool));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    appendFileSync(join(dir, `${day}.jsonl`), JSON.stringify(SampleSchema.parse(sample)) + '\n', { mode: 0o600 });
    const oldest = Math.floor((this.clock() - SAMPLE_RETENTION_MS) / DAY);
    for (const f of readdirSync(dir)) if (Number(f.split('.')[0]) < oldest) rmSync(join(dir, f), { force: true });
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
    for (const f of files.filter((x) => Number(x.split('.')[0]) >= Math.floor(sinceMs / DAY)).sort((a, b) => Number(a.split('.')[0]) - Number(b.split('.')[0]))) {
      for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
        if (!line) continue;
        const s = SampleSchema.safeParse(JSON.parse(line));
        if (s.success && s.data.at >= sinceMs) out.push(s.data);
      }
    }
    return out;
  }

  async addEvent(event: HistoryEvent): Promise<void> {
    const file = join(this.dir, 'events.jsonl');
    appendFileSync(file, JSON.stringify(EventSchema.parse(event)) + '\n', { mode: 0o600 });
  }

  async events(sinceMs: number): Promise<HistoryEvent[]> {
    let text = '';
    try {
      text = readFileSync(join(this.dir, 'events.jsonl'), 'utf8');
    } catch {
      return [];
    }
    const out = text.split('\n').filter(Boolean).map((l) => EventSchema.safeParse(JSON.parse(l))).flatMap((r) => (r.success ? [r.data] : []));
    return out.filter((e) => e.at >= sinceMs).slice(-EVENT_LIMIT);
  }

  async putJobLabels(emitter: string, labels: JobLabels): Promise<void> {
    this.writeAtomic(join(this.dir, `labels-${safe(emitter)}.json`), JSON.stringify(JobLabelsSchema.parse(labels)));
  }

  async getJobLabels(emitter: string): Promise<JobLabels | undefined> {
    const raw = this.readJson(join(this.dir, `labels-${safe(emitter)}.json`));
    if (raw === undefined) return undefined;
    const parsed = JobLabelsSchema.safeParse(raw);
    return parsed.success ? parsed.data : undefined;
  }

  async acquireLease(pool: string, owner: string, ttlMs: number): Promise<boolean> {
    const file = join(this.dir, 'leases', `${safe(pool)}.lock`);
    const body = JSON.stringify({ owner, pid: process.pid, host: hostname(), expiresAt: this.clock() + ttlMs });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, body);
        closeSync(fd);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new HistoryError(`cannot take lease ${file}: ${(err as NodeJS.ErrnoException).code}`);
      }
      const held = LeaseSchema.safeParse(this.readJsonQuiet(file));
      if (held.success && held.data.owner === owner) {
        this.writeAtomic(file, body);
        return true;
      }
      const stale = !held.success || held.data.expiresAt < this.clock() || (held.data.host === hostname() && !alive(held.data.pid));
      if (!stale) return false;
      try {
        unlinkSync(file);
      } catch {
        /* someone else took it over first */
      }
    }
    return false;
  }

  private readJsonQuiet(file: string): unknown {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as unknown;
    } catch {
      return undefined;
    }
  }

  async releaseLease(pool: string, owner: string): Promise<void> {
    const file = join(this.dir, 'leases', `${safe(pool)}.lock`);
    const held = LeaseSchema.safeParse(this.readJsonQuiet(file));
    if (held.success && held.data.owner === owner) rmSync(file, { force: true });
  }

  async clear(): Promise<void> {
    for (const d of ['pools', 'samples']) {
      rmSync(join(this.dir, d), { recursive: true, force: true });
      mkdirSync(join(this.dir, d), { recursive: true, mode: 0o700 });
    }
    rmSync(join(this.dir, 'events.jsonl'), { force: true });
  }

  async close(): Promise<void> {}
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
