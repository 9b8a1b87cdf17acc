/**
 * Capacity fallback of new nodes within one cycle (issue #17, "Spot with fallback"). An apply that
 * failed only because some new nodes got no capacity (src/terraform/capacity.ts) is not the end of
 * the cycle: those nodes are placed again and the executor plans, guards and applies once more.
 * Everything else the failed apply did is in the state already (terraform applies what does not
 * depend on a failed resource), so the next plan holds only the nodes placed again.
 *
 * Where a node goes next, in this order, never twice to the same market and subnet/zone in a cycle:
 * - spot capacity, spot price, spot count: on-demand in the same subnet/zone, then the others, when
 *   `machine.spot.fallback` is `on-demand`; a spot-only pool (`spot: true`, `fallback: none`) tries
 *   spot in the next subnet/zone instead (never for the account's spot count: that is everywhere);
 * - zone capacity (and an instance type the zone does not offer, a subnet out of addresses): the
 *   next subnet (aws `machine.subnets`) or zone (gcp `machine.zones`), round robin from the node's
 *   own, in its market; a spot node that tried them all goes on-demand when its pool falls back.
 * With nowhere left, or after MAX_FALLBACK_ROUNDS applies, the node is dropped this cycle (its
 * runner removed; decide creates another next cycle) with a reason.
 *
 * The node's market and subnet/zone are render data (stacks' NodeInput `market`, `placement`),
 * left out of its spec: a node that fell back is not outdated and stays until it drains. Terraform
 * state shows them (AWS `instance_market_options`, GCP `scheduling.provisioning_model`, the
 * subnet or zone); the history records the fallback on the node and as a `fallback` event.
 */
import type { HistoryEvent, NodeRecord } from '../history/types.js';
import { spotOf, type SpotSettings } from '../policy/resources.js';
import type { PlatformConfig, PoolConfig } from '../policy/types.js';
import { classifyApplyErrors, type CapacityFailure } from '../terraform/capacity.js';
import type { ResourceChange } from '../terraform/plan.js';
import { stableIndex } from '../../stacks/spread.js';
import type { NodeInput } from '../../stacks/types.js';
import type { PoolOutcome } from './cycle.js';

/** Applies re-run for capacity in one cycle at most; past them the failing nodes are dropped. */
export const MAX_FALLBACK_ROUNDS = 4;

type Market = 'spot' | 'on-demand';
interface Place {
  market: Market;
  /** Index into the subnets/zones; undefined when there are none. */
  placement: number | undefined;
}
export type FallbackStep = NonNullable<PoolOutcome['fallbacks']>[number] & { reason: string };

const key = (p: Place) => `${p.market}@${p.placement ?? '-'}`;

export class CapacityFallback {
  /** Nodes placed again: their market and subnet/zone. */
  private readonly places = new Map<string, Place>();
  private readonly tried = new Map<string, Set<string>>();
  /** Every step of this cycle, in order. */
  readonly steps: FallbackStep[] = [];
  /** The changes of the plans whose apply failed for capacity: what they did besides the failed nodes happened. */
  readonly earlier: ResourceChange[] = [];
  /** Applies that failed for capacity and were re-run. */
  rounds = 0;
  private readonly spot: SpotSettings | undefined;
  /** The subnets (aws) or zones (gcp; the platform's zone without `machine.zones`); local: either list. */
  private readonly choices: readonly string[];
  private readonly supported: boolean;

  constructor(pool: PoolConfig, platform: PlatformConfig) {
    this.spot = spotOf(pool.machine);
    const m = pool.machine;
    const type: string = platform.type;
    this.supported = type === 'aws' || type === 'gcp' || type === 'local';
    this.choices = platform.type === 'aws' ? (m.subnets ?? []) : platform.type === 'gcp' ? (m.zones?.length ? m.zones : [platform.zone]) : type === 'local' ? (m.subnets ?? m.zones ?? []) : [];
  }

  /** Where a new node is now: where the fallback put it, else its pool's market and its stable subnet/zone. */
  private placeOf(node: string): Place {
    return this.places.get(node) ?? { market: this.spot ? 'spot' : 'on-demand', placement: this.choices.length ? stableIndex(node, this.choices.length) : undefined };
  }

  private where(p: Place): string | undefined {
    return p.placement === undefined ? undefined : this.choices[p.placement];
  }

  /** The render data of a new node: its market and placement once it fell back, nothing otherwise. */
  render(node: string): Pick<NodeInput, 'market' | 'placement'> {
    const p = this.places.get(node);
    return p ? { market: p.market, ...(p.placement !== undefined ? { placement: p.placement } : {}) } : {};
  }

  /** What the history records on a new node that fell back. */
  record(node: string, now: number): Pick<NodeRecord, 'fallback'> {
    const p = this.places.get(node);
    const last = [...this.steps].reverse().find((s) => s.node === node);
    if (!p || !last) return {};
    const where = this.where(p);
    return { fallback: { kind: last.kind, market: p.market, ...(where !== undefined ? { where } : {}), at: now } };
  }

  /** The steps as the cycle's outcome lists them (undefined when there were none). */
  outcome(): PoolOutcome['fallbacks'] {
    return this.steps.length ? this.steps.map(({ node, kind, to, where }) => ({ node, kind, to, ...(where !== undefined ? { where } : {}) })) : undefined;
  }

