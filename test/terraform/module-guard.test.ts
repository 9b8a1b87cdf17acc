/**
 * The plan guard on a module platform: everything inside `module.node_<name>` (nested modules
 * too) is node `<name>`, beside Parmanu's record `terraform_data.node_<name>`.
 */
import { describe, expect, it } from 'vitest';
import { guardPlan, nodeOfModule, type Intent } from '../../src/terraform/guard.js';
import { PlanJsonSchema, type ResourceChange } from '../../src/terraform/plan.js';

type Actions = ResourceChange['change']['actions'];
/** A resource change as `terraform show -json` prints it (parsed through the guard's own schema). */
const inModule = (module: string, type: string, name: string, actions: Actions): ResourceChange =>
  PlanJsonSchema.parse({ format_version: '1.2', resource_changes: [{ address: `${module}.${type}.${name}`, module_address: module, mode: 'managed', type, name, change: { actions } }] }).resource_changes[0] as ResourceChange;
const record = (node: string, actions: Actions): ResourceChange => ({ address: `terraform_data.node_${node}`, mode: 'managed', type: 'terraform_data', name: `node_${node}`, change: { actions } });
const vm = (node: string, actions: Actions) => inModule(`module.node_${node}`, 'azurerm_linux_virtual_machine', 'vm', actions);
const intent: Intent = { pool: 'p', nodeType: 'terraform_data', mayCreate: new Set(['p-new']), mayDestroy: new Set(['p-old']), kept: new Set(['p-a', 'p-b']) };

describe('guardPlan: module nodes', () => {
  it('names the node of a module address by its first segment', () => {
    expect(nodeOfModule('module.node_p-a')).toBe('p-a');
    expect(nodeOfModule('module.node_p-a.module.disk')).toBe('p-a');
    expect(nodeOfModule('module.other')).toBeUndefined();
    expect(nodeOfModule('module.network.module.node_p-a')).toBeUndefined();
  });

  it.each<[string, ResourceChange[], RegExp[]]>([
    ['a new node: its record and every resource of its module, nested ones too', [record('p-new', ['create']), vm('p-new', ['create']), inModule('module.node_p-new', 'azurerm_key_vault_secret', 'credential', ['create']), inModule('module.node_p-new.module.nic', 'azurerm_network_interface', 'this', ['create'])], []],
    ['a drained node goes with its module instance', [record('p-old', ['delete']), vm('p-old', ['delete']), inModule('module.node_p-old.module.nic', 'azurerm_network_interface', 'this', ['delete'])], []],
    ['reads and no-ops inside kept nodes are nothing', [inModule('module.node_p-a', 'azurerm_image', 'base', ['read']), vm('p-b', ['no-op'])], []],
    ['a plan touching the module of another node (kept, not decided)', [vm('p-new', ['create']), vm('p-a', ['delete'])], [/module\.node_p-a\.azurerm_linux_virtual_machine\.vm: destroy of a node that was not drained/]],
    ['a kept node\'s module updated in place', [vm('p-a', ['update'])], [/module\.node_p-a\..*: in-place update \(nodes are immutable\)/]],
    ['a kept node\'s module resource replaced', [inModule('module.node_p-b', 'azurerm_key_vault_secret', 'credential', ['delete', 'create'])], [/replacement/]],
    ['a resource created in a node module that was not decided', [vm('p-c', ['create'])], [/module\.node_p-c\..*: create was not decided/]],
    ['a node module of another pool', [vm('q-1', ['delete'])], [/not in a node module of pool p/]],
    ['a resource in a module that is no node\'s', [inModule('module.network', 'azurerm_virtual_network', 'this', ['update'])], [/module\.network\..*: update of a resource that is not in a node module of pool p/]],
    ['a nested node-named module below another module is no node\'s', [inModule('module.shared.module.node_p-new', 'x', 'y', ['create'])], [/not in a node module of pool p/]],
    ['a forget inside a node module', [inModule('module.node_p-old', 'azurerm_subnet', 'x', ['forget'])], [/forget was not decided/]],
  ])('%s', (_n, changes, want) => {
    const v = guardPlan(changes, intent);
    expect(v).toHaveLength(want.length);
    want.forEach((re, k) => expect(v[k]).toMatch(re));
  });

  it('counts a node once, whatever number of its resources changed', () => {
    const i: Intent = { pool: 'p', nodeType: 'terraform_data', mayCreate: new Set(['p-new']), mayDestroy: new Set() };
    expect(guardPlan([record('p-new', ['create']), vm('p-new', ['create']), inModule('module.node_p-new', 'a', 'b', ['create']), inModule('module.node_p-new', 'a', 'c', ['create'])], i)).toEqual([]);
  });
});
