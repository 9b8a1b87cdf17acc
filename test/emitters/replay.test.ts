import { describe, expect, it } from 'vitest';
import { ReplayEmitter } from '../../src/emitters/replay.js';
import type { EmitterConfig } from '../../src/policy/types.js';

type ReplayConfig = Extract<EmitterConfig, { type: 'replay' }>;
const cfg = (extra: Partial<ReplayConfig> = {}): ReplayConfig => ({ name: 'demo', type: 'replay', trace: 'trace.csv', speed: 1, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra });
const TRACE = 'queued_at,duration_s,labels\n2025-01-06T08:00:00Z,600,linux;x64\n2025-01-06T08:05:00Z,60,linux;arm64\n2025-01-06T09:00:00Z,60,linux;x64\n';

describe('replay emitter', () => {
  it('maps the clock onto the trace from the first probe and reports active jobs as queued', async () => {
    let now = Date.parse('2026-11-28T10:00:00Z');
    const e = new ReplayEmitter(cfg(), () => now, () => TRACE);
    expect((await e.probe()).jobs.map((j) => j.labels.join(';'))).toEqual(['linux;x64']);
    now += 5 * 60_000 + 30_000;
    expect((await e.probe()).jobs.map((j) => j.labels.join(';'))).toEqual(['linux;x64', 'linux;arm64']);
    now += 10 * 60_000;
    expect((await e.probe()).jobs).toEqual([]);
  });

  it('honours start and speed', async () => {
    const e = new ReplayEmitter(cfg({ start: '2026-11-28T10:00:00Z', speed: 60 }), () => Date.parse('2026-11-28T10:01:00Z'), () => TRACE);
    expect((await e.probe()).jobs.map((j) => j.labels.join(';'))).toEqual(['linux;x64']);
  });

  it('has no registry: nodes count as registered and idle', async () => {
    const e = new ReplayEmitter(cfg(), Date.now, () => TRACE);
    expect(await e.register()).toEqual({ kind: 'none' });
    expect(await e.isIdle()).toBe(true);
    expect((await e.probe()).runners).toEqual([]);
  });

  it('fails the probe with FILE:LINE on a malformed trace or a missing file', async () => {
    const bad = new ReplayEmitter(cfg(), Date.now, () => 'queued_at,duration_s,labels\nnope,1,a\n');
    expect(await bad.probe()).toMatchObject({ ok: false, reason: expect.stringMatching(/^trace\.csv:2: queued_at "nope"/) });
    const missing = new ReplayEmitter(cfg(), Date.now, () => {
      throw Object.assign(new Error('x'), { code: 'ENOENT' });
    });
    expect(await missing.probe()).toMatchObject({ ok: false, reason: 'trace.csv: no such file' });
  });
});
