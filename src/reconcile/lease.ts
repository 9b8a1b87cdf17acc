/**
 * Holding a lease while work runs under it: a pool's cycle (cycle.ts) and a prober's emitter
 * (prober.ts) keep theirs the same way.
 */
import { LeaseLostError, type HistoryStore, type Lease } from '../history/types.js';
import { ShuttingDown } from './execute.js';

/** What a pool's outcome says when another reconciler holds its lease. */
export const LEASE_HELD = "another reconciler holds this pool's lease";

/**
 * Keeps a lease: renewed every third of its TTL in the background, and renewed at once before each
 * batch of side effects (`checkpoint`). `check()` throws before a side effect once the lease is
 * known lost (a renewal answered no) or may have expired unseen (no renewal has succeeded for most
 * of the TTL: the store may be unreachable while another process, which can reach it, takes it);
 * and, for a pool's cycle, once the process is shutting down, until its apply is done (`commit`).
 */
export class LeaseKeeper {
  private lost = false;
  /** The apply is done: a shutdown no longer stops the cycle (its record must be written). */
  committed = false;
  private renewedAt = Date.now();
  private readonly timer: NodeJS.Timeout;
  constructor(
    private readonly history: HistoryStore,
    readonly lease: Lease,
    private readonly ttlMs: number,
    private readonly stopping: () => boolean = () => false,
    /** How messages name what the lease holds. */
    private readonly what = `pool ${lease.pool}`,
  ) {
    this.timer = setInterval(() => void this.renew().catch(() => undefined), Math.max(50, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }
  private async renew(): Promise<void> {
    const started = Date.now();
    if (await this.history.renewLease(this.lease, this.ttlMs)) this.renewedAt = Math.max(this.renewedAt, started);
    else this.lost = true;
  }
  commit(): void {
    this.committed = true;
  }
  check(): void {
    if (this.stopping() && !this.committed) throw new ShuttingDown(`shutting down: ${this.what} stopped before its next step (the next cycle goes on from there)`);
    if (this.lost) throw new LeaseLostError(`lost the lease of ${this.what} (another reconciler took it over): stopped before the next step`);
    // Leases run on the wall clock, whatever clock decide is given.
    if (Date.now() - this.renewedAt > (this.ttlMs * 2) / 3) throw new LeaseLostError(`the lease of ${this.what} could not be renewed for ${Math.round((Date.now() - this.renewedAt) / 1000)}s (TTL ${Math.round(this.ttlMs / 1000)}s): stopped before the next step`);
  }
  /** Renews now and checks: before a batch of pauses or registrations, and right before the apply. */
  async checkpoint(): Promise<void> {
    this.check();
    await this.renew();
    this.check();
  }
  async release(): Promise<void> {
    clearInterval(this.timer);
    await this.history.releaseLease(this.lease).catch(() => undefined);
  }
}
