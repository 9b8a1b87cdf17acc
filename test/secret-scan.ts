/**
 * The secret scan: what Parmanu prints, logs, returns as JSON or sends in a request body must not
 * hold any credential an emulator accepted or issued, nor the fixed secret values tests put in the
 * environment. `test/setup/secret-scan.ts` runs it after every test over the captured console
 * output and the emulators' request bodies; CLI runs (`test/cli.ts`) scan the child's output.
 */
import { issuedSecrets } from './emulators/base.js';

/** A secret value tests hand to the CLI through the environment (never a policy literal). */
export const TEST_SECRET = 'emulated-SECRETVALUE1234567890';

const FIXED = [TEST_SECRET];

/** The secrets found in `text` (shortened for the failure message, never printed whole). */
export function leaks(text: string): string[] {
  const found: string[] = [];
  for (const s of [...FIXED, ...issuedSecrets]) {
    if (s.length >= 8 && text.includes(s)) found.push(`${s.slice(0, 6)}…(${s.length} chars)`);
  }
  return found;
}

export class SecretLeak extends Error {}

/** Throws when `text` holds a secret; `where` names the stream (stdout of `reconcile`, a comment…). */
export function expectNoSecrets(where: string, text: string): void {
  const found = leaks(text);
  if (found.length) throw new SecretLeak(`secret scan: ${where} contains ${found.join(', ')}`);
}

const pending: Array<{ where: string; text: string }> = [];

/** Queue text to be scanned after the test (for callbacks whose throw would be swallowed). */
export function capture(where: string, text: string): void {
  pending.push({ where, text });
}

/** Scan and clear everything captured so far. */
export function scanCaptured(): void {
  const all = pending.splice(0);
  for (const { where, text } of all) expectNoSecrets(where, text);
}
