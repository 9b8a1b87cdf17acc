/**
 * Issue 17's failover fields: `pools.<p>.failover` (platform names, or `{ platform, machine }`
 * whose machine is merged over the pool's and checked for that platform), `failoverAfter`,
 * `failbackAfter`, a platform's `evacuate` and the local platform's `faultFile`, each problem at
 * its place.
 */
import { describe, expect, it } from 'vitest';
import { policyCases } from './cases.js';
import { stacksOf } from '../../src/policy/stacks.js';

const { load } = policyCases('parmanu-failover-rules-', { dropUnused: true });

/** The pool is at line 9. */
function policy(pool: string, platforms: { aws?: string; gcp?: string; lab?: string } = {}): string {
  return [
    'emitters:',
    '  gl: { type: gitlab, url: https://gitlab.example.com, token: "${env:GL}", projects: [a/b], runnerOwner: instance }',
    'platforms:',
    `  aws: { type: aws, region: us-east-1, backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 }${platforms.aws ?? ''} }`,
    `  gcp: { type: gcp, project: p, region: europe-west1, zone: europe-west1-b, backend: { type: gcs, bucket: b, prefix: parmanu }${platforms.gcp ?? ''} }`,
    `  lab: { type: local${platforms.lab ?? ''} }`,
    '  lab-b: { type: local }',
    'pools:',
    pool,
  ].join('\n');
}


const AWS_POOL = 'machine: { type: c6i.xlarge, image: ami-0123456789abcdef0 }';

describe('failover in the policy', () => {
  it('normalizes names and objects, with defaults, and gives each platform its stack', () => {
    const r = load(policy(`  a: { emitter: gl, platform: aws, ${AWS_POOL}, failover: [lab, { platform: gcp, machine: { type: e2-standard-4, image: projects/debian-cloud/global/images/family/debian-12 } }] }`));
    expect(r.lines).toEqual([]);
    const pool = r.policy?.pools[0];
    expect(pool?.failover).toEqual([{ platform: 'lab' }, { platform: 'gcp', machine: { type: 'e2-standard-4', image: 'projects/debian-cloud/global/images/family/debian-12' } }]);
    expect(pool?.failoverAfter).toBe(3);
    expect(pool?.failbackAfterMs).toBe(600_000);
    // The override only changes what it writes: the pool's disk and OS stay.
    const stacks = stacksOf(r.policy as never, pool as never, r.policy?.platforms.aws as never, []);
    expect(stacks.map((s) => [s.stack, s.platform.name, s.pool.platform, s.pool.machine.type, s.pool.machine.diskGb])).toEqual([
      ['a', 'aws', 'aws', 'c6i.xlarge', 50],
      ['a@lab', 'lab', 'lab', 'c6i.xlarge', 50],
      ['a@gcp', 'gcp', 'gcp', 'e2-standard-4', 50],
    ]);
  });

  it('takes failoverAfter, failbackAfter, evacuate and faultFile', () => {
    const r = load(policy('  a: { emitter: gl, platform: lab, failover: [lab-b], failoverAfter: 5, failbackAfter: 30m }', { lab: ', evacuate: true, faultFile: /run/parmanu/lab.down' }));
    expect(r.lines).toEqual([]);
    expect(r.policy?.pools[0]).toMatchObject({ failoverAfter: 5, failbackAfterMs: 1_800_000 });
    expect(r.policy?.platforms.lab).toMatchObject({ evacuate: true, faultFile: '/run/parmanu/lab.down' });
  });

  const rows: Array<{ name: string; yaml: string; want: string[] }> = [
    { name: 'an unknown platform, with a suggestion', yaml: policy('  a: { emitter: gl, platform: lab, failover: [lab-c] }'), want: ['x.yaml:9:47: pools.a.failover.0: no platform named "lab-c"; did you mean "lab-b"?'] },
    { name: "the pool's own platform", yaml: policy('  a: { emitter: gl, platform: lab, failover: [lab] }'), want: ['x.yaml:9:47: pools.a.failover.0: "lab" is the pool\'s own platform: failover lists the platforms it moves to'] },
    { name: 'a platform twice', yaml: policy('  a: { emitter: gl, platform: lab, failover: [lab-b, lab-b] }'), want: ['x.yaml:9:54: pools.a.failover.1: "lab-b" is listed twice'] },
    { name: 'a cloud failover without the machine type and image it needs there', yaml: policy('  a: { emitter: gl, platform: lab, failover: [aws] }'), want: ['x.yaml:9:47: pools.a.failover.0.machine: machine.type is required on aws platform "aws": the instance type (e.g. c6i.xlarge)', 'x.yaml:9:47: pools.a.failover.0.machine: machine.image is required on aws platform "aws": the AMI id'] },
    { name: "an AMI on a gcp failover (the pool's own machine merged in)", yaml: policy(`  a: { emitter: gl, platform: aws, ${AWS_POOL}, failover: [gcp] }`), want: ['x.yaml:9:108: pools.a.failover.0.machine.image: "ami-0123456789abcdef0" is an AWS AMI id; on gcp platform "gcp" machine.image is a Compute Engine image such as projects/debian-cloud/global/images/family/debian-12'] },
    { name: 'a machine field the override does not know', yaml: policy('  a: { emitter: gl, platform: lab, failover: [{ platform: lab-b, machine: { size: 3 } }] }'), want: ['x.yaml:9:77: pools.a.failover.0.machine.size: unknown key (allowed: type, image, os, diskGb, spot, hourlyCost, stoppedHourlyCost, publicIp, subnets, zones, securityGroups, instanceProfile, serviceAccount, tags)'] },
    { name: 'failoverAfter below 1', yaml: policy('  a: { emitter: gl, platform: lab, failover: [lab-b], failoverAfter: 0 }'), want: ['x.yaml:9:70: pools.a.failoverAfter: must be at least 1, not 0'] },
    { name: 'a relative faultFile', yaml: policy('  a: { emitter: gl, platform: lab }', { lab: ', faultFile: lab.down' }), want: ['x.yaml:6:34: platforms.lab.faultFile: must be an absolute path of letters, digits and . _ / -'] },
    { name: 'an evacuated platform under a pool with no failover: a warning', yaml: policy('  a: { emitter: gl, platform: lab }', { lab: ', evacuate: true' }), want: ['x.yaml:9:31: warning: pools.a.platform: platform "lab" is marked evacuate: true, but the pool has no failover list: it stays (add failover: [<platform>] to move it)'] },
  ];
  for (const row of rows) {
    it(row.name, () => {
      expect(load(row.yaml).lines).toEqual(row.want);
    });
  }
});
