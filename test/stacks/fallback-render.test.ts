/**
 * A node's market and subnet/zone as render data (stacks' NodeInput `market`, `placement`): what a
 * capacity fallback changes in the stack, and what it leaves alone (the node spec).
 */
import { describe, expect, it } from 'vitest';
import { renderPool, type TerraformJson } from '../../stacks/render.js';
import { nodeSpec } from '../../stacks/spec.js';
import { pickStable } from '../../stacks/spread.js';
import type { NodeInput } from '../../stacks/types.js';
import type { PlatformConfig } from '../../src/policy/types.js';
import { testPool } from '../helpers.js';

const aws: PlatformConfig = { name: 'aws', type: 'aws', region: 'us-east-1', backend: { type: 'local' } };
const gcp: PlatformConfig = { name: 'gcp', type: 'gcp', project: 'acme-ci', region: 'europe-west1', zone: 'europe-west1-b', network: 'default', backend: { type: 'local' } };
const local: PlatformConfig = { name: 'lab', type: 'local' };
type Res = Record<string, Record<string, Record<string, unknown>>>;
const vm = (json: TerraformJson, type: string, node: string) => (json.resource as Res)[type]?.[`node_${node}`] as Record<string, unknown>;
const SUBNETS = ['subnet-a', 'subnet-b', 'subnet-c'];
const ZONES = ['europe-west1-b', 'europe-west1-c', 'europe-west1-d'];
const node = (extra: Partial<NodeInput> = {}): NodeInput => ({ name: 'lab-ab12', access: { kind: 'none' }, ...extra });
const SPOT_OPTIONS = { instance_interruption_behavior: 'terminate', spot_instance_type: 'one-time' };

describe('AWS', () => {
  const render = (machine: Record<string, unknown>, n: NodeInput) => vm(renderPool({ pool: testPool({ machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', ...machine } }, 'lab'), platform: aws, stateDir: '/s', nodes: [n] }), 'aws_instance', n.name);

  it.each<[string, Record<string, unknown>, Partial<NodeInput>, Record<string, unknown> | undefined, string | undefined]>([
    ['spot: true', { spot: true, subnets: SUBNETS }, {}, { market_type: 'spot', spot_options: SPOT_OPTIONS }, pickStable('lab-ab12', SUBNETS)],
    ['spot: {} (on-demand fallback), not fallen back', { spot: {}, subnets: SUBNETS }, {}, { market_type: 'spot', spot_options: SPOT_OPTIONS }, pickStable('lab-ab12', SUBNETS)],
    ['maxPrice → spotOptions.maxPrice (a string)', { spot: { maxPrice: 0.05 } }, {}, { market_type: 'spot', spot_options: { ...SPOT_OPTIONS, max_price: '0.05' } }, undefined],
    ['fallen back on-demand: no instanceMarketOptions', { spot: { maxPrice: 0.05 }, subnets: SUBNETS }, { market: 'on-demand' }, undefined, pickStable('lab-ab12', SUBNETS)],
    ['placement picks the subnet', { spot: {}, subnets: SUBNETS }, { placement: 2 }, { market_type: 'spot', spot_options: SPOT_OPTIONS }, 'subnet-c'],
    ['on-demand in the next subnet', { spot: {}, subnets: SUBNETS }, { market: 'on-demand', placement: 0 }, undefined, 'subnet-a'],
    ['an on-demand pool', { subnets: SUBNETS }, { placement: 1 }, undefined, 'subnet-b'],
  ])('%s', (_, machine, extra, market, subnet) => {
    const r = render(machine, node(extra));
    expect(r.instance_market_options).toEqual(market);
    expect(r.subnet_id).toBe(subnet);
  });
});

describe('GCP', () => {
  const render = (machine: Record<string, unknown>, n: NodeInput) => vm(renderPool({ pool: testPool({ machine: { type: 'e2-standard-4', image: 'projects/debian-cloud/global/images/family/debian-12', ...machine } }, 'gha'), platform: gcp, stateDir: '/s', nodes: [n] }), 'google_compute_instance', n.name);
  const SPOT = { provisioning_model: 'SPOT', preemptible: true, automatic_restart: false, instance_termination_action: 'DELETE' };
  const STANDARD = { provisioning_model: 'STANDARD', automatic_restart: true };

  it.each<[string, Record<string, unknown>, Partial<NodeInput>, Record<string, unknown>, string]>([
    ['spot', { spot: {}, zones: ZONES }, {}, SPOT, pickStable('lab-ab12', ZONES) as string],
    ['fallen back on-demand: STANDARD', { spot: {}, zones: ZONES }, { market: 'on-demand' }, STANDARD, pickStable('lab-ab12', ZONES) as string],
    ['placement picks the zone', { spot: {}, zones: ZONES }, { placement: 1 }, SPOT, 'europe-west1-c'],
    ['no zones: the platform zone', { spot: {} }, { market: 'on-demand', placement: 0 }, STANDARD, 'europe-west1-b'],
  ])('%s', (_, machine, extra, scheduling, zone) => {
    const r = render(machine, node(extra));
    expect(r.scheduling).toEqual(scheduling);
    expect(r.zone).toBe(zone);
  });
});

describe('local', () => {
  it('records the market and the subnet/zone stand-in of a spot pool in the node\'s input', () => {
    const pool = testPool({ machine: { spot: {}, subnets: SUBNETS } }, 'lab');
    const input = (n: NodeInput) => vm(renderPool({ pool, platform: local, stateDir: '/s', nodes: [n] }), 'terraform_data', n.name).input as Record<string, string>;
    expect(input(node())).toMatchObject({ market: 'spot', placement: pickStable('lab-ab12', SUBNETS) });
    expect(input(node({ market: 'on-demand', placement: 1 }))).toMatchObject({ market: 'on-demand', placement: 'subnet-b' });
  });

  it('adds nothing to an on-demand pool without subnets', () => {
    const input = vm(renderPool({ pool: testPool({}, 'lab'), platform: local, stateDir: '/s', nodes: [node()] }), 'terraform_data', 'lab-ab12').input as Record<string, string>;
    expect(input).not.toHaveProperty('market');
    expect(input).not.toHaveProperty('placement');
    expect(input).toHaveProperty('bootstrap_sha256');
  });
});

describe('the node spec', () => {
  it('leaves spot settings, subnets and zones out: a node that fell back is not outdated', () => {
    const base = { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0' };
    const spec = (machine: Record<string, unknown>) => nodeSpec(testPool({ machine: { ...base, ...machine } }, 'lab'), undefined);
    const want = spec({});
    for (const m of [{ spot: true }, { spot: {} }, { spot: { fallback: 'none', maxPrice: 0.1 } }, { subnets: SUBNETS }, { zones: ZONES }]) expect(spec(m)).toBe(want);
    // …while what makes the VM what it is does count.
    expect(spec({ type: 'c6i.2xlarge' })).not.toBe(want);
  });
});
