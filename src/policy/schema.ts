/**
 * The v1 policy format as zod schemas: the single source of the format, of `policies/schema.json`
 * and of the README's policy reference. Every field carries a description.
 *
 * This is step one of loading (shape and types). Step two (`normalize.ts`) turns durations into
 * milliseconds and merges files; step three (`rules.ts`) checks rules that span fields and files.
 */
import { z } from 'zod';
import { DURATION_PATTERN } from './duration.js';
import { SECRET_REF } from './secrets.js';
import { CONTROL_CHARS, GITHUB_OWNER, GITHUB_REPO, GITLAB_PATH, HTTP_URL, LABEL, LABEL_MAX, labelProblem, RUNNER_VERSION, SHELL_METACHARS, urlProblem } from './text.js';

const duration = (description: string) =>
  z.string().regex(DURATION_PATTERN, { error: 'must be a duration such as 30s, 10m, 1h or 1h30m' }).describe(description);

const secret = (description: string) =>
  z
    .string({ error: 'must be a ${env:NAME} or ${file:path} reference' })
    .regex(SECRET_REF, { error: 'must be a ${env:NAME} or ${file:path} reference, never a literal secret' })
    .describe(description);

const nonEmpty = z.string().min(1, { error: 'must not be empty' });
const httpUrl = z.string().regex(HTTP_URL, { error: (iss) => urlProblem(iss.input) });
const label = z
  .string()
  .min(1, { error: 'a label must not be empty' })
  .max(LABEL_MAX)
  .regex(LABEL, { error: (iss) => labelProblem(iss.input) });
/** Largest hook script (`runner.hooks`) read from the policy repository. */
export const HOOK_MAX_BYTES = 64 * 1024;
/** What hooks and `runner.config` may add to an AWS node's user-data (16 KiB in all; the bootstrap takes the rest). */
export const AWS_EXTRA_BYTES = 6 * 1024;
const hookPath = z
  .string()
  .min(1, { error: 'must not be empty' })
  .refine((v) => !/^(?:[/\\~]|[A-Za-z]:)/.test(v), { error: 'must be a path relative to the policy file (a script in the policy repository), not an absolute path' });
const githubOwner = z.string().regex(GITHUB_OWNER, { error: 'must be a GitHub user or organization name: letters, digits and single hyphens, at most 39 characters' });
const githubRepo = z.string().regex(GITHUB_REPO, { error: 'must be a GitHub repository name: letters, digits, ".", "_" and "-", at most 100 characters' });
/** A GitHub App's id: its App ID (digits) or its client ID (`Iv1.` and 16 hex digits, `Iv23` and 16 letters and digits, …). */
export const GITHUB_APP_ID = /^(?:[1-9]\d*|Iv\d+\.?[0-9A-Za-z]{10,})$/;
/** A value as a message quotes it: strings in quotes (cut at 40 characters), other values as they are. */
const shown = (v: unknown) => (typeof v === 'string' ? `"${v.length > 40 ? `${v.slice(0, 40)}…` : v}"` : typeof v === 'number' ? `the number ${v}` : String(v));
const gitlabPath = z.string().regex(GITLAB_PATH, { error: 'must be a numeric id or a full path such as group/subgroup/project (letters, digits, "_", "-", "." and "/")' });

// ---------------------------------------------------------------- emitters

const webhook = z
  .strictObject({
    secret: secret('GitHub: the webhook\'s secret (checked through `X-Hub-Signature-256`); GitLab: the webhook\'s secret token (`X-Gitlab-Token`).'),
  })
  .describe('Webhook events for this emitter: `reconcile --watch --listen HOST:PORT` serves `POST /webhooks/<emitter>`; a verified event for a queued job reconciles its pools within seconds. Polling stays as the backstop.');

const emitterCommon = {
  probeInterval: duration('How often the emitter is probed in `--watch` mode; an observation older than twice this is stale and its pools hold.').default('30s'),
  concurrency: z.int().min(1).max(64).describe('Requests in flight at once against this platform; default 16 for gitlab (its limits are per minute), 4 for github (which asks for serial requests) and jenkins.').optional(),
  requestTimeout: duration('Timeout of one HTTP request; a timed-out request is retried with backoff.').default('10s'),
  retries: z.int().min(0).max(10).describe('Retries of a failed request (5xx, timeout, 429) before the probe is marked failed.').default(3),
};

