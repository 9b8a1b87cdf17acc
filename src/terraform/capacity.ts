/**
 * Which nodes a failed `terraform apply` could not get for want of capacity, from terraform's own
 * output: pure, over text. Terraform prints one diagnostic per failed resource (`Error: …`, boxed
 * in `╷ │ ╵` when colored, plain with -no-color) and names the resource in its `with ADDRESS,`
 * line: a node's VM is `<type>.node_<name>` (a module platform's node: `module.node_<name>…`).
 *
 * The capacity errors (the rest are not: quotas of other kinds, auth, a held state lock, a bad
 * argument — they fail the pool's cycle as before):
 * - `spot-capacity`: AWS `InsufficientInstanceCapacity` for a spot request ("There is no Spot
 *   capacity available that matches your request.")
 * - `spot-price`: AWS `SpotMaxPriceTooLow` ("Your Spot request price of 0.01 is lower than the
 *   minimum required Spot request fulfillment price of 0.0346.")
 * - `spot-count`: AWS `MaxSpotInstanceCountExceeded` (the account's spot instance limit)
 * - `zone-capacity`: AWS `InsufficientInstanceCapacity` ("We currently do not have sufficient
 *   c6i.xlarge capacity in the Availability Zone you requested (us-east-1a)…"),
 *   `InsufficientCapacity`, `Unsupported` (the instance type is not offered in the subnet's
 *   zone), `InsufficientFreeAddressesInSubnet`; GCP `ZONE_RESOURCE_POOL_EXHAUSTED`,
 *   `ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS` ("The zone 'projects/p/zones/europe-west1-b' does
 *   not have enough resources available to fulfill the request.")
 *
 * It also reads the one-line message of a TerraformError (`terraform apply failed with 2 errors:
 * SUMMARY (ADDRESS, FILE line N): DETAIL | …`), which is what is left when the output is not.
 */
import { CREDENTIAL_PREFIX, NODE_PREFIX, POWER_PREFIX } from '../policy/resources.js';

export type CapacityKind = 'spot-capacity' | 'spot-price' | 'spot-count' | 'zone-capacity';

export interface CapacityFailure {
  /** The node the failed resource belongs to. */
  node: string;
  /** The resource terraform names (`aws_instance.node_lab-ab12`). */
  address: string;
  /** The node's VM (or its module) failed, not its power state or credential. */
  vm: boolean;
  kind: CapacityKind;
  /** The error code or phrase that told (`InsufficientInstanceCapacity`, `ZONE_RESOURCE_POOL_EXHAUSTED`, …). */
  code: string;
}

export interface ApplyErrors {
  capacity: CapacityFailure[];
  /** Every other error (its summary), and output that could not be read whole: none of it is a capacity failure. */
  other: string[];
}

/** Rules in order: the first that matches a diagnostic's text classifies it. */
const RULES: ReadonlyArray<{ kind: CapacityKind; code: string; re: RegExp }> = [
  { kind: 'spot-price', code: 'SpotMaxPriceTooLow', re: /\bSpotMaxPriceTooLow\b|Spot request price of [\d.]+ is lower than the minimum required Spot request fulfillment price/i },
  { kind: 'spot-count', code: 'MaxSpotInstanceCountExceeded', re: /\bMaxSpotInstanceCountExceeded\b|max spot instance count exceeded/i },
  { kind: 'spot-capacity', code: 'InsufficientInstanceCapacity', re: /no Spot capacity available/i },
  { kind: 'zone-capacity', code: 'InsufficientInstanceCapacity', re: /\bInsufficientInstanceCapacity\b/ },
  { kind: 'zone-capacity', code: 'InsufficientCapacity', re: /\bInsufficientCapacity\b/ },
  { kind: 'zone-capacity', code: 'InsufficientFreeAddressesInSubnet', re: /\bInsufficientFreeAddressesInSubnet\b/ },
  { kind: 'zone-capacity', code: 'Unsupported', re: /\bapi error Unsupported:|\bUnsupported: Your requested instance type|is not supported in your requested Availability Zone/ },
  { kind: 'zone-capacity', code: 'ZONE_RESOURCE_POOL_EXHAUSTED', re: /\bZONE_RESOURCE_POOL_EXHAUSTED(?:_WITH_DETAILS)?\b|does not have enough resources available to fulfill the request/ },
];

