import { describe, expect, it } from 'vitest';
import { guardPlan, type Intent } from '../../src/terraform/guard.js';
import type { ResourceChange } from '../../src/terraform/plan.js';

const ch = (type: string, name: string, actions: ResourceChange['change']['actions']): ResourceChange => ({ address: `${type}.${name}`, mode: 'managed', type, name, change: { actions } });
const intent: Intent = { pool: 'p', nodeType: 'aws_instance', mayCreate: new Set(['p-new', 'p-kept']), mayDestroy: new Set(['p-old']) };
const ssm = (name: string, actions: ResourceChange['change']['actions']) => ch('aws_ssm_parameter', name, actions);

describe('guardPlan', () => {
  it.each<[string, ResourceChange[], RegExp[]]>([
    ['intended creates and destroys pass', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-x', ['no-op'])], []],
    ['any node decided new may be created', [ch('aws_instance', 'node_p-kept', ['create'])], []],
    ['a destroy that was not drained', [ch('aws_instance', 'node_p-busy', ['delete'])], [/node_p-busy: destroy of a node that was not drained/]],
    ['a create that was not decided', [ch('aws_instance', 'node_p-extra', ['create'])], [/node_p-extra: create was not decided/]],
    ['a replacement', [ch('aws_instance', 'node_p-new', ['delete', 'create'])], [/replacement/]],
    ['an in-place update', [ch('aws_instance', 'node_p-new', ['update'])], [/in-place update/]],
    ['a resource of another pool', [ch('aws_instance', 'node_q-1', ['delete'])], [/not a node of pool p/]],
    ['a resource that is not a node', [ch('aws_security_group', 'sg', ['delete'])], [/not a node of pool p/]],
    ['more nodes changed than decided', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-kept', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-old2', ['delete'])], [/node_p-old2/, /4 nodes changed, more than the 3 decided/]],
    ['a node is all its resources: its credential is created and destroyed with it', [ch('aws_instance', 'node_p-new', ['create']), ssm('credential_p-new', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ssm('credential_p-old', ['delete'])], []],
    ['GCP credential companions belong to their node', [ch('google_secret_manager_secret_version', 'credential_p-new_version', ['create']), ch('google_secret_manager_secret_iam_member', 'credential_p-new_access', ['create'])], []],
    ['a credential of a node not decided', [ssm('credential_p-busy', ['delete'])], [/credential_p-busy: destroy of a node that was not drained/]],
    ['a credential replaced in place', [ssm('credential_p-new', ['delete', 'create'])], [/replacement/]],
    ['the pool identity may be created or updated', [ch('aws_iam_role', 'pool_role', ['create']), ch('aws_iam_role_policy', 'pool_read_credentials', ['update'])], []],
    ['the pool identity is not destroyed while the pool keeps nodes', [ch('aws_iam_instance_profile', 'pool_profile', ['delete'])], [/pool_profile: delete of the pool's identity while the pool keeps nodes/]],
    ['a VM resource of another type named like a node', [ch('aws_security_group', 'node_p-new', ['create'])], [/not a node of pool p/]],
  ])('%s', (_n, changes, want) => {
    const v = guardPlan(changes, intent);
    expect(v).toHaveLength(want.length);
    want.forEach((re, i) => expect(v[i]).toMatch(re));
  });
});

describe('guardPlan: an emptied pool', () => {
  it('lets the pool identity go with its last node', () => {
    expect(guardPlan([ch('aws_iam_instance_profile', 'pool_profile', ['delete']), ch('aws_instance', 'node_p-old', ['delete'])], { ...intent, poolEmptied: true })).toEqual([]);
  });
});

describe('guardPlan: resources a vanished VM left behind', () => {
  const withKept: Intent = { ...intent, kept: new Set(['p-kept', 'p-busy']) };
  it('may destroy the credential of a node whose VM is gone', () => {
    expect(guardPlan([ch('aws_ssm_parameter', 'credential_p-gone', ['delete'])], withKept)).toEqual([]);
  });
  it('never the credential of a kept node, nor a VM that was not decided', () => {
    expect(guardPlan([ch('aws_ssm_parameter', 'credential_p-busy', ['delete'])], withKept)).toEqual([expect.stringMatching(/credential_p-busy: destroy of a node that was not drained/)]);
    expect(guardPlan([ch('aws_instance', 'node_p-gone', ['delete'])], withKept)[0]).toMatch(/node_p-gone: destroy of a node that was not drained/);
  });
});