  /** One `fallback` history event per step (`report` counts them per pool). */
  events(pool: string, at: number): HistoryEvent[] {
    return this.steps.map((s) => ({ at, pool, kind: 'fallback' as const, detail: s.node, reasons: [s.reason] }));
  }

  /** Where a node that failed this way goes next, or undefined when nowhere is left. */
  private next(node: string, f: CapacityFailure, cur: Place, tried: ReadonlySet<string>): Place | undefined {
    const n = this.choices.length;
    const from = cur.placement ?? 0;
    /** Every subnet/zone in the market, from the node's own (`skipOwn`: the others only). */
    const ring = (market: Market, skipOwn: boolean): Place[] =>
      n === 0 ? (skipOwn ? [] : [{ market, placement: undefined }]) : Array.from({ length: skipOwn ? n - 1 : n }, (_, k) => ({ market, placement: (from + k + (skipOwn ? 1 : 0)) % n }));
    const onDemand = cur.market === 'spot' && this.spot?.fallback === 'on-demand';
    let candidates: Place[];
    if (f.kind === 'zone-capacity') candidates = [...ring(cur.market, true), ...(onDemand ? ring('on-demand', false) : [])];
    else if (cur.market !== 'spot') candidates = [];
    else if (onDemand) candidates = ring('on-demand', false);
    else candidates = f.kind === 'spot-count' ? [] : ring('spot', true);
    return candidates.find((c) => !tried.has(key(c)));
  }

  private failure(node: string, f: CapacityFailure, cur: Place): string {
    const where = this.where(cur);
    const at = where === undefined ? '' : ` in ${where}`;
    switch (f.kind) {
      case 'spot-capacity':
        return `spot capacity unavailable for ${node}${at}`;
      case 'spot-price':
        return `the spot price is above ${this.spot?.maxPrice !== undefined ? `maxPrice ${this.spot.maxPrice}` : 'the max price'} for ${node}${at}`;
      case 'spot-count':
        return `the account's spot instance limit is reached (${node}${at})`;
      case 'zone-capacity':
        return f.code === 'Unsupported' ? `the instance type is not offered${at || ' in its zone'} (${node})` : f.code === 'InsufficientFreeAddressesInSubnet' ? `no free addresses${at || ' in its subnet'} for ${node}` : `no capacity${at || ' in its zone'} for ${node}`;
    }
  }

  /**
   * After an apply failed: when its only errors are capacity failures of VMs of new nodes
   * (`created`), each is placed again (or dropped) and the steps are returned: the caller drops
   * `dropped` (their runners) and plans again. Undefined when the error is anything else (the
   * apply's error stands, as before).
   */
  onApplyError(text: string, created: readonly string[], planned: readonly ResourceChange[] | undefined): { steps: FallbackStep[]; dropped: string[] } | undefined {
    if (!this.supported) return undefined;
    const errors = classifyApplyErrors(text);
    if (errors.capacity.length === 0 || errors.other.length > 0) return undefined;
    if (errors.capacity.some((f) => !f.vm || !created.includes(f.node))) return undefined;
    this.rounds++;
    // The plan's changes (those of earlier rounds are in it already).
    if (planned) this.earlier.push(...planned.filter((c) => !this.earlier.includes(c)));
    const steps: FallbackStep[] = [];
    const dropped: string[] = [];
    const seen = new Set<string>();
    for (const f of errors.capacity) {
      if (seen.has(f.node)) continue;
      seen.add(f.node);
      const cur = this.placeOf(f.node);
      const tried = this.tried.get(f.node) ?? new Set<string>();
      this.tried.set(f.node, tried);
      tried.add(key(cur));
      const next = this.rounds > MAX_FALLBACK_ROUNDS ? undefined : this.next(f.node, f, cur, tried);
      const what = this.failure(f.node, f, cur);
      let step: FallbackStep;
      if (next) {
        this.places.set(f.node, next);
        const where = this.where(next);
        const moved = next.placement !== cur.placement && where !== undefined;
        step = next.market !== cur.market
          ? { node: f.node, kind: f.kind, to: 'on-demand', ...(where !== undefined ? { where } : {}), reason: `${what}: re-rendered on-demand${moved ? ` in ${where}` : ''}` }
          : { node: f.node, kind: f.kind, to: 'next-zone', ...(where !== undefined ? { where } : {}), reason: `${what}: moved to ${where ?? 'another zone'}` };
      } else {
        dropped.push(f.node);
        this.places.delete(f.node);
        const why =
          this.rounds > MAX_FALLBACK_ROUNDS
            ? `${MAX_FALLBACK_ROUNDS} capacity fallbacks this cycle`
            : cur.market === 'spot' && this.spot?.fallback !== 'on-demand' && f.kind !== 'zone-capacity'
              ? `machine.spot has no on-demand fallback${f.kind === 'spot-count' ? '' : this.choices.length > 1 ? ' and every subnet/zone was tried' : ''}`
              : this.choices.length > 1
                ? 'every subnet/zone was tried'
                : 'no other subnet/zone to try';
        step = { node: f.node, kind: f.kind, to: 'dropped', reason: `${what}: not created this cycle (${why})` };
      }
      steps.push(step);
    }
    this.steps.push(...steps);
    return { steps, dropped };
  }
}