const runnerOwnerGitlab = z
  .union([
    z.literal('instance'),
    z.strictObject({ group: gitlabPath.describe('Full path of the group that owns node runners.') }),
    z.strictObject({ project: gitlabPath.describe('Full path (or numeric id) of the project that owns node runners.') }),
  ])
  .describe('Where node runners are created: `{ group: path }`, `{ project: path }` or `instance` (admin token).');

export const GitlabEmitterSchema = z
  .strictObject({
    type: z.literal('gitlab').describe('GitLab CI (gitlab.com or self-managed).'),
    url: httpUrl.describe('Base URL of the GitLab instance, e.g. https://gitlab.com.'),
    token: secret('Token with `read_api` for probing and `create_runner` (plus Maintainer/Owner of the runner owner) for runner registration.'),
    projects: z.array(gitlabPath).describe('Projects (full paths or numeric ids) whose jobs are read.').optional(),
    groups: z.array(gitlabPath).describe('Groups whose projects (subgroups included) are all read.').optional(),
    runnerOwner: runnerOwnerGitlab,
    webhook: webhook.optional(),
    ...emitterCommon,
  })
  .describe('A GitLab instance: jobs of the listed projects and groups; one runner per node.');

/** A GitHub App installation: `app:` of a github emitter, or an item of its `credentials`. */
const githubApp = z
  .strictObject({
    appId: z
      .union([z.number(), z.string()])
      .refine((v) => (typeof v === 'number' ? Number.isSafeInteger(v) && v > 0 : GITHUB_APP_ID.test(v)), {
        error: (iss) => `must be the GitHub App's App ID (a positive whole number such as 123456, shown on the app's settings page) or its client ID (Iv1.… or Iv23…), not ${shown(iss.input)}`,
      })
      .describe('The GitHub App\'s App ID (a number such as 123456) or its client ID (`Iv1.…`/`Iv23…`), both on the app\'s settings page.'),
    installationId: z
      .union([z.number(), z.string()])
      .refine((v) => (typeof v === 'number' ? Number.isSafeInteger(v) && v > 0 : /^[1-9]\d*$/.test(v)), {
        error: (iss) => `must be the installation's id, a positive whole number (the end of the installation's settings URL, …/installations/12345678), not ${shown(iss.input)}`,
      })
      .describe('Installation id of the app on the owner (a number: the end of the installation\'s settings URL).'),
    privateKey: secret('The app private key (PEM), usually `${file:/run/secrets/app.pem}`.'),
  })
  .describe('GitHub App authentication: the app\'s id, its installation on the owner, and its private key.');

export const GithubEmitterSchema = z
  .strictObject({
    type: z.literal('github').describe('GitHub Actions (github.com or GitHub Enterprise Server).'),
    owner: githubOwner.describe('Organization (or user) that owns the repositories.'),
    repos: z.array(githubRepo).describe('Repositories whose workflow jobs are read; omitted: every repository of the owner.').optional(),
    token: secret('Token with `actions:read` on the repositories and `organization_self_hosted_runners:write` (org runners) or `administration:write` (repo runners).').optional(),
    app: githubApp.describe('GitHub App authentication instead of `token`.').optional(),
    credentials: z
      .array(
        z
          .strictObject({
            token: secret('A token, as `token` above.').optional(),
            app: githubApp.describe('A GitHub App installation, as `app` above.').optional(),
          })
          .describe('One credential: `{ token: ${env:NAME} }` or `{ app: { appId, installationId, privateKey } }`.'),
      )
      .min(1)
      .describe(
        'Several credentials instead of `token` or `app`: each call goes to the one with the most rate limit left (a conditional GET to the one whose ETag it holds), one at 0 is skipped until its reset. Tokens of one user share that user\'s limit; each App installation has its own.',
      )
      .optional(),
    runnerOwner: z
      .union([z.literal('org'), z.strictObject({ repo: githubRepo.describe('Repository (name under `owner`) that owns node runners.') })])
      .describe('Where node runners are registered: `org` or `{ repo: name }`. Runners get just-in-time configs.')
      .default('org'),
    runnerGroupId: z.int().min(1).describe('Runner group of organization runners.').default(1),
    apiUrl: httpUrl.describe('REST API base URL; for GitHub Enterprise Server `https://HOST/api/v3`.').default('https://api.github.com'),
    webhook: webhook.optional(),
    ...emitterCommon,
  })
  .describe('A GitHub owner: queued and in-progress workflow jobs; one just-in-time runner per node.');

