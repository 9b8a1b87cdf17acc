/**
 * The soak's crash: one reconcile cycle in a child process that SIGKILLs itself at a named point of
 * a pool's cycle (right after a pause and before its record, after a registration and before the
 * apply, after the apply and before the record). A real crash: nothing after the kill runs, no
 * finally, no lease release, and the terraform it started keeps running as an orphan.
 *
 *   node dist/bench/soak-child.js POLICY STATE_DIR REDIS_URL NOW_ISO TERRAFORM POINT[,POINT…]
 *
 * Emitter credentials come from the environment (the policy's ${env:…} references). Prints one
 * line `killed at POINT in POOL` on stderr before it dies, or the cycle's JSON if no point came.
 */
import { createEmitters } from '../src/emitters/index.js';
import { RedisHistoryStore } from '../src/history/redis.js';
import { loadPolicy } from '../src/policy/load.js';
import { reconcileOnce, type HookPoint } from '../src/reconcile/cycle.js';
import { Terraform } from '../src/terraform/runner.js';

const [policyFile, stateDir, redisUrl, nowIso, bin, points] = process.argv.slice(2);
if (!policyFile || !stateDir || !redisUrl || !nowIso || !bin || !points) {
  process.stderr.write('usage: soak-child POLICY STATE_DIR REDIS_URL NOW_ISO TERRAFORM POINT[,POINT…]\n');
  process.exit(2);
}
const killAt = new Set(points.split(',') as HookPoint[]);
const now = Date.parse(nowIso);
const loaded = loadPolicy([policyFile]);
if (!loaded.policy) {
  process.stderr.write(`soak-child: policy invalid\n`);
  process.exit(2);
}
const policy = loaded.policy;
const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
const history = new RedisHistoryStore(redisUrl, () => now);
const r = await reconcileOnce({
  policy,
  emitters: createEmitters(policy, { env, readFile: () => '' }, () => now),
  history,
  terraform: new Terraform({ bin }),
  stateDir,
  clock: () => now,
  owner: 'soak-killed',
  orphanGraceMs: 60_000,
  leaseTtlMs: 1500,
  driftCheckMs: 30 * 60_000,
  hook: (point, info) => {
    // A pause point with no node paused in this pool is not the moment.
    if (!killAt.has(point) || info.nodes.length === 0) return;
    process.stderr.write(`killed at ${point} in ${info.pool}\n`);
    process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write(JSON.stringify(r) + '\n');
await history.close();
