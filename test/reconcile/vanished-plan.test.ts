/**
 * Which kept nodes the refreshed plan says vanished (execute.ts `recreated`): a VM the plan would
 * create again; a module node when its whole module is to be created, or some of it while its
 * runner reports no job (a busy one is kept — the guard refuses the change and the pool holds —
 * so a busy node's VM is never destroyed for a module that gained a resource).
 */
import { describe, expect, it } from 'vitest';
import { partlyRecreated, recreated } from '../../src/reconcile/execute.js';
import type { ResourceChange } from '../../src/terraform/plan.js';

const rc = (address: string, actions: ResourceChange['change']['actions'], module_address?: string): ResourceChange => {
  const parts = address.split('.');
  return { address, ...(module_address ? { module_address } : {}), mode: 'managed', type: parts.at(-2) as string, name: parts.at(-1) as string, change: { actions } };
};

describe('vanished nodes in a refreshed plan', () => {
  const kept = new Set(['p-a', 'p-b']);
  const rows: Array<{ name: string; changes: ResourceChange[]; type: string; want: string[] }> = [
    { name: 'a kept VM to be created again: vanished', type: 'aws_instance', changes: [rc('aws_instance.node_p-a', ['create']), rc('aws_instance.node_p-b', ['no-op'])], want: ['p-a'] },
    { name: 'a new node (not kept) to be created: not vanished', type: 'aws_instance', changes: [rc('aws_instance.node_p-c', ['create'])], want: [] },
    { name: 'a kept VM replaced: not vanished (the guard refuses it)', type: 'aws_instance', changes: [rc('aws_instance.node_p-a', ['delete', 'create'])], want: [] },
    { name: 'a module node whose whole module is to be created: vanished', type: 'terraform_data', changes: [rc('module.node_p-a.azurerm_linux_virtual_machine.vm', ['create'], 'module.node_p-a'), rc('module.node_p-a.azurerm_network_interface.nic', ['create'], 'module.node_p-a')], want: ['p-a'] },
    { name: 'a busy module node whose module gained a resource: not vanished', type: 'terraform_data', changes: [rc('module.node_p-a.azurerm_linux_virtual_machine.vm', ['no-op'], 'module.node_p-a'), rc('module.node_p-a.azurerm_dns_a_record.dns', ['create'], 'module.node_p-a')], want: [] },
    { name: 'a busy module node that lost a resource outside Terraform (listed first): not vanished', type: 'terraform_data', changes: [rc('module.node_p-b.azurerm_key_vault_secret.cred', ['create'], 'module.node_p-b'), rc('module.node_p-b.azurerm_linux_virtual_machine.vm', ['no-op'], 'module.node_p-b')], want: [] },
    { name: 'a nested module\'s resources count for the node', type: 'terraform_data', changes: [rc('module.node_p-a.module.disk.x_disk.d', ['create'], 'module.node_p-a.module.disk'), rc('module.node_p-a.x_vm.vm', ['update'], 'module.node_p-a')], want: [] },
  ];
  for (const row of rows) it(row.name, () => expect(recreated(row.changes, row.type, kept, new Set(['p-a', 'p-b']))).toEqual(row.want));
  it('an idle module node that lost part of its module (its VM, say): vanished; a busy one is not', () => {
    const changes = [rc('module.node_p-a.x_vm.vm', ['create'], 'module.node_p-a'), rc('module.node_p-a.x_secret.s', ['no-op'], 'module.node_p-a')];
    expect(recreated(changes, 'terraform_data', kept)).toEqual(['p-a']);
    expect(recreated(changes, 'terraform_data', kept, new Set(['p-a']))).toEqual([]);
    // A whole module gone is gone, whatever its runner's lagging flag says.
    expect(recreated([rc('module.node_p-a.x_vm.vm', ['create'], 'module.node_p-a')], 'terraform_data', kept, new Set(['p-a']))).toEqual(['p-a']);
  });
  it('partlyRecreated: the module nodes of which some stays (their runner is asked before they go)', () => {
    const changes = [rc('module.node_p-a.x_vm.vm', ['create'], 'module.node_p-a'), rc('module.node_p-a.x_secret.s', ['no-op'], 'module.node_p-a'), rc('module.node_p-b.x_vm.vm', ['create'], 'module.node_p-b'), rc('aws_instance.node_p-c', ['create'])];
    expect(partlyRecreated(changes, new Set(['p-a', 'p-b', 'p-c']))).toEqual(['p-a']);
    expect(partlyRecreated(changes, new Set(['p-b']))).toEqual([]);
  });
});