export const JenkinsEmitterSchema = z
  .strictObject({
    type: z.literal('jenkins').describe('Jenkins controller.'),
    url: httpUrl.describe('Base URL of the Jenkins controller.'),
    user: z
      .string()
      .min(1)
      .refine((v) => SECRET_REF.test(v) || !(CONTROL_CHARS.test(v) || /\s/.test(v) || SHELL_METACHARS.test(v)), { error: 'a literal user name has no whitespace, control characters or shell metacharacters ($ ` \' " ; | & < > ( ) \\)' })
      .describe('Jenkins user name (a literal or a reference).'),
    token: secret('API token of `user`, with Overall/Read and Agent/Create, Configure, Delete, Connect.'),
    crumb: z.boolean().describe('Fetch a CSRF crumb before changes (needed only when API-token auth is not exempt).').default(false),
    ...emitterCommon,
  })
  .describe('A Jenkins controller: its build queue; one inbound agent per node.');

export const ReplayEmitterSchema = z
  .strictObject({
    type: z.literal('replay').describe('Replays a job trace as a queue; its runners (one per node) run the jobs.'),
    trace: nonEmpty.describe('Path of a trace CSV (`queued_at,duration_s,labels`), relative to the working directory.'),
    start: z
      .iso.datetime({ offset: true, error: 'must be an ISO-8601 time such as 2025-09-04T17:00:00Z' })
      .describe('Wall-clock time that maps to the trace\'s first job; omitted: the first reconcile (kept in the state directory, so later runs continue).')
      .optional(),
    speed: z.number().positive().max(10_000).describe('Trace seconds per wall-clock second. A policy whose pools all use replay emitters runs Parmanu\'s clock (decide\'s timers, the history) on the trace at this speed; beside a real CI platform it must be 1.').default(1),
    ...emitterCommon,
  })
  .describe('A recorded trace replayed as a live queue, for demos and tests: a runner is registered for each node and, once the node exists, runs the queued jobs (oldest first, `jobsPerNode` at a time) for their recorded duration. Its place in the trace and its runners are kept in `<state dir>/replay/<emitter>.json`.');

export const EmitterSchema = z.discriminatedUnion('type', [GitlabEmitterSchema, GithubEmitterSchema, JenkinsEmitterSchema, ReplayEmitterSchema]);

// ---------------------------------------------------------------- platforms

const LocalBackendSchema = z.strictObject({
  type: z.literal('local').describe('Terraform state in a file under PARMANU_STATE_DIR.'),
  path: nonEmpty.describe('State file path; default `<PARMANU_STATE_DIR>/pools/<pool>/terraform.tfstate`.').optional(),
});
const S3BackendSchema = z.strictObject({
  type: z.literal('s3').describe('Terraform state in S3, locked with `use_lockfile`.'),
  bucket: nonEmpty.describe('Bucket name.'),
  key: nonEmpty.describe('Key prefix; each pool gets `<key>/<pool>.tfstate`.'),
  region: nonEmpty.describe('Bucket region.'),
  encrypt: z.boolean().describe('Server-side encryption of the state (it holds user-data).').default(true),
  kmsKeyId: nonEmpty.describe('KMS key for state encryption.').optional(),
});
const GcsBackendSchema = z.strictObject({
  type: z.literal('gcs').describe('Terraform state in Google Cloud Storage.'),
  bucket: nonEmpty.describe('Bucket name.'),
  prefix: nonEmpty.describe('Prefix; each pool gets `<prefix>/<pool>`.'),
});
export const BackendSchema = z
  .discriminatedUnion('type', [LocalBackendSchema, S3BackendSchema, GcsBackendSchema])
  .describe('Where Terraform keeps each pool\'s state.');

