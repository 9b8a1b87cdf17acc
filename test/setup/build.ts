/**
 * vitest globalSetup: the CLI tests run the compiled CLI (`dist/`), so it is built once before any
 * test file — unless the run says it is already built (`npm test` builds first and sets
 * PARMANU_BUILT=1). Running `npx vitest` alone still tests the current source.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  if (process.env.PARMANU_BUILT === '1') return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: resolve(import.meta.dirname, '..', '..'), stdio: 'inherit' });
}
