import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/decide/types.js';
import { observedWaits } from '../../src/reconcile/waits.js';

const T = Date.parse('2026-11-30T08:00:00Z');
const job = (id: string, status: Job['status'], queuedAt: number, startedAt?: number): Job => ({ id, labels: [], status, queuedAt, ...(startedAt !== undefined ? { startedAt } : {}) });

describe('observedWaits', () => {
  it('counts the jobs that started since the previous probe: startedAt − queuedAt, in seconds', () => {
    const jobs = [job('a', 'running', T, T + 42_000), job('b', 'running', T, T + 5_000), job('c', 'queued', T), job('d', 'running', T - 600_000, T - 590_000)];
    const r = observedWaits(jobs, { running: ['d'], seen: ['b', 'c', 'd'] }, T + 60_000);
    expect(r.waits).toEqual([42, 5]);
    expect(r.running).toEqual(['a', 'b', 'd']);
  });

  it('without startedAt, a job seen queued before waited until this probe at most; one never seen queued gives nothing', () => {
    const jobs = [job('a', 'running', T), job('b', 'running', T + 10_000)];
    expect(observedWaits(jobs, { running: [], seen: ['a'] }, T + 90_000).waits).toEqual([90]);
  });

  it('counts nothing without a previous probe (a job already running may have started long ago), but remembers', () => {
    const r = observedWaits([job('a', 'running', T - 3_600_000, T - 3_000_000)], undefined, T);
    expect(r).toEqual({ waits: [], running: ['a'] });
  });

  it('clamps a negative wait (clock skew) to 0 and rounds to a tenth of a second', () => {
    const r = observedWaits([job('a', 'running', T, T - 2_000), job('b', 'running', T, T + 1_234)], { running: [], seen: [] }, T);
    expect(r.waits).toEqual([0, 1.2]);
  });
});