export const AwsPlatformSchema = z
  .strictObject({
    type: z.literal('aws').describe('Amazon EC2.'),
    region: nonEmpty.describe('AWS region, e.g. us-east-1.'),
    credentials: z
      .union([
        z.strictObject({ profile: nonEmpty.describe('Named profile of the shared AWS config.') }),
        z.strictObject({ roleArn: z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, { error: 'must be an IAM role ARN' }).describe('Role assumed by the provider.') }),
      ])
      .describe('How Terraform authenticates; omitted: the standard AWS environment.')
      .optional(),
    backend: BackendSchema.describe('Where Terraform keeps each pool\'s state, required: `{ type: s3, bucket, key, region }` (it must outlive the machine that runs Parmanu), or `{ type: local }` written out.').optional(),
    evacuate: z.boolean().describe('Move every pool off this platform: new nodes go to the next platform of each pool\'s `failover` list, nodes here drain and go once the failover\'s nodes serve (a drill, or a planned move). A pool with no failover stays.').optional(),
  })
  .describe('An AWS account and region.');

export const GcpPlatformSchema = z
  .strictObject({
    type: z.literal('gcp').describe('Google Compute Engine.'),
    project: nonEmpty.describe('Google Cloud project id.'),
    region: nonEmpty.describe('Region, e.g. europe-west1.'),
    zone: nonEmpty.describe('Default zone for instances, e.g. europe-west1-b.'),
    network: nonEmpty.describe('VPC network name.').default('default'),
    subnetwork: nonEmpty.describe('Subnetwork name.').optional(),
    credentialsFile: nonEmpty.describe('Service-account key file handed to Terraform\'s environment (never written into a stack); omitted: application default credentials.').optional(),
    backend: BackendSchema.describe('Where Terraform keeps each pool\'s state, required: `{ type: gcs, bucket, prefix }` (it must outlive the machine that runs Parmanu), or `{ type: local }` written out.').optional(),
    evacuate: z.boolean().describe('Move every pool off this platform: new nodes go to the next platform of each pool\'s `failover` list, nodes here drain and go once the failover\'s nodes serve (a drill, or a planned move). A pool with no failover stays.').optional(),
  })
  .describe('A Google Cloud project and zone.');

export const LocalPlatformSchema = z
  .strictObject({
    type: z.literal('local').describe('No cloud: every node is a `terraform_data` resource. For demos and tests.'),
    backend: BackendSchema.describe('Where Terraform keeps each pool\'s state. Default: local.').optional(),
    evacuate: z.boolean().describe('Move every pool off this platform: new nodes go to the next platform of each pool\'s `failover` list, nodes here drain and go once the failover\'s nodes serve (a drill, or a planned move). A pool with no failover stays.').optional(),
    faultFile: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]+$/, { error: 'must be an absolute path of letters, digits and . _ / -' })
      .describe('Drills and tests: while this file exists, every Terraform plan and apply of this platform\'s stacks that has a node fails (a precondition on each node), as a cloud outage would; pools with a `failover` list move after `failoverAfter` such failures.')
      .optional(),
  })
  .describe('The offline platform.');

/** A module input's value: plain JSON (strings, numbers, booleans, lists and maps; no null). */
export type ModuleInputValue = string | number | boolean | ModuleInputValue[] | { [key: string]: ModuleInputValue };
const moduleInputValue: z.ZodType<ModuleInputValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.array(moduleInputValue), z.record(z.string(), moduleInputValue)], { error: 'must be a string, number, boolean, list or map (plain JSON, no null)' }),
);

