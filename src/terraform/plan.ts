/** `terraform show -json` of a saved plan: the parts the guard reads, validated with zod. */
import { z } from 'zod';

export const ResourceChangeSchema = z.object({
  address: z.string(),
  /** The module instance the resource is in (`module.node_<name>`, nested ones after it); absent in the root module. */
  module_address: z.string().optional(),
  mode: z.string().default('managed'),
  type: z.string(),
  name: z.string(),
  change: z.object({ actions: z.array(z.enum(['no-op', 'create', 'read', 'update', 'delete', 'forget'])) }).loose(),
  /** Why Terraform replaces it, e.g. `replace_because_tainted` (a create that failed after the object existed). */
  action_reason: z.string().optional(),
}).loose();
export type ResourceChange = z.output<typeof ResourceChangeSchema>;

export const PlanJsonSchema = z.object({
  format_version: z.string(),
  resource_changes: z.array(ResourceChangeSchema).default([]),
}).loose();
export type PlanJson = z.output<typeof PlanJsonSchema>;

export interface PlanCounts {
  add: number;
  change: number;
  destroy: number;
}

export function countChanges(changes: readonly ResourceChange[]): PlanCounts {
  const c = { add: 0, change: 0, destroy: 0 };
  for (const r of changes) {
    const a = r.change.actions;
    if (a.includes('create')) c.add++;
    if (a.includes('delete')) c.destroy++;
    if (a.includes('update')) c.change++;
  }
  return c;
}
