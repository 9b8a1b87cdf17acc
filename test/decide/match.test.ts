import { describe, expect, it } from 'vitest';
import { assignJobs, evalLabelExpression, jobFitsPool, parseLabelExpression } from '../../src/decide/match.js';
import type { EmitterKind, Job } from '../../src/decide/types.js';
import { testPool } from '../helpers.js';

const job = (labels: string[], extra: Partial<Job> = {}): Job => ({ id: labels.join(','), labels, status: 'queued', queuedAt: 0, ...extra });

describe('jobFitsPool', () => {
  it.each<[EmitterKind, string[], Record<string, unknown>, boolean]>([
    // GitLab: tags ⊆ runner tags; untagged only where accepted
    ['gitlab', ['linux'], { labels: ['linux', 'docker'] }, true],
    ['gitlab', ['linux', 'docker'], { labels: ['linux', 'docker'] }, true],
    ['gitlab', ['linux', 'gpu'], { labels: ['linux', 'docker'] }, false],
    ['gitlab', [], { labels: ['linux'] }, false],
    ['gitlab', [], { labels: ['linux'], acceptUntagged: true }, true],
    ['gitlab', ['Linux'], { labels: ['linux'] }, false],
    // GitHub: runs-on ⊆ labels + defaults (self-hosted, OS, arch), case-insensitive
    ['github', ['self-hosted'], { labels: ['big'] }, true],
    ['github', ['self-hosted', 'linux', 'x64'], { labels: ['big'] }, true],
    ['github', ['self-hosted', 'Linux', 'X64', 'big'], { labels: ['big'] }, true],
    ['github', ['self-hosted', 'windows'], { labels: ['big'] }, false],
    ['github', ['self-hosted', 'windows'], { labels: ['big'], machine: { os: 'windows' } }, true],
    ['github', ['self-hosted', 'ARM64'], { labels: ['arm64'] }, true],
    ['github', ['self-hosted', 'x64'], { labels: ['arm64'] }, false],
    ['github', ['ubuntu-latest'], { labels: ['big'] }, false],
    ['github', [], { labels: ['big'] }, false],
    // replay: labels ⊆ pool labels
    ['replay', ['linux', 'x64'], { labels: ['linux', 'x64', 'cirrus'] }, true],
    ['replay', ['linux', 'arm64'], { labels: ['linux', 'x64'] }, false],
    ['replay', [], { labels: ['linux'] }, true],
  ])('%s job %j on pool %j → %s', (kind, labels, pool, want) => {
    expect(jobFitsPool(kind, job(labels), testPool(pool))).toBe(want);
  });

  it.each<[string, string[], boolean]>([
    ['linux', ['linux', 'docker'], true],
    ['linux && docker', ['linux', 'docker'], true],
    ['linux && gpu', ['linux', 'docker'], false],
    ['gpu || docker', ['linux', 'docker'], true],
    ['!windows', ['linux'], true],
    ['!linux', ['linux'], false],
    ['linux && (gpu || docker) && !windows', ['linux', 'docker'], true],
    ['(linux || mac) && !(docker)', ['linux', 'docker'], false],
    ['jdk-11 && linux', ['jdk-11', 'linux'], true],
    ['"has space" || linux', ['linux'], true],
    ['gpu -> cuda', ['linux'], true],
    ['gpu -> cuda', ['gpu'], false],
    ['gpu <-> cuda', ['gpu', 'cuda'], true],
    ['', ['linux'], false],
    ['linux &&', ['linux'], false],
    ['(linux', ['linux'], false],
  ])('jenkins expression %j on %j → %s', (expr, labels, want) => {
    expect(jobFitsPool('jenkins', job([], { labelExpression: expr }), testPool({ labels }))).toBe(want);
  });

  it('reports label expression syntax errors with a position', () => {
    expect(() => parseLabelExpression('linux &&')).toThrow(/expression ends early at 9/);
    expect(() => parseLabelExpression('(linux')).toThrow(/missing "\)"/);
    expect(() => parseLabelExpression('a & b')).toThrow(/unexpected "&" at 3/);
    expect(evalLabelExpression(parseLabelExpression('a || b && c'), new Set(['a']))).toBe(true);
    expect(evalLabelExpression(parseLabelExpression('a || b && c'), new Set(['b']))).toBe(false);
  });
});

describe('assignJobs', () => {
  const pools = [testPool({ labels: ['linux', 'docker', 'big'] }, 'big'), testPool({ labels: ['linux', 'docker'] }, 'small'), testPool({ labels: ['linux', 'docker'] }, 'twin')];

  it('gives a job to exactly one pool: the most specific, then policy order', () => {
    const r = assignJobs('gitlab', [job(['linux']), job(['big']), job(['gpu'])], pools);
    expect(r.byPool.get('small')?.map((j) => j.id)).toEqual(['linux']);
    expect(r.byPool.get('big')?.map((j) => j.id)).toEqual(['big']);
    expect(r.byPool.get('twin')).toEqual([]);
    expect(r.unmatched.map((j) => j.id)).toEqual(['gpu']);
  });

  it('keeps a running job with the pool whose node runs it', () => {
    const running = job(['linux'], { status: 'running', runner: 'big-abc123' });
    const r = assignJobs('gitlab', [running], pools, (name) => (name.startsWith('big-') ? 'big' : undefined));
    expect(r.byPool.get('big')).toEqual([running]);
  });
});