export const ModulePlatformSchema = z
  .strictObject({
    type: z.literal('module').describe('Any cloud through a Terraform module: each node is one `module "node_<name>"` call given `name`, `pool`, `user_data`, `credential` (an ephemeral, sensitive variable the module hands only to write-only arguments) and `inputs`. See "Any cloud: the module platform".'),
    source: nonEmpty.describe('The module: a local path starting with `./` or `../` (relative to the policy file), a registry address such as `acme/runner-node/azurerm`, or any other Terraform module source (`git::https://…?ref=v1.2.0`).'),
    version: nonEmpty.describe('Version constraint of a registry module, e.g. `1.4.2` or `~> 1.4`; not with a local path. Recorded on each node: a change rolls the pool out.').optional(),
    inputs: z
      .record(z.string(), moduleInputValue)
      .describe('The module\'s other variables, as plain values (strings, numbers, booleans, lists, maps); a secret only as a whole `${env:NAME}` or `${file:path}` reference, handed to Terraform as a sensitive variable. Not `name`, `pool`, `user_data`, `credential` (Parmanu\'s own) nor Terraform\'s reserved names. Recorded on each node: a change rolls the pool out.')
      .default({}),
    providers: z
      .record(
        z.string(),
        z.strictObject({
          source: nonEmpty.describe('The provider\'s address, e.g. `hashicorp/azurerm`, `terraform-provider-openstack/openstack`, `vmware/vsphere`, `bpg/proxmox`.'),
          version: nonEmpty.describe('Version constraint, e.g. `~> 4.23`.').optional(),
          config: z.record(z.string(), moduleInputValue).describe('The provider block\'s settings as plain values (a nested block as a map, e.g. `{ features: {} }` for azurerm); a secret only as a whole `${env:NAME}`/`${file:path}` reference.').default({}),
        }),
      )
      .describe('Providers the module uses, by local name, configured once in each pool\'s root module (a module must not configure a provider itself: Terraform could not destroy a removed node\'s resources without it). Credentials best come from the provider\'s own environment variables (`ARM_*`, `OS_*`, `VSPHERE_*`, …), which Terraform inherits. Not part of the node spec.')
      .default({}),
    backend: BackendSchema.describe('Where Terraform keeps each pool\'s state, required (it must outlive the machine that runs Parmanu): an `s3` or `gcs` bucket, or `{ type: local }` written out.').optional(),
    evacuate: z.boolean().describe('Move every pool off this platform: new nodes go to the next platform of each pool\'s `failover` list, nodes here drain and go once the failover\'s nodes serve (a drill, or a planned move). A pool with no failover stays.').optional(),
  })
  .describe('Any cloud or hypervisor through a Terraform module (Azure, OpenStack, vSphere, Proxmox, …).');

export const PlatformSchema = z.discriminatedUnion('type', [AwsPlatformSchema, GcpPlatformSchema, LocalPlatformSchema, ModulePlatformSchema]);

// ---------------------------------------------------------------- pools

export const MachineSchema = z
  .strictObject({
    type: nonEmpty.describe('Instance type (aws, e.g. c6i.xlarge) or machine type (gcp, e.g. e2-standard-4).').optional(),
    image: nonEmpty.describe('AMI id (aws) or boot image (gcp, e.g. projects/debian-cloud/global/images/family/debian-12).').optional(),
    os: z.enum(['linux', 'windows']).describe('Operating system of the image; selects cloud-init or PowerShell user-data.').default('linux'),
    diskGb: z.int().min(8).max(16_384).describe('Root disk size in GB.').default(50),
    spot: z
      .union([
        z.boolean(),
        z.strictObject({
          fallback: z
            .enum(['on-demand', 'none'])
            .describe('When an apply fails for spot capacity, spot price or the account\'s spot instance count: `on-demand` re-renders those nodes on-demand in the same cycle (they stay until they drain; not outdated), `none` leaves them out this cycle.')
            .default('on-demand'),
          maxPrice: z.number().positive().describe('AWS: the most an hour of one spot node may cost (`spotOptions.maxPrice`, USD); omitted: the on-demand price. Not on GCP (Spot VMs have no max price).').optional(),
        }),
      ], { error: 'must be true, false, or { fallback: on-demand | none, maxPrice: a number above 0 }' })
      .describe(
        'Spot (aws) or SPOT provisioning (gcp) capacity. `true`: spot only, as before (a node that gets no spot capacity is not created this cycle, or tries the next subnet/zone); `{}` or `{ fallback: on-demand }`: spot, falling back to on-demand for nodes whose apply failed for spot capacity, price or count; `{ maxPrice }` (aws). Every pool, spot or not, tries the next of `subnets` (aws) / `zones` (gcp) when an apply fails for zone capacity.',
      )
      .default(false),
    hourlyCost: z.number().positive().describe('What one node costs per hour, in any currency (e.g. 0.17 for a c6i.xlarge on demand): `parmanu report` multiplies node-hours by it. Omitted: the report shows node-hours only.').optional(),
    stoppedHourlyCost: z.number().nonnegative().describe('What one stopped (standby) node costs per hour, its disk, in the currency of `hourlyCost` (e.g. 0.004 for 50 GB of gp3): budgets count standby nodes at it. Omitted: standby nodes count as free.').optional(),
    publicIp: z.boolean().describe('Give each node a public IP (off when the subnet has NAT).').default(true),
    subnets: z.array(nonEmpty).describe('Subnet ids (aws) spread across nodes; a new node whose apply failed for zone capacity tries the next one in the same cycle.').optional(),
    zones: z.array(nonEmpty).describe('Zones (gcp) spread across nodes; default the platform zone. A new node whose apply failed for zone capacity tries the next one in the same cycle.').optional(),
    securityGroups: z.array(nonEmpty).describe('Security group ids (aws).').optional(),
    instanceProfile: nonEmpty.describe('IAM instance profile name (aws).').optional(),
    serviceAccount: nonEmpty.describe('Service account email (gcp).').optional(),
    tags: z
      .record(z.string().min(1, { error: 'a tag key must not be empty' }), z.string())
      .describe(
        'Tags (aws) or labels (gcp) put on every resource Parmanu creates for the pool: instances, their disks, the credentials\' parameters or secrets, and the pool\'s IAM role and instance profile (aws). AWS: keys up to 128 and values up to 256 letters, digits, spaces and `_ . : / = + - @`, no `aws:` prefix; GCP: lowercase letters, digits, `-` and `_`, up to 63 characters, keys starting with a letter. Parmanu\'s own keys (`Name`, `parmanu:*`, `parmanu-*`) cannot be set. A change reaches new nodes and the pool\'s identity; running nodes keep their tags until they are replaced (tags are not part of the node spec).',
      )
      .optional(),
  })
  .describe('The VM each node runs on.');

