/**
 * Trace CSV: `queued_at,duration_s,labels` — ISO-8601 UTC time the job became ready, its run time
 * in whole seconds, labels separated by `;`. Malformed rows are reported as `FILE:LINE: message`.
 */
export interface TraceJob {
  /** Row number in the file (1-based, header is line 1). */
  line: number;
  queuedAt: number;
  durationMs: number;
  labels: string[];
}

export interface TraceProblem {
  line: number;
  message: string;
}

export interface ParsedTrace {
  jobs: TraceJob[];
  problems: TraceProblem[];
}

const ISO = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;

/** Date.parse rolls 2025-02-30 over into March; the calendar fields are checked here instead. */
function validFields(m: RegExpExecArray): boolean {
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days && h <= 23 && mi <= 59 && se <= 59;
}
const MAX_PROBLEMS = 50;

export function parseTrace(text: string): ParsedTrace {
  const jobs: TraceJob[] = [];
  const problems: TraceProblem[] = [];
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.replace(/^\uFEFF/, '').trim();
  if (header !== 'queued_at,duration_s,labels') {
    problems.push({ line: 1, message: `the header must be "queued_at,duration_s,labels", not "${(header ?? '').slice(0, 60)}"` });
    return { jobs, problems };
  }
  for (let i = 1; i < lines.length; i++) {
    const raw = lines[i] as string;
    if (raw.trim() === '') continue;
    const line = i + 1;
    const bad = (message: string) => {
      if (problems.length < MAX_PROBLEMS) problems.push({ line, message });
    };
    const parts = raw.split(',');
    if (parts.length !== 3) {
      bad(`expected 3 fields (queued_at,duration_s,labels), found ${parts.length}`);
      continue;
    }
    const [q, d, l] = parts as [string, string, string];
    const iso = ISO.exec(q);
    if (!iso) {
      bad(`queued_at "${q.slice(0, 40)}" is not an ISO-8601 time such as 2025-09-04T17:25:47Z`);
      continue;
    }
    const queuedAt = Date.parse(q);
    if (Number.isNaN(queuedAt) || !validFields(iso)) {
      bad(`queued_at "${q}" is not a valid time`);
      continue;
    }
    if (!/^\d+$/.test(d)) {
      bad(`duration_s "${d.slice(0, 40)}" is not a whole number of seconds`);
      continue;
    }
    const durationS = Number(d);
    if (durationS > 7 * 86_400) {
      bad(`duration_s ${durationS} is more than a week`);
      continue;
    }
    const labels = l.trim() === '' ? [] : l.split(';').map((x) => x.trim());
    if (labels.some((x) => x === '')) {
      bad(`labels "${l}" has an empty label`);
      continue;
    }
    jobs.push({ line, queuedAt, durationMs: durationS * 1000, labels });
  }
  if (problems.length === 0) {
    for (let i = 1; i < jobs.length; i++) {
      if ((jobs[i] as TraceJob).queuedAt < (jobs[i - 1] as TraceJob).queuedAt) {
        // Accept unsorted traces: sort stably by time.
        jobs.sort((a, b) => a.queuedAt - b.queuedAt || a.line - b.line);
        break;
      }
    }
  }
  if (jobs.length === 0 && problems.length === 0) problems.push({ line: 1, message: 'the trace has no jobs' });
  return { jobs, problems };
}
