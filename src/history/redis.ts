/**
 * The Redis history store (ioredis), for several reconcilers and CI runners sharing one history.
 * Keys under `parmanu:`: `pool:<name>` (JSON record), `samples:<name>` (sorted set by time,
 * trimmed to the retention), `events` (a stream capped at EVENT_LIMIT), `labels:<emitter>`,
 * `delivery:<emitter>:<id>` (a claimed webhook delivery, with its TTL),
 * `lease:<name>` (`<token>:<owner>`, with the lease's TTL), `holder:<name>` (the owner of the last
 * lease not released, to tell a takeover) and `fence:<name>` (the pool's last fencing token; never
 * expires, and clear() keeps these three), `observation:<emitter>` (a hash: at, version, digest,
 * and the JSON doc of the emitter's latest observation, written by the prober). Payloads and script replies are validated
 * with zod. A payload that does not parse or validate does not fail the store: a bad sample or
 * event is skipped with a warning, a bad pool record or label set is moved aside to
 * `corrupt:<key>:<time>` (only if unchanged since it was read) with a warning and read as absent.
 *
 * Every lease change and every fenced write is one Lua script (atomic in Redis): acquire takes the
 * next token with INCR — raised to Redis' own clock in microseconds when that is larger, so
 * tokens keep growing even after the counter was lost with a Redis restart or FLUSHALL (unless
 * more than one lease per microsecond was handed out on average) — and a fenced write compares `fence:<name>`
 * with its lease's token and writes in the same script. Semantics in types.ts: a lease that expired
 * with nobody taking the pool since still writes and renews; a released one does not (release
 * advances the token). Lease expiry is Redis' (PX), not the store's clock.
 *
 * A script touches keys of one pool; they carry no hash tag, so this store assumes a single Redis
 * (or a primary with replicas), not Redis Cluster.
 */
import { Redis } from 'ioredis';
import { z } from 'zod';
import {
  checkLease,
  DELIVERY_ID_MAX,
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
  type StoredObservation,
  type Sample,
  type SpendRecord,
} from './types.js';

/**
 * KEYS: lease, fence, holder. ARGV: owner, ttl ms. {the new token, the owner of an earlier lease that
 * expired unreleased ('' when none)}, or nil when another owner holds the lease. `holder` names the
 * last owner and is deleted on release, so a lease that merely expired still names its owner.
 */
const ACQUIRE = `
local cur = redis.call('get', KEYS[1])
if cur and string.match(cur, '^%d+:(.*)$') ~= ARGV[1] then return false end
local prev = ''
if not cur then
  local h = redis.call('get', KEYS[3])
  if h and h ~= ARGV[1] then prev = h end
end
local t = redis.call('incr', KEYS[2])
local now = redis.call('time')
local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
if us > t then t = redis.call('incrby', KEYS[2], us - t) end
redis.call('set', KEYS[1], string.format('%d:%s', t, ARGV[1]), 'PX', ARGV[2])
redis.call('set', KEYS[3], ARGV[1])
return {t, prev}`;
/** KEYS: lease, fence. ARGV: token, owner, ttl ms. 1 when renewed (re-set if it had expired untaken), 0 when lost. */
const RENEW = `
if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end
local mine = ARGV[1] .. ':' .. ARGV[2]
local cur = redis.call('get', KEYS[1])
if cur and cur ~= mine then return 0 end
redis.call('set', KEYS[1], mine, 'PX', ARGV[3])
return 1`;
/**
 * KEYS: lease, fence, holder. ARGV: token, owner. When the pool's latest lease is this one (and the
 * lease key, unless it expired, names the same owner): deletes it (and its holder) and advances the
 * token past it.
 */
const RELEASE = `
if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end
local cur = redis.call('get', KEYS[1])
if cur and cur ~= ARGV[1] .. ':' .. ARGV[2] then return 0 end
redis.call('del', KEYS[1])
redis.call('del', KEYS[3])
redis.call('incr', KEYS[2])
return 1`;
/**
 * KEYS: observation (a hash: at, version, digest, doc). ARGV: at, digest, doc. Writes unless the
 * stored `at` is as recent; the version grows when the digest changed, to at least Redis' clock in
 * microseconds. {version, changed, written}.
 */
