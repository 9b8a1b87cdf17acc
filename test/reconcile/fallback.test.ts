/**
 * The re-render of new nodes whose apply failed for capacity (src/reconcile/fallback.ts), as
 * tables: an apply's error (terraform's output) in, where each failed node goes next (market,
 * subnet/zone) or that it is dropped, and the reason, out — step after step within one cycle.
 */
import { describe, expect, it } from 'vitest';
import { buildReport, reportHtml } from '../../src/gitops/report.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { CapacityFallback, MAX_FALLBACK_ROUNDS } from '../../src/reconcile/fallback.js';
import type { ResourceChange } from '../../src/terraform/plan.js';
import { stableIndex } from '../../stacks/spread.js';
import { testPool } from '../helpers.js';

const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'us-east-1', backend: { type: 'local' } };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'default', backend: { type: 'local' } };
const local: PlatformConfig = { name: 'lab', type: 'local' };

const ec2 = (code: string, message: string) => `creating EC2 Instance: operation error EC2: RunInstances, https response error StatusCode: 500, RequestID: 1, api error ${code}: ${message}`;
const ERRORS = {
  'spot-capacity': ec2('InsufficientInstanceCapacity', 'There is no Spot capacity available that matches your request.'),
  'spot-price': ec2('SpotMaxPriceTooLow', 'Your Spot request price of 0.02 is lower than the minimum required Spot request fulfillment price of 0.0375.'),
  'spot-count': ec2('MaxSpotInstanceCountExceeded', 'Max spot instance count exceeded'),
  'zone-capacity': ec2('InsufficientInstanceCapacity', 'We currently do not have sufficient c6i.xlarge capacity in the Availability Zone you requested (us-east-1a).'),
  gcp: "Error waiting for instance to create: The zone 'projects/acme-ci/zones/europe-west1-b' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.",
  quota: ec2('VcpuLimitExceeded', 'You have requested more vCPU capacity than your current vCPU limit of 32 allows.'),
} as const;
type Err = keyof typeof ERRORS;
/** Terraform's -no-color output for failed resources. */
const output = (...failures: Array<[Err, string]>) => failures.map(([e, address]) => `\nError: ${ERRORS[e]}\n\n  with ${address},\n  on cdk.tf.json line 7, in resource "x" "y":\n   7: }\n`).join('');

const SUBNETS = ['subnet-a', 'subnet-b', 'subnet-c'];
const NODE = 'lab-ab12';
const own = stableIndex(NODE, SUBNETS.length);
/** The subnet k places after the node's own. */
const after = (k: number) => SUBNETS[(own + k) % SUBNETS.length] as string;
const idx = (k: number) => (own + k) % SUBNETS.length;

interface Step {
  error: Err;
  /** The render of the node afterwards (market, placement) — or dropped. */
  render: { market?: 'spot' | 'on-demand'; placement?: number } | 'dropped';
  reason: string;
  to: 'on-demand' | 'next-zone' | 'dropped';
}