/** MachineSchema's fields with no defaults: a failover platform's overrides (only what it writes). */
const MachineOverrideSchema = z.strictObject(Object.fromEntries(Object.entries(MachineSchema.shape).map(([k, v]) => [k, v instanceof z.ZodDefault ? (v.unwrap() as z.ZodType).optional() : v]))) as unknown as z.ZodType<Partial<z.output<typeof MachineSchema>>, Partial<z.input<typeof MachineSchema>>>;

export const RunnerSchema = z
  .strictObject({
    jobsPerNode: z.int().min(1).max(64).describe('Jobs one node runs at once (GitLab `concurrent`, Jenkins executors).').default(1),
    ephemeral: z
      .boolean()
      .describe(
        'A node takes one job and is replaced after it. Default: `true` on a github pool on Linux (a just-in-time runner: its single-use JIT config and its session last one job, so no long-lived runner credential is on the node), `false` on the others (on Windows a JIT runner runs its jobs as SYSTEM outside the firewall rule that keeps the registered runner service from instance metadata); `false` on github registers a long-lived runner whose user (and so its jobs) can read its own credentials.',
      )
      .optional(),
    version: z
      .string()
      .regex(RUNNER_VERSION, { error: 'must be a version such as 17.5.0 or v2.321.0 (all three parts x.y.z, optionally with a suffix such as -rc1), or latest' })
      .describe('Runner version to install; `latest` or e.g. 17.5.0 / 2.321.0.')
      .default('latest'),
    install: z.enum(['download', 'preinstalled']).describe('`download` the runner at boot, or use one baked into the image.').default('download'),
    executor: z.enum(['shell', 'docker']).describe('GitLab runner executor.').default('shell'),
    hooks: z
      .strictObject({
        before: hookPath.describe('Script run (as root) before the runner is installed and set up: a path relative to the policy file.').optional(),
        after: hookPath.describe('Script run (as root) once the runner service has started.').optional(),
      })
      .describe(
        `Script files of the policy repository run by the bootstrap around the runner setup, once, at the node's first boot (Linux: a \`#!\` script or bash; Windows: PowerShell). Each is read when the policy is loaded (text, at most ${HOOK_MAX_BYTES / 1024} KiB), written into the node's user-data as a root-only (SYSTEM/Administrators) file, and a failing hook fails the bootstrap with its exit code on the console. On aws the user-data is limited to 16 KiB: hooks and \`runner.config\` together may take ${AWS_EXTRA_BYTES / 1024} KiB there.`,
      )
      .optional(),
    config: z
      .union([
        z.string().describe('gitlab: a config.toml fragment.'),
        z.record(z.string(), z.string()).describe('github: environment variables.'),
        z.array(z.string()).describe('jenkins: JVM options.'),
      ])
      .describe(
        'Settings passed through to the runner, trusted policy content written into the node\'s user-data (never a secret). gitlab: a `config.toml` fragment (a string) placed below the runner\'s `[[runners]]` header through `gitlab-runner register --template-config` — keys such as `environment`, and sub-tables `[runners.docker]` (`privileged`, `volumes`), `[runners.cache]`; no `[[runners]]` header or other top-level table of its own. github: environment variables of the runner service (a mapping; names `[A-Z_][A-Z0-9_]*`, not `ACTIONS_RUNNER_INPUT_*`; values on one line). jenkins: JVM options of the agent (a list such as `[-Xmx2g]`; each starts with `-`, no whitespace, quotes or shell metacharacters), passed as separate arguments before `-jar`.',
      )
      .optional(),
  })
  .describe('The CI runner on each node.');

