/**
 * The cdktf app (`cdktf.json` → `node dist/stacks/main.js`), for people who use the cdktf CLI:
 * `npx cdktf synth` renders the same stacks as `parmanu synth`, one per pool, with placeholder
 * no credentials (they never reach a stack). PARMANU_POLICY (default policies/) and PARMANU_NODES (default each pool's min)
 * choose what is rendered.
 */
import { App } from 'cdktf';
import { resolve } from 'node:path';
import { loadPolicy } from '../src/policy/load.js';
import { formatProblem } from '../src/policy/types.js';
import { placeholderAccess } from './placeholders.js';
import { PoolStack } from './pool-stack.js';

const loaded = loadPolicy([resolve(process.env.PARMANU_POLICY ?? 'policies')]);
if (!loaded.policy) {
  for (const p of loaded.problems) process.stderr.write(formatProblem(p) + '\n');
  process.exit(2);
}
const app = new App();
const stateDir = resolve(process.env.PARMANU_STATE_DIR ?? '.parmanu');
for (const pool of loaded.policy.pools) {
  const platform = loaded.policy.platforms[pool.platform];
  if (!platform) continue;
  const n = process.env.PARMANU_NODES !== undefined ? Number(process.env.PARMANU_NODES) : pool.scaling.min;
  const access = placeholderAccess(loaded.policy.emitters[pool.emitter], pool);
  new PoolStack(app, { pool, platform, stateDir, nodes: Array.from({ length: n }, (_, i) => ({ name: `${pool.name}-synth${String(i).padStart(3, '0')}`, access })) });
}
app.synth();
