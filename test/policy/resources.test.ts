import { describe, expect, it } from 'vitest';
import { gcpStatus, powerOfGcpStatus } from '../../src/policy/resources.js';

describe('power ↔ GCP status', () => {
  it.each([
    ['RUNNING', 'running'],
    ['TERMINATED', 'stopped'],
    ['SUSPENDED', 'stopped'],
    ['STOPPED', 'running'], // not a GCP status: never read as a stop
    // On the way somewhere: never read as a settled stop (a refresh mid-way must not make a running VM standby).
    ['PROVISIONING', 'running'],
    ['STAGING', 'running'],
    ['REPAIRING', 'running'],
    ['STOPPING', 'running'],
    ['SUSPENDING', 'running'],
  ])('%s reads as %s', (status, power) => {
    expect(powerOfGcpStatus(status)).toBe(power);
  });

  it('renders a power state as the status that settles there', () => {
    expect(gcpStatus('running')).toBe('RUNNING');
    expect(gcpStatus('stopped')).toBe('TERMINATED');
    expect(powerOfGcpStatus(gcpStatus('stopped'))).toBe('stopped');
  });
});