export const ScheduleSchema = z
  .strictObject({
    cron: nonEmpty.describe('Cron expression (5 fields, or 6 with seconds) of when the window opens.'),
    duration: duration('How long the window stays open after each cron match.'),
    min: z.int().min(0).describe('Minimum node count while the window is open.'),
    timezone: nonEmpty.describe('IANA timezone of the cron expression, e.g. Europe/Berlin.').default('UTC'),
  })
  .describe('A time window with a raised minimum. Where windows overlap, the last one listed wins.');

export const ScalingSchema = z
  .strictObject({
    min: z.int().min(0).describe('Nodes kept at all times.').default(0),
    max: z.int().min(0).max(10_000).describe('Nodes at most; the final clamp of every decision.').default(100),
    spare: z.int().min(0).describe('Idle nodes kept on top of demand.').default(0),
    maxStep: z.int().min(1).describe('Nodes added per cycle at most.').default(20),
    scaleDownAfter: duration('Demand must stay lower this long before nodes go.').default('10m'),
    minLifetime: duration('A node is not removed before it is this old.').default('2m'),
    bootTimeout: duration('A node whose runner has not come online by then is replaced.').default('10m'),
    predict: z.boolean().describe('Pre-warm from load history; false sizes on current demand alone.').default(true),
    disruptionBudget: z.int().min(1).describe('Nodes drained or destroyed per cycle at most; default no limit beyond demand.').optional(),
    rollout: z
      .strictObject({
        maxUnavailable: z
          .union([z.int().min(1), z.string().regex(/^(100|[1-9][0-9]?)%$/, { error: 'a count (1, 2, …) or a percentage from 1% to 100%' })])
          .describe('Outdated nodes (machine, image, disk, OS, runner settings or bootstrap changed in the policy) drained at once at most: a count or a percentage of the pool (rounded up). The disruption budget still caps all drains.')
          .default(1),
      })
      .describe('How nodes whose spec differs from the policy are replaced.')
      .prefault({}),
    maxLifetime: duration('Nodes older than this are drained and replaced like outdated ones (off when omitted).').optional(),
    schedules: z.array(ScheduleSchema).describe('Windows with a raised minimum.').default([]),
    prewarm: z
      .strictObject({
        schedules: z.boolean().describe('GitLab: before a pipeline schedule of the watched projects is due, raise the pool to the nodes its previous runs needed here (with `predict` on).').default(true),
        lead: duration('How long before the scheduled time the nodes are created; default: twice the pool\'s boot time (the median boot of its nodes, 90s before any booted), at least 5m.').optional(),
        grace: duration('How long after the scheduled time the pre-warm stays when the scheduled jobs have not shown up (a schedule that did not run does not keep nodes).').default('10m'),
      })
      .describe('Pre-warming before scheduled pipelines.')
      .prefault({}),
    standby: z
      .union([z.int({ error: 'must be a count of stopped nodes (0, 1, 2, …) or `auto`' }).min(0).max(1000), z.literal('auto', { error: 'must be a count of stopped nodes (0, 1, 2, …) or `auto`' })], { error: 'must be a count of stopped nodes (0, 1, 2, …) or `auto`' })
      .describe('Stopped VMs kept ready to start (faster than a fresh boot, caches kept; they cost only their disk while stopped): a count, or `auto` to size it from the load history (the burst expected within one boot at this time of day; zero in quiet periods). Scale-up starts them first; scale-down stops idle nodes while standby is under its target. On top of `max`. Not with AWS spot (AWS cannot stop one-time spot instances).')
      .default(0),
  })
  .describe('How the pool scales.');

