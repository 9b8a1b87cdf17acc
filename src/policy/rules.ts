/**
 * Step 3 of loading: rules that span fields, entities and files. Pure over the normalized policy;
 * positions come from where each entity was defined.
 */
import { Cron } from 'croner';
import { inCi } from './env.js';
import type { Origin } from './load.js';
import { locate } from './source.js';
import { suggestion } from './suggest.js';
import { hasPartialReference, inputStrings, isLocalModuleSource, MODULE_INPUT_NAME, MODULE_VARIABLES, moduleDirExists, PROVIDER_NAME, TERRAFORM_RESERVED } from './module.js';
import { AWS_EXTRA_BYTES } from './schema.js';
import { AWS_TAG_KEY, AWS_TAG_VALUE, ENV_NAME, GCP_LABEL_KEY, GCP_LABEL_VALUE, JVM_OPTION, JVM_REFUSED, PARMANU_TAG, PLATFORM_LABELS, RESERVED_ENV, showChar, tomlFragmentProblem } from './text.js';
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

/** `runner.config` as text, for measuring what it adds to user-data. */
function configText(config: PoolConfig['runner']['config']): string | undefined {
  if (config === undefined) return undefined;
  if (typeof config === 'string') return config;
  return Array.isArray(config) ? config.join(' ') : Object.entries(config).map(([k, v]) => `${k}=${v}`).join('\n');
}

/** What the rules read of the environment: `CI` (set by GitLab CI, GitHub Actions, Jenkins and most other CI systems; see `inCi`). */
export type RulesEnv = Readonly<Record<string, string | undefined>>;

/** An AWS AMI id. */
export const AMI_ID = /^ami-[0-9a-f]{8,17}$/i;
/**
 * A GCP image as Compute Engine names it: `projects/P/global/images/[family/]NAME`, its URL,
 * `P/NAME`, `global/images/…` or `family/NAME`. AMI ids never hold a "/"; an SSM parameter
 * (`resolve:ssm:/…`) is left alone.
 */
export const GCP_IMAGE = /^(?!resolve:ssm:)[^\s/]+(?:\/[^\s/]+)+$|^https:\/\/(?:www|compute)\.googleapis\.com\//;

/** Whether a GCP zone lies in `region` (a zone is its region, "-" and a letter: europe-west1-b). */
export function zoneInRegion(zone: string, region: string): boolean {
  return zone.startsWith(`${region}-`) && /^[a-z]$/.test(zone.slice(region.length + 1));
}