const scenarios: Array<{ name: string; machine: Record<string, unknown>; platform: PlatformConfig; type?: string; steps: Step[] }> = [
  {
    name: 'AWS spot with on-demand fallback: no spot capacity → on-demand in its subnet; then no capacity there → on-demand in the next subnet',
    machine: { spot: {}, subnets: SUBNETS },
    platform: aws,
    steps: [
      { error: 'spot-capacity', render: { market: 'on-demand', placement: own }, to: 'on-demand', reason: `spot capacity unavailable for ${NODE} in ${after(0)}: re-rendered on-demand` },
      { error: 'zone-capacity', render: { market: 'on-demand', placement: idx(1) }, to: 'next-zone', reason: `no capacity in ${after(0)} for ${NODE}: moved to ${after(1)}` },
      { error: 'zone-capacity', render: { market: 'on-demand', placement: idx(2) }, to: 'next-zone', reason: `no capacity in ${after(1)} for ${NODE}: moved to ${after(2)}` },
      { error: 'zone-capacity', render: 'dropped', to: 'dropped', reason: `no capacity in ${after(2)} for ${NODE}: not created this cycle (every subnet/zone was tried)` },
    ],
  },
  {
    name: 'AWS spot price over maxPrice → on-demand',
    machine: { spot: { maxPrice: 0.02 }, subnets: SUBNETS },
    platform: aws,
    steps: [{ error: 'spot-price', render: { market: 'on-demand', placement: own }, to: 'on-demand', reason: `the spot price is above maxPrice 0.02 for ${NODE} in ${after(0)}: re-rendered on-demand` }],
  },
  {
    name: 'AWS spot count → on-demand',
    machine: { spot: { fallback: 'on-demand' } },
    platform: aws,
    steps: [{ error: 'spot-count', render: { market: 'on-demand' }, to: 'on-demand', reason: `the account's spot instance limit is reached (${NODE}): re-rendered on-demand` }],
  },
  {
    name: 'AWS spot, zone capacity: the next subnets in spot first, then on-demand from its own',
    machine: { spot: {}, subnets: SUBNETS },
    platform: aws,
    steps: [
      { error: 'zone-capacity', render: { market: 'spot', placement: idx(1) }, to: 'next-zone', reason: `no capacity in ${after(0)} for ${NODE}: moved to ${after(1)}` },
      { error: 'zone-capacity', render: { market: 'spot', placement: idx(2) }, to: 'next-zone', reason: `no capacity in ${after(1)} for ${NODE}: moved to ${after(2)}` },
      { error: 'zone-capacity', render: { market: 'on-demand', placement: idx(2) }, to: 'on-demand', reason: `no capacity in ${after(2)} for ${NODE}: re-rendered on-demand` },
    ],
  },
  {
    name: 'spot: true (spot only): no spot capacity → spot in the next subnet, never on-demand',
    machine: { spot: true, subnets: SUBNETS.slice(0, 2) },
    platform: aws,
    steps: [
      { error: 'spot-capacity', render: { market: 'spot', placement: (stableIndex(NODE, 2) + 1) % 2 }, to: 'next-zone', reason: `spot capacity unavailable for ${NODE} in ${SUBNETS[stableIndex(NODE, 2)]}: moved to ${SUBNETS[(stableIndex(NODE, 2) + 1) % 2]}` },
      { error: 'spot-capacity', render: 'dropped', to: 'dropped', reason: `spot capacity unavailable for ${NODE} in ${SUBNETS[(stableIndex(NODE, 2) + 1) % 2]}: not created this cycle (machine.spot has no on-demand fallback and every subnet/zone was tried)` },
    ],
  },
  {
    name: 'fallback: none and the account\'s spot count: dropped at once',
    machine: { spot: { fallback: 'none' }, subnets: SUBNETS },
    platform: aws,
    steps: [{ error: 'spot-count', render: 'dropped', to: 'dropped', reason: `the account's spot instance limit is reached (${NODE} in ${after(0)}): not created this cycle (machine.spot has no on-demand fallback)` }],
  },
  {
    name: 'on-demand pool without subnets: nowhere else to go',
    machine: {},
    platform: aws,
    steps: [{ error: 'zone-capacity', render: 'dropped', to: 'dropped', reason: `no capacity in its zone for ${NODE}: not created this cycle (no other subnet/zone to try)` }],
  },
  {
    name: 'GCP spot in the platform zone only: stockout → on-demand (STANDARD) there',
    machine: { spot: {} },
    platform: gcp,
    steps: [{ error: 'gcp', render: { market: 'on-demand', placement: 0 }, to: 'on-demand', reason: `no capacity in europe-west1-b for ${NODE}: re-rendered on-demand` }],
  },
  {
    name: 'GCP on-demand with zones: stockout → the next zone',
    machine: { zones: ['europe-west1-b', 'europe-west1-c', 'europe-west1-d'] },
    platform: gcp,
    type: 'google_compute_instance',
    steps: [
      {
        error: 'gcp',
        render: { market: 'on-demand', placement: (stableIndex(NODE, 3) + 1) % 3 },
        to: 'next-zone',
        reason: `no capacity in ${['europe-west1-b', 'europe-west1-c', 'europe-west1-d'][stableIndex(NODE, 3)]} for ${NODE}: moved to ${['europe-west1-b', 'europe-west1-c', 'europe-west1-d'][(stableIndex(NODE, 3) + 1) % 3]}`,
      },
    ],
  },
];

