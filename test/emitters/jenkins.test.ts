import { describe, expect, it } from 'vitest';
import { HttpClient } from '../../src/emitters/http.js';
import { computerIdle, JenkinsEmitter, queueLabel } from '../../src/emitters/jenkins.js';
import { jobFitsPool } from '../../src/decide/match.js';
import type { EmitterConfig } from '../../src/policy/types.js';
import { JenkinsEmulator } from '../emulators/jenkins.js';
import { testPool } from '../helpers.js';
import { emitterContract, type Harness } from './contract.js';

type JenkinsConfig = Extract<EmitterConfig, { type: 'jenkins' }>;
export function jenkinsConfig(url: string, extra: Partial<JenkinsConfig> = {}): JenkinsConfig {
  return { name: 'jk', type: 'jenkins', url, user: '${env:JENKINS_USER}', token: '${env:JENKINS_TOKEN}', crumb: false, probeInterval: '30s', probeIntervalMs: 30_000, concurrency: 8, requestTimeout: '10s', requestTimeoutMs: 10_000, retries: 3, ...extra };
}
const fastHttp = () => new HttpClient({ timeoutMs: 400, retries: 3, concurrency: 8, backoffMs: 5 });

async function harness(): Promise<Harness> {
  const emu = await new JenkinsEmulator().start();
  const emitter = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
  return {
    emitter,
    emu,
    token: emu.token,
    pool: 'linux-pool',
    queueJob: (labels) => void emu.enqueue(labels.join(' && ')),
    runOn: (node) => void emu.startBuild(node),
    finishAll: () => {
      for (const n of emu.nodes) while (n.busyExecutors > 0) emu.finishBuild(n.name);
    },
    bringOnline: (node) => void emu.connect(node),
    addUnmarked: (name) => void emu.addNode(name, { labels: ['linux'] }),
    listPath: /^\/queue\/api\/json$/,
    pauseKeeps: true,
    close: () => emu.stop(),
  };
}

emitterContract('jenkins', harness, { paginated: false, duplicateNames: false });

describe('jenkins emitter', () => {
  it.each([
    [{ task: { labelExpression: 'linux && docker' } }, 'linux && docker'],
    [{ task: { assignedLabel: { name: 'gpu' } } }, 'gpu'],
    [{ why: 'Waiting for next available executor on ‘docker&&linux’' }, 'docker&&linux'],
    [{ why: 'There are no nodes with the label ‘windows’' }, 'windows'],
    [{ why: 'Waiting for next available executor' }, ''],
    [{ why: 'In the quiet period. Expires in 4.9 sec' }, ''],
  ])('reads the label of queue item %j', (item, want) => {
    expect(queueLabel(item)).toBe(want);
  });

  it('matches pipeline node() steps and freestyle jobs to pools by their label expressions', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      emu.enqueue('docker&&linux', true);
      emu.enqueue('windows');
      const e = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      const r = await e.probe();
      const linux = testPool({ labels: ['linux', 'docker'] });
      expect(r.jobs.map((j) => jobFitsPool('jenkins', j, linux))).toEqual([true, false]);
    } finally {
      await emu.stop();
    }
  });

  it('creates an inbound WebSocket agent with executors = jobsPerNode and reads its secret', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      const e = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      const cred = await e.register({ node: 'p-1', pool: 'p', labels: ['linux', 'maven'], jobsPerNode: 4, ephemeral: false, acceptUntagged: false });
      expect(cred).toEqual({ kind: 'jenkins', url: emu.url, secret: emu.node('p-1')?.secret });
      expect(emu.node('p-1')).toMatchObject({ labels: ['linux', 'maven'], numExecutors: 4 });
    } finally {
      await emu.stop();
    }
  });

  it('sends a crumb when configured to', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      emu.requireCrumb = true;
      const plain = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      await expect(plain.register({ node: 'p-1', pool: 'p', labels: [], jobsPerNode: 1, ephemeral: false, acceptUntagged: false })).rejects.toThrow(/HTTP 403/);
      const withCrumb = new JenkinsEmitter(jenkinsConfig(emu.url, { crumb: true }), emu.user, emu.token, fastHttp());
      await withCrumb.register({ node: 'p-1', pool: 'p', labels: [], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      expect(emu.node('p-1')).toBeDefined();
    } finally {
      await emu.stop();
    }
  });

  it('marks the node with its description and lists only marked nodes', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      const e = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      expect(emu.node('p-1')?.description).toBe('parmanu-pool=p');
      emu.addNode('p-2', { description: 'made by the build team' });
      const r = await e.probe();
      expect(r.runners).toEqual([expect.objectContaining({ name: 'p-1', pool: 'p', online: false })]);
      expect(r.runners[0]?.contacted).toBeUndefined();
    } finally {
      await emu.stop();
    }
  });

  it('says not idle for an executor given work before its build exists, and for a one-off executor', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      const e = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: ['linux'], jobsPerNode: 2, ephemeral: false, acceptUntagged: false });
      emu.connect('p-1');
      expect(await e.isIdle('p-1')).toBe(true);
      emu.assign('p-1');
      expect(await e.isIdle('p-1')).toBe(false);
      expect((await e.probe()).runners[0]?.busy).toBe(true);
      const build = emu.startBuild('p-1');
      expect(await e.isIdle('p-1')).toBe(false);
      emu.finishBuild('p-1', build);
      expect(await e.isIdle('p-1')).toBe(true);
      (emu.node('p-1') as { oneOff?: number }).oneOff = 1;
      expect(await e.isIdle('p-1')).toBe(false);
      expect(emu.jobRecords).toEqual([expect.objectContaining({ job: build, runner: 'p-1', end: expect.any(Number) })]);
    } finally {
      await emu.stop();
    }
  });

  it.each([
    ['idle', { idle: true, executors: [{ idle: true, currentExecutable: null }] }, true],
    ['computer not idle', { idle: false, executors: [{ idle: true, currentExecutable: null }] }, false],
    ['an executor assigned, no build yet', { idle: true, executors: [{ idle: false, currentExecutable: null }] }, false],
    ['a current executable', { idle: true, executors: [{ idle: true, currentExecutable: { url: 'x' } }] }, false],
    ['a one-off executor busy', { idle: true, executors: [], oneOffExecutors: [{ idle: false, currentExecutable: { url: 'x' } }] }, false],
    ['idle unknown', { executors: [] }, false],
  ])('computerIdle: %s', (_n, c, want) => {
    expect(computerIdle({ displayName: 'n', offline: false, ...c })).toBe(want);
  });

  it('records a node deleted while it runs a build (the soak invariant)', async () => {
    const emu = await new JenkinsEmulator().start();
    try {
      const e = new JenkinsEmitter(jenkinsConfig(emu.url), emu.user, emu.token, fastHttp());
      await e.register({ node: 'p-1', pool: 'p', labels: [], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      emu.connect('p-1');
      emu.assign('p-1');
      await e.deregister('p-1');
      expect(emu.runnerDeleted('p-1')).toMatchObject({ busy: true });
    } finally {
      await emu.stop();
    }
  });
});