export function checkRules(policy: Policy, origins: Map<string, Origin>, partial: readonly PartialPool[] = [], env: RulesEnv = {}): Problem[] {
  const problems: Problem[] = [];
  /** Whether the policy file itself sets this field of the entity (defaults are applied before the rules run). */
  const written = (id: string, path: Array<string | number>): boolean => {
    const o = origins.get(id);
    let cur: unknown = o?.src.data;
    for (const seg of o ? [o.section, o.name, ...path] : []) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[String(seg)] : undefined;
    return cur !== undefined;
  };
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
      if (!e.token && !e.app && !e.credentials) at(id, [], 'a github emitter needs `token` or `app` credentials (or a `credentials` list)');
      if (e.token && e.app) at(id, ['app'], 'give `token` or `app`, not both');
      if (e.credentials && (e.token || e.app)) at(id, ['credentials'], `give \`credentials\` or \`${e.token ? 'token' : 'app'}\`, not both: put every token and app in the list`, 'error', true);
      const seen = new Map<string, number>();
      (e.credentials ?? []).forEach((c, i) => {
        if (!c.token && !c.app) at(id, ['credentials', i], 'a credential is `{ token: ${env:NAME} }` or `{ app: { appId, installationId, privateKey } }`');
        if (c.token && c.app) at(id, ['credentials', i, 'app'], 'one credential per item: give `token` or `app`, not both (make them two items)', 'error', true);
        const key = c.app ? `app ${String(c.app.appId)}/${String(c.app.installationId)}` : c.token ? `token ${c.token}` : undefined;
        if (key === undefined) return;
        const first = seen.get(key);
        if (first !== undefined) at(id, ['credentials', i], `the same ${c.app ? 'app installation' : 'token reference'} as credentials[${first}]: each credential is listed once`);
        else seen.set(key, i);
      });
    }
  }

  for (const p of Object.values(policy.platforms)) {
    const id = `platforms/${p.name}`;
    if (p.type === 'local') continue;
    if (p.type === 'module') checkModulePlatform(id, p);
    // Terraform's state is the only record of the VMs: it must outlive the machine that runs Parmanu.
    const remote = p.type === 'aws' ? `backend: { type: s3, bucket: BUCKET, key: parmanu, region: ${p.region} }` : p.type === 'gcp' ? 'backend: { type: gcs, bucket: BUCKET, prefix: parmanu }' : 'backend: { type: s3, bucket: BUCKET, key: parmanu, region: REGION } (or type: gcs)';
    if (!p.backend) {
      at(id, [], `${p.type === 'aws' ? 'an aws' : p.type === 'gcp' ? 'a gcp' : 'a module'} platform names its backend: Terraform's state is the only record of the VMs and must outlive the machine that runs Parmanu (a CI job's files go with the job); add ${remote}, or write backend: { type: local } to keep it on this machine`, 'error', true);
    } else if (p.backend.type === 'local' && inCi(env)) {
      at(id, ['backend'], `keeps Terraform's state on this machine, and CI is set: a CI job's files go with the job, and the next run would lose track of every VM; use ${remote}`, 'warning');
    }
    if (p.type === 'gcp' && !zoneInRegion(p.zone, p.region)) at(id, ['zone'], `zone "${p.zone}" is not in region "${p.region}": a zone is its region, "-" and a letter (e.g. ${p.region}-b); fix the zone or the region`);
  }

  /** A module platform: its source and version, and inputs that are plain values with none of Parmanu's own names. */
  function checkModulePlatform(id: string, p: Extract<Policy['platforms'][string], { type: 'module' }>) {
    if (isLocalModuleSource(p.source)) {
      if (p.version !== undefined) at(id, ['version'], `a local module (source ${p.source}) has no version: Terraform reads the directory as it is; remove version, or use a registry or git source to pin one`, 'error', true);
      if (!moduleDirExists(p.source)) at(id, ['source'], `${p.source} is not a directory (a local module source is relative to the policy file)`);
    }
    for (const [name, value] of Object.entries(p.inputs)) {
      const here = ['inputs', name];
      if ((MODULE_VARIABLES as readonly string[]).includes(name)) at(id, here, `"${name}" is given to every node's module by Parmanu itself (${MODULE_VARIABLES.join(', ')}): it cannot be an input`, 'error', true);
      else if ((TERRAFORM_RESERVED as readonly string[]).includes(name)) at(id, here, `"${name}" is a Terraform meta-argument of a module call, not a variable name`, 'error', true);
      else if (!MODULE_INPUT_NAME.test(name)) at(id, here, 'a module variable name is letters, digits, "_" and "-", not starting with a digit or "-"', 'error', true);
      for (const str of inputStrings(value)) {
        if (hasPartialReference(str.value)) at(id, [...here, ...str.path], 'a ${env:NAME} or ${file:path} reference is a whole value, never part of a string');
      }
    }
    for (const [name, provider] of Object.entries(p.providers)) {
      const here = ['providers', name];
      if (!PROVIDER_NAME.test(name)) at(id, here, 'a provider\'s local name is lowercase letters, digits, "_" and "-", starting with a letter', 'error', true);
      for (const str of inputStrings(provider.config)) {
        if (hasPartialReference(str.value)) at(id, [...here, 'config', ...str.path], 'a ${env:NAME} or ${file:path} reference is a whole value, never part of a string');
      }
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
    if (typeof s.standby === 'number' && s.standby > s.max) at(id, ['scaling', 'standby'], `standby (${s.standby}) is greater than max (${s.max}): no more than max nodes could ever start from it`, 'warning');
    if (s.bootTimeoutMs < 30_000) at(id, ['scaling', 'bootTimeout'], 'is under 30s: most VMs cannot boot and register that fast, so nodes would be replaced in a loop');
    // The GitLab emitter reads schedules due within the hour (emitters/gitlab.ts SCHEDULE_HORIZON_MS).
    if (s.prewarm?.leadMs !== undefined && s.prewarm.leadMs > 3_600_000) at(id, ['scaling', 'prewarm', 'lead'], 'is over 1h: pipeline schedules are read an hour ahead at most, so the pre-warm starts 1h before a schedule is due', 'warning');
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
    checkMachine(id, pool, []);
    const seenFailover = new Set([pool.platform]);
    (pool.failover ?? []).forEach((f, i) => {
      const here = ['failover', i];
      usedPlatforms.add(f.platform);
      if (!platformNames.includes(f.platform)) return at(id, here, `no platform named "${f.platform}"${suggestion(f.platform, platformNames) || ` (defined: ${platformNames.join(', ')})`}`);
      if (f.platform === pool.platform) return at(id, here, `"${f.platform}" is the pool's own platform: failover lists the platforms it moves to`);
      if (seenFailover.has(f.platform)) return at(id, here, `"${f.platform}" is listed twice`);
      seenFailover.add(f.platform);
      // The pool as it runs there: its machine settings merged with the ones written for it.
      checkMachine(id, { ...pool, platform: f.platform, machine: { ...pool.machine, ...f.machine } }, here);
    });
    if (pool.failover?.length && policy.platforms[pool.platform]?.evacuate && pool.failover.every((f) => policy.platforms[f.platform]?.evacuate)) at(id, ['failover'], 'every platform of the pool is marked evacuate: true: the pool stays where it runs', 'warning');
    else if (!pool.failover?.length && policy.platforms[pool.platform]?.evacuate) at(id, ['platform'], `platform "${pool.platform}" is marked evacuate: true, but the pool has no failover list: it stays (add failover: [<platform>] to move it)`, 'warning');
    const platform = policy.platforms[pool.platform];
    checkPoolRest(id, pool, platform);
  }

  /** The machine settings of a pool on one of its platforms (its own: `prefix` [], a failover one: `failover.<i>`). */
  function checkMachine(id: string, pool: PoolConfig, prefix: ReadonlyArray<string | number>) {
    const atHere = (entity: string, path: ReadonlyArray<string | number>, message: string, severity: 'error' | 'warning' = 'error', key?: boolean) => at(entity, [...prefix, ...path], message, severity, key ?? [...prefix, ...path].length === 0);
    const platform = policy.platforms[pool.platform];
    if (platform && (platform.type === 'aws' || platform.type === 'gcp')) {
      const what = platform.type === 'aws' ? ['instance type (e.g. c6i.xlarge)', 'AMI id'] : ['machine type (e.g. e2-standard-4)', 'boot image'];
      if (!pool.machine.type) atHere(id, ['machine'], `machine.type is required on ${platform.type} platform "${platform.name}": the ${what[0]}`);
      if (!pool.machine.image) atHere(id, ['machine'], `machine.image is required on ${platform.type} platform "${platform.name}": the ${what[1]}`);
    }
    if (platform?.type === 'gcp' && !/^[a-z]/.test(pool.name)) atHere(id, [], 'on gcp a pool name must start with a letter: instance names do', 'error', true);
    // Only the settings the policy wrote are named (none of these has a default).
    const foreign = (keys: ReadonlyArray<keyof PoolConfig['machine']>, owner: string) => {
      const set = keys.filter((k) => pool.machine[k] !== undefined);
      if (set.length) atHere(id, ['machine', set[0] as string], `${set.join(' and ')} ${set.length === 1 ? `is ${owner === 'aws' ? 'an' : 'a'}` : 'are'} ${owner} setting${set.length === 1 ? '' : 's'}; ignored on ${platform?.type ?? ''} platform "${pool.platform}"`, 'warning', true);
    };
    if (platform?.type === 'aws') foreign(['zones', 'serviceAccount'], 'gcp');
    if (platform?.type === 'gcp') foreign(['subnets', 'securityGroups', 'instanceProfile'], 'aws');
    const image = pool.machine.image;
    if (image !== undefined && platform?.type === 'gcp' && AMI_ID.test(image)) atHere(id, ['machine', 'image'], `"${image}" is an AWS AMI id; on gcp platform "${platform.name}" machine.image is a Compute Engine image such as projects/debian-cloud/global/images/family/debian-12`);
    if (image !== undefined && platform?.type === 'aws' && GCP_IMAGE.test(image)) atHere(id, ['machine', 'image'], `"${image}" is a GCP image path; on aws platform "${platform.name}" machine.image is an AMI id such as ami-0123456789abcdef0 (aws ec2 describe-images lists them)`);
    if (platform?.type === 'gcp') {
      pool.machine.zones?.forEach((z, i) => {
        if (!zoneInRegion(z, platform.region)) atHere(id, ['machine', 'zones', i], `zone "${z}" is not in region "${platform.region}" of platform "${platform.name}": a zone is its region, "-" and a letter (e.g. ${platform.region}-b)`);
      });
    }
    const spot = pool.machine.spot;
    if (platform?.type === 'gcp' && typeof spot === 'object' && spot.maxPrice !== undefined) {
      atHere(id, ['machine', 'spot', 'maxPrice'], 'GCP Spot VMs have no max price (they cost the current Spot price and are preempted for capacity, never for price): remove maxPrice', 'error', true);
    }
    if (platform?.type === 'module') {
      // The module gets only name, pool, user_data, credential and the platform's inputs: VM settings belong in the inputs.
      const set: string[] = (['type', 'image', 'subnets', 'zones', 'securityGroups', 'instanceProfile', 'serviceAccount', 'tags'] as const).filter((k) => pool.machine[k] !== undefined);
      for (const k of ['diskGb', 'publicIp'] as const) if (written(id, [...prefix, 'machine', k])) set.push(k);
      if (pool.machine.spot !== false) set.push('spot');
      if (set.length) atHere(id, ['machine', set[0] as string], `${set.map((k) => `machine.${k}`).join(', ')} ${set.length === 1 ? 'has' : 'have'} no meaning on module platform "${platform.name}": its module gets only name, pool, user_data, credential and the platform's inputs; put VM settings in platforms.${platform.name}.inputs`, 'error', true);
      if (pool.scaling.standby !== 0) atHere(id, ['scaling', 'standby'], `is not supported on module platform "${platform.name}": a module call has no lifecycle that lets a node's power state alone change in place, and the module contract has no power variable; remove scaling.standby for this pool`);
    }
    if (pool.scaling.standby !== 0 && platform?.type === 'aws' && pool.machine.spot) {
      atHere(id, ['scaling', 'standby'], `standby keeps stopped VMs, and AWS cannot stop one-time spot instances (the only spot kind Parmanu launches): remove scaling.standby, or set machine.spot: false for this pool`);
    }
  }

  function checkPoolRest(id: string, pool: PoolConfig, platform: Policy['platforms'][string] | undefined) {
    const kind = policy.emitters[pool.emitter]?.type;
    if (pool.scaling.standby !== 0 && kind === 'github' && pool.machine.os === 'windows') {
      at(id, ['scaling', 'standby'], 'is not supported on Windows GitHub pools: a node started from standby needs a fresh runner registration, and the Windows bootstrap registers its runner only at first boot; remove scaling.standby for this pool');
    }
    if (kind === 'github' && pool.runner.jobsPerNode > 1) {
      at(id, ['runner', 'jobsPerNode'], `a GitHub runner runs one job at a time: with jobsPerNode: ${pool.runner.jobsPerNode} the pool would start one node for every ${pool.runner.jobsPerNode} jobs and the others would wait; remove it (1 is the default) and raise scaling.max for more jobs at once`);
    }
    if (kind === 'gitlab' && pool.runner.ephemeral) {
      at(id, ['runner', 'ephemeral'], "is not enforced on gitlab: the node's gitlab-runner keeps taking jobs until Parmanu replaces the node, so one node can run several jobs; remove it, and use runner.executor: docker (a fresh container per job) and scaling.maxLifetime to replace nodes regularly");
    }
    if (platform && (platform.type === 'aws' || platform.type === 'gcp') && pool.machine.os === 'windows') {
      // On Windows these runners' jobs run as SYSTEM (stacks/bootstrap/windows.ts): they can read the
      // root-only credential file, and the JIT GitHub runner and the Jenkins agent are not kept from
      // the metadata server by the firewall (a GitLab service is). Only what the policy says is warned about.
      const ephemeral = 'ephemeral nodes (runner.ephemeral: true, one job each)';
      const bounded = 'give the nodes no cloud access a job may not have, or accept it';
      const [runner, remedy] =
        kind === 'gitlab' && pool.runner.executor !== 'docker'
          ? [`a gitlab runner (${pool.runner.executor} executor${written(id, ['runner', 'executor']) ? '' : ', the default'})`, 'use runner.executor: docker, or accept it']
          : kind === 'github' && pool.runner.ephemeral
            ? ['an ephemeral (JIT) github runner', 'remove runner.ephemeral (Windows github pools default to a registered runner service, which the firewall keeps from the metadata server; its user can read its own credentials), or give the nodes no cloud access a job may not have, or accept it']
            : kind === 'jenkins'
              ? ['a jenkins agent', pool.runner.ephemeral ? bounded : `use ${ephemeral}, or accept it`]
              : [undefined, undefined];
      const reach = kind === 'gitlab' ? "can read the runner's credential" : `can read the runner's credential and reach the ${platform.type} instance metadata (the node's cloud identity)`;
      if (runner) at(id, ['machine', 'os'], `on Windows ${runner} runs its jobs as its service account (SYSTEM), which ${reach}: ${remedy}`, 'warning');
    }


    checkLabels(id, pool);
    checkRunnerConfig(id, pool);
    checkTags(id, pool);
    if (platform?.type === 'aws') {
      // The whole user-data is at most 16 KiB on AWS: what the policy adds is measured as it is
      // written into it (JSON-quoted in cloud-init YAML; PowerShell doubles quotes about as much).
      const extra = [pool.runner.hooks?.before?.script, pool.runner.hooks?.after?.script, configText(pool.runner.config)].reduce((n, s) => n + (s === undefined ? 0 : JSON.stringify(s).length), 0);
      if (extra > AWS_EXTRA_BYTES) at(id, ['runner'], `runner.hooks and runner.config take ${extra} bytes of user-data; on aws they may take ${AWS_EXTRA_BYTES} (the user-data is at most 16 KiB and the bootstrap takes the rest): bake large setup into the image, or fetch it from a hook`, 'error', true);
    }

    const jobsKey = `${pool.emitter}\u0000${[...pool.labels].sort().join(',')}\u0000${pool.acceptUntagged}`;
    const twin = seenJobs.get(jobsKey);
    if (twin) at(id, ['labels'], `takes exactly the jobs of pool "${twin}" (same emitter and labels); "${twin}", listed first, gets them all`, 'warning');
    else seenJobs.set(jobsKey, pool.name);
  }

  /** `runner.config` has the form of the pool's runner kind, and holds nothing that would escape it. */
  function checkRunnerConfig(id: string, pool: PoolConfig) {
    const config = pool.runner.config;
    const kind = policy.emitters[pool.emitter]?.type;
    if (config === undefined || !kind) return;
    const here = ['runner', 'config'];
    const windows = pool.machine.os === 'windows';
    const form = { gitlab: 'a config.toml fragment (a string)', github: 'a mapping of environment variables', jenkins: 'a list of JVM options', replay: '' }[kind];
    if (kind === 'replay') return at(id, here, 'a replay pool runs no runner: runner.config is ignored', 'warning');
    if (kind === 'gitlab') {
      if (typeof config !== 'string') return at(id, here, `on a gitlab pool runner.config is ${form}`);
      const problem = tomlFragmentProblem(config);
      if (problem) at(id, here, problem);
    } else if (kind === 'github') {
      if (typeof config !== 'object' || Array.isArray(config)) return at(id, here, `on a github pool runner.config is ${form} (NAME: value)`);
      for (const [name, value] of Object.entries(config)) {
        if (!ENV_NAME.test(name)) at(id, [...here, name], 'an environment variable name is uppercase letters, digits and "_", not starting with a digit', 'error', true);
        else if (RESERVED_ENV.test(name)) at(id, [...here, name], 'ACTIONS_RUNNER_INPUT_* variables carry the runner\'s credential and settings from Parmanu; they cannot be set here', 'error', true);
        if (/[\n\t]/.test(value)) at(id, [...here, name], 'a value is one line without tabs (it goes into an environment file)');
        else if (windows && /<\/powershell/i.test(value)) at(id, [...here, name], 'must not contain "</powershell": it would end the user-data\'s <powershell> block');
      }
    } else {
      if (!Array.isArray(config)) return at(id, here, `on a jenkins pool runner.config is ${form} (e.g. [-Xmx2g])`);
      config.forEach((o, i) => {
        if (JVM_REFUSED.test(o)) at(id, [...here, i], `${o} would change what the agent runs: Parmanu starts -jar agent.jar itself`);
        else if (!JVM_OPTION.test(o)) at(id, [...here, i], 'a JVM option starts with "-" and has only letters, digits and . _ : = + , / @ - (no whitespace, quotes, % or shell metacharacters)');
      });
    }
    if (windows && typeof config === 'string' && /<\/powershell/i.test(config)) at(id, here, 'must not contain "</powershell": it would end the user-data\'s <powershell> block');
  }

  /** `machine.tags` stay within what the platform accepts on every resource, and leave Parmanu's own keys alone. */
  function checkTags(id: string, pool: PoolConfig) {
    const tags = pool.machine.tags;
    const platform = policy.platforms[pool.platform];
    if (!tags || !platform) return;
    const here = ['machine', 'tags'];
    if (platform.type === 'local') return at(id, here, 'the local platform creates no cloud resources: machine.tags are ignored', 'warning');
    const n = Object.keys(tags).length;
    // Parmanu's own: up to 7 AWS tags (the SSM parameter's), 5 GCP labels; AWS takes 50 per resource, GCP 64.
    const max = platform.type === 'aws' ? 43 : 59;
    if (n > max) at(id, here, `${n} tags; on ${platform.type} at most ${max} besides Parmanu's own`);
    for (const [key, value] of Object.entries(tags)) {
      const k = [...here, key];
      if (PARMANU_TAG.test(key)) {
        at(id, k, 'parmanu:* and parmanu-* keys are Parmanu\'s own (pool, node, spec, …): they cannot be set or overridden', 'error', true);
        continue;
      }
      if (platform.type === 'aws') {
        if (/^aws:/i.test(key)) at(id, k, 'the aws: prefix is reserved for AWS', 'error', true);
        else if (key === 'Name') at(id, k, 'the Name tag is Parmanu\'s own: each node is named for itself', 'error', true);
        else if (!AWS_TAG_KEY.test(key)) at(id, k, 'an AWS tag key is 1 to 128 letters, digits, spaces and _ . : / = + - @', 'error', true);
        if (!AWS_TAG_VALUE.test(value)) at(id, k, 'an AWS tag value is at most 256 letters, digits, spaces and _ . : / = + - @');
      } else {
        if (!GCP_LABEL_KEY.test(key)) at(id, k, 'a GCP label key starts with a lowercase letter and has only lowercase letters, digits, "-" and "_", at most 63 characters', 'error', true);
        if (!GCP_LABEL_VALUE.test(value)) at(id, k, 'a GCP label value has only lowercase letters, digits, "-" and "_", at most 63 characters');
      }
    }
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

  // Budgets: cross-field, every problem with its place (the pools a budget names must exist and have a price).
  const poolNames = namesOf('pools');
  for (const b of policy.budgets ?? []) {
    const id = `budgets/${b.name}`;
    if (b.maxPerHour === undefined && b.maxPerMonth === undefined) at(id, [], 'a budget sets maxPerHour, maxPerMonth or both', 'error', true);
    if (b.pools === 'all') {
      const unpriced = policy.pools.filter((p) => p.machine.hourlyCost === undefined).map((p) => p.name);
      if (unpriced.length) at(id, ['pools'], `covers every pool, and ${unpriced.length === 1 ? 'pool' : 'pools'} ${unpriced.map((n) => `"${n}"`).join(', ')} ${unpriced.length === 1 ? 'has' : 'have'} no machine.hourlyCost: a budget needs each pool's price per node-hour`);
      continue;
    }
    const seen = new Set<string>();
    b.pools.forEach((name, i) => {
      if (seen.has(name)) return at(id, ['pools', i], `"${name}" is listed twice`, 'warning');
      seen.add(name);
      if (!poolNames.includes(name)) return at(id, ['pools', i], `no pool named "${name}"${suggestion(name, poolNames) || (poolNames.length ? ` (defined: ${poolNames.join(', ')})` : ' (no pools are defined)')}`);
      const pool = policy.pools.find((p) => p.name === name);
      if (pool && pool.machine.hourlyCost === undefined) at(id, ['pools', i], `pool "${name}" has no machine.hourlyCost: a budget needs each pool's price per node-hour (set pools.${name}.machine.hourlyCost)`);
    });
  }
  for (const pool of policy.pools) {
    const m = pool.machine;
    if (m.stoppedHourlyCost !== undefined && m.hourlyCost !== undefined && m.stoppedHourlyCost > m.hourlyCost) at(`pools/${pool.name}`, ['machine', 'stoppedHourlyCost'], `${m.stoppedHourlyCost} is more than hourlyCost ${m.hourlyCost}: a stopped node costs its disk only`, 'warning');
  }

  for (const name of Object.keys(policy.emitters)) if (!usedEmitters.has(name)) at(`emitters/${name}`, [], 'no pool uses this emitter', 'warning', true);
  for (const name of Object.keys(policy.platforms)) if (!usedPlatforms.has(name)) at(`platforms/${name}`, [], 'no pool uses this platform', 'warning', true);
  return problems;
}
