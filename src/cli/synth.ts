import { join, resolve } from 'node:path';
import { stacksOf } from '../policy/stacks.js';
import { readStateNodes, StateError } from '../terraform/state.js';
import { parse } from './args.js';
import { loadFleet } from './context.js';
import { UsageError, writeOrExplain, type Io } from './errors.js';
import { placeholderAccess } from '../../stacks/placeholders.js';

const HELP = `Usage: parmanu synth [--policy PATH] [--pool NAME] [--nodes N] [--out DIR] [--json]

Renders each pool's Terraform stack to DIR/<pool>/cdk.tf.json without running terraform: one VM
per node of the pool's current node set (read from its local Terraform state), or N nodes with
--nodes. Runner credentials are placeholders. Files are written with mode 0600 (they hold
user-data).

Options:
  --policy PATH   policy file or directory (default policies/)
  --pool NAME     only this pool (repeatable as a comma list)
  --nodes N       render N nodes named <pool>-synthNNN instead of the current node set
  --out DIR       output directory (default <PARMANU_STATE_DIR>/synth)
  --json          print {"pools": [{"pool", "nodes", "file"}]}
  -h, --help      this help

Exit: 0; 2 bad input.`;

export async function run(argv: string[], io: Io): Promise<number> {
  const { values } = parse('synth', argv, { policy: { type: 'string' }, pool: { type: 'string' }, nodes: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } });
  if (values.help) {
    io.out(HELP);
    return 0;
  }
  let count: number | undefined;
  if (values.nodes !== undefined) {
    if (!/^\d+$/.test(values.nodes) || Number(values.nodes) > 10_000) throw new UsageError(`synth: --nodes must be a whole number from 0 to 10000, not "${values.nodes}"`);
    count = Number(values.nodes);
  }
  const fleet = loadFleet('synth', io, values);
  if (!fleet) return 2;
  const { policy, pools, stateDir } = fleet;
  const out = resolve(io.cwd, values.out ?? join(stateDir, 'synth'));

  // Imported here, not at the top: other commands must not pay for cdktf.
  const { renderPool, writeStack } = await import('../../stacks/render.js');
  const written: Array<{ pool: string; stack?: string; nodes: number; file: string }> = [];
  for (const policyPool of pools) {
    const own = policy.platforms[policyPool.platform];
    if (!own) continue;
    // Failover: each platform's stack, `<pool>` and `<pool>@<platform>` (reconcile/failover.ts).
    for (const { stack, pool, platform } of stacksOf(policy, policyPool, own, [])) {
    let names: string[];
    if (count !== undefined) names = Array.from({ length: count }, (_, i) => `${pool.name}-synth${String(i).padStart(3, '0')}`);
    else if ((platform.backend?.type ?? 'local') === 'local') {
      const stateFile = platform.backend?.type === 'local' && platform.backend.path ? resolve(io.cwd, platform.backend.path) : join(stateDir, 'pools', stack, 'terraform.tfstate');
      try {
        names = readStateNodes(stateFile).map((n) => n.name);
      } catch (err) {
        if (err instanceof StateError) throw new UsageError(`synth: ${err.message}`);
        throw err;
      }
    } else {
      io.err(`synth: ${stack === pool.name ? 'pool' : 'stack'} ${stack}: its state is in a remote ${platform.backend?.type} backend; rendering 0 nodes (pass --nodes N)`);
      names = [];
    }
    const access = placeholderAccess(policy.emitters[pool.emitter], pool);
    // A module platform's local source is rendered relative to where the JSON is written.
    const json = renderPool({ pool, platform, nodes: names.map((name) => ({ name, access })), stateDir, workDir: join(out, stack), ...(stack !== pool.name ? { stack } : {}) });
    const file = writeOrExplain('synth', 'the stack into', join(out, stack), () => writeStack(join(out, stack), json));
    written.push({ pool: pool.name, ...(stack !== pool.name ? { stack } : {}), nodes: names.length, file });
    }
  }
  if (values.json) io.out(JSON.stringify({ pools: written }));
  else for (const w of written) io.out(`${w.stack ?? w.pool}: ${w.nodes} node${w.nodes === 1 ? '' : 's'} → ${w.file}`);
  return 0;
}
