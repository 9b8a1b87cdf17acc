import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPolicy } from '../../src/policy/load.js';
import { manyPoolsPolicy } from '../fixtures.js';
import { round, timeCommands, timeFn, type BenchCase } from '../harness.js';

export const coldStart: BenchCase = {
  name: 'cold-start',
  async run({ root }) {
    const [bare, cli] = timeCommands([[process.execPath, ['-e', '0']], [process.execPath, ['bin/parmanu.js', '--help']]], 15, root) as [number, number];
    return [{ name: 'cold-start', value: round(cli, 1), unit: 'ms', baseline: { name: 'node -e 0', value: round(bare, 1) }, ratio: round(cli / bare) }];
  },
};

export const validate200: BenchCase = {
  name: 'validate-200-pools',
  async run({ root }) {
    const dir = mkdtempSync(join(tmpdir(), 'parmanu-bench-'));
    try {
      const file = join(dir, 'pools.yaml');
      writeFileSync(file, manyPoolsPolicy(200));
      const inProcess = timeFn(() => {
        const r = loadPolicy([file]);
        if (!r.policy) throw new Error('200-pool policy did not validate');
      }, 10);
      const [help, cli] = timeCommands([[process.execPath, ['bin/parmanu.js', '--help']], [process.execPath, ['bin/parmanu.js', 'validate', file]]], 7, root) as [number, number];
      return [
        { name: 'validate-200-pools', value: round(cli, 1), unit: 'ms', baseline: { name: 'parmanu --help', value: round(help, 1) }, ratio: round(cli / help), note: 'CLI wall time' },
        { name: 'validate-200-pools-in-process', value: round(inProcess, 1), unit: 'ms', note: 'loadPolicy only, warm' },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
