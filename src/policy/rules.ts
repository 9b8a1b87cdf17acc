/**
 * Step 3 of loading: rules that span fields, entities and files. Pure over the normalized policy;
 * positions come from where each entity was defined.
 */
import { Cron } from 'croner';
import type { Origin } from './load.js';
import { locate } from './source.js';
import { suggestion } from './suggest.js';
import { PLATFORM_LABELS, showChar } from './text.js';
import type { Policy, PoolConfig, Problem, Scaling } from './types.js';

/** A pool that failed the schema: whatever parts parsed, so that their rules still report. */
export interface PartialPool {
  name: string;
  emitter: string | undefined;
  platform: string | undefined;
  scaling: Scaling | undefined;
}

export const POOL_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;
export const ENTITY_NAME = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;

const tzCache = new Map<string, boolean>();
/** Whether `tz` is an IANA timezone this runtime knows. Memoized: constructing Intl formats is slow. */
export function isValidTimezone(tz: string): boolean {
  let ok = tzCache.get(tz);
  if (ok === undefined) {
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: tz });
      ok = true;
    } catch {
      ok = false;
    }
    tzCache.set(tz, ok);
  }
  return ok;
}

const cronCache = new Map<string, string | undefined>();

/** Returns the reason a cron expression is invalid, or undefined. */
export function cronError(expr: string, timezone = 'UTC'): string | undefined {
  const key = `${expr}\u0000${timezone}`;
  if (cronCache.has(key)) return cronCache.get(key);
  const result = cronErrorUncached(expr, timezone);
  cronCache.set(key, result);
  return result;
}

function cronErrorUncached(expr: string, timezone: string): string | undefined {
  const fields = expr.trim().split(/\s+/);
  if (fields.length < 5 || fields.length > 6) return `has ${fields.length} field${fields.length === 1 ? '' : 's'}; a cron expression has 5 (minute hour day month weekday) or 6 (with seconds)`;
  try {
    const c = new Cron(expr, { timezone: isValidTimezone(timezone) ? timezone : 'UTC', paused: true });
    c.stop();
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern: /, '');
  }
}

