import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { reportCharts, reportData, scriptJson, writeReport } from '../src/report/index.ts';
import { syntheticRun } from './helpers/report-store.ts';
import { tempDir } from './helpers/tmp.ts';

const dir = tempDir();
const CHROMIUM = '/usr/bin/chromium';

/** Pixels of a PNG and how many distinct colours and non-white pixels it has. */
async function inspectPng(bytes: Buffer) {
  const img = await loadImage(bytes);
  const canvas = createCanvas(img.width, img.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, img.width, img.height).data;
  const colours = new Set<number>();
  let ink = 0;
  for (let i = 0; i < px.length; i += 4) {
    colours.add((px[i]! << 16) | (px[i + 1]! << 8) | px[i + 2]!);
    if (px[i]! < 240 || px[i + 1]! < 240 || px[i + 2]! < 240) ink++;
  }
  return { width: img.width, height: img.height, colours: colours.size, inkShare: ink / (px.length / 4) };
}

test('every chart of a hybrid multi-objective run renders to a PNG that decodes and is not blank', async () => {
  const { store, run } = syntheticRun(dir, { multi: true, dfs: true });
  const r = writeReport(store, run, join(dir, 'png'), { formats: ['png'] });
  store.close();
  assert.deepEqual(r.charts, ['fitness', 'evaluators', 'parameters', 'dfs-path', 'lineage', 'pareto', 'timing']);
  assert.equal(r.pngs.length, 7);
  assert.equal(r.html, null);
  for (const file of r.pngs) {
    const info = await inspectPng(readFileSync(file));
    assert.equal(info.width, 1000, file);
    assert.ok(info.colours > 20, `${file}: only ${info.colours} colours`);
    assert.ok(info.inkShare > 0.01 && info.inkShare < 0.9, `${file}: ${(info.inkShare * 100).toFixed(1)}% drawn pixels`);
  }
});

test('JSON embedded in the page cannot close its script element', () => {
  const text = scriptJson({ title: '</script><script>alert(1)</script>', c: '<!--' });
  assert.ok(!text.includes('<'));
  assert.deepEqual(JSON.parse(text), { title: '</script><script>alert(1)</script>', c: '<!--' });
});

test('the HTML report opens offline in headless Chromium with every chart drawn and a screenshot that is not blank', async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: this test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it)`);
  const { store, run } = syntheticRun(dir, { multi: true, dfs: true });
  const charts = reportCharts(reportData(store, run));
  const r = writeReport(store, run, join(dir, 'html'), { formats: ['html'] });
  store.close();
  const html = readFileSync(r.html!, 'utf8');
  assert.ok(!/<script[^>]*\ssrc=/i.test(html) && !/<link[^>]*stylesheet/i.test(html), 'nothing is loaded from elsewhere');
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${join(dir, 'chromium-profile')}`];
  const url = pathToFileURL(r.html!).href;
  const dom = spawnSync(CHROMIUM, [...flags, '--dump-dom', url], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(dom.status, 0, dom.stderr);
  const drawn = /data-charts-drawn="(\d+)"/.exec(dom.stdout);
  const total = /data-charts-total="(\d+)"/.exec(dom.stdout);
  assert.ok(drawn && total, `the page's script did not run: ${dom.stdout.slice(0, 300)}`);
  assert.equal(Number(total[1]), charts.length);
  assert.equal(Number(drawn[1]), charts.length, `charts with drawn pixels: ${drawn[1]} of ${charts.length}; errors: ${[...dom.stdout.matchAll(/data-error="([^"]*)"/g)].map((m) => m[1]).join('; ')}`);
  for (const c of charts) assert.match(dom.stdout, new RegExp(`id="chart-${c.id}"[^>]*data-ink-pixels="[1-9]`), `canvas of chart ${c.id} has drawn pixels`);

  const shot = join(dir, 'shot.png');
  const s = spawnSync(CHROMIUM, [...flags, '--hide-scrollbars', '--window-size=1100,1400', `--screenshot=${shot}`, url], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(s.status, 0, s.stderr);
  const info = await inspectPng(readFileSync(shot));
  assert.ok(info.colours > 50 && info.inkShare > 0.02, `screenshot looks blank: ${info.colours} colours, ${(info.inkShare * 100).toFixed(1)}% drawn`);
});