/** The node a resource address names: `<type>.node_<n>`, `<type>.power_<n>`, `<type>.credential_<n>[_version|_access]`, `module.node_<n>[.…]`. */
export function nodeOfAddress(address: string): { node: string; vm: boolean } | undefined {
  const mod = /^module\.node_([a-z0-9-]+)(?:\.|$)/.exec(address);
  if (mod) return { node: mod[1] as string, vm: true };
  const m = /^[a-z0-9_]+\.((?:node|power|credential)_[a-z0-9_-]+)$/.exec(address);
  if (!m) return undefined;
  const name = m[1] as string;
  if (name.startsWith(NODE_PREFIX)) return { node: name.slice(NODE_PREFIX.length), vm: true };
  if (name.startsWith(POWER_PREFIX)) return { node: name.slice(POWER_PREFIX.length), vm: false };
  return { node: name.slice(CREDENTIAL_PREFIX.length).replace(/_(version|access)$/, ''), vm: false };
}

interface Diagnostic {
  text: string;
  summary: string;
  address: string | undefined;
}

/** Terraform's human output, as its error diagnostics (summary, text, the address of its `with` line). */
function diagnostics(output: string): Diagnostic[] | undefined {
  const lines = output
    // eslint-disable-next-line no-control-regex
    .replace(/\u001b\[[0-9;]*m/g, '')
    .replace(/\r/g, '')
    .split('\n')
    .map((l) => (/^[╷╵]/.test(l) ? '' : l.replace(/^│ ?/, '')));
  const diags: Array<{ severity: string; summary: string; lines: string[] }> = [];
  for (const l of lines) {
    const m = /^(Error|Warning): (.*)$/.exec(l.trim());
    if (m) diags.push({ severity: m[1] as string, summary: (m[2] as string).trim(), lines: [] });
    else diags[diags.length - 1]?.lines.push(l);
  }
  if (diags.length === 0) return undefined;
  return diags
    .filter((d) => d.severity === 'Error')
    .map((d) => {
      const address = d.lines.map((l) => /^\s*with ([^\s,]+),?\s*$/.exec(l)?.[1]).find((a) => a !== undefined);
      return { summary: d.summary, address, text: [d.summary, ...d.lines.map((l) => l.trim())].join(' ') };
    });
}

/** The one-line message of a TerraformError: `… failed[ with N errors]: PART | PART`, each part `SUMMARY (ADDRESS, …): DETAIL`. */
function messageParts(message: string): { parts: Diagnostic[]; cut: boolean } | undefined {
  const m = /^\S+ apply failed(?: with \d+ errors)?: ([\s\S]*)$/.exec(message.trim());
  if (!m) return undefined;
  let rest = m[1] as string;
  const cut = /… \(\d+ more lines?\)$/.test(rest);
  if (cut) rest = rest.replace(/ ?… \(\d+ more lines?\)$/, '');
  const parts = rest.split(' | ').map((p) => {
    // terraformProblem's `(ADDRESS, FILE line N)`: the first parenthesis that names a node's resource.
    const address = [...p.matchAll(/\(((?:module\.)?[a-z0-9_]+\.[a-z0-9_-]+[^\s,()]*)(?:, |\))/g)].map((a) => a[1] as string).find((a) => nodeOfAddress(a) !== undefined);
    return { summary: p.split(' (')[0] ?? p, address, text: p };
  });
  return { parts, cut };
}

/**
 * The apply's errors: the nodes that failed for capacity, and every other error. `text` is
 * terraform's output (preferred: every diagnostic whole) or a TerraformError's message.
 */
export function classifyApplyErrors(text: string): ApplyErrors {
  const out: ApplyErrors = { capacity: [], other: [] };
  let diags = diagnostics(text);
  if (diags === undefined) {
    const parts = messageParts(text);
    if (!parts) return { capacity: [], other: [text.trim().split('\n')[0] ?? 'no output'] };
    diags = parts.parts;
    if (parts.cut) out.other.push('more errors than the message holds');
  }
  for (const d of diags) {
    const rule = RULES.find((r) => r.re.test(d.text));
    const at = d.address === undefined ? undefined : nodeOfAddress(d.address);
    if (rule && at && d.address !== undefined) out.capacity.push({ node: at.node, address: d.address, vm: at.vm, kind: rule.kind, code: rule.code });
    else out.other.push(d.summary);
  }
  return out;
}
