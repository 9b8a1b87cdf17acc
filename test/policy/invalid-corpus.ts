/**
 * The bad-input corpus for policies: each case is a whole policy file, the line:col the first
 * problem must point at, and what its message must say. Shared by the unit tests and (later) the
 * proof suite.
 */
export interface InvalidCase {
  name: string;
  yaml: string | Buffer;
  /** `line:col` of the expected problem, or `line` alone. */
  at: string;
  message: RegExp;
  /** The problem must carry this dotted path. */
  path?: string;
}

const E = `emitters:
  gl:
    type: gitlab
    url: https://gitlab.example.com
    token: \${env:GITLAB_TOKEN}
    projects: [a/b]
    runnerOwner: { group: a }
platforms:
  lab: { type: local }
`;
// Lines 1-9 above; a pool block starts at line 10.
const EX = `emitters:
  gl: { type: gitlab, url: https://gitlab.example.com, token: "\${env:GITLAB_TOKEN}", projects: [a/b], runnerOwner: { group: a } }
  gh: { type: github, owner: acme, token: "\${env:GITHUB_TOKEN}" }
  jk: { type: jenkins, url: https://j.example.com, user: bob, token: "\${env:JENKINS_TOKEN}" }
platforms:
  aws: { type: aws, region: us-east-1, backend: { type: s3, bucket: b, key: parmanu, region: us-east-1 } }
  gcp: { type: gcp, project: p, region: europe-west1, zone: europe-west1-b, backend: { type: gcs, bucket: b, prefix: parmanu } }
pools:
  p:
`;
const pool = (body: string) => `${E}pools:\n  p:\n    emitter: gl\n    platform: lab\n${body}`;

