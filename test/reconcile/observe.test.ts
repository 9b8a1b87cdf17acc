/**
 * observe as a table: state ⋈ marked runners ⋈ history → the nodes decide sees. Pure.
 */
import { describe, expect, it } from 'vitest';
import type { ProbeResult, RunnerInfo } from '../../src/emitters/types.js';
import type { PoolRecord } from '../../src/history/types.js';
import { observe, type ObserveInput } from '../../src/reconcile/observe.js';
import type { StateNode } from '../../src/terraform/state.js';
import { MIN, T0, testPool } from '../helpers.js';

const pool = testPool({ machine: { type: 'c6i.large', image: 'ami-2' } });
const runner = (name: string, extra: Partial<RunnerInfo> = {}): RunnerInfo => ({ id: name, name, labels: [], pool: 'p', online: true, busy: false, paused: false, ...extra });
const probe = (runners: RunnerInfo[], extra: Partial<ProbeResult> = {}): ProbeResult => ({ emitter: 'e', at: T0, ok: true, partial: false, jobs: [], runners, meta: { durationMs: 1, apiCalls: 1, notModified: 0 }, ...extra });
const rec = (nodes: PoolRecord['nodes'], intents: PoolRecord['intents'] = []): PoolRecord => ({ pool: 'p', nodes, pendingRunners: {}, seenJobs: [], intents });
const node = (name: string, extra: Partial<StateNode> = {}): StateNode => ({ name, type: 'terraform_data', spec: 'S', createdAt: T0 - 30 * MIN, ...extra });

function run(extra: Partial<ObserveInput>) {
  return observe({ policy: { emitters: {}, platforms: {}, pools: [pool] }, pool, kind: 'gitlab', probe: probe([]), rec: undefined, state: [], spec: 'S', now: T0, poolsOfEmitter: [pool], ...extra });
}

describe('observe', () => {
  it('takes the node set from the state, not the history: history-only nodes vanished, state-only nodes are adopted', () => {
    const t = run({ state: [node('p-a'), node('p-new', { createdAt: T0 - 5 * MIN })], rec: rec([{ name: 'p-a', createdAt: T0 - 30 * MIN }, { name: 'p-gone', createdAt: T0 - 40 * MIN }]) });
    expect(t.views.map((v) => v.name)).toEqual(['p-a', 'p-new']);
    expect(t.views[1]?.createdAt).toBe(T0 - 5 * MIN);
    expect(t.vanished).toEqual(['p-gone']);
  });

  it('does not call a node Parmanu destroyed itself (destroy intent on record) vanished', () => {
    const t = run({ state: [], rec: rec([{ name: 'p-a', createdAt: 0 }], [{ node: 'p-a', action: 'destroy', at: T0 - MIN }]) });
    expect(t.vanished).toEqual([]);
  });

  it('joins only runners whose marker names this pool, and lists marked runners without a VM as orphans', () => {
    const t = run({ state: [node('p-a')], probe: probe([runner('p-a'), runner('p-b'), runner('p-c', { pool: 'other' })]) });
    expect(t.views[0]?.runner).toEqual({ online: true, busy: false, paused: false });
    expect(t.orphans.map((r) => r.name)).toEqual(['p-b']);
  });

  it('marks outdated a node whose recorded spec differs, and an older node without a spec whose machine differs', () => {
    const t = run({ state: [node('p-a', { spec: 'OLD' }), node('p-b'), node('p-c', { spec: undefined, machine: { type: 'c6i.large', image: 'ami-1' } }), node('p-d', { spec: undefined, machine: { type: 'c6i.large', image: 'ami-2' } })] });
    expect(t.views.map((v) => [v.name, v.outdated === true])).toEqual([['p-a', true], ['p-b', false], ['p-c', true], ['p-d', false]]);
  });

  it('tracks online and offline only on a complete probe', () => {
    const history = rec([{ name: 'p-a', createdAt: T0 - 30 * MIN, onlineAt: T0 - 20 * MIN }]);
    expect(run({ state: [node('p-a')], rec: history, probe: probe([]) }).views[0]?.offlineSince).toBe(T0);
    expect(run({ state: [node('p-a')], rec: history, probe: probe([], { partial: true }) }).views[0]?.offlineSince).toBeUndefined();
    expect(run({ state: [node('p-a')], rec: history, probe: probe([], { ok: false }) }).views[0]?.offlineSince).toBeUndefined();
    expect(run({ state: [node('p-a')], rec: rec([{ name: 'p-a', createdAt: 0 }]), probe: probe([runner('p-a')]) }).views[0]?.onlineAt).toBe(T0);
  });

  it('takes a runner found paused with no drain on record as draining (a crash between pause and record)', () => {
    const t = run({ state: [node('p-a')], probe: probe([runner('p-a', { paused: true })]) });
    expect(t.views[0]).toMatchObject({ drainingSince: T0, drainReason: 'scale-down' });
    expect(t.pausedUnrecorded).toEqual(['p-a']);
  });

  it('gives a removed pool only the jobs its own runners run', () => {
    const jobs = [
      { id: '1', labels: ['linux'], status: 'queued' as const, queuedAt: 0 },
      { id: '2', labels: ['linux'], status: 'running' as const, queuedAt: 0, runner: 'p-a' },
    ];
    const t = run({ removed: true, state: [node('p-a')], probe: probe([runner('p-a', { busy: true })], { jobs }) });
    expect(t.observed).toMatchObject({ queued: 0, running: 1 });
  });
});

