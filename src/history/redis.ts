/**
 * The Redis history store (ioredis), for several reconcilers and CI runners sharing one history.
 * Keys under `parmanu:`: `pool:<name>` (JSON record), `samples:<name>` (sorted set by time,
 * trimmed to the retention), `events` (a stream capped at EVENT_LIMIT), `lease:<name>` (SET NX PX;
 * renewed and released only by the owner, atomically in Lua). Payloads are validated with zod.
 */
import { Redis } from 'ioredis';
import { EVENT_LIMIT, EventSchema, HistoryError, JobLabelsSchema, PoolRecordSchema, SAMPLE_RETENTION_MS, SampleSchema, type HistoryEvent, type HistoryStore, type JobLabels, type PoolRecord, type Sample } from './types.js';

const RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export class RedisHistoryStore implements HistoryStore {
  readonly kind = 'redis' as const;
  /** Round trips to Redis (a MULTI/EXEC or a Lua script counts once). */
  readonly stats = { roundTrips: 0 };
  private readonly redis: Redis;

  private readonly where: string;

  constructor(url: string, private readonly clock: () => number = Date.now, private readonly prefix = 'parmanu:') {
    const u = new URL(url);
    this.where = `${u.hostname}:${u.port || 6379}`;
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, enableOfflineQueue: false, retryStrategy: () => null });
    this.redis.on('error', () => undefined);
  }

  private connecting: Promise<void> | undefined;

  /** Connects once; concurrent callers share the same attempt. */
  private async ensureConnected(): Promise<void> {
    if (this.redis.status === 'ready') return;
    this.connecting ??= this.redis.connect().finally(() => {
      this.connecting = undefined;
    });
    await this.connecting;
  }

  private async run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      await this.ensureConnected();
      this.stats.roundTrips++;
      return await f();
    } catch (err) {
      if (err instanceof HistoryError) throw err;
      const e = err as NodeJS.ErrnoException;
      const unreachable = e.code === 'ECONNREFUSED' || e.code === 'ETIMEDOUT' || e.code === 'ENOTFOUND' || this.redis.status !== 'ready';
      throw new HistoryError(`redis ${what}: ${unreachable ? `cannot connect to ${this.where} (is Redis running at REDIS_URL?)` : e.message.split('\n')[0]}`);
    }
  }

  async getPool(pool: string): Promise<PoolRecord | undefined> {
    const raw = await this.run('GET', () => this.redis.get(`${this.prefix}pool:${pool}`));
    if (raw === null) return undefined;
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch {
      throw new HistoryError(`redis ${this.prefix}pool:${pool}: not JSON`);
    }
    const parsed = PoolRecordSchema.safeParse(data);
    if (!parsed.success) throw new HistoryError(`redis ${this.prefix}pool:${pool}: invalid record: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }

  async putPool(record: PoolRecord): Promise<void> {
    await this.run('SET', () => this.redis.set(`${this.prefix}pool:${record.pool}`, JSON.stringify(PoolRecordSchema.parse(record))));
  }

  async addSample(pool: string, sample: Sample): Promise<void> {
    const key = `${this.prefix}samples:${pool}`;
    await this.run('ZADD', () =>
      this.redis
        .multi()
        .zadd(key, sample.at, JSON.stringify(SampleSchema.parse(sample)))
        .zremrangebyscore(key, '-inf', this.clock() - SAMPLE_RETENTION_MS)
        .exec(),
    );
  }

  async samples(pool: string, sinceMs: number): Promise<Sample[]> {
    const raw = await this.run('ZRANGEBYSCORE', () => this.redis.zrangebyscore(`${this.prefix}samples:${pool}`, sinceMs, '+inf'));
    return raw.flatMap((r) => {
      const s = SampleSchema.safeParse(JSON.parse(r));
      return s.success ? [s.data] : [];
    });
  }

  async addEvent(event: HistoryEvent): Promise<void> {
    await this.run('XADD', () => this.redis.xadd(`${this.prefix}events`, 'MAXLEN', '~', String(EVENT_LIMIT), '*', 'e', JSON.stringify(EventSchema.parse(event))));
  }

  async events(sinceMs: number): Promise<HistoryEvent[]> {
    const raw = await this.run('XRANGE', () => this.redis.xrange(`${this.prefix}events`, String(Math.max(0, sinceMs)), '+'));
    return raw.flatMap(([, fields]) => {
      const e = EventSchema.safeParse(JSON.parse(fields[1] ?? 'null'));
      return e.success ? [e.data] : [];
    });
  }

  async putJobLabels(emitter: string, labels: JobLabels): Promise<void> {
    await this.run('SET', () => this.redis.set(`${this.prefix}labels:${emitter}`, JSON.stringify(JobLabelsSchema.parse(labels))));
  }

  async getJobLabels(emitter: string): Promise<JobLabels | undefined> {
    const raw = await this.run('GET', () => this.redis.get(`${this.prefix}labels:${emitter}`));
    if (raw === null) return undefined;
    const parsed = JobLabelsSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }

  async acquireLease(pool: string, owner: string, ttlMs: number): Promise<boolean> {
    const key = `${this.prefix}lease:${pool}`;
    return this.run('lease', async () => {
      if ((await this.redis.set(key, owner, 'PX', ttlMs, 'NX')) === 'OK') return true;
      return (await this.redis.eval(RENEW, 1, key, owner, String(ttlMs))) === 1;
    });
  }

  async releaseLease(pool: string, owner: string): Promise<void> {
    await this.run('lease release', () => this.redis.eval(RELEASE, 1, `${this.prefix}lease:${pool}`, owner));
  }

  async clear(): Promise<void> {
    await this.run('clear', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 500);
        cursor = next;
        const own = keys.filter((k) => !k.startsWith(`${this.prefix}lease:`));
        if (own.length) await this.redis.del(...own);
      } while (cursor !== '0');
    });
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
