/** The state reader on a module platform: a node is its record and its module instance. */
import { describe, expect, it } from 'vitest';
import { parseStateNodes } from '../../src/terraform/state.js';

const state = (resources: unknown[]) => JSON.stringify({ version: 4, resources });
const recordOf = (node: string) => ({ mode: 'managed', type: 'terraform_data', name: `node_${node}`, instances: [{ attributes: { input: { value: { pool: 'p', node, spec: 'abc', created_at: '1700000000', module_source: './m', module_version: '', inputs: '{}', user_data_gz: 'H4s', bootstrap_sha256: 'x' } } } }] });
const inModule = (module: string, type: string, name: string) => ({ module, mode: 'managed', type, name, instances: [{ attributes: { id: '1' } }] });

describe('parseStateNodes: module nodes', () => {
  it('a node is its record with its module instance; nested modules and module-less records count, other modules and root look-alikes inside modules do not', () => {
    const nodes = parseStateNodes(
      state([
        recordOf('p-a'),
        inModule('module.node_p-a', 'terraform_data', 'machine'),
        inModule('module.node_p-a.module.disk', 'azurerm_managed_disk', 'this'),
        // A resource named like a node, inside a module: not a root node resource.
        inModule('module.node_p-a', 'terraform_data', 'node_p-zzz'),
        // A module's own resources named like Parmanu's credential or power resources are not the root's.
        inModule('module.node_p-a', 'azurerm_key_vault_secret', 'credential_p-a'),
        inModule('module.node_p-a', 'aws_ec2_instance_state', 'power_p-a'),
        // A module instance whose record is gone: the node exists all the same.
        inModule('module.node_p-b', 'azurerm_linux_virtual_machine', 'vm'),
        // Modules that are no node's.
        inModule('module.network', 'azurerm_virtual_network', 'this'),
        inModule('module.shared.module.node_p-c', 'x', 'y'),
        // A record whose module instance is gone: the node exists until a plan finds its module to re-create (vanished).
        recordOf('p-d'),
      ]),
      'test',
    );
    expect(nodes).toEqual([
      { name: 'p-a', type: 'terraform_data', module: true, spec: 'abc', createdAt: 1_700_000_000_000, input: expect.objectContaining({ node: 'p-a', module_source: './m' }) },
      { name: 'p-d', type: 'terraform_data', spec: 'abc', createdAt: 1_700_000_000_000, input: expect.objectContaining({ node: 'p-d' }) },
      { name: 'p-b', type: 'terraform_data', module: true },
    ]);
  });
});
