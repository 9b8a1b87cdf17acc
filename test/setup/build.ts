/**
 * vitest globalSetup: the CLI tests run the compiled CLI (`dist/`) and the compiled development
 * tools (`dist/bench`), so both are built once (tsconfig.dev.json) before any test file — unless
 * the run says it is already built (`npm test` runs `npm run build:dev` first and sets
 * PARMANU_BUILT=1). Running `npx vitest` alone still tests the current source.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

export default function setup(): void {
  if (process.env.PARMANU_BUILT === '1') return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.dev.json'], { cwd: resolve(import.meta.dirname, '..', '..'), stdio: 'inherit' });
}