const OBSERVE = `
local at = tonumber(redis.call('hget', KEYS[1], 'at') or '-1')
local v = tonumber(redis.call('hget', KEYS[1], 'version') or '0')
if at >= tonumber(ARGV[1]) then return {v, 0, 0} end
local changed = 0
if redis.call('hget', KEYS[1], 'digest') ~= ARGV[2] then
  changed = 1
  local now = redis.call('time')
  local us = tonumber(now[1]) * 1000000 + tonumber(now[2])
  v = math.max(v + 1, us)
end
redis.call('hset', KEYS[1], 'at', ARGV[1], 'version', string.format('%d', v), 'digest', ARGV[2], 'doc', ARGV[3])
return {v, changed, 1}`;
/**
 * KEYS: fence, target. ARGV: token, op, then op's arguments: 'set' value | 'del' | 'zadd' score
 * member cutoff. 1 when written; otherwise the pool's latest token (or 0 when there is none).
 */
const FENCED = `
local last = redis.call('get', KEYS[1])
if last ~= ARGV[1] then return {0, last or ''} end
if ARGV[2] == 'set' then redis.call('set', KEYS[2], ARGV[3])
elseif ARGV[2] == 'del' then redis.call('del', KEYS[2])
elseif ARGV[2] == 'hset' then redis.call('hset', KEYS[2], ARGV[3], ARGV[4])
elseif ARGV[2] == 'zadd' then
  redis.call('zadd', KEYS[2], ARGV[3], ARGV[4])
  redis.call('zremrangebyscore', KEYS[2], '-inf', ARGV[5])
else return redis.error_reply('unknown fenced op ' .. ARGV[2]) end
return {1, ARGV[1]}`;

