import { describe, expect, it } from 'vitest';
import { decide } from '../../src/decide/decide.js';
import { prewarmFloor, printable, scheduledDemand } from '../../src/decide/prewarm.js';
import type { DecideInput, NodeView, PoolObservation, ScheduledDemand, ScheduledRun } from '../../src/decide/types.js';
import { MIN, T0, testPool } from '../helpers.js';

const due = (inMin: number, jobs = 12, extra: Partial<ScheduledDemand> = {}): ScheduledDemand => ({ at: T0 + inMin * MIN, jobs, schedule: 'nightly', project: 'group/proj', runs: 1, ...extra });
const obs = (scheduled: ScheduledDemand[], extra: Partial<PoolObservation> = {}): PoolObservation => ({ at: T0, ok: true, partial: false, queued: 0, running: 0, upcoming: 0, scheduled, ...extra });
const idle = (name: string, ageMin = 30, extra: Partial<NodeView> = {}): NodeView => ({ name, createdAt: T0 - ageMin * MIN, runner: { online: true, busy: false, paused: false }, onlineAt: T0 - ageMin * MIN + MIN, ...extra });

function run(scaling: Record<string, unknown>, observation: PoolObservation | undefined, extra: Partial<DecideInput> = {}, runner: Record<string, unknown> = { jobsPerNode: 2 }) {
  return decide({ pool: testPool({ scaling: { max: 20, ...scaling }, runner }), now: T0, observation, staleAfterMs: 2 * MIN, nodes: [], memory: undefined, newId: (i) => `n${i}`, ...extra });
}

interface Row {
  name: string;
  scaling?: Record<string, unknown>;
  runner?: Record<string, unknown>;
  observation: PoolObservation | undefined;
  extra?: Partial<DecideInput>;
  want: { desired: number; create?: number; drain?: string[]; reason?: RegExp; noPrewarm?: boolean };
}

const TABLE: Row[] = [
  { name: 'before the lead: nothing', scaling: { prewarm: { lead: '5m' } }, observation: obs([due(6)]), want: { desired: 0, create: 0, noPrewarm: true } },
  {
    name: 'within the lead: ⌈jobs ÷ jobsPerNode⌉ nodes, with the reason',
    scaling: { prewarm: { lead: '5m' } },
    observation: obs([due(4)]),
    want: { desired: 6, create: 6, reason: /^pre-warm: schedule "nightly" of group\/proj due 12:04 UTC ran 12 jobs here last time → 6 nodes$/ },
  },
  { name: 'exactly at the lead', scaling: { prewarm: { lead: '5m' } }, observation: obs([due(5)]), want: { desired: 6, create: 6 } },
  { name: 'default lead: 5m while no node has booted (twice the 90s default boot is less)', observation: obs([due(5)]), want: { desired: 6, create: 6 } },
  { name: 'default lead: not 6m before', observation: obs([due(6)]), want: { desired: 0, noPrewarm: true } },
  { name: 'default lead: twice the boot time the caller gives (4m → 8m)', observation: obs([due(7.5)]), extra: { bootMs: 4 * MIN }, want: { desired: 6, create: 6 } },
  { name: 'default lead: twice the median boot of the pool\'s nodes (4m → 8m)', observation: obs([due(7.5)]), extra: { nodes: [{ ...idle('p-a', 30), onlineAt: T0 - 26 * MIN }] }, want: { desired: 6, create: 5 } },
  { name: 'spare on top, as once the jobs are queued', scaling: { spare: 1 }, observation: obs([due(2)]), want: { desired: 7, create: 7, reason: /→ 7 nodes \(1 spare included\)$/ } },
  { name: 'the most of several runs is said', observation: obs([due(2, 12, { runs: 3 })]), want: { desired: 6, reason: /ran 12 jobs here \(the most of its last 3 runs\) → 6 nodes/ } },
  { name: 'two schedules due together add up', observation: obs([due(3, 4, { schedule: 'b' }), due(2, 3, { schedule: 'a' })]), want: { desired: 4, reason: /schedule "a" .* due 12:02 UTC ran 3 jobs .*; schedule "b" .* due 12:03 UTC ran 4 jobs .* → 4 nodes/ } },
  { name: 'predict off: no pre-warm', scaling: { predict: false }, observation: obs([due(2)]), want: { desired: 0, noPrewarm: true } },
  { name: 'prewarm.schedules off: no pre-warm', scaling: { prewarm: { schedules: false } }, observation: obs([due(2)]), want: { desired: 0, noPrewarm: true } },
  { name: 'past due, no job seen yet: held within the grace', observation: obs([due(-9)]), want: { desired: 6, create: 6 } },
  { name: 'past the grace: a schedule that did not run keeps no nodes', observation: obs([due(-10)]), extra: { nodes: [idle('p-a'), idle('p-b')] }, want: { desired: 0, drain: ['p-a', 'p-b'], noPrewarm: true } },
  { name: 'a shorter grace from the policy', scaling: { prewarm: { grace: '2m' } }, observation: obs([due(-3)]), want: { desired: 0, noPrewarm: true } },
  { name: 'past due and the jobs have shown up: demand carries on', observation: obs([due(-1)], { queued: 2, running: 0, upcoming: 10 }), want: { desired: 6, noPrewarm: true } },
  { name: 'a failed probe holds: no pre-warm from it', observation: obs([due(2)], { ok: false, reason: 'boom' }), want: { desired: 0, create: 0, noPrewarm: true } },
  { name: 'clamped to max like any floor', scaling: { max: 4 }, observation: obs([due(2)]), want: { desired: 4, create: 4, reason: /^max 4$/ } },
  { name: 'a higher min wins', scaling: { min: 8 }, observation: obs([due(2)]), want: { desired: 8, noPrewarm: true } },
  { name: 'ephemeral nodes take one job each', runner: { ephemeral: true }, observation: obs([due(2)]), want: { desired: 12 } },
];

