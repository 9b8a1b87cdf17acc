/**
 * `machine.spot`: `true | false | { fallback?: on-demand | none, maxPrice? }` — loaded, normalized
 * (spotOf), and a max price refused on GCP at its place.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPolicy } from '../../src/policy/load.js';
import { spotOf } from '../../src/policy/resources.js';
import { formatProblem } from '../../src/policy/types.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-spot-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The pool is on line 7. */
const policy = (platform: string, spot: string) =>
  [
    'emitters:',
    '  gl: { type: gitlab, url: https://gitlab.example.com, token: "${env:GL}", projects: [a/b], runnerOwner: instance }',
    'platforms:',
    '  aws: { type: aws, region: us-east-1, backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 } }',
    '  gcp: { type: gcp, project: acme, region: europe-west1, zone: europe-west1-b, backend: { type: gcs, bucket: b, prefix: p } }',
    'pools:',
    `  a: { emitter: gl, platform: ${platform}, labels: [a], machine: { type: t, image: ${platform === 'aws' ? 'ami-0123456789abcdef0' : 'projects/debian-cloud/global/images/family/debian-12'}, spot: ${spot} } }`,
  ].join('\n');

let n = 0;
function load(yaml: string) {
  const name = `case-${n++}.yaml`;
  const file = join(dir, name);
  writeFileSync(file, yaml);
  const r = loadPolicy([file], { cwd: dir, env: {} });
  return { ...r, lines: r.problems.map(formatProblem).map((l) => l.replace(`${name}:`, 'x.yaml:')).filter((l) => !/no pool uses this/.test(l)) };
}

describe('machine.spot', () => {
  it.each([
    ['false', undefined],
    ['true', { fallback: 'none' }],
    ['{}', { fallback: 'on-demand' }],
    ['{ fallback: none }', { fallback: 'none' }],
    ['{ fallback: on-demand, maxPrice: 0.08 }', { fallback: 'on-demand', maxPrice: 0.08 }],
  ])('spot: %s', (spot, want) => {
    const r = load(policy('aws', spot));
    expect(r.lines).toEqual([]);
    const pool = r.policy?.pools[0];
    expect(pool && spotOf(pool.machine)).toEqual(want);
  });

  it.each([
    ['{ fallback: spot }', /^x\.yaml:7:\d+: pools\.a\.machine\.spot(\.fallback)?: must be /],
    ['{ maxPrice: 0 }', /^x\.yaml:7:\d+: pools\.a\.machine\.spot(\.maxPrice)?: must be /],
    ['{ bid: 1 }', /^x\.yaml:7:\d+: pools\.a\.machine\.spot(\.bid)?: (unknown key|must be)/],
    ['spot', /^x\.yaml:7:\d+: pools\.a\.machine\.spot: must be true, false, or \{ fallback/],
  ])('refuses spot: %s', (spot, re) => {
    const r = load(policy('aws', spot));
    expect(r.policy).toBeUndefined();
    expect(r.lines.join('\n')).toMatch(re);
  });

  it('refuses a max price on GCP, at its place', () => {
    const yaml = policy('gcp', '{ maxPrice: 0.05 }');
    const col = (yaml.split('\n')[6] ?? '').indexOf('maxPrice') + 1;
    const r = load(yaml);
    expect(r.lines).toEqual([`x.yaml:7:${col}: pools.a.machine.spot.maxPrice: GCP Spot VMs have no max price (they cost the current Spot price and are preempted for capacity, never for price): remove maxPrice`]);
    expect(load(policy('gcp', '{}')).lines).toEqual([]);
  });
});
