/**
 * Reading a local Terraform state file (format version 4) for the nodes it holds: Terraform state
 * is the truth for which nodes exist. Validated with zod; an unreadable or foreign file is an error
 * with a reason, never a guess.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const StateSchema = z.object({
  version: z.literal(4, { error: 'only Terraform state format version 4 is supported' }),
  resources: z
    .array(
      z.object({
        mode: z.string(),
        type: z.string(),
        name: z.string(),
        instances: z.array(z.object({ attributes: z.record(z.string(), z.unknown()).optional() }).loose()).default([]),
      }).loose(),
    )
    .default([]),
}).loose();

export const NODE_RESOURCE_TYPES = ['aws_instance', 'google_compute_instance', 'terraform_data'] as const;

export interface StateNode {
  name: string;
  type: (typeof NODE_RESOURCE_TYPES)[number];
}

export class StateError extends Error {}

/** Nodes recorded in a local state file; an absent file means no nodes. */
export function readStateNodes(file: string): StateNode[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new StateError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new StateError(`${file}: not JSON; is it a Terraform state file?`);
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success) throw new StateError(`${file}: not a Terraform state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const nodes: StateNode[] = [];
  for (const r of parsed.data.resources) {
    if (r.mode !== 'managed' || !r.name.startsWith('node_') || !(NODE_RESOURCE_TYPES as readonly string[]).includes(r.type)) continue;
    if (r.instances.length === 0) continue;
    nodes.push({ name: r.name.slice('node_'.length), type: r.type as StateNode['type'] });
  }
  return nodes;
}
