/**
 * The report as a person sees it: rendered from a generated day of history, screenshotted in
 * headless Chromium (Debian's `chromium`; .ci/run installs it), and the PNG checked: the right
 * size, not blank, and the charts' colours really drawn. PARMANU_SCREENSHOT_DIR keeps the PNG
 * and HTML there, to look at.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { buildReport, reportHtml } from '../../src/gitops/report.js';
import { countNear, readPng, variety } from './png.js';
import { sampleFleet } from './report-day.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'parmanu-shot-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function chromium(): Promise<string> {
  for (const c of ['chromium', 'chromium-browser']) {
    try {
      await run('sh', ['-c', `command -v ${c}`]);
      return c;
    } catch {
      /* try the next */
    }
  }
  throw new Error('chromium is not installed (apt-get install -y chromium; .ci/run does it)');
}

async function screenshot(html: string, png: string, size = '1280,1600'): Promise<void> {
  const page = join(dir, 'report.html');
  writeFileSync(page, html);
  const profile = mkdtempSync(join(dir, 'profile-'));
  // Network off in every way Chromium offers: the page must render from the file alone.
  await run(await chromium(), ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, `--window-size=${size}`, `--screenshot=${png}`, `file://${page}`], { timeout: 90_000 });
  if (!existsSync(png)) throw new Error('chromium wrote no screenshot');
}

describe('the report in a browser', () => {
  it('renders a day with a morning ramp to a 1280×1600 screenshot that is not blank and shows both charts', async () => {
    const start = Date.parse('2026-11-27T00:00:00Z');
    const fleet = sampleFleet(start);
    const html = reportHtml(buildReport(fleet.pools, fleet.events, start, start + 86_400_000));
    const file = join(dir, 'report.png');
    await screenshot(html, file);
    const png = readPng(readFileSync(file));
    expect([png.width, png.height]).toEqual([1280, 1600]);
    const v = variety(png);
    expect(v.inked).toBeGreaterThan(0.05);
    expect(v.inked).toBeLessThan(0.6);
    expect(v.colours).toBeGreaterThan(50);
    // The charts, by their colours (fills blend with white at their opacity):
    expect(countNear(png, [159, 215, 159])).toBeGreaterThan(20_000); // running jobs (area)
    expect(countNear(png, [245, 171, 101])).toBeGreaterThan(300); // queued jobs (stacked area)
    expect(countNear(png, [31, 78, 156])).toBeGreaterThan(3_000); // nodes line and p50 bars
    expect(countNear(png, [182, 207, 245])).toBeGreaterThan(10_000); // p95 wait bars
    // Text at the top (title and summary): the first 200 rows are not empty.
    let top = 0;
    for (let i = 0; i < 1280 * 200 * 3; i += 3) if ((png.rgb[i] as number) < 128) top++;
    expect(top).toBeGreaterThan(2_000);
    if (process.env.PARMANU_SCREENSHOT_DIR) {
      copyFileSync(file, join(process.env.PARMANU_SCREENSHOT_DIR, 'report.png'));
      writeFileSync(join(process.env.PARMANU_SCREENSHOT_DIR, 'report.html'), html);
    }
  }, 120_000);
});
