/**
 * The reconcile path for AWS and GCP pools, up to the plan: AWS and GCP providers cannot be
 * downloaded here, so PARMANU_TERRAFORM-style, a stand-in terraform binary (a shell script)
 * answers `init`, `state pull` (an empty state) and `plan` (no changes), and keeps a copy of the
 * stack it was asked to plan and the names (never the values) of the credentials it received in
 * its environment. Then: the GitLab runner tokens the emulator issued for the new nodes are in no
 * rendered JSON (user-data included); they reached terraform only through TF_VAR_parmanu_credentials.
 */
import { chmodSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitlabEmitter } from '../../src/emitters/gitlab.js';
import { HttpClient } from '../../src/emitters/http.js';
import { RedisHistoryStore } from '../../src/history/redis.js';
import { normalize } from '../../src/policy/load.js';
import { EmitterSchema, PlatformSchema, PoolSchema } from '../../src/policy/schema.js';
import { reconcileOnce } from '../../src/reconcile/cycle.js';
import { Terraform } from '../../src/terraform/runner.js';
import { GitlabEmulator } from '../emulators/gitlab.js';
import { useRedisSuite } from './suite.js';
import { expectNoSecrets, leaks, scanStateDir } from '../secret-scan.js';

const suite = useRedisSuite();

