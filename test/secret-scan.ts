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

/**
 * Everything a reconcile left in a state directory, scanned: rendered stacks (`cdk.tf.json`),
 * terraform state (`*.tfstate`, backups too), saved plans (zip archives: every entry), history
 * files. The local platform's credential files (`pools/<pool>/credentials/<node>`) are where the
 * credential belongs: they are checked to be 0600 instead. Returns the files scanned.
 */
export async function scanStateDir(root: string): Promise<{ files: number; plans: number; credentialFiles: number }> {
  const { existsSync, readdirSync, readFileSync, statSync } = await import('node:fs');
  const { join, basename, dirname } = await import('node:path');
  const { default: AdmZip } = await import('adm-zip');
  const out = { files: 0, plans: 0, credentialFiles: 0 };
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name === '.terraform' || e.name === 'providers') continue;
        walk(p);
        continue;
      }
      if (!e.isFile()) continue;
      if (basename(dirname(p)) === 'credentials') {
        const mode = statSync(p).mode & 0o777;
        if (mode !== 0o600) throw new SecretLeak(`secret scan: ${p} holds a credential with mode ${mode.toString(8)}, not 600`);
        out.credentialFiles++;
        continue;
      }
      const bytes = readFileSync(p);
      if (bytes.subarray(0, 2).toString('latin1') === 'PK') {
        out.plans++;
        for (const entry of new AdmZip(bytes).getEntries()) if (!entry.isDirectory) expectNoSecrets(`${p} (${entry.entryName} in the saved plan)`, entry.getData().toString('utf8'));
        continue;
      }
      out.files++;
      expectNoSecrets(p, bytes.toString('utf8'));
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}
