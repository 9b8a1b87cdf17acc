/**
 * Reading a local Terraform state file (format version 4) for the nodes it holds: Terraform state
 * is the truth for which nodes exist. Validated with zod; an unreadable or foreign file is an error
 * with a reason, never a guess.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { nodeOfResource } from './guard.js';

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
  /** The spec recorded on the node when it was created (stacks/spec.ts); undefined for nodes made before specs were recorded. */
  spec?: string;
  /** When the node was created (epoch ms), as recorded on it. */
  createdAt?: number;
  /** The VM's machine type and image as the state holds them (AWS, GCP), for nodes with no recorded spec. */
  machine?: { type?: string; image?: string };
  /** Its credential resource (`credential_<name>`) is in the state too. */
  credential?: boolean;
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
  return parseStateNodes(text, file);
}

const Str = z.string();
const Tags = z.record(z.string(), z.string().nullable()).nullable().optional();
/** Where each node type records its spec and creation time. */
const AttrsSchema = z.object({
  input: z.object({ value: z.object({ spec: Str.optional(), created_at: Str.optional() }).loose().nullable().optional() }).loose().nullable().optional(),
  tags: Tags,
  labels: Tags,
  ami: Str.nullable().optional(),
  instance_type: Str.nullable().optional(),
  machine_type: Str.nullable().optional(),
  boot_disk: z.array(z.object({ initialize_params: z.array(z.object({ image: Str.nullable().optional() }).loose()).nullable().optional() }).loose()).nullable().optional(),
}).loose();

/** The nodes of a state document (format version 4), e.g. the output of `terraform state pull`. */
export function parseStateNodes(text: string, source: string): StateNode[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new StateError(`${source}: not JSON; is it a Terraform state file?`);
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success) throw new StateError(`${source}: not a Terraform state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const nodes: StateNode[] = [];
  const withCredential = new Set(parsed.data.resources.filter((r) => r.mode === 'managed' && r.name.startsWith('credential_') && r.instances.length > 0).map((r) => nodeOfResource(r.name)));
  for (const r of parsed.data.resources) {
    if (r.mode !== 'managed' || !r.name.startsWith('node_') || !(NODE_RESOURCE_TYPES as readonly string[]).includes(r.type)) continue;
    const inst = r.instances[0];
    if (!inst) continue;
    const node: StateNode = { name: r.name.slice('node_'.length), type: r.type as StateNode['type'] };
    const a = AttrsSchema.safeParse(inst.attributes ?? {});
    if (a.success) {
      const d = a.data;
      const spec = d.input?.value?.spec ?? d.tags?.['parmanu:spec'] ?? d.labels?.['parmanu-spec'] ?? undefined;
      const created = d.input?.value?.created_at ?? d.tags?.['parmanu:created'] ?? d.labels?.['parmanu-created'] ?? undefined;
      if (spec) node.spec = spec;
      if (created && /^\d+$/.test(created)) node.createdAt = Number(created) * 1000;
      const type = d.instance_type ?? d.machine_type ?? undefined;
      const image = d.ami ?? d.boot_disk?.[0]?.initialize_params?.[0]?.image ?? undefined;
      if (type || image) node.machine = { ...(type ? { type } : {}), ...(image ? { image } : {}) };
    }
    if (withCredential.has(node.name)) node.credential = true;
    nodes.push(node);
  }
  return nodes;
}