describe('CapacityFallback: where a node goes after each failure', () => {
  it.each(scenarios)('$name', ({ machine, platform, type, steps }) => {
    const fb = new CapacityFallback(testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', ...machine } }, 'lab'), platform);
    const address = `${type ?? (platform.type === 'gcp' ? 'google_compute_instance' : 'aws_instance')}.node_${NODE}`;
    expect(fb.render(NODE)).toEqual({});
    for (const [i, s] of steps.entries()) {
      const r = fb.onApplyError(output([s.error, address]), [NODE, 'lab-other'], undefined);
      expect(r, `step ${i}`).toBeDefined();
      expect(r?.steps.map((x) => x.reason)).toEqual([s.reason]);
      expect(r?.steps.map((x) => x.to)).toEqual([s.to]);
      expect(r?.dropped).toEqual(s.render === 'dropped' ? [NODE] : []);
      expect(fb.render(NODE)).toEqual(s.render === 'dropped' ? {} : s.render);
    }
    expect(fb.rounds).toBe(steps.length);
    expect(fb.outcome()?.length).toBe(steps.length);
  });

  it('places each failed node of one apply, and leaves the others as they were', () => {
    const fb = new CapacityFallback(testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', spot: {}, subnets: SUBNETS } }, 'lab'), aws);
    const r = fb.onApplyError(output(['spot-capacity', 'aws_instance.node_lab-1'], ['spot-price', 'aws_instance.node_lab-2']), ['lab-1', 'lab-2', 'lab-3'], undefined);
    expect(r?.steps.map((s) => [s.node, s.kind, s.to])).toEqual([
      ['lab-1', 'spot-capacity', 'on-demand'],
      ['lab-2', 'spot-price', 'on-demand'],
    ]);
    expect(fb.render('lab-1')).toMatchObject({ market: 'on-demand' });
    expect(fb.render('lab-3')).toEqual({});
    expect(fb.record('lab-1', 5)).toEqual({ fallback: { kind: 'spot-capacity', market: 'on-demand', where: SUBNETS[stableIndex('lab-1', 3)], at: 5 } });
    expect(fb.record('lab-3', 5)).toEqual({});
    expect(fb.events('lab', 5).map((e) => [e.kind, e.pool])).toEqual([
      ['fallback', 'lab'],
      ['fallback', 'lab'],
    ]);
  });

  it.each([
    ['another error besides capacity', output(['spot-capacity', `aws_instance.node_${NODE}`], ['quota', 'aws_instance.node_lab-other']), [NODE, 'lab-other']],
    ['only a non-capacity error', output(['quota', `aws_instance.node_${NODE}`]), [NODE]],
    ['a node this cycle did not create (a start from standby)', output(['zone-capacity', 'aws_instance.node_lab-kept']), [NODE]],
    ['a node\'s power state, not its VM', output(['zone-capacity', `aws_ec2_instance_state.power_${NODE}`]), [NODE]],
    ['a terraform message with no diagnostics', 'terraform apply failed: exit status 1', [NODE]],
  ])('no fallback for %s: the apply\'s error stands', (_, text, created) => {
    const fb = new CapacityFallback(testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', spot: {}, subnets: SUBNETS } }, 'lab'), aws);
    expect(fb.onApplyError(text, created, undefined)).toBeUndefined();
    expect(fb.rounds).toBe(0);
  });

  it(`drops the nodes still failing after ${MAX_FALLBACK_ROUNDS} rounds`, () => {
    const many = Array.from({ length: 10 }, (_, i) => `subnet-${i}`);
    const fb = new CapacityFallback(testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', subnets: many } }, 'lab'), aws);
    for (let i = 0; i < MAX_FALLBACK_ROUNDS; i++) expect(fb.onApplyError(output(['zone-capacity', `aws_instance.node_${NODE}`]), [NODE], undefined)?.dropped).toEqual([]);
    const last = fb.onApplyError(output(['zone-capacity', `aws_instance.node_${NODE}`]), [NODE], undefined);
    expect(last?.dropped).toEqual([NODE]);
    expect(last?.steps[0]?.reason).toMatch(new RegExp(`not created this cycle \\(${MAX_FALLBACK_ROUNDS} capacity fallbacks this cycle\\)$`));
  });

  it('keeps what the failed plans did (their changes count as made)', () => {
    const fb = new CapacityFallback(testPool({ machine: { spot: {} } }, 'lab'), local);
    const change: ResourceChange = { address: 'terraform_data.node_lab-s1', mode: 'managed', type: 'terraform_data', name: 'node_lab-s1', change: { actions: ['update'] } };
    fb.onApplyError(output(['spot-capacity', `terraform_data.node_${NODE}`]), [NODE], [change]);
    expect(fb.earlier).toEqual([change]);
    // The next round's plan is the earlier changes and its own: each is kept once.
    const next: ResourceChange = { address: `terraform_data.node_${NODE}`, mode: 'managed', type: 'terraform_data', name: `node_${NODE}`, change: { actions: ['create'] } };
    fb.onApplyError(output(['zone-capacity', `terraform_data.node_${NODE}`]), [NODE], [...fb.earlier, next]);
    expect(fb.earlier).toEqual([change, next]);
  });
});

describe('report', () => {
  it('counts the fallback events of each pool', () => {
    const fb = new CapacityFallback(testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', spot: {}, subnets: SUBNETS } }, 'lab'), aws);
    fb.onApplyError(output(['spot-capacity', 'aws_instance.node_lab-1'], ['spot-price', 'aws_instance.node_lab-2']), ['lab-1', 'lab-2'], undefined);
    const at = Date.parse('2026-11-02T10:00:00Z');
    const sample = { at, queued: 2, running: 0, arrivals: 2, nodes: 0, desired: 2 };
    const r = buildReport([{ pool: 'lab', samples: [sample] }, { pool: 'other', samples: [sample] }], fb.events('lab', at), at - 60_000, at + 60_000);
    expect(r.pools.map((p) => [p.pool, p.fallbacks])).toEqual([
      ['lab', 2],
      ['other', 0],
    ]);
    expect(reportHtml(r)).toContain('<b>2</b> capacity fallbacks');
  });
});