/** A terraform stand-in: records the stack at plan time and which credentials (names only) it was given. */
function standIn(dir: string): string {
  const bin = join(dir, 'terraform');
  writeFileSync(
    bin,
    [
      '#!/bin/sh',
      'case "$1" in',
      '  version) echo \'{"terraform_version":"1.11.4"}\' ;;',
      '  init) mkdir -p .terraform ;;',
      '  state) echo \'{"version":4,"terraform_version":"1.11.4","serial":1,"lineage":"x","outputs":{},"resources":[]}\' ;;',
      '  plan)',
      `    n=$(ls ${JSON.stringify(dir)} | grep -c '^stack-')`,
      `    cp cdk.tf.json ${JSON.stringify(dir)}/stack-$n.json`,
      `    echo "$(basename "$PWD") \${GOOGLE_APPLICATION_CREDENTIALS:-none}" >> ${JSON.stringify(dir)}/gcp-creds.txt`,
      `    printf '%s' "$TF_VAR_parmanu_credentials" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Object.keys(JSON.parse(s||"{}")).join(" ")))' > ${JSON.stringify(dir)}/keys-$n.txt`,
      '    exit 0 ;;',
      '  *) exit 0 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(bin, 0o755);
  return bin;
}

describe('credentials on AWS and GCP, through the real reconcile path', () => {
  it.each(['aws', 'gcp'] as const)('%s: the runner token is in no rendered JSON and reaches terraform only through its environment', async (cloud) => {
    const emu = await new GitlabEmulator().start();
    const dir = suite.tempDir(`parmanu-cloud-${cloud}-`);
    const history = new RedisHistoryStore(suite.url, () => Date.now(), `parmanu:cc${Math.random().toString(36).slice(2)}:`);
    try {
      const group = emu.addGroup('platform');
      const project = emu.addProject('api', group);
      emu.addJob(project, 'pending', ['linux']);
      emu.addJob(project, 'pending', ['linux']);
      const platform = cloud === 'aws' ? { type: 'aws', region: 'eu-central-1', backend: { type: 's3', bucket: 'b', key: 'k', region: 'eu-central-1' } } : { type: 'gcp', project: 'acme', region: 'europe-west1', zone: 'europe-west1-b', backend: { type: 'gcs', bucket: 'b', prefix: 'p' } };
      const policy = normalize({
        emitters: new Map([['ci', EmitterSchema.parse({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } })]]),
        platforms: new Map([['cloud', PlatformSchema.parse(platform)]]),
        pools: new Map([['p', PoolSchema.parse({ emitter: 'ci', platform: 'cloud', labels: ['linux'], machine: { type: cloud === 'aws' ? 'c6i.large' : 'e2-small', image: cloud === 'aws' ? 'ami-1' : 'debian-12' }, scaling: { predict: false } })]]),
      });
      const stateDir = join(dir, 'state');
      const r = await reconcileOnce({
        policy,
        emitters: new Map([['ci', new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 4, backoffMs: 5 }))]]),
        history,
        terraform: new Terraform({ bin: standIn(dir) }),
        stateDir,
        clock: () => Date.now(),
        owner: 't',
      });
      expect(r.pools[0]?.error).toBeUndefined();
      expect(r.pools[0]?.create).toHaveLength(2);
      expect(emu.credentials.map((c) => c.runner).sort()).toEqual([...(r.pools[0]?.create ?? [])].sort());
      // The stack terraform planned: every node's resources, the secret store, no token anywhere.
      const stacks = readdirSync(dir).filter((f) => f.startsWith('stack-'));
      expect(stacks.length).toBeGreaterThan(0);
      for (const f of stacks) {
        const text = readFileSync(join(dir, f), 'utf8');
        expectNoSecrets(`the ${cloud} stack ${f}`, text);
        expect(leaks(text)).toEqual([]);
        const json = JSON.parse(text) as { resource: Record<string, Record<string, Record<string, unknown>>> };
        for (const name of r.pools[0]?.create ?? []) {
          if (cloud === 'aws') expect(json.resource.aws_ssm_parameter?.[`credential_${name}`]?.value_wo).toBe(`\${lookup(var.parmanu_credentials, "${name}", "")}`);
          else expect(json.resource.google_secret_manager_secret_version?.[`credential_${name}_version`]?.secret_data_wo).toBe(`\${lookup(var.parmanu_credentials, "${name}", "")}`);
        }
      }
      // The new nodes' credentials were in terraform's environment, by name.
      const keys = readdirSync(dir).filter((f) => f.startsWith('keys-')).map((f) => readFileSync(join(dir, f), 'utf8').trim());
      expect(keys.at(-1)?.split(' ').sort()).toEqual([...(r.pools[0]?.create ?? [])].sort());
      await scanStateDir(stateDir);
    } finally {
      await history.close();
      await emu.stop();
    }
  });

  it('gives each GCP platform\'s pools that platform\'s own credentials file, and no other', async () => {
    const emu = await new GitlabEmulator().start();
    const dir = suite.tempDir('parmanu-cloud-two-gcp-');
    const history = new RedisHistoryStore(suite.url, () => Date.now(), `parmanu:cc${Math.random().toString(36).slice(2)}:`);
    try {
      const group = emu.addGroup('platform');
      const project = emu.addProject('api', group);
      for (let i = 0; i < 2; i++) emu.addJob(project, 'pending', ['linux']);
      for (let i = 0; i < 2; i++) emu.addJob(project, 'pending', ['linux', 'eu']);
      const gcp = (prefix: string, file: string) => PlatformSchema.parse({ type: 'gcp', project: 'acme', region: 'europe-west1', zone: 'europe-west1-b', credentialsFile: file, backend: { type: 'gcs', bucket: 'b', prefix } });
      const policy = normalize({
        emitters: new Map([['ci', EmitterSchema.parse({ type: 'gitlab', url: emu.url, token: '${env:T}', groups: ['platform'], runnerOwner: { group: 'platform' } })]]),
        platforms: new Map([['one', gcp('a', '/secrets/one.json')], ['two', gcp('b', '/secrets/two.json')]]),
        pools: new Map([
          ['p1', PoolSchema.parse({ emitter: 'ci', platform: 'one', labels: ['linux'], machine: { type: 'e2-small', image: 'debian-12' }, scaling: { predict: false } })],
          ['p2', PoolSchema.parse({ emitter: 'ci', platform: 'two', labels: ['linux', 'eu'], machine: { type: 'e2-small', image: 'debian-12' }, scaling: { predict: false } })],
        ]),
      });
      const r = await reconcileOnce({
        policy,
        emitters: new Map([['ci', new GitlabEmitter(policy.emitters.ci as never, emu.token, new HttpClient({ timeoutMs: 2000, retries: 1, concurrency: 4, backoffMs: 5 }))]]),
        history,
        terraform: new Terraform({ bin: standIn(dir) }),
        stateDir: join(dir, 'state'),
        clock: () => Date.now(),
        owner: 't',
      });
      expect(r.pools.map((p) => p.error)).toEqual([undefined, undefined]);
      const seen = readFileSync(join(dir, 'gcp-creds.txt'), 'utf8').trim().split('\n');
      expect(new Set(seen)).toEqual(new Set(['p1 /secrets/one.json', 'p2 /secrets/two.json']));
    } finally {
      await history.close();
      await emu.stop();
    }
  });
});