export const INVALID_CASES: InvalidCase[] = [
  // ---- YAML and file level
  { name: 'yaml syntax: unclosed flow mapping', yaml: 'pools:\n  p: { emitter: gl\n', at: '3', message: /YAML syntax/ },
  { name: 'tab indentation', yaml: 'pools:\n\tp:\n    emitter: gl\n', at: '2:1', message: /Tabs are not allowed.*indent with spaces/ },
  { name: 'duplicate key', yaml: pool('    emitter: other\n'), at: '14:5', message: /duplicate key "emitter"/ },
  { name: 'empty file', yaml: '', at: '1:1', message: /empty policy file/ },
  { name: 'only comments', yaml: '# nothing here\n\n# really\n', at: '1:1', message: /empty policy file/ },
  { name: 'binary content', yaml: Buffer.from([0x70, 0x6f, 0x6f, 0x6c, 0x73, 0x3a, 0x00, 0x01, 0x02]), at: '1:1', message: /binary content/ },
  { name: 'invalid utf-8', yaml: Buffer.from([0x70, 0x3a, 0x20, 0xff, 0xfe, 0x0a]), at: '1:1', message: /not valid UTF-8/ },
  { name: 'over 1 MiB', yaml: '# ' + 'x'.repeat(1024 * 1024 + 10) + '\npools: {}\n', at: '1:1', message: /at most 1048576 bytes/ },
  {
    name: 'alias bomb',
    yaml: 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [' + Array(10).fill('*a').join(', ') + ']\nc: &c [' + Array(10).fill('*b').join(', ') + ']\nd: [' + Array(100).fill('*c').join(', ') + ']\n',
    at: '4',
    message: /more than 100 YAML aliases/,
  },
  { name: 'top level is a list', yaml: '- pools\n- emitters\n', at: '1:1', message: /a policy file is a mapping/ },
  { name: 'top level is a scalar', yaml: 'hello\n', at: '1:1', message: /a policy file is a mapping/ },
  { name: 'unknown top-level key with suggestion', yaml: `${E}pool:\n  p: {}\n`, at: '10:1', message: /unknown key; did you mean "pools"\?/, path: 'pool' },
  { name: 'section is a list', yaml: 'pools:\n  - emitter: gl\n', at: '2:3', message: /must be a mapping of names to pool settings/, path: 'pools' },

  // ---- emitters
  { name: 'emitter type misspelled', yaml: 'emitters:\n  x:\n    type: gitlub\n', at: '3:11', message: /must be one of gitlab \| github \| jenkins \| replay.*did you mean "gitlab"/, path: 'emitters.x.type' },
  { name: 'emitter type missing', yaml: 'emitters:\n  x:\n    url: https://a.b\n', at: '2:3', message: /is required: one of gitlab/, path: 'emitters.x.type' },
  { name: 'gitlab url missing', yaml: 'emitters:\n  x:\n    type: gitlab\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '2:3', message: /is required/, path: 'emitters.x.url' },
  { name: 'gitlab url not a url', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: gitlab.example.com\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must be an http\(s\) URL/ },
  { name: 'gitlab without projects or groups', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://g.example.com\n    token: ${env:T}\n    runnerOwner: instance\n', at: '2:3', message: /needs `projects` or `groups`/ },
  { name: 'gitlab runnerOwner wrong form', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://g.example.com\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: { grup: a }\n', at: '7:18', message: /invalid value: Where node runners are created/ },
  { name: 'literal GitLab token', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://g.example.com\n    token: gl' + 'pat-AbCdEfGhIjKlMnOpQrSt\n    projects: [a]\n    runnerOwner: instance\n', at: '5:12', message: /looks like a GitLab personal access token/, path: 'emitters.x.token' },
  { name: 'literal GitLab runner token anywhere', yaml: 'emitters:\n  x:\n    type: replay\n    trace: glrt-AbCdEfGhIjKlMnOpQrSt\n', at: '4:12', message: /GitLab runner token/ },
  { name: 'literal GitHub token', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: gh' + 'p_abcdefghijklmnopqrstuvwxyz0123456789\n', at: '5:12', message: /GitHub personal access token/ },
  { name: 'literal GitHub fine-grained token', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: github' + '_pat_11ABCDEFG0123456789_abcdefghijklmnop\n', at: '5:12', message: /fine-grained token/ },
  { name: 'literal GitHub app token', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: ghs_abcdefghijklmnopqrstuvwxyz0123456789\n', at: '5:12', message: /GitHub app or OAuth token/ },
  { name: 'literal AWS key in any field', yaml: 'platforms:\n  a:\n    type: aws\n    region: AKIAABCDEFGHIJKLMNOP\n', at: '4:13', message: /AWS access key id/ },
  { name: 'token not a reference', yaml: 'emitters:\n  x:\n    type: jenkins\n    url: https://j.example.com\n    user: bob\n    token: hunter2\n', at: '6:12', message: /must be a \$\{env:NAME\} or \$\{file:path\} reference/ },
  { name: 'github without credentials', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n', at: '2:3', message: /needs `token` or `app`/ },
  { name: 'github token and app', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: ${env:T}\n    app: { appId: 1, installationId: 2, privateKey: "${file:k.pem}" }\n', at: '6:10', message: /not both/ },
  { name: 'jenkins token missing', yaml: 'emitters:\n  x:\n    type: jenkins\n    url: https://j.example.com\n    user: bob\n', at: '2:3', message: /is required/, path: 'emitters.x.token' },
  { name: 'replay without trace', yaml: 'emitters:\n  x:\n    type: replay\n', at: '2:3', message: /is required/, path: 'emitters.x.trace' },
  { name: 'emitter unknown key', yaml: 'emitters:\n  x:\n    type: replay\n    trace: t.csv\n    probeIntervall: 30s\n', at: '5:5', message: /unknown key; did you mean "probeInterval"/ },
  { name: 'bad probe interval', yaml: 'emitters:\n  x:\n    type: replay\n    trace: t.csv\n    probeInterval: 30\n', at: '5:20', message: /must be a string/ },

  // ---- shell syntax where it does not belong (issue 13)
  { name: 'url with a command substitution', yaml: 'emitters:\n  x:\n    type: jenkins\n    url: https://j.example.com/$(reboot)\n    user: bob\n    token: ${env:T}\n', at: '4:10', message: /must not contain "\$": quotes, \$, backticks/, path: 'emitters.x.url' },
  { name: 'url with backticks', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: "https://g.example.com/`id`"\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must not contain "`"/ },
  { name: 'url with a quote', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: "https://g.example.com/\'x"\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must not contain "'"/ },
  { name: 'url with whitespace', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: "https://g.example.com/a b"\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must not contain whitespace/ },
  { name: 'url with userinfo', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://root:pw@g.example.com\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must not carry a user name or password/ },
  { name: 'url of another scheme', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: ftp://g.example.com\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /must be an http\(s\) URL/ },
  { name: 'url with a query', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://g.example.com/?x=1\n    token: ${env:T}\n    projects: [a]\n    runnerOwner: instance\n', at: '4:10', message: /without a query/ },
  { name: 'github apiUrl with a semicolon', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: ${env:T}\n    apiUrl: "https://ghe.example.com/api/v3;id"\n', at: '6:13', message: /must not contain ";"/, path: 'emitters.x.apiUrl' },
  { name: 'control character in any string', yaml: 'emitters:\n  x:\n    type: replay\n    trace: "t\\e[31m.csv"\n', at: '4:12', message: /contains a control character \(U\+001B\)/, path: 'emitters.x.trace' },
  { name: 'github owner with a slash', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme/evil\n    token: ${env:T}\n', at: '4:12', message: /must be a GitHub user or organization name/ },
  { name: 'github repo with a shell metacharacter', yaml: 'emitters:\n  x:\n    type: github\n    owner: acme\n    token: ${env:T}\n    repos: ["api;rm"]\n', at: '6:13', message: /must be a GitHub repository name/, path: 'emitters.x.repos.0' },
  { name: 'gitlab project path with a space', yaml: 'emitters:\n  x:\n    type: gitlab\n    url: https://g.example.com\n    token: ${env:T}\n    projects: ["a/b c"]\n    runnerOwner: instance\n', at: '6:16', message: /must be a numeric id or a full path/ },
  { name: 'jenkins literal user with a backtick', yaml: 'emitters:\n  x:\n    type: jenkins\n    url: https://j.example.com\n    user: "bob`id`"\n    token: ${env:T}\n', at: '5:11', message: /a literal user name has no whitespace/ },
  { name: 'runner version not a version', yaml: pool('    runner: { version: "17.5.0; curl evil|sh" }\n'), at: '14:24', message: /must be a version such as 17\.5\.0 or v2\.321\.0/, path: 'pools.p.runner.version' },
  { name: 'runner version a word', yaml: pool('    runner: { version: newest }\n'), at: '14:24', message: /must be a version/ },
  { name: 'runner version without a patch part', yaml: pool('    runner: { version: "17.5" }\n'), at: '14:24', message: /must be a version such as 17\.5\.0 or v2\.321\.0 \(all three parts x\.y\.z/, path: 'pools.p.runner.version' },
  { name: 'runner version v-prefixed without a patch part', yaml: pool('    runner: { version: v2.321 }\n'), at: '14:24', message: /all three parts x\.y\.z/ },
  { name: 'runner version with four parts', yaml: pool('    runner: { version: 17.5.0.1 }\n'), at: '14:24', message: /all three parts x\.y\.z/ },
  { name: 'runner version a bare major', yaml: pool('    runner: { version: "17" }\n'), at: '14:24', message: /must be a version/ },
  { name: 'label with a command substitution', yaml: pool('    labels: [linux, "$(id)"]\n'), at: '14:21', message: /a label has no "\$": shell metacharacters/, path: 'pools.p.labels.1' },
  { name: 'label with a comma', yaml: pool('    labels: ["a,b"]\n'), at: '14:14', message: /a label has no commas/ },
  { name: 'label with a tab', yaml: pool('    labels: ["a\\tb"]\n'), at: '14:14', message: /a label has no (spaces|control characters)/ },
  { name: 'label over 255 characters', yaml: pool(`    labels: [${'a'.repeat(256)}]\n`), at: '14:14', message: /is too long \(at most 255 characters\)/ },
  { name: 'more than 50 gitlab tags', yaml: pool(`    labels: [${Array.from({ length: 51 }, (_, i) => `t${i}`).join(', ')}]\n`), at: '14:13', message: /51 labels; gitlab takes at most 50 per runner/ },
  {
    name: 'jenkins label with label-expression syntax',
    yaml: 'emitters:\n  j:\n    type: jenkins\n    url: https://j.example.com\n    user: bob\n    token: ${env:T}\nplatforms:\n  lab: { type: local }\npools:\n  p:\n    emitter: j\n    platform: lab\n    labels: [linux, "gpu!"]\n',
    at: '13:21',
    message: /a jenkins label has no "!"/,
    path: 'pools.p.labels.1',
  },

  // ---- platforms
  { name: 'platform type unknown', yaml: 'platforms:\n  x:\n    type: azure\n', at: '3:11', message: /must be one of aws \| gcp \| local/ },
  { name: 'aws region missing', yaml: 'platforms:\n  x:\n    type: aws\n', at: '2:3', message: /is required/, path: 'platforms.x.region' },
  { name: 'gcp zone missing', yaml: 'platforms:\n  x: { type: gcp, project: p, region: europe-west1 }\n', at: '2:3', message: /is required/, path: 'platforms.x.zone' },
  { name: 'bad role arn', yaml: 'platforms:\n  x:\n    type: aws\n    region: us-east-1\n    credentials: { roleArn: "arn:aws:iam::12:role/x" }\n', at: '5:29', message: /must be an IAM role ARN/ },
  { name: 'backend type unknown', yaml: 'platforms:\n  x:\n    type: local\n    backend: { type: consul }\n', at: '4:22', message: /must be one of local \| s3 \| gcs/ },

  // ---- pools
  { name: 'pool name with uppercase', yaml: `${E}pools:\n  Linux_Pool:\n    emitter: gl\n    platform: lab\n`, at: '11:3', message: /pool name must be lowercase/ },
  { name: 'pool name too long', yaml: `${E}pools:\n  ${'a'.repeat(41)}:\n    emitter: gl\n    platform: lab\n`, at: '11:3', message: /at most 40 characters/ },
  { name: 'pool references missing emitter', yaml: `${E}pools:\n  p:\n    emitter: gl2\n    platform: lab\n`, at: '12:14', message: /no emitter named "gl2"; did you mean "gl"/, path: 'pools.p.emitter' },
  { name: 'pool references missing platform', yaml: `${E}pools:\n  p:\n    emitter: gl\n    platform: cloud\n`, at: '13:15', message: /no platform named "cloud" \(defined: lab\)/ },
  { name: 'pool emitter missing', yaml: `${E}pools:\n  p:\n    platform: lab\n`, at: '11:3', message: /is required/, path: 'pools.p.emitter' },
  { name: 'min greater than max', yaml: pool('    scaling: { min: 5, max: 3 }\n'), at: '14:21', message: /min \(5\) is greater than max \(3\)/ },
  { name: 'spare greater than max', yaml: pool('    scaling: { spare: 9, max: 3 }\n'), at: '14:23', message: /spare \(9\) is greater than max \(3\)/ },
  { name: 'negative min', yaml: pool('    scaling: { min: -1 }\n'), at: '14:21', message: /must be at least 0, not -1/ },
  { name: 'fractional max', yaml: pool('    scaling: { max: 2.5 }\n'), at: '14:21', message: /must be a whole number|expected int/ },
  { name: 'max as string', yaml: pool('    scaling: { max: lots }\n'), at: '14:21', message: /must be a number, not the string "lots"/ },
  { name: 'unknown scaling key', yaml: pool('    scaling: { mni: 1 }\n'), at: '14:16', message: /unknown key; did you mean "min"/, path: 'pools.p.scaling.mni' },
  { name: 'bad duration', yaml: pool('    scaling: { scaleDownAfter: 10 minutes }\n'), at: '14:32', message: /must be a duration such as 30s/ },
  { name: 'boot timeout too short', yaml: pool('    scaling: { bootTimeout: 5s }\n'), at: '14:29', message: /is under 30s/ },
  { name: 'cron with 4 fields', yaml: pool('    scaling:\n      schedules:\n        - { cron: "0 7 * *", duration: 1h, min: 1 }\n'), at: '16:19', message: /has 4 fields/ },
  { name: 'cron out of range', yaml: pool('    scaling:\n      schedules:\n        - { cron: "0 77 * * *", duration: 1h, min: 1 }\n'), at: '16:19', message: /invalid cron expression "0 77 \* \* \*"/ },
  { name: 'unknown timezone', yaml: pool('    scaling:\n      schedules:\n        - { cron: "0 7 * * 1-5", duration: 1h, min: 1, timezone: Europe/Berln }\n'), at: '16:66', message: /"Europe\/Berln" is not an IANA timezone/ },
  { name: 'schedule min over max', yaml: pool('    scaling:\n      max: 2\n      schedules:\n        - { cron: "0 7 * * *", duration: 1h, min: 5 }\n'), at: '17:51', message: /schedule min \(5\) is greater than the pool's max \(2\)/ },
  { name: 'schedule without duration', yaml: pool('    scaling:\n      schedules:\n        - { cron: "0 7 * * *", min: 5 }\n'), at: '16:11', message: /is required/, path: 'pools.p.scaling.schedules.0.duration' },
  { name: 'machine os unknown', yaml: pool('    machine: { os: macos }\n'), at: '14:20', message: /must be one of linux \| windows.*not the string "macos"/ },
  { name: 'jobsPerNode zero', yaml: pool('    runner: { jobsPerNode: 0 }\n'), at: '14:28', message: /must be at least 1, not 0/ },
  { name: 'labels not a list', yaml: pool('    labels: linux\n'), at: '14:13', message: /must be a list, not the string "linux"/ },
  { name: 'label with a space', yaml: pool('    labels: [linux, "big box"]\n'), at: '14:21', message: /a label has no spaces/ },
  {
    name: 'aws pool without machine type and image',
    yaml: 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  aws: { type: aws, region: us-east-1 }\npools:\n  p:\n    emitter: r\n    platform: aws\n    machine: { diskGb: 50 }\n',
    at: '9:14',
    message: /machine.type is required on aws platform "aws"/,
  },
  {
    name: 'gcp pool without image',
    yaml: 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  g: { type: gcp, project: p, region: r, zone: z }\npools:\n  p:\n    emitter: r\n    platform: g\n    machine: { type: e2-standard-4 }\n',
    at: '9:14',
    message: /machine.image is required on gcp platform "g"/,
  },
  {
    name: 'gcp pool name starting with a digit',
    yaml: 'emitters:\n  r: { type: replay, trace: t.csv }\nplatforms:\n  g: { type: gcp, project: p, region: r, zone: z }\npools:\n  1st-pool:\n    emitter: r\n    platform: g\n    machine: { type: e2-small, image: img }\n',
    at: '6:3',
    message: /on gcp a pool name must start with a letter/,
  },

  // ---- runner.hooks, runner.config, machine.tags (lines 1-9 of EX; emitter line 10, platform 11, machine 12, the case's lines from 13)
  { name: 'hook file missing', yaml: xpool('gl', 'aws', '    runner: { hooks: { before: scripts/missing.sh } }\n'), at: '13:32', message: /scripts\/missing\.sh: no such file \(paths are relative to the policy file\)/, path: 'pools.p.runner.hooks.before' },
  { name: 'hook path absolute', yaml: xpool('gl', 'aws', '    runner: { hooks: { after: /etc/passwd } }\n'), at: '13:31', message: /must be a path relative to the policy file/ },
  // The corpus file's directory has no .git above it (a temporary directory): it is the repository.
  { name: 'hook path leading out through ..', yaml: xpool('gl', 'aws', '    runner: { hooks: { before: ../../../root/.aws/credentials } }\n'), at: '13:32', message: /\.\.\/\.\.\/\.\.\/root\/\.aws\/credentials leads outside the policy's repository: a hook is a file of the repository the policy is in/, path: 'pools.p.runner.hooks.before' },
  { name: 'hook path leading to a file of the machine', yaml: xpool('gl', 'aws', `    runner: { hooks: { after: ${'../'.repeat(16)}etc/passwd } }\n`), at: '13:31', message: /etc\/passwd leads outside the policy's repository/, path: 'pools.p.runner.hooks.after' },
  { name: 'gitlab config with its own [[runners]]', yaml: xpool('gl', 'aws', '    runner:\n      config: |\n        [[runners]]\n        privileged = true\n'), at: '14:15', message: /line 1: has a \[\[runners\]\] header of its own/, path: 'pools.p.runner.config' },
  { name: 'gitlab config with a top-level table', yaml: xpool('gl', 'aws', '    runner:\n      config: |\n        [runners.docker]\n          privileged = true\n        [session_server]\n'), at: '14:15', message: /line 3: table \[session_server\] is outside the runner's section/ },
  { name: 'gitlab config not a string', yaml: xpool('gl', 'aws', '    runner: { config: [-Xmx2g] }\n'), at: '13:23', message: /on a gitlab pool runner\.config is a config\.toml fragment/ },
  { name: 'github env name lowercase', yaml: xpool('gh', 'aws', '    runner:\n      config:\n        http_proxy: http://proxy:3128\n'), at: '15:9', message: /environment variable name is uppercase/, path: 'pools.p.runner.config.http_proxy' },
  { name: 'github env sets the runner input', yaml: xpool('gh', 'aws', '    runner:\n      config:\n        ACTIONS_RUNNER_INPUT_JITCONFIG: x\n'), at: '15:9', message: /ACTIONS_RUNNER_INPUT_\* variables carry the runner's credential/ },
  { name: 'github env value with a newline', yaml: xpool('gh', 'aws', '    runner:\n      config:\n        EXTRA: "a\\nB=1"\n'), at: '15:16', message: /a value is one line without tabs/ },
  { name: 'github config a list', yaml: xpool('gh', 'aws', '    runner: { config: [A] }\n'), at: '13:23', message: /on a github pool runner\.config is a mapping of environment variables/ },
  { name: 'jenkins jvm option with a command substitution', yaml: xpool('jk', 'aws', '    runner: { config: [-Xmx2g, "-Dx=$(pwned)"] }\n'), at: '13:32', message: /a JVM option starts with "-" and has only/, path: 'pools.p.runner.config.1' },
  { name: 'jenkins jvm option with a space', yaml: xpool('jk', 'aws', '    runner: { config: ["-Dx=a b"] }\n'), at: '13:24', message: /no whitespace/ },
  { name: 'jenkins jvm option -jar', yaml: xpool('jk', 'aws', '    runner: { config: [-jar, evil.jar] }\n'), at: '13:24', message: /-jar would change what the agent runs/ },
  { name: 'jenkins config a string', yaml: xpool('jk', 'aws', '    runner: { config: "-Xmx2g" }\n'), at: '13:23', message: /on a jenkins pool runner\.config is a list of JVM options/ },
  { name: 'aws tag overriding parmanu:pool', yaml: xpool('gl', 'aws', '    machine: { type: t, image: i, tags: { "parmanu:pool": other } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:43', message: /parmanu:\* and parmanu-\* keys are Parmanu's own/, path: 'pools.p.machine.tags.parmanu:pool' },
  { name: 'aws tag with the aws: prefix', yaml: xpool('gl', 'aws', '    machine: { type: t, image: i, tags: { "aws:team": x } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:43', message: /the aws: prefix is reserved for AWS/ },
  { name: 'aws Name tag', yaml: xpool('gl', 'aws', '    machine: { type: t, image: i, tags: { Name: x } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:43', message: /the Name tag is Parmanu's own/ },
  { name: 'aws tag value with a quote', yaml: xpool('gl', 'aws', '    machine: { type: t, image: i, tags: { team: "a\'b" } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:49', message: /an AWS tag value is at most 256 letters/ },
  { name: 'gcp label key uppercase', yaml: xpool('gl', 'gcp', '    machine: { type: t, image: i, tags: { Team: ci } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:43', message: /a GCP label key starts with a lowercase letter/ },
  { name: 'gcp label value too long', yaml: xpool('gl', 'gcp', `    machine: { type: t, image: i, tags: { team: ${'a'.repeat(64)} } }\n`).replace('    machine: { type: t, image: i }\n', ''), at: '12:49', message: /a GCP label value has only lowercase letters.*at most 63/ },
  { name: 'gcp label overriding parmanu-node', yaml: xpool('gl', 'gcp', '    machine: { type: t, image: i, tags: { parmanu-node: x } }\n').replace('    machine: { type: t, image: i }\n', ''), at: '12:43', message: /parmanu:\* and parmanu-\* keys are Parmanu's own/ },

  // ---- cost budgets (pool p at lines 10-13, its body from 14, then `budgets:`)
  { name: 'budget over a pool without hourlyCost', yaml: `${pool('')}budgets:\n  team: { pools: [p], maxPerHour: 1 }\n`, at: '15:19', message: /pool "p" has no machine\.hourlyCost: a budget needs each pool's price per node-hour/, path: 'budgets.team.pools.0' },
  { name: 'budget of every pool, one without hourlyCost', yaml: `${pool('')}budgets:\n  all: { pools: all, maxPerMonth: 100 }\n`, at: '15:17', message: /covers every pool, and pool "p" has no machine\.hourlyCost/, path: 'budgets.all.pools' },
  { name: 'budget naming a pool that does not exist', yaml: `${pool('    machine: { hourlyCost: 1 }\n')}budgets:\n  team: { pools: [q], maxPerHour: 1 }\n`, at: '16:19', message: /no pool named "q"/, path: 'budgets.team.pools.0' },
  { name: 'budget without a limit', yaml: `${pool('    machine: { hourlyCost: 1 }\n')}budgets:\n  team: { pools: [p] }\n`, at: '16:3', message: /a budget sets maxPerHour, maxPerMonth or both/, path: 'budgets.team' },
  { name: 'budget limit not positive', yaml: `${pool('    machine: { hourlyCost: 1 }\n')}budgets:\n  team: { pools: [p], maxPerMonth: 0 }\n`, at: '16:36', message: /must be greater than 0/, path: 'budgets.team.maxPerMonth' },
  { name: 'currency not a symbol or code', yaml: `currency: dollars\n${pool('')}`, at: '1:11', message: /must be a currency symbol such as \$, €, £ or ¥, or a three-letter code/, path: 'currency' },
];

function xpool(emitter: string, platform: string, body: string): string {
  return `${EX}    emitter: ${emitter}\n    platform: ${platform}\n    machine: { type: t, image: i }\n${body}`;
}