export function checkRules(policy: Policy, origins: Map<string, Origin>, partial: readonly PartialPool[] = []): Problem[] {
  const problems: Problem[] = [];
  const at = (id: string, path: Array<string | number>, message: string, severity: 'error' | 'warning' = 'error', key = path.length === 0) => {
    const o = origins.get(id);
    if (!o) return;
    const full = [o.section, o.name, ...path];
    const pos = locate(o.src, full, key);
    problems.push({ file: o.src.file, line: pos.line, col: pos.col, path: full.join('.'), message, severity });
  };
  const namesOf = (section: string) => [...origins.values()].filter((o) => o.section === section).map((o) => o.name);

  for (const o of origins.values()) {
    const re = o.section === 'pools' ? POOL_NAME : ENTITY_NAME;
    if (!re.test(o.name)) {
      at(
        `${o.section}/${o.name}`,
        [],
        o.section === 'pools'
          ? 'pool name must be lowercase letters, digits and "-", start and end with a letter or digit, at most 40 characters (it is part of cloud resource names)'
          : `${o.section.slice(0, -1)} name must be lowercase letters, digits, "-" and "_", at most 63 characters`,
        'error',
        true,
      );
    }
  }

  for (const e of Object.values(policy.emitters)) {
    const id = `emitters/${e.name}`;
    if (e.type === 'gitlab' && !(e.projects?.length || e.groups?.length)) at(id, [], 'a gitlab emitter needs `projects` or `groups` (or both): where its jobs are read');
    if (e.type === 'github') {
      if (!e.token && !e.app) at(id, [], 'a github emitter needs `token` or `app` credentials');
      if (e.token && e.app) at(id, ['app'], 'give `token` or `app`, not both');
    }
  }

  const emitterNames = namesOf('emitters');
  const platformNames = namesOf('platforms');
  const usedEmitters = new Set<string>();
  const usedPlatforms = new Set<string>();
  const seenJobs = new Map<string, string>();
  const checkRefs = (id: string, emitter: string | undefined, platform: string | undefined) => {
    if (emitter !== undefined) {
      usedEmitters.add(emitter);
      if (!emitterNames.includes(emitter)) at(id, ['emitter'], `no emitter named "${emitter}"${suggestion(emitter, emitterNames) || (emitterNames.length ? ` (defined: ${emitterNames.join(', ')})` : ' (no emitters are defined)')}`);
    }
    if (platform !== undefined) {
      usedPlatforms.add(platform);
      if (!platformNames.includes(platform)) at(id, ['platform'], `no platform named "${platform}"${suggestion(platform, platformNames) || (platformNames.length ? ` (defined: ${platformNames.join(', ')})` : ' (no platforms are defined)')}`);
    }
  };
  const checkScaling = (id: string, s: Scaling) => {
    if (s.min > s.max) at(id, ['scaling', 'min'], `min (${s.min}) is greater than max (${s.max})`);
    if (s.spare > s.max) at(id, ['scaling', 'spare'], `spare (${s.spare}) is greater than max (${s.max})`);
    if (s.minLifetimeMs > 24 * 3_600_000) at(id, ['scaling', 'minLifetime'], 'is more than a day; nodes could never scale down in practice', 'warning');
    if (s.bootTimeoutMs < 30_000) at(id, ['scaling', 'bootTimeout'], 'is under 30s: most VMs cannot boot and register that fast, so nodes would be replaced in a loop');
    s.schedules.forEach((sch, i) => {
      if (!isValidTimezone(sch.timezone)) at(id, ['scaling', 'schedules', i, 'timezone'], `"${sch.timezone}" is not an IANA timezone (e.g. Europe/Berlin, America/New_York, UTC)`);
      const cerr = cronError(sch.cron, sch.timezone);
      if (cerr) at(id, ['scaling', 'schedules', i, 'cron'], `invalid cron expression "${sch.cron}": ${cerr}`);
      if (sch.min > s.max) at(id, ['scaling', 'schedules', i, 'min'], `schedule min (${sch.min}) is greater than the pool's max (${s.max})`);
      if (sch.durationMs === 0) at(id, ['scaling', 'schedules', i, 'duration'], 'must be longer than 0s');
    });
  };
  for (const p of partial) {
    checkRefs(`pools/${p.name}`, p.emitter, p.platform);
    if (p.scaling) checkScaling(`pools/${p.name}`, p.scaling);
  }
  for (const pool of policy.pools) {
    const id = `pools/${pool.name}`;
    checkRefs(id, pool.emitter, pool.platform);
    checkScaling(id, pool.scaling);
    checkPool(id, pool);
  }
  function checkPool(id: string, pool: PoolConfig) {

    const platform = policy.platforms[pool.platform];
    if (platform && (platform.type === 'aws' || platform.type === 'gcp')) {
      const what = platform.type === 'aws' ? ['instance type (e.g. c6i.xlarge)', 'AMI id'] : ['machine type (e.g. e2-standard-4)', 'boot image'];
      if (!pool.machine.type) at(id, ['machine'], `machine.type is required on ${platform.type} platform "${platform.name}": the ${what[0]}`);
      if (!pool.machine.image) at(id, ['machine'], `machine.image is required on ${platform.type} platform "${platform.name}": the ${what[1]}`);
    }
    if (platform?.type === 'gcp' && !/^[a-z]/.test(pool.name)) at(id, [], 'on gcp a pool name must start with a letter: instance names do', 'error', true);
    if (platform?.type === 'aws' && (pool.machine.zones || pool.machine.serviceAccount)) at(id, ['machine'], 'zones and serviceAccount are gcp settings; they are ignored on aws', 'warning');
    if (platform?.type === 'gcp' && (pool.machine.subnets || pool.machine.securityGroups || pool.machine.instanceProfile)) at(id, ['machine'], 'subnets, securityGroups and instanceProfile are aws settings; they are ignored on gcp', 'warning');


    checkLabels(id, pool);

    const jobsKey = `${pool.emitter}\u0000${[...pool.labels].sort().join(',')}\u0000${pool.acceptUntagged}`;
    const twin = seenJobs.get(jobsKey);
    if (twin) at(id, ['labels'], `takes exactly the jobs of pool "${twin}" (same emitter and labels); "${twin}", listed first, gets them all`, 'warning');
    else seenJobs.set(jobsKey, pool.name);
  }

  /** The labels stay within what the pool's platform accepts (the schema already refused what none does). */
  function checkLabels(id: string, pool: PoolConfig) {
    const kind = policy.emitters[pool.emitter]?.type;
    if (!kind) return;
    const rules = PLATFORM_LABELS[kind];
    if (rules.maxCount !== undefined && pool.labels.length > rules.maxCount) at(id, ['labels'], `${pool.labels.length} labels; ${kind} takes at most ${rules.maxCount} per runner`);
    pool.labels.forEach((l, i) => {
      if (l.length > rules.maxLength) at(id, ['labels', i], `is ${l.length} characters long; a ${kind} label is at most ${rules.maxLength}`);
      const bad = rules.refused?.exec(l);
      if (bad) at(id, ['labels', i], `a ${kind} label has no ${showChar(bad[0])} (${kind === 'jenkins' ? 'Jenkins refuses ?*/\\%!@#$^&|<>[]:; in names, and ( ) ! & | " \' are label-expression syntax' : 'refused by the platform'})`);
    });
  }

  for (const name of Object.keys(policy.emitters)) if (!usedEmitters.has(name)) at(`emitters/${name}`, [], 'no pool uses this emitter', 'warning', true);
  for (const name of Object.keys(policy.platforms)) if (!usedPlatforms.has(name)) at(`platforms/${name}`, [], 'no pool uses this platform', 'warning', true);
  return problems;
}
