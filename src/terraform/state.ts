/**
 * Reading a local Terraform state file (format version 4) for the nodes it holds: Terraform state
 * is the truth for which nodes exist. A module platform's node is its record and its module instance:
 * any resource in `module.node_<name>` (nested modules included) makes node `<name>` exist. Validated with zod; an unreadable or foreign file is an error
 * with a reason, never a guess.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { CREDENTIAL_PREFIX, NODE_PREFIX, POWER_PREFIX, POWER_RESOURCE_TYPE, powerOfGcpStatus } from '../policy/resources.js';
import { nodeOfModule, nodeOfResource } from './guard.js';

const StateSchema = z.object({
  version: z.literal(4, { error: 'only Terraform state format version 4 is supported' }),
  resources: z
    .array(
      z.object({
        /** The module instance the resource is in (`module.node_<name>`); absent in the root module. */
        module: z.string().optional(),
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
  /**
   * Its power state as the state records it: local `input.power`, GCP `desired_status`
   * (TERMINATED and SUSPENDED are stopped), AWS its `aws_ec2_instance_state` (`power_<name>`).
   * Undefined: none recorded (running; on AWS the node has no power resource).
   */
  power?: 'running' | 'stopped';
  /**
   * Its credential's generation (stacks' NodeInput.generation): local the delivery's
   * `triggers_replace` (none: 1), AWS the parameter's `value_wo_version`, GCP the secret version's
   * `secret_data_wo_version`. Undefined without a credential resource.
   */
  generation?: number;
  /**
   * Module platform: resources of its module instance (`module.node_<name>`) are in the state. Its
   * record (`terraform_data.node_<name>`) is read like a local node (spec, creation time, `input`).
   */
  module?: boolean;
  /** Local platform (and a module node's record): the node's `input` as recorded (a start or stop renders it back with only `power` changed). */
  input?: Record<string, string>;
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
  input: z.object({ value: z.object({ spec: Str.optional(), created_at: Str.optional(), power: Str.optional() }).loose().nullable().optional() }).loose().nullable().optional(),
  desired_status: Str.nullable().optional(),
  tags: Tags,
  labels: Tags,
  ami: Str.nullable().optional(),
  instance_type: Str.nullable().optional(),
  machine_type: Str.nullable().optional(),
  boot_disk: z.array(z.object({ initialize_params: z.array(z.object({ image: Str.nullable().optional() }).loose()).nullable().optional() }).loose()).nullable().optional(),
}).loose();

const PowerSchema = z.object({ state: z.string() }).loose();
const Version = z.number().int().positive().nullable().optional();
const GenerationSchema = z.object({ value_wo_version: Version, secret_data_wo_version: Version, triggers_replace: z.object({ value: z.number().int().positive() }).loose().nullable().optional().catch(undefined) }).loose();
/** A local node's recorded input: flat strings (what stacks/ renders for it). */
const LocalInputSchema = z.record(z.string(), z.string());

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
  // Node resources are named in the root module; a module platform's node is also its module instance.
  const managed = parsed.data.resources.filter((r) => r.mode === 'managed' && r.instances.length > 0 && r.module === undefined);
  const inModules = new Set(parsed.data.resources.filter((r) => r.mode === 'managed' && r.instances.length > 0 && r.module !== undefined).flatMap((r) => nodeOfModule(r.module as string) ?? []));
  const withCredential = new Set(managed.filter((r) => r.name.startsWith(CREDENTIAL_PREFIX)).map((r) => nodeOfResource(r.name)));
  // Power states (AWS) and credential generations, by node.
  const power = new Map<string, 'running' | 'stopped'>();
  const generation = new Map<string, number>();
  for (const r of managed) {
    const node = nodeOfResource(r.name);
    const attrs = r.instances[0]?.attributes ?? {};
    if (!node) continue;
    if (r.type === POWER_RESOURCE_TYPE && r.name.startsWith(POWER_PREFIX)) {
      const st = PowerSchema.safeParse(attrs);
      if (st.success) power.set(node, st.data.state === 'stopped' ? 'stopped' : 'running');
    } else if (r.name.startsWith(CREDENTIAL_PREFIX)) {
      const g = GenerationSchema.safeParse(attrs);
      if (!g.success) continue;
      const v = g.data.value_wo_version ?? g.data.secret_data_wo_version ?? g.data.triggers_replace?.value;
      // A GCP secret and its version both name the node: the version's number wins.
      if (v !== undefined && v !== null) generation.set(node, Math.max(generation.get(node) ?? 1, v));
      else if (!generation.has(node)) generation.set(node, 1);
    }
  }
  for (const r of parsed.data.resources) {
    if (r.mode !== 'managed' || r.module !== undefined || !r.name.startsWith(NODE_PREFIX) || !(NODE_RESOURCE_TYPES as readonly string[]).includes(r.type)) continue;
    const inst = r.instances[0];
    if (!inst) continue;
    const node: StateNode = { name: r.name.slice(NODE_PREFIX.length), type: r.type as StateNode['type'] };
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
      const p = d.input?.value?.power ?? (d.desired_status ? powerOfGcpStatus(d.desired_status) : undefined);
      if (p === 'running' || p === 'stopped') node.power = p;
      if (r.type === 'terraform_data' && d.input?.value) {
        const input = LocalInputSchema.safeParse(d.input.value);
        if (input.success) node.input = input.data;
      }
    }
    const p = power.get(node.name);
    if (p) node.power = p;
    if (withCredential.has(node.name)) node.credential = true;
    const g = generation.get(node.name);
    if (g !== undefined) node.generation = g;
    if (inModules.has(node.name)) node.module = true;
    nodes.push(node);
  }
  // A module instance whose record is gone (its resources are that node's all the same).
  const named = new Set(nodes.map((n) => n.name));
  for (const name of [...inModules].sort()) if (!named.has(name)) nodes.push({ name, type: 'terraform_data', module: true });
  return nodes;
}
