/**
 * Issue 15's policy fields: `scaling.standby` (a count or `auto`; refused on AWS one-time spot,
 * which AWS cannot stop) and an emitter's `webhook: { secret }` (a reference, never a literal;
 * gitlab and github only), each problem at its place.
 */
import { describe, expect, it } from 'vitest';
import { policyCases } from './cases.js';
import { secretFields } from '../../src/policy/secret-fields.js';

const { load } = policyCases('parmanu-standby-rules-', { dropUnused: true });

/** `pools` start at line 9. */
function policy(o: { gl?: string; gh?: string; jk?: string; pool?: string } = {}): string {
  return [
    'emitters:',
    `  gl: { type: gitlab, url: https://gitlab.example.com, token: "\${env:GL}", projects: [a/b], runnerOwner: instance${o.gl ?? ''} }`,
    `  gh: { type: github, owner: acme, token: "\${env:GH}"${o.gh ?? ''} }`,
    `  jk: { type: jenkins, url: https://jenkins.example.com, user: "\${env:JU}", token: "\${env:JT}"${o.jk ?? ''} }`,
    'platforms:',
    '  aws: { type: aws, region: us-east-1, backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 } }',
    '  lab: { type: local }',
    'pools:',
    o.pool ?? '  a: { emitter: gl, platform: lab, labels: [a] }',
  ].join('\n');
}


describe('scaling.standby', () => {
  it('defaults to 0 and takes a count or auto', () => {
    expect(load(policy()).policy?.pools[0]?.scaling.standby).toBe(0);
    expect(load(policy({ pool: '  a: { emitter: gl, platform: lab, scaling: { standby: 3 } }' })).policy?.pools[0]?.scaling.standby).toBe(3);
    const auto = load(policy({ pool: '  a: { emitter: gh, platform: lab, scaling: { standby: auto } }' }));
    expect(auto.lines).toEqual([]);
    expect(auto.policy?.pools[0]?.scaling.standby).toBe('auto');
  });

  it.each([
    ['a word that is not auto', '  a: { emitter: gl, platform: lab, scaling: { standby: some } }', 'x.yaml:9:56: pools.a.scaling.standby: must be a count of stopped nodes (0, 1, 2, …) or `auto`'],
    ['a negative count', '  a: { emitter: gl, platform: lab, scaling: { standby: -1 } }', 'x.yaml:9:56: pools.a.scaling.standby: must be at least 0, not -1'],
    [
      'standby on AWS one-time spot',
      '  a: { emitter: gl, platform: aws, machine: { type: c6i.large, image: ami-0123456789abcdef0, spot: true }, scaling: { standby: 2 } }',
      'x.yaml:9:128: pools.a.scaling.standby: standby keeps stopped VMs, and AWS cannot stop one-time spot instances (the only spot kind Parmanu launches): remove scaling.standby, or set machine.spot: false for this pool',
    ],
    [
      'standby auto on AWS one-time spot',
      '  a: { emitter: gl, platform: aws, machine: { type: c6i.large, image: ami-0123456789abcdef0, spot: true }, scaling: { standby: auto } }',
      'x.yaml:9:128: pools.a.scaling.standby: standby keeps stopped VMs, and AWS cannot stop one-time spot instances (the only spot kind Parmanu launches): remove scaling.standby, or set machine.spot: false for this pool',
    ],
    [
      'standby on a Windows GitHub pool',
      '  a: { emitter: gh, platform: lab, machine: { os: windows }, scaling: { standby: 1 } }',
      'x.yaml:9:82: pools.a.scaling.standby: is not supported on Windows GitHub pools: a node started from standby needs a fresh runner registration, and the Windows bootstrap registers its runner only at first boot; remove scaling.standby for this pool',
    ],
    ['standby above max (a warning)', '  a: { emitter: gl, platform: lab, scaling: { max: 2, standby: 3 } }', 'x.yaml:9:64: warning: pools.a.scaling.standby: standby (3) is greater than max (2): no more than max nodes could ever start from it'],
  ])('%s', (_name, pool, line) => {
    const r = load(policy({ pool }));
    expect(r.lines).toEqual([line]);
  });

  it('allows standby on AWS on-demand and spot without standby', () => {
    expect(load(policy({ pool: '  a: { emitter: gl, platform: aws, machine: { type: c6i.large, image: ami-0123456789abcdef0 }, scaling: { standby: 2 } }' })).lines).toEqual([]);
    expect(load(policy({ pool: '  a: { emitter: gl, platform: aws, machine: { type: c6i.large, image: ami-0123456789abcdef0, spot: true }, scaling: { standby: 0 } }' })).lines).toEqual([]);
  });
});

describe('emitter webhook', () => {
  it('takes a secret reference on gitlab and github, listed with the other secrets', () => {
    const r = load(policy({ gl: ', webhook: { secret: "${env:GL_HOOK}" }', gh: ', webhook: { secret: "${file:hook.txt}" }' }));
    expect(r.lines).toEqual([]);
    const fields = secretFields(r.policy as NonNullable<typeof r.policy>).filter((f) => f.path[0] === 'webhook');
    expect(fields.map((f) => `${f.name}:${f.ref}`)).toEqual(['gl:${env:GL_HOOK}', 'gh:${file:hook.txt}']);
  });

  it.each([
    ['a literal secret', { gl: ', webhook: { secret: hunter2hunter2 }' }, /^x\.yaml:2:135: emitters\.gl\.webhook\.secret: must be a \$\{env:NAME\} or \$\{file:path\} reference, never a literal secret$/],
    ['no secret', { gh: ', webhook: {}' }, /^x\.yaml:3:56: emitters\.gh\.webhook\.secret: is required$/],
    ['a webhook on jenkins', { jk: ', webhook: { secret: "${env:X}" }' }, /^x\.yaml:4:97: emitters\.jk\.webhook: unknown key/],
  ])('refuses %s', (_name, o, line) => {
    const r = load(policy(o));
    expect(r.lines).toHaveLength(1);
    expect(r.lines[0]).toMatch(line);
    // A literal secret is never echoed.
    expect(r.lines.join('\n')).not.toContain('hunter2');
  });
});