describe('decide: pre-warm before scheduled pipelines', () => {
  for (const row of TABLE) {
    it(row.name, () => {
      const plan = run(row.scaling ?? {}, row.observation, row.extra ?? {}, { jobsPerNode: 2, ...row.runner });
      expect(plan.desired).toBe(row.want.desired);
      if (row.want.create !== undefined) expect(plan.create).toHaveLength(row.want.create);
      if (row.want.drain) expect(plan.drain).toEqual(row.want.drain);
      if (row.want.reason) expect(plan.reasons.some((r) => row.want.reason?.test(r))).toBe(true);
      if (row.want.noPrewarm) expect(plan.reasons.filter((r) => r.startsWith('pre-warm'))).toEqual([]);
    });
  }

  it('is a floor, never recorded as demand: the window does not hold the nodes once it ends', () => {
    const first = run({}, obs([due(2)]));
    expect(first.desired).toBe(6);
    expect(first.memory.targets.map((t) => t.nodes)).toEqual([0]);
    const nodes = first.create.map((name) => idle(name, 13));
    const after = decide({ pool: testPool({ scaling: { max: 20 }, runner: { jobsPerNode: 2 } }), now: T0 + 13 * MIN, observation: { ...obs([due(2)]), at: T0 + 13 * MIN }, staleAfterMs: 2 * MIN, nodes, memory: first.memory, newId: (i) => `m${i}` });
    expect(after.desired).toBe(0);
    expect(after.drain).toHaveLength(6);
  });

  it('names and descriptions from the platform reach the reason on one line, quoted and cut short', () => {
    const evil = 'x"\u001b[31m\nINJECTED\r\n\u2028' + 'y'.repeat(200);
    const plan = run({}, obs([due(2, 2, { schedule: evil, project: 'g/p\u0007\nq' })]));
    const r = plan.reasons.find((x) => x.startsWith('pre-warm')) ?? '';
    // eslint-disable-next-line no-control-regex
    expect(r).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    expect(r).toContain('schedule "x\\"');
    expect(r).toContain('of g/p q due');
    expect(r.length).toBeLessThan(220);
    expect(printable('a\n\tb   c')).toBe('a b c');
    expect(printable('z'.repeat(100), 10)).toBe(`${'z'.repeat(9)}…`);
    expect(printable('nightly \u202eevil\u2066x\u2069')).toBe('nightly evil x');
  });

  it('prewarmFloor: undefined with no scheduled runs, and once the scheduled jobs are seen after the due time', () => {
    const pool = testPool({ runner: { jobsPerNode: 2 } });
    expect(prewarmFloor(pool, { queued: 0, running: 0, upcoming: 0 }, T0, 2, 90_000)).toBeUndefined();
    expect(prewarmFloor(pool, { queued: 0, running: 0, upcoming: 0, scheduled: [due(-1)] }, T0, 2, 90_000)?.nodes).toBe(6);
    expect(prewarmFloor(pool, { queued: 5, running: 6, upcoming: 0, scheduled: [due(-1)] }, T0, 2, 90_000)?.nodes).toBe(6);
    expect(prewarmFloor(pool, { queued: 5, running: 6, upcoming: 1, scheduled: [due(-1)] }, T0, 2, 90_000)).toBeUndefined();
    // Before the due time, jobs already queued (of another pipeline) do not end it.
    expect(prewarmFloor(pool, { queued: 20, running: 0, upcoming: 0, scheduled: [due(1)] }, T0, 2, 90_000)?.nodes).toBe(6);
  });
});

describe('scheduledDemand: a run\'s jobs go to pools as queued jobs would', () => {
  const linux = testPool({ labels: ['linux'] }, 'linux');
  const docker = testPool({ labels: ['linux', 'docker'] }, 'docker');
  const untagged = testPool({ labels: ['any'], acceptUntagged: true }, 'untagged');
  const run1: ScheduledRun = { id: '13', project: 'g/p', description: 'nightly', nextRunAt: T0 + 5 * MIN, runs: 3, jobs: [{ labels: ['linux'], count: 4 }, { labels: ['docker', 'linux'], count: 3 }, { labels: ['gpu'], count: 9 }, { labels: [], count: 2 }] };
  const run2: ScheduledRun = { id: '14', project: 'g/q', description: 'weekly', nextRunAt: T0 + 9 * MIN, runs: 1, jobs: [{ labels: ['linux'], count: 1 }] };

  it('the most specific pool, then policy order; unmatched jobs go nowhere; pools without any are absent', () => {
    const m = scheduledDemand('gitlab', [run1, run2], [docker, linux]);
    expect(m.get('linux')).toEqual([
      { at: T0 + 5 * MIN, jobs: 4, schedule: 'nightly', project: 'g/p', runs: 3 },
      { at: T0 + 9 * MIN, jobs: 1, schedule: 'weekly', project: 'g/q', runs: 1 },
    ]);
    expect(m.get('docker')).toEqual([{ at: T0 + 5 * MIN, jobs: 3, schedule: 'nightly', project: 'g/p', runs: 3 }]);
    expect([...m.keys()].sort()).toEqual(['docker', 'linux']);
  });

  it('untagged jobs only where the pool accepts them (GitLab)', () => {
    const m = scheduledDemand('gitlab', [run1], [linux, untagged]);
    expect(m.get('untagged')?.[0]?.jobs).toBe(2);
    expect(m.get('linux')?.[0]?.jobs).toBe(4 + 3 - 3);
  });

  it('nothing scheduled: nothing', () => {
    expect(scheduledDemand('gitlab', undefined, [linux]).size).toBe(0);
  });
});
