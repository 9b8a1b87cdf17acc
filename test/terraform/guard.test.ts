import { describe, expect, it } from 'vitest';
import { guardPlan, type Intent } from '../../src/terraform/guard.js';
import type { ResourceChange } from '../../src/terraform/plan.js';

const ch = (type: string, name: string, actions: ResourceChange['change']['actions']): ResourceChange => ({ address: `${type}.${name}`, mode: 'managed', type, name, change: { actions } });
const intent: Intent = { pool: 'p', nodeType: 'aws_instance', mayCreate: new Set(['p-new', 'p-kept']), mayDestroy: new Set(['p-old']) };

describe('guardPlan', () => {
  it.each<[string, ResourceChange[], RegExp[]]>([
    ['intended creates and destroys pass', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-x', ['no-op'])], []],
    ['a kept node that drifted away may come back', [ch('aws_instance', 'node_p-kept', ['create'])], []],
    ['a destroy that was not drained', [ch('aws_instance', 'node_p-busy', ['delete'])], [/node_p-busy: destroy of a node that was not drained/]],
    ['a create that was not decided', [ch('aws_instance', 'node_p-extra', ['create'])], [/node_p-extra: create was not decided/]],
    ['a replacement', [ch('aws_instance', 'node_p-new', ['delete', 'create'])], [/replacement/]],
    ['an in-place update', [ch('aws_instance', 'node_p-new', ['update'])], [/in-place update/]],
    ['a resource of another pool', [ch('aws_instance', 'node_q-1', ['delete'])], [/not a node of pool p/]],
    ['a resource that is not a node', [ch('aws_security_group', 'sg', ['delete'])], [/not a node of pool p/]],
    ['more changes than decided', [ch('aws_instance', 'node_p-new', ['create']), ch('aws_instance', 'node_p-kept', ['create']), ch('aws_instance', 'node_p-old', ['delete']), ch('aws_instance', 'node_p-old2', ['delete'])], [/node_p-old2/, /4 changes, more than the 3 decided/]],
  ])('%s', (_n, changes, want) => {
    const v = guardPlan(changes, intent);
    expect(v).toHaveLength(want.length);
    want.forEach((re, i) => expect(v[i]).toMatch(re));
  });
});
