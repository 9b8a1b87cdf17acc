import { tmpdir } from 'node:os';
import { synthBareInstances, type InstanceConfig } from '../../stacks/floor.js';
import { awsInstanceConfig } from '../../stacks/pool-stack.js';
import { renderPool } from '../../stacks/render.js';
import { normalize } from '../../src/policy/load.js';
import { PoolSchema } from '../../src/policy/schema.js';
import { median, round, timeCommands, type BenchCase } from '../harness.js';

const N = 1000;

/** cdktf's floor: the same number of aws_instance resources in one stack, to JSON. */
function cdktfFloor(configs: readonly InstanceConfig[] | undefined): void {
  synthBareInstances(N, configs);
}

export const synth1000: BenchCase = {
  name: 'synth-1000-nodes',
  async run({ root }) {
    const pool = normalize({
      emitters: new Map(),
      platforms: new Map(),
      pools: new Map([['big', PoolSchema.parse({ emitter: 'gl', platform: 'aws', labels: ['linux'], machine: { type: 'c6i.xlarge', image: 'ami-0123456789abcdef0', spot: true, subnets: ['subnet-a', 'subnet-b'] }, runner: { jobsPerNode: 2 } })]]),
    }).pools[0];
    if (!pool) throw new Error('no pool');
    const nodes = Array.from({ length: N }, (_, i) => ({ name: `big-${i.toString(36).padStart(6, '0')}`, access: { kind: 'gitlab' as const, url: 'https://gitlab.example.com' } }));
    // The identical resource configurations, built outside the timer: the floor cdktf itself costs
    // for these resources. The bare floor (no nested blocks, tiny user-data) is shown too.
    const same = nodes.map((n) => awsInstanceConfig(pool, n));
    const ours: number[] = [];
    const floor: number[] = [];
    const bareFloor: number[] = [];
    // Interleaved so that machine noise hits all alike.
    for (let i = 0; i < 6; i++) {
      let t = process.hrtime.bigint();
      cdktfFloor(same);
      if (i > 0) floor.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      cdktfFloor(undefined);
      if (i > 0) bareFloor.push(Number(process.hrtime.bigint() - t) / 1e6);
      t = process.hrtime.bigint();
      renderPool({ pool, platform: { name: 'aws', type: 'aws', region: 'us-east-1' }, stateDir: tmpdir(), nodes });
      if (i > 0) ours.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    const o = median(ours);
    const f = median(floor);
    const fb = median(bareFloor);
    const [bare, imp, cdktfOnly] = timeCommands([
      [process.execPath, ['-e', '0']],
      [process.execPath, ['--input-type=module', '-e', "await import('./dist/stacks/render.js')"]],
      [process.execPath, ['--input-type=module', '-e', "await import('cdktf')"]],
    ], 7, root) as [number, number, number];
    return [
      { name: 'synth-1000-nodes', value: round(o, 0), unit: 'ms', baseline: { name: `cdktf alone, the same ${N} aws_instance configs`, value: round(f, 0) }, ratio: round(o / f), note: `${round(o / N, 2)} ms per node (target ratio ≤ 1.3)` },
      { name: 'synth-1000-nodes-vs-bare', value: round(o, 0), unit: 'ms', baseline: { name: `cdktf alone, ${N} bare aws_instance`, value: round(fb, 0) }, ratio: round(o / fb), note: 'nested blocks (disk, IMDS, spot) and full user-data cost cdktf more' },
      { name: 'synth-import-cold', value: round(imp, 0), unit: 'ms', baseline: { name: 'node -e 0', value: round(bare, 0) }, ratio: round(imp / bare), note: 'stacks/render.js with cdktf and deep provider bindings (target ≤ 600 ms)' },
      { name: 'synth-import-vs-cdktf', value: round(imp, 0), unit: 'ms', baseline: { name: "import('cdktf') alone", value: round(cdktfOnly, 0) }, ratio: round(imp / cdktfOnly), note: 'what the synth path adds to cdktf itself' },
    ];
  },
};