export const PoolSchema = z
  .strictObject({
    emitter: nonEmpty.describe('Name of the emitter whose jobs this pool runs.'),
    platform: nonEmpty.describe('Name of the platform the pool\'s VMs run on.'),
    labels: z.array(label).describe('Runner labels/tags; a job goes to a pool whose labels include all of the job\'s.').default([]),
    acceptUntagged: z.boolean().describe('GitLab: also take jobs without tags.').default(false),
    machine: MachineSchema.prefault({}),
    runner: RunnerSchema.prefault({}),
    scaling: ScalingSchema.prefault({}),
    failover: z
      .array(
        z.union([
          nonEmpty.describe('A platform name.'),
          z.strictObject({ platform: nonEmpty.describe('A platform name.'), machine: MachineOverrideSchema.describe('Machine settings that differ on this platform (merged over the pool\'s `machine`): another cloud needs its own type and image.').optional() }),
        ]),
      )
      .describe('Platforms the pool moves to, in order, when its platform fails (`failoverAfter` consecutive Terraform or cloud API errors) or is marked `evacuate: true`: new nodes go to the first healthy one, nodes on the failing platform drain and go once the new ones serve, and the pool moves back the same way when its platform is healthy again. Each platform has its own stack, `<pool>@<platform>`.')
      .optional(),
    failoverAfter: z.int().min(1).max(100).describe('Consecutive failed Terraform runs (init, state, plan, apply) on a platform after which the pool fails over.').default(3),
    failbackAfter: duration('After a platform failed, how long before new nodes are tried there again (and, if that works, the pool moves back).').default('10m'),
  })
  .describe('A pool of identical runner nodes.');

/** The currency `hourlyCost` and budgets are in, as reports and plan comments show it. */
export const CURRENCY = /^(?:[A-Z]{3}|[$€£¥₹₩₽₺₪฿₫₱])$/;

export const BudgetSchema = z
  .strictObject({
    pools: z
      .union([z.literal('all'), z.array(nonEmpty).min(1, { error: 'names at least one pool (or write `all`)' })], { error: 'must be a list of pool names, or `all`' })
      .describe('The pools whose nodes this budget pays for: a list of pool names, or `all`. Each needs `machine.hourlyCost`. A pool may be in several budgets: the tightest wins.'),
    maxPerHour: z.number().positive().describe('What the pools\' nodes may cost per hour at most, all together (running nodes at `hourlyCost`, standby at `stoppedHourlyCost`): a pool adds nodes only while the budget allows.').optional(),
    maxPerMonth: z
      .number()
      .positive()
      .describe('What the pools may spend in a UTC calendar month: nodes are capped at the even rate that keeps the month within it, (maxPerMonth − spent so far) ÷ hours left. While the month\'s spend is unknown (the history began, or was lost, after the first hour of the month) maxPerMonth ÷ 730 per hour applies until the next month begins.')
      .optional(),
  })
  .describe('A cost budget: a ceiling on what some pools\' nodes may cost. A hard ceiling (below `min` and schedules too) that stops growth: nodes over it drain only when idle, never busy.');

export const PolicyFileSchema = z
  .strictObject({
    emitters: z.record(z.string(), EmitterSchema).describe('CI platforms to watch, by name.').optional(),
    platforms: z.record(z.string(), PlatformSchema).describe('Where VMs run, by name.').optional(),
    pools: z.record(z.string(), PoolSchema).describe('Runner pools, by name (`[a-z0-9-]`, at most 40 characters).').optional(),
    budgets: z.record(z.string(), BudgetSchema).describe('Cost budgets, by name: ceilings on what pools\' nodes may cost per hour or per month.').optional(),
    currency: z
      .string()
      .regex(CURRENCY, { error: 'must be a currency symbol such as $, €, £ or ¥, or a three-letter code such as USD, EUR or CHF' })
      .describe('The currency of `hourlyCost`, `stoppedHourlyCost` and budgets, as reports and plan comments show it (a symbol before the amount, a code after it). Omitted: plain numbers. At most one value across files.')
      .optional(),
  })
  .describe('A Parmanu policy file (v1). Every *.yaml under policies/ is loaded; names are unique across files.');

export type EmitterInput = z.output<typeof EmitterSchema>;
export type PlatformInput = z.output<typeof PlatformSchema>;
export type PoolInput = z.output<typeof PoolSchema>;
export type BackendInput = z.output<typeof BackendSchema>;
export type BudgetInput = z.output<typeof BudgetSchema>;

/** The JSON Schema of a policy file, for editors (`# yaml-language-server: $schema=…`). */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(PolicyFileSchema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
  return { ...schema, $id: 'https://parmanu.dev/schema/policy-v1.json', title: 'Parmanu policy (v1)' };
}
