/** The shipped CI pipelines: parsed, and their rules checked. */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

interface Job { stage?: string; script?: string[]; rules?: Array<{ if?: string; changes?: string[]; when?: string }>; resource_group?: string; artifacts?: { reports?: { terraform?: string } } }

describe('.gitlab-ci.yml', () => {
  const ci = parse(readFileSync('.gitlab-ci.yml', 'utf8'), { merge: true }) as Record<string, Job> & { stages: string[]; variables: Record<string, string> };
  const rules = (job: string) => ci[job]?.rules ?? [];

  it('validates and plans merge requests that touch policies/, with the terraform report and a sticky comment', () => {
    for (const job of ['validate', 'plan']) expect(rules(job)).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "merge_request_event"', changes: ['policies/**/*'] });
    expect(ci.plan?.script?.join('\n')).toMatch(/npm run plan -- .*--report plan-report\.json --comment/);
    expect(ci.plan?.artifacts?.reports?.terraform).toBe('plan-report.json');
    expect(rules('plan').some((r) => r.if?.includes('schedule'))).toBe(false);
  });

  it('tests every merge request', () => {
    expect(rules('test')).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' });
    expect(ci.test?.script?.join('\n')).toMatch(/npm test/);
  });

  it('reconciles on schedule and by hand, never two at once', () => {
    expect(rules('reconcile')).toContainEqual({ if: '$CI_PIPELINE_SOURCE == "schedule"' });
    expect(rules('reconcile')).toContainEqual({ if: '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "web"', when: 'manual' });
    expect(ci.reconcile?.resource_group).toBe('parmanu-reconcile');
    expect(rules('reconcile').some((r) => r.if?.includes('merge_request_event'))).toBe(false);
  });

  it('caches npm and terraform plugins', () => {
    expect(ci.variables.TF_PLUGIN_CACHE_DIR).toContain('.terraform.d/plugin-cache');
    for (const job of ['validate', 'test', 'plan', 'reconcile']) expect(ci.stages).toContain(ci[job]?.stage);
  });
});

describe('examples/github-actions.yml', () => {
  const wf = parse(readFileSync('examples/github-actions.yml', 'utf8')) as { on: Record<string, unknown>; permissions: Record<string, string>; jobs: Record<string, { if: string; concurrency?: { group: string }; steps: Array<{ run?: string }> }> };

  it('plans pull requests on policies/ and reconciles on a schedule without overlap', () => {
    expect(wf.on.pull_request).toEqual({ paths: ['policies/**'] });
    expect(wf.permissions['pull-requests']).toBe('write');
    expect(wf.jobs.plan?.if).toContain("'pull_request'");
    expect(wf.jobs.plan?.steps.some((s) => s.run?.includes('--comment'))).toBe(true);
    expect(wf.jobs.reconcile?.if).toContain("'schedule'");
    expect(wf.jobs.reconcile?.concurrency?.group).toBe('parmanu-reconcile');
  });
});