describe('observe: standby', () => {
  it('reads a stopped node\'s power from the state and tracks nothing of its runner: offline is expected, a paused runner is not a new drain', () => {
    const history = rec([{ name: 'p-a', createdAt: T0 - 30 * MIN, onlineAt: T0 - 20 * MIN, drainingSince: T0 - 10 * MIN, drainReason: 'standby' }, { name: 'p-b', createdAt: T0 - 30 * MIN, onlineAt: T0 - 20 * MIN }]);
    const t = run({ state: [node('p-a', { power: 'stopped' }), node('p-b', { power: 'stopped' })], rec: history, probe: probe([runner('p-a', { online: false, paused: true }), runner('p-b', { online: true, paused: true })]) });
    expect(t.views.map((v) => v.power)).toEqual(['stopped', 'stopped']);
    expect(t.views[0]).toMatchObject({ onlineAt: T0 - 20 * MIN, drainReason: 'standby' });
    expect(t.views[0]?.offlineSince).toBeUndefined();
    // GitLab lists a runner online for a while after its machine stopped: not a new onlineAt, not a drain.
    expect(t.views[1]?.onlineAt).toBe(T0 - 20 * MIN);
    expect(t.views[1]?.drainingSince).toBeUndefined();
    expect(t.pausedUnrecorded).toEqual([]);
    expect(t.orphans).toEqual([]);
  });

  it('gives decide the last start from the record; a running node keeps its power undefined', () => {
    const t = run({ state: [node('p-a', { power: 'running' }), node('p-b')], rec: rec([{ name: 'p-a', createdAt: T0 - 30 * MIN, startedAt: T0 - 2 * MIN }]) });
    expect(t.views[0]).toMatchObject({ power: 'running', startedAt: T0 - 2 * MIN });
    expect(t.views[1]?.power).toBeUndefined();
    expect(t.stateNodes.get('p-a')?.power).toBe('running');
  });

  it('finishes a start whose apply was made but not recorded (a start intent, the node running in state): started then, nothing of its previous run kept', () => {
    const history = rec([{ name: 'p-a', createdAt: T0 - 30 * MIN, onlineAt: T0 - 20 * MIN, offlineSince: T0 - 9 * MIN, registeredAt: T0 - 25 * MIN, drainingSince: T0 - 10 * MIN, drainReason: 'standby' }], [{ node: 'p-a', action: 'start', at: T0 - MIN }]);
    const t = run({ state: [node('p-a', { power: 'running' })], rec: history, probe: probe([]) });
    expect(t.views[0]).toMatchObject({ startedAt: T0 - MIN });
    expect(t.views[0]?.onlineAt).toBeUndefined();
    expect(t.views[0]?.offlineSince).toBeUndefined();
    expect(t.views[0]?.seenRunner).toBeUndefined();
    expect(t.views[0]?.drainingSince).toBeUndefined();
    // Not applied (still stopped): nothing changes.
    const still = run({ state: [node('p-a', { power: 'stopped' })], rec: history, probe: probe([]) });
    expect(still.views[0]).toMatchObject({ drainingSince: T0 - 10 * MIN, onlineAt: T0 - 20 * MIN });
    expect(still.views[0]?.startedAt).toBeUndefined();
  });

  it('gives decide a stopped node\'s failed starts; a start found applied (the node running in state) clears them', () => {
    const history = rec([{ name: 'p-a', createdAt: T0 - 30 * MIN, startFailures: 2, startFailedAt: T0 - 3 * MIN }], [{ node: 'p-a', action: 'start', at: T0 - MIN }]);
    const stopped = run({ state: [node('p-a', { power: 'stopped' })], rec: history });
    expect(stopped.views[0]).toMatchObject({ power: 'stopped', startFailures: 2, startFailedAt: T0 - 3 * MIN });
    const started = run({ state: [node('p-a', { power: 'running' })], rec: history });
    expect(started.views[0]).toMatchObject({ startedAt: T0 - MIN });
    expect(started.views[0]?.startFailures).toBeUndefined();
    expect(started.records[0]?.startFailures).toBeUndefined();
    expect(started.records[0]?.startFailedAt).toBeUndefined();
  });
});
