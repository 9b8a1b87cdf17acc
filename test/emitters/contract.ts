/**
 * The contract every emitter meets, run against each emitter and the emulator of its platform
 * (renovate's one-interface-many-platforms, with mocks that fail on unexpected requests).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Emitter } from '../../src/emitters/types.js';
import type { Emulator } from '../emulators/base.js';
import { capture } from '../secret-scan.js';

/**
 * The emitter with every result and error of its methods queued for the secret scan — except what
 * `register` returns, which is the runner credential itself, bound for the node's user-data.
 */
function scanned(e: Emitter): Emitter {
  return new Proxy(e, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const r: unknown = (v as (...a: unknown[]) => unknown).apply(target, args);
        if (!(r instanceof Promise)) return r;
        return r.then(
          (x: unknown) => {
            if (prop !== 'register') capture(`the result of ${String(prop)}()`, JSON.stringify(x) ?? '');
            return x;
          },
          (err: unknown) => {
            capture(`the error of ${String(prop)}()`, err instanceof Error ? err.message : String(err));
            throw err;
          },
        );
      };
    },
  });
}

export interface Harness {
  emitter: Emitter;
  emu: Emulator;
  /** The secret the emitter authenticates with: must never appear in results or errors. */
  token: string;
  pool: string;
  /** Adds a queued job that the pool takes. */
  queueJob(labels: string[]): void;
  /** Puts a running job on the node's runner. */
  runOn(node: string): void;
  /** Ends every running job. */
  finishAll(): void;
  /** Marks a node's runner online (as if the VM booted). */
  bringOnline(node: string): void;
  /** A runner made by hand, outside Parmanu (no ownership marker), online and idle. */
  addUnmarked(name: string): void;
  /** The path of the main listing request, for fault injection. */
  listPath: RegExp;
  /** A path that is paginated over several pages when `seedMany` has run, and its middle page. */
  pagedPath?: RegExp;
  middlePage?: RegExp;
  seedMany?(): void;
  /** Whether pause keeps the registration (GitLab, Jenkins) or removes it when idle (GitHub). */
  pauseKeeps: boolean;
  close(): Promise<void>;
}

/** What a platform's API has, so that only the tests that apply are defined. */
export interface Capabilities {
  /** Listings come in pages (GitLab, GitHub; not Jenkins). */
  paginated: boolean;
  /** Two runners may share a name (GitLab, GitHub; Jenkins node names are unique). */
  duplicateNames: boolean;
}

