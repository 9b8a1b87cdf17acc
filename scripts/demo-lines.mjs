#!/usr/bin/env node
// Turns `parmanu reconcile --watch --json` output into one line per cycle for `npm run demo`:
// the replay's trace time when the cycle ended, then per pool its nodes when the cycle began (one
// █ each, up to 8), its queued (q) and running (r) jobs, and what the cycle did: +N nodes created,
// ~N drained (runner paused), -N destroyed. Reads the replay's anchor from the demo's state
// directory to tell the time.
//   ... reconcile --watch --json | node scripts/demo-lines.mjs STATE_DIR EMITTER
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { createInterface } from 'node:readline';

const [stateDir, emitter] = process.argv.slice(2);
const traceNow = () => {
  try {
    const { anchor } = JSON.parse(readFileSync(`${stateDir}/replay/${emitter}.json`, 'utf8'));
    return new Date(anchor.trace + (Date.now() - anchor.wall) * anchor.speed).toISOString().slice(11, 16);
  } catch {
    return '--:--';
  }
};
/** Pool names and errors without control characters (as forTerminal does). */
const clean = (s) => [...String(s)].filter((c) => c.charCodeAt(0) >= 0x20 && (c.charCodeAt(0) < 0x7f || c.charCodeAt(0) > 0x9f)).join('');
let cycles = 0;
for await (const line of createInterface({ input: process.stdin })) {
  let cycle;
  try {
    cycle = JSON.parse(line);
  } catch {
    process.stdout.write(`${line}\n`);
    continue;
  }
  cycles++;
  const parts = cycle.pools.map((p) => {
    const name = clean(p.pool).padEnd(10);
    if (p.error) return `${name} FAILED: ${clean(p.error)}`;
    if (p.skipped) return `${name} skipped: ${clean(p.skipped)}`;
    const o = p.observed;
    const change = [p.create.length ? `+${p.create.length}` : '', p.drain.length ? `~${p.drain.length}` : '', p.destroy.length ? `-${p.destroy.length}` : ''].filter(Boolean).join(' ');
    const bar = '█'.repeat(Math.min(o.nodes, 8)).padEnd(8, '·');
    return `${name} ${bar} ${String(o.queued).padStart(3)}q ${String(o.running).padStart(3)}r ${change.padEnd(8)}`;
  });
  process.stdout.write(`${traceNow()}  ${parts.join('  ').trimEnd()}\n`);
}
let jobs = '';
try {
  const s = JSON.parse(readFileSync(`${stateDir}/replay/${emitter}.json`, 'utf8'));
  jobs = `; jobs finished: ${s.doneBelow + s.done.length}, still running: ${s.running.length}`;
} catch {
  // no replay state: nothing to add
}
process.stdout.write(`${cycles} cycles${jobs}\n`);
