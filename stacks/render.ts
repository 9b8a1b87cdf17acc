/**
 * Rendering a pool's stack to Terraform JSON, and writing it where only its owner can read it:
 * the JSON holds every node's user-data, and with it runner credentials.
 */
import { App } from 'cdktf';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PoolStack } from './pool-stack.js';
import type { PoolStackInput } from './types.js';

export type TerraformJson = Record<string, unknown>;

export function renderPool(input: PoolStackInput): TerraformJson {
  // The App only needs an existing outdir: nothing is synthesized there (the JSON is written by
  // writeStack with the right permissions).
  const app = new App({ skipValidation: true, outdir: tmpdir() });
  const stack = new PoolStack(app, input);
  return stack.toTerraform() as TerraformJson;
}

/** Writes `<dir>/cdk.tf.json` with mode 0600 (the directory 0700). Returns the file's path. */
export function writeStack(dir: string, json: TerraformJson): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'cdk.tf.json');
  writeFileSync(file, JSON.stringify(json, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
  return file;
}