export function emitterContract(name: string, make: () => Promise<Harness>, caps: Capabilities): void {
  describe(`${name} emitter contract`, () => {
    let h: Harness;
    beforeEach(async () => {
      h = await make();
      h.emitter = scanned(h.emitter);
    });
    afterEach(async () => {
      expect(h.emu.unexpected, 'requests the emulator did not expect').toEqual([]);
      await h.close();
    });

    const noToken = (x: unknown) => expect(JSON.stringify(x)).not.toContain(h.token);

    it('probes queued jobs with their labels', async () => {
      h.queueJob(['linux', 'docker']);
      h.queueJob(['linux']);
      const r = await h.emitter.probe();
      expect(r).toMatchObject({ emitter: h.emitter.name, ok: true, partial: false });
      const queued = r.jobs.filter((j) => j.status === 'queued');
      expect(queued).toHaveLength(2);
      expect(queued.map((j) => [...j.labels].sort().join(','))).toEqual(expect.arrayContaining(['docker,linux', 'linux']));
      expect(r.meta.apiCalls).toBeGreaterThan(0);
      noToken(r);
    });

    it('registers a node, sees its runner, tracks busy and idle, pauses and deregisters it idempotently', async () => {
      const node = `${h.pool}-abc123`;
      const cred = await h.emitter.register({ node, pool: h.pool, labels: ['linux'], jobsPerNode: 2, ephemeral: false, acceptUntagged: false });
      expect(cred.kind).toBe(h.emitter.kind);
      h.bringOnline(node);
      let r = await h.emitter.probe();
      expect(r.runners.map((x) => x.name)).toEqual([node]);
      expect(r.runners[0]).toMatchObject({ online: true, busy: false, paused: false });

      h.runOn(node);
      r = await h.emitter.probe();
      expect(r.runners[0]?.busy).toBe(true);
      expect(r.jobs.find((j) => j.status === 'running')?.runner).toBe(node);
      expect(await h.emitter.isIdle(node)).toBe(false);

      h.finishAll();
      expect(await h.emitter.isIdle(node)).toBe(true);
      await h.emitter.pause(node);
      r = await h.emitter.probe();
      if (h.pauseKeeps) expect(r.runners[0]?.paused).toBe(true);
      else expect(r.runners).toEqual([]);
      await h.emitter.deregister(node);
      await h.emitter.deregister(node);
      r = await h.emitter.probe();
      expect(r.runners).toEqual([]);
      noToken(cred.kind === 'none' ? {} : r);
    });

    it('marks every runner it registers; probe lists only marked runners, of any pool, with the pool the marker names', async () => {
      const node = `${h.pool}-m1`;
      await h.emitter.register({ node, pool: h.pool, labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      // A pool no longer in the policy: its runners must still be seen.
      await h.emitter.register({ node: 'retired-r1', pool: 'retired', labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
      h.addUnmarked(`${h.pool}-01`);
      h.addUnmarked('someone-else');
      const r = await h.emitter.probe();
      expect(r.ok).toBe(true);
      expect(r.runners.map((x) => [x.name, x.pool]).sort()).toEqual([[node, h.pool], ['retired-r1', 'retired']]);
    });

    it('never pauses, resumes or deletes an unmarked runner named like a pool node', async () => {
      const name = `${h.pool}-01`;
      h.addUnmarked(name);
      await h.emitter.pause(name);
      await h.emitter.resume?.(name);
      await h.emitter.deregister(name);
      expect(await h.emitter.isIdle(name)).toBe(true);
      expect(h.emu.touched(name), 'requests that changed the unmarked runner').toEqual([]);
      expect(h.emu.runnerDeleted(name)).toBeUndefined();
    });

    if (caps.duplicateNames)
      it('acts on the marked runner of a name and leaves an unmarked namesake alone', async () => {
        const node = `${h.pool}-d1`;
        h.addUnmarked(node);
        await h.emitter.register({ node, pool: h.pool, labels: ['linux'], jobsPerNode: 1, ephemeral: false, acceptUntagged: false });
        h.bringOnline(node);
        await h.emitter.deregister(node);
        expect(h.emu.touched(node)).toHaveLength(1);
        expect(h.emu.removals.map((x) => x.runner)).toEqual([node]);
        // The namesake is still there and still not Parmanu's.
        expect((await h.emitter.probe()).runners).toEqual([]);
        await h.emitter.deregister(node);
        expect(h.emu.touched(node)).toHaveLength(1);
      });

    it('fails the probe on 401 with a reason and no token', async () => {
      h.emu.faults.push({ path: /.*/, status: 401, body: { message: '401 Unauthorized' } });
      const r = await h.emitter.probe();
      expect(r.ok).toBe(false);
      expect(r.reason).toMatch(/401/);
      noToken(r);
    });

    it('marks the probe failed or partial on 404 of a listing', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, status: 404, body: { message: '404 Not found' } });
      const r = await h.emitter.probe();
      expect(r.ok === false || r.partial === true).toBe(true);
      expect(r.reason).toMatch(/404/);
    });

    it('honours Retry-After on 429 and then succeeds', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, status: 429, times: 1, headers: { 'retry-after': '1' }, body: { message: 'Retry later' } });
      const t0 = Date.now();
      const r = await h.emitter.probe();
      expect(r.ok).toBe(true);
      expect(r.partial).toBe(false);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
      expect(r.jobs.filter((j) => j.status === 'queued')).toHaveLength(1);
    });

    it('retries a 500 and succeeds', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, status: 500, times: 2 });
      const r = await h.emitter.probe();
      expect(r).toMatchObject({ ok: true, partial: false });
    });

    it('fails the probe when the platform keeps answering 500', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, status: 500 });
      const r = await h.emitter.probe();
      expect(r.ok === false || r.partial).toBe(true);
      expect(r.reason).toMatch(/500/);
    });

    it('retries a request that timed out', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, delayMs: 600, times: 1, status: 200, body: [] });
      const r = await h.emitter.probe();
      expect(r).toMatchObject({ ok: true, partial: false });
      expect(r.jobs.filter((j) => j.status === 'queued')).toHaveLength(1);
    });

    it('turns malformed JSON into a failed or partial probe, not an exception', async () => {
      h.queueJob(['linux']);
      h.emu.faults.push({ path: h.listPath, malformed: true });
      const r = await h.emitter.probe();
      expect(r.ok === false || r.partial).toBe(true);
      expect(r.reason).toMatch(/malformed JSON|unexpected response/);
    });

    // Defined only where listings are paginated (Jenkins's are not).
    if (caps.paginated)
      it('marks a probe partial when a page in the middle comes back empty', async () => {
      h.seedMany?.();
      const clean = await h.emitter.probe();
      expect(clean).toMatchObject({ ok: true, partial: false });
      h.emu.faults.push({ path: h.pagedPath as RegExp, ...(h.middlePage ? { query: h.middlePage } : {}), emptyPage: true });
      const r = await h.emitter.probe();
      expect(r.ok === false || r.partial).toBe(true);
      expect(r.reason).toBeTruthy();
    });
  });
}