/** KEYS: key, its corrupt copy. ARGV: the value read. Renames the key iff it still holds that value. */
const SET_ASIDE = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('rename', KEYS[1], KEYS[2])
return 1`;

const AcquireReply = z.tuple([z.number().int().positive().max(Number.MAX_SAFE_INTEGER), z.string()]).nullable();
const ObserveReply = z.tuple([z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER), FlagOf(), FlagOf()]);
const ObservationHash = z.object({ at: z.string(), version: z.string().regex(/^[0-9]+$/).transform(Number), digest: z.string(), doc: z.string() });
const ObservationDoc = z.object({ prober: z.string(), observation: ObservationSchema });
function FlagOf() {
  return z.union([z.literal(0), z.literal(1)]);
}
const FlagReply = FlagOf();
const FencedReply = z.tuple([FlagReply, z.string()]);

interface Scripts {
  parmanuAcquire(lease: string, fence: string, holder: string, owner: string, ttlMs: string): Promise<unknown>;
  parmanuRenew(lease: string, fence: string, token: string, owner: string, ttlMs: string): Promise<unknown>;
  parmanuRelease(lease: string, fence: string, holder: string, token: string, owner: string): Promise<unknown>;
  parmanuObserve(key: string, at: string, digest: string, doc: string): Promise<unknown>;
  parmanuFenced(fence: string, target: string, token: string, ...args: string[]): Promise<unknown>;
  parmanuSetAside(key: string, aside: string, value: string): Promise<unknown>;
}

function parseQuiet(text: string | undefined): unknown {
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** Why a payload failed its schema, in a few words. */
function why(raw: unknown, error: z.ZodError): string {
  const issue = error.issues[0];
  return raw === undefined ? 'not JSON' : `invalid (${issue?.path.length ? `${issue.path.join('.')}: ` : ''}${issue?.message})`;
}

/** A script's reply, checked against its schema (HistoryError when Redis answered something else). */
function reply<T>(schema: z.ZodType<T>, raw: unknown, what: string): T {
  const r = schema.safeParse(raw);
  if (!r.success) throw new HistoryError(`redis ${what}: unexpected reply ${JSON.stringify(raw)?.slice(0, 80)}`);
  return r.data;
}

export class RedisHistoryStore implements HistoryStore {
  readonly kind = 'redis' as const;
  /** Round trips to Redis (a MULTI/EXEC or a Lua script counts once). */
  readonly stats = { roundTrips: 0 };
  private readonly redis: Redis;

  private readonly where: string;
  private readonly warnings = new Warnings();

  get onWarning(): HistoryWarn | undefined {
    return this.warnings.sink;
  }

  set onWarning(f: HistoryWarn | undefined) {
    this.warnings.sink = f;
  }

  constructor(url: string, private readonly clock: () => number = Date.now, private readonly prefix = 'parmanu:', onWarning?: HistoryWarn) {
    this.warnings.sink = onWarning;
    const u = new URL(url);
    this.where = `${u.hostname}:${u.port || 6379}`;
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, enableOfflineQueue: false, retryStrategy: () => null });
    this.redis.on('error', () => undefined);
    this.redis.defineCommand('parmanuAcquire', { numberOfKeys: 3, lua: ACQUIRE });
    this.redis.defineCommand('parmanuRenew', { numberOfKeys: 2, lua: RENEW });
    this.redis.defineCommand('parmanuRelease', { numberOfKeys: 3, lua: RELEASE });
    this.redis.defineCommand('parmanuObserve', { numberOfKeys: 1, lua: OBSERVE });
    this.redis.defineCommand('parmanuFenced', { numberOfKeys: 2, lua: FENCED });
    this.redis.defineCommand('parmanuSetAside', { numberOfKeys: 2, lua: SET_ASIDE });
  }

  private get scripts(): Scripts {
    return this.redis as unknown as Scripts;
  }

  private key(kind: 'pool' | 'samples' | 'lease' | 'fence' | 'holder' | 'observation', pool: string): string {
    return `${this.prefix}${kind}:${pool}`;
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

  /**
   * A JSON value under `key` checked against `schema`; one that does not parse or validate is
   * renamed to `corrupt:<key>:<time>` (iff unchanged since read) with a warning, and read as absent.
   */
  private async readDoc<T>(key: string, schema: z.ZodType<T>, what: string, aside: string): Promise<T | undefined> {
    const raw = await this.run('GET', () => this.redis.get(key));
    if (raw === null) return undefined;
    const data = parseQuiet(raw);
    const parsed = schema.safeParse(data);
    if (parsed.success) return parsed.data;
    const to = `${this.prefix}corrupt:${key.slice(this.prefix.length)}:${new Date(this.clock()).toISOString()}`;
    const moved = await this.run('set aside', () => this.scripts.parmanuSetAside(key, to, raw));
    if (moved === 1) this.warnings.warn(`${what} (redis ${key}) is ${why(data, parsed.error)}: set aside as ${to}, ${aside}`);
    return undefined;
  }

  async getPool(pool: string): Promise<PoolRecord | undefined> {
    return this.readDoc(this.key('pool', pool), PoolRecordSchema, `the history record of pool ${pool}`, 'the next cycle rebuilds it from Terraform state');
  }

  async putPool(record: PoolRecord, fence: Lease): Promise<void> {
    await this.fenced(record.pool, fence, 'write the record', 'pool', ['set', JSON.stringify(PoolRecordSchema.parse(record))]);
  }

  async deletePool(pool: string, fence: Lease): Promise<void> {
    await this.fenced(pool, fence, 'delete the record', 'pool', ['del']);
  }

  async listPools(): Promise<string[]> {
    const match = `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}pool:*`;
    const names = await this.run('SCAN', async () => {
      const out: string[] = [];
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', match, 'COUNT', 500);
        cursor = next;
        out.push(...keys.map((k) => k.slice(`${this.prefix}pool:`.length)));
      } while (cursor !== '0');
      return out;
    });
    return [...new Set(names)].sort();
  }

  async addSample(pool: string, sample: Sample, fence?: Lease): Promise<void> {
    const key = this.key('samples', pool);
    const member = JSON.stringify(SampleSchema.parse(sample));
    const cutoff = this.clock() - SAMPLE_RETENTION_MS;
    if (fence) {
      await this.fenced(pool, fence, 'add a sample', 'samples', ['zadd', String(sample.at), member, String(cutoff)]);
      return;
    }
    await this.run('ZADD', () => this.redis.multi().zadd(key, sample.at, member).zremrangebyscore(key, '-inf', cutoff).exec());
  }

  /** One fenced write (the FENCED script): LeaseLostError when `fence` is no longer the pool's latest lease. */
  private async fenced(stack: string, fence: Lease, what: string, target: 'pool' | 'samples' | { key: string }, args: string[]): Promise<void> {
    const l = checkLease(fence);
    // A failover stack's record (`<pool>@<platform>`) is written under its pool's lease.
    const pool = l.pool;
    if (!ofLeasedPool(stack, pool)) throw new HistoryError(`cannot ${what} of pool ${stack} under the lease of pool ${l.pool}`);
    const raw = await this.run('fenced write', () => this.scripts.parmanuFenced(this.key('fence', pool), typeof target === 'string' ? this.key(target, stack) : target.key, String(l.token), ...args));
    const [ok, last] = reply(FencedReply, raw, 'fenced write');
    if (ok === 1) return;
    throw new LeaseLostError(`pool ${pool}: lease ${l.token} of ${l.owner} was superseded (${last ? `latest lease ${last}` : 'no lease is on record'}); refusing to ${what}`);
  }

  async samples(pool: string, sinceMs: number): Promise<Sample[]> {
    const key = this.key('samples', pool);
    const raw = await this.run('ZRANGEBYSCORE', () => this.redis.zrangebyscore(key, sinceMs, '+inf', 'WITHSCORES'));
    const out: Sample[] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const data = parseQuiet(raw[i]);
      const s = SampleSchema.safeParse(data);
      if (s.success) out.push(s.data);
      else this.warnings.warn(`redis ${key}: skipped an unreadable sample at ${raw[i + 1]} (${why(data, s.error)})`);
    }
    return out;
  }

  async addEvent(event: HistoryEvent): Promise<void> {
    await this.run('XADD', () => this.redis.xadd(`${this.prefix}events`, 'MAXLEN', '~', String(EVENT_LIMIT), '*', 'e', JSON.stringify(EventSchema.parse(event))));
  }

  async events(sinceMs: number): Promise<HistoryEvent[]> {
    const raw = await this.run('XRANGE', () => this.redis.xrange(`${this.prefix}events`, String(Math.max(0, sinceMs)), '+'));
    return raw.flatMap(([id, fields]) => {
      const data = parseQuiet(fields[1]);
      const e = EventSchema.safeParse(data);
      if (!e.success) this.warnings.warn(`redis ${this.prefix}events: skipped an unreadable event ${id} (${why(data, e.error)})`);
      return e.success ? [e.data] : [];
    });
  }

  async putJobLabels(emitter: string, labels: JobLabels): Promise<void> {
    await this.run('SET', () => this.redis.set(`${this.prefix}labels:${emitter}`, JSON.stringify(JobLabelsSchema.parse(labels))));
  }

  async getJobLabels(emitter: string): Promise<JobLabels | undefined> {
    return this.readDoc(`${this.prefix}labels:${emitter}`, JobLabelsSchema, `the recent job labels of emitter ${emitter}`, 'the next probe writes them again');
  }

  /** `delivery:<emitter>:<id>` set with NX and PX (Redis' clock): one claim wins, the key expires on its own. */
  async claimDelivery(emitter: string, id: string, ttlMs: number): Promise<boolean> {
    if (id.length === 0 || id.length > DELIVERY_ID_MAX) throw new HistoryError(`a webhook delivery id has 1 to ${DELIVERY_ID_MAX} characters, not ${id.length}`);
    const r = await this.run('SET NX', () => this.redis.set(`${this.prefix}delivery:${emitter}:${id}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'));
    return r === 'OK';
  }

  async acquireLease(pool: string, owner: string, ttlMs: number): Promise<Lease | undefined> {
    const raw = await this.run('lease', () => this.scripts.parmanuAcquire(this.key('lease', pool), this.key('fence', pool), this.key('holder', pool), owner, String(Math.max(1, Math.ceil(ttlMs)))));
    const r = reply(AcquireReply, raw, 'lease');
    return r === null ? undefined : { pool, owner, token: r[0], ...(r[1] ? { takenOverFrom: r[1] } : {}) };
  }

  async renewLease(lease: Lease, ttlMs: number): Promise<boolean> {
    const l = checkLease(lease);
    const raw = await this.run('lease renew', () => this.scripts.parmanuRenew(this.key('lease', l.pool), this.key('fence', l.pool), String(l.token), l.owner, String(Math.max(1, Math.ceil(ttlMs)))));
    return reply(FlagReply, raw, 'lease renew') === 1;
  }

  async releaseLease(lease: Lease): Promise<void> {
    const l = checkLease(lease);
    const raw = await this.run('lease release', () => this.scripts.parmanuRelease(this.key('lease', l.pool), this.key('fence', l.pool), this.key('holder', l.pool), String(l.token), l.owner));
    reply(FlagReply, raw, 'lease release');
  }

  async leaseHolder(pool: string): Promise<LeaseHolder | undefined> {
    const [value, ttl] = await this.run('lease holder', async () => {
      const r = await this.redis.multi().get(this.key('lease', pool)).pttl(this.key('lease', pool)).exec();
      return [r?.[0]?.[1], r?.[1]?.[1]] as const;
    });
    const m = typeof value === 'string' ? /^(\d+):(.*)$/s.exec(value) : null;
    if (!m || typeof ttl !== 'number' || ttl < 0) return undefined;
    return { owner: m[2] as string, token: Number(m[1]), expiresInMs: ttl };
  }

  async putObservation(o: { observation: Observation; digest: string; prober: string }): Promise<{ version: number; changed: boolean; written: boolean }> {
    const observation = ObservationSchema.parse(o.observation);
    const doc = JSON.stringify({ prober: o.prober, observation });
    const raw = await this.run('observation', () => this.scripts.parmanuObserve(this.key('observation', observation.emitter), String(observation.at), o.digest, doc));
    const [version, changed, written] = reply(ObserveReply, raw, 'observation');
    return { version, changed: changed === 1, written: written === 1 };
  }

  async getObservation(emitter: string): Promise<StoredObservation | undefined> {
    const key = this.key('observation', emitter);
    const raw = await this.run('HGETALL', () => this.redis.hgetall(key));
    if (Object.keys(raw).length === 0) return undefined;
    const h = ObservationHash.safeParse(raw);
    const doc = h.success ? ObservationDoc.safeParse(parseQuiet(h.data.doc)) : undefined;
    if (h.success && doc?.success) return { version: h.data.version, digest: h.data.digest, prober: doc.data.prober, observation: doc.data.observation };
    // Set aside like a bad record (iff unchanged: a prober may just have written a good one).
    const to = `${this.prefix}corrupt:observation:${emitter}:${new Date(this.clock()).toISOString()}`;
    const moved = await this.run('set aside', async () => {
      const again = await this.redis.hgetall(key);
      if (JSON.stringify(again) !== JSON.stringify(raw)) return 0;
      await this.redis.rename(key, to);
      return 1;
    });
    if (moved === 1) this.warnings.warn(`the observation of emitter ${emitter} (redis ${key}) is invalid: set aside as ${to}, the next probe writes it again`);
    return undefined;
  }

  /** `spend` is one hash (field: the pool), so that listSpend is one HGETALL, not a keyspace scan. */
  async getSpend(pool: string): Promise<SpendRecord | undefined> {
    const raw = await this.run('HGET', () => this.redis.hget(`${this.prefix}spend`, pool));
    if (raw === null) return undefined;
    return this.spendOf(pool, raw);
  }

  /** A spend record read back, validated; a bad one is dropped from the hash (iff unchanged) with a warning and read as absent. */
  private async spendOf(pool: string, raw: string): Promise<SpendRecord | undefined> {
    const data = parseQuiet(raw);
    const r = SpendRecordSchema.safeParse(data);
    if (r.success && r.data.pool === pool) return r.data;
    const key = `${this.prefix}spend`;
    const to = `${this.prefix}corrupt:spend:${pool}:${new Date(this.clock()).toISOString()}`;
    const moved = await this.run('set aside', async () => {
      if ((await this.redis.hget(key, pool)) !== raw) return 0;
      await this.redis.multi().set(to, raw).hdel(key, pool).exec();
      return 1;
    });
    if (moved === 1) this.warnings.warn(`the spend record of pool ${pool} (redis ${key}) is ${r.success ? 'another pool\'s' : why(data, r.error)}: set aside as ${to}; its spend is counted afresh from the next cycle`);
    return undefined;
  }

  async putSpend(record: SpendRecord, fence: Lease): Promise<void> {
    await this.fenced(record.pool, fence, `record spend of ${record.pool}`, { key: `${this.prefix}spend` }, ['hset', record.pool, JSON.stringify(SpendRecordSchema.parse(record))]);
  }

  async listSpend(): Promise<SpendRecord[]> {
    const all = await this.run('HGETALL', () => this.redis.hgetall(`${this.prefix}spend`));
    const out: SpendRecord[] = [];
    for (const [pool, raw] of Object.entries(all)) {
      const r = await this.spendOf(pool, raw);
      if (r) out.push(r);
    }
    return out.sort((a, b) => (a.pool < b.pool ? -1 : a.pool > b.pool ? 1 : 0));
  }

  async spendLedger(startAt?: number): Promise<number | undefined> {
    const key = `${this.prefix}spend-ledger`;
    const raw = await this.run('spend ledger', async () => {
      if (startAt !== undefined) await this.redis.set(key, String(startAt), 'NX');
      return this.redis.get(key);
    });
    return raw !== null && /^-?\d{1,16}$/.test(raw) ? Number(raw) : undefined;
  }

  async ping(): Promise<void> {
    await this.run('PING', () => this.redis.ping());
  }

  async clear(): Promise<void> {
    await this.run('clear', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 500);
        cursor = next;
        // Leases and fencing tokens stay: tokens must keep growing across a reset.
        const own = keys.filter((k) => !k.startsWith(`${this.prefix}lease:`) && !k.startsWith(`${this.prefix}fence:`) && !k.startsWith(`${this.prefix}holder:`));
        if (own.length) await this.redis.del(...own);
      } while (cursor !== '0');
    });
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
