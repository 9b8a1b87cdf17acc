/**
 * Runs after every test in every file (vitest `setupFiles`): the secret scan over what the test
 * process wrote to the console or stdout/stderr, what tests captured (`capture`), and the request
 * bodies every serving emulator received. Credentials travel in headers only.
 */
import { afterEach } from 'vitest';
import { liveEmulators } from '../emulators/base.js';
import { capture, scanCaptured } from '../secret-scan.js';

for (const method of ['log', 'info', 'warn', 'error', 'debug'] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    capture(`console.${method}`, args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a) ?? String(a))).join(' '));
    original(...args);
  };
}
for (const stream of [process.stdout, process.stderr]) {
  const original = stream.write.bind(stream) as (...a: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    capture(stream === process.stdout ? 'stdout' : 'stderr', typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return original(chunk, ...rest);
  }) as typeof stream.write;
}

afterEach(() => {
  for (const emu of liveEmulators) {
    for (const { request, body } of emu.takeBodies()) capture(`the body of ${request} (${emu.constructor.name})`, body);
    if (!emu.serving) liveEmulators.delete(emu);
  }
  scanCaptured();
});
