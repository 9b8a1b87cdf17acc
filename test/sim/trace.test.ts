import { describe, expect, it } from 'vitest';
import { generateTrace, SHAPES, traceToCsv } from '../../src/sim/generate.js';
import { parseTrace } from '../../src/policy/trace.js';

describe('parseTrace', () => {
  it('parses rows', () => {
    const r = parseTrace('queued_at,duration_s,labels\n2025-09-04T17:25:47Z,144,macos;arm64;github\n2025-09-04T17:26:00Z,0,\n');
    expect(r.problems).toEqual([]);
    expect(r.jobs).toEqual([
      { line: 2, queuedAt: Date.parse('2025-09-04T17:25:47Z'), durationMs: 144_000, labels: ['macos', 'arm64', 'github'] },
      { line: 3, queuedAt: Date.parse('2025-09-04T17:26:00Z'), durationMs: 0, labels: [] },
    ]);
  });

  it.each([
    ['queued,duration\n', 1, /the header must be "queued_at,duration_s,labels"/],
    ['queued_at,duration_s,labels\n2025-09-04 17:25:47,10,a\n', 2, /is not an ISO-8601 time/],
    ['queued_at,duration_s,labels\n2025-02-30T10:00:00Z,10,a\n', 2, /not a valid time|ISO/],
    ['queued_at,duration_s,labels\n2025-09-04T17:25:47Z,ten,a\n', 2, /duration_s "ten" is not a whole number/],
    ['queued_at,duration_s,labels\n2025-09-04T17:25:47Z,-5,a\n', 2, /is not a whole number/],
    ['queued_at,duration_s,labels\n2025-09-04T17:25:47Z,10\n', 2, /expected 3 fields/],
    ['queued_at,duration_s,labels\n2025-09-04T17:25:47Z,10,a;;b\n', 2, /has an empty label/],
    ['queued_at,duration_s,labels\n2025-09-04T17:25:47Z,9999999,a\n', 2, /more than a week/],
    ['queued_at,duration_s,labels\n', 1, /the trace has no jobs/],
  ])('reports %j at line %d', (text, line, message) => {
    const r = parseTrace(text);
    expect(r.problems[0]?.line).toBe(line);
    expect(r.problems[0]?.message).toMatch(message);
  });

  it('sorts an unsorted trace by time', () => {
    const r = parseTrace('queued_at,duration_s,labels\n2025-09-04T17:26:00Z,1,a\n2025-09-04T17:25:00Z,1,a\n');
    expect(r.jobs.map((j) => j.line)).toEqual([3, 2]);
  });

  it.each(SHAPES)('generates a %s trace deterministically that round-trips through CSV', (shape) => {
    const a = generateTrace(shape, 14, 5);
    expect(a.length).toBeGreaterThan(10);
    expect(generateTrace(shape, 14, 5)).toEqual(a);
    const back = parseTrace(traceToCsv(a));
    expect(back.problems).toEqual([]);
    expect(back.jobs.map((j) => [j.queuedAt, j.durationMs, j.labels])).toEqual(a.map((j) => [j.queuedAt, j.durationMs, j.labels]));
  });
});
