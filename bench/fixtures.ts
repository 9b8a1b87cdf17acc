/** Generated policies for benchmarks and tests. */
export function manyPoolsPolicy(pools: number): string {
  const lines = [
    'emitters:',
    '  gl:',
    '    type: gitlab',
    '    url: https://gitlab.example.com',
    '    token: ${env:GITLAB_TOKEN}',
    '    groups: [platform]',
    '    runnerOwner: { group: platform }',
    'platforms:',
    '  aws:',
    '    type: aws',
    '    region: us-east-1',
    '    backend: { type: s3, bucket: parmanu-bench, key: parmanu, region: us-east-1 }',
    'pools:',
  ];
  for (let i = 0; i < pools; i++) {
    lines.push(
      `  pool-${i}:`,
      '    emitter: gl',
      '    platform: aws',
      `    labels: [linux, docker, size-${i}]`,
      '    machine: { type: c6i.xlarge, image: ami-0123456789abcdef0, diskGb: 50, spot: true }',
      '    runner: { jobsPerNode: 2 }',
      '    scaling:',
      '      max: 20',
      '      spare: 1',
      '      schedules:',
      '        - { cron: "0 7 * * 1-5", duration: 11h, min: 2, timezone: Europe/Berlin }',
    );
  }
  return lines.join('\n') + '\n';
}
