/**
 * Standby through the real CLI on the local platform with a replayed queue: a node is created to
 * become standby, drained once online, stopped (JSON `stop`, terminal "stop 1", status "standby"),
 * and started when a job is queued (JSON `start`, "start 1"), its VM never replaced.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli as runCli } from '../cli.js';

const dir = mkdtempSync(join(tmpdir(), 'parmanu-standby-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { PARMANU_STATE_DIR: join(dir, 'state') };
const cli = (args: string[]) => runCli(args, { cwd: dir, env });

interface Pool { pool: string; create: string[]; drain: string[]; destroy: string[]; start: string[]; stop: string[]; states: Record<string, string>; reasons: string[] }
const reconcile = (at: string): Pool => {
  const r = cli(['reconcile', '--policy', 'policy.yaml', '--json', '--now', at]);
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { pools: Pool[] }).pools[0] as Pool;
};
/** The node's terraform_data resource: its id and its recorded power. */
const vm = (name: string) => {
  const state = JSON.parse(readFileSync(join(dir, 'state', 'pools', 'sb', 'terraform.tfstate'), 'utf8')) as { resources: Array<{ type: string; name: string; instances: Array<{ attributes: { id: string; input?: { value?: { power?: string } } } }> }> };
  const res = state.resources.find((r) => r.type === 'terraform_data' && r.name === `node_${name}`);
  return { id: res?.instances[0]?.attributes.id, power: res?.instances[0]?.attributes.input?.value?.power };
};

describe('standby through the CLI', () => {
  // Seven CLI runs with terraform: ~15 s on two idle cores, more on a loaded machine.
  it('fills, stops and starts a standby node, and says so in --json, the terminal and status', { timeout: 120_000 }, () => {
    writeFileSync(join(dir, 'trace.csv'), 'queued_at,duration_s,labels\n2025-01-06T10:00:00Z,60,other\n2025-01-06T11:00:00Z,60,linux\n');
    writeFileSync(join(dir, 'policy.yaml'), 'emitters:\n  r: { type: replay, trace: trace.csv, start: "2025-01-06T10:00:00Z" }\nplatforms:\n  lab: { type: local }\npools:\n  sb: { emitter: r, platform: lab, labels: [linux], scaling: { standby: 1, predict: false } }\n');
    const fill = reconcile('2025-01-06T10:00:00Z');
    expect(fill.create).toHaveLength(1);
    expect(fill.reasons.join('\n')).toMatch(/standby 0 of 1: creating 1 node to boot once and stop/);
    const name = fill.create[0] as string;
    // Online (its credential file written): drained to become standby.
    expect(reconcile('2025-01-06T10:01:00Z').drain).toEqual([name]);
    const before = vm(name);
    expect(before.power).toBe('running');
    const stop = cli(['reconcile', '--policy', 'policy.yaml', '--now', '2025-01-06T10:02:00Z']);
    expect(stop.code, stop.err).toBe(0);
    expect(stop.out).toMatch(/^sb: 0 queued, 0 running; 1 → 0 nodes \(\+0 drain 0 -0 stop 1\), terraform \+0 ~1 -0 \[\d+ ms\]$/m);
    expect(vm(name)).toEqual({ id: before.id, power: 'stopped' });
    // Stopped, it is no capacity: the job queued at 11:00 starts it (the one at 10:00 is another pool's).
    const start = reconcile('2025-01-06T11:00:10Z');
    expect(start.start).toEqual([name]);
    expect(start.create).toEqual([]);
    expect(start.reasons.join('\n')).toMatch(/starting 1 standby node instead of booting new ones/);
    expect(vm(name)).toEqual({ id: before.id, power: 'running' });
    // Past its job the pool settles again on one stopped node (standby refilled once demand was
    // met, then the extra node scaled down: stopped or destroyed, whichever the target leaves),
    // and status says so.
    for (const at of ['2025-01-06T11:05:00Z', '2025-01-06T11:06:00Z', '2025-01-06T11:07:00Z', '2025-01-06T11:20:00Z', '2025-01-06T11:21:00Z', '2025-01-06T11:22:00Z', '2025-01-06T11:23:00Z']) reconcile(at);
    const st = cli(['status', '--policy', 'policy.yaml', '--json']);
    expect(st.code, st.err).toBe(0);
    const nodes = (JSON.parse(st.out) as { pools: Array<{ nodes: Array<{ name: string; state: string }> }> }).pools[0]?.nodes ?? [];
    expect(nodes.map((n) => n.state)).toEqual(['standby']);
    expect(vm(nodes[0]?.name ?? '').power).toBe('stopped');
  });
});
