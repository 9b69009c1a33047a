#!/usr/bin/env node
// Browser end-to-end test of the DamageLens web UI against a running gateway.
//
//   DAMAGELENS_E2E_IMAGE=/path/car.jpg [DAMAGELENS_E2E_URL=http://127.0.0.1:8000] npm run e2e
//
// Optional env: DAMAGELENS_E2E_TIMEOUT_S (job wait, default 240), DAMAGELENS_E2E_MODEL (fast|accurate),
// DAMAGELENS_E2E_CHROMIUM (default /usr/bin/chromium), DAMAGELENS_E2E_OUT (default frontend/test-results),
// DAMAGELENS_E2E_HEADFUL=1 to watch it, DAMAGELENS_E2E_INSPECTION_IMAGES (photos separated by the
// path delimiter) to also send several photos together and check the inspection's report button.
// Exit codes: 0 passed, 1 an assertion failed, 2 setup problem (no image, no browser, gateway down).
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = (process.env.DAMAGELENS_E2E_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const IMAGE = process.env.DAMAGELENS_E2E_IMAGE;
const TIMEOUT_MS = Number(process.env.DAMAGELENS_E2E_TIMEOUT_S || 240) * 1000;
const MODEL = process.env.DAMAGELENS_E2E_MODEL || '';
const CHROMIUM = process.env.DAMAGELENS_E2E_CHROMIUM || '/usr/bin/chromium';
const OUT = path.resolve(process.env.DAMAGELENS_E2E_OUT || path.join(here, '..', 'test-results'));
const STAGES = ['classify', 'explain', 'detect'];
const INSPECTION_IMAGES = (process.env.DAMAGELENS_E2E_INSPECTION_IMAGES || '').split(path.delimiter).filter(Boolean);
const OPTIONAL_STAGES = ['assess']; // checked (and its tab opened) when the job ran it

class SetupError extends Error {}
class CheckError extends Error {}

const t0 = Date.now();
const log = (msg) => console.log(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const check = (cond, msg) => {
  if (!cond) throw new CheckError(msg);
};

async function preflight() {
  if (!IMAGE) throw new SetupError('DAMAGELENS_E2E_IMAGE is not set: give the path of a car photo to upload');
  if (!fs.existsSync(IMAGE) || !fs.statSync(IMAGE).isFile()) throw new SetupError(`DAMAGELENS_E2E_IMAGE=${IMAGE} is not a readable file`);
  if (!fs.existsSync(CHROMIUM)) throw new SetupError(`No browser at ${CHROMIUM} (apt-get install -y chromium, or set DAMAGELENS_E2E_CHROMIUM)`);
  try {
    const res = await fetch(`${BASE}/healthz`, { signal: AbortSignal.timeout(10000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  } catch (e) {
    throw new SetupError(`Cannot reach the DamageLens gateway at ${BASE}/healthz (${e.message})`);
  }
  fs.mkdirSync(OUT, { recursive: true });
}

/** Statuses of the stage chips on the card, e.g. {classify: 'succeeded', ...} (null: the job has no such stage). */
const stageStatuses = (card) =>
  card.evaluate(
    (el, names) => Object.fromEntries(names.map((n) => [n, el.querySelector(`[data-stage="${n}"]`)?.getAttribute('data-status') ?? null])),
    [...STAGES, ...OPTIONAL_STAGES],
  );

const cardErrors = (card) => card.locator('.error-text').allInnerTexts().then((t) => t.join(' | '));

async function openTab(card, id) {
  const tab = card.locator(`[role="tab"][data-tab="${id}"]`);
  await tab.click();
  check((await tab.getAttribute('aria-selected')) === 'true', `tab ${id} did not become selected`);
  return card.locator(`[role="tabpanel"][data-panel="${id}"]`);
}

async function run(ctx) {
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') log(`browser console error: ${m.text()}`);
  });
  await page.setViewportSize({ width: 1280, height: 900 });

  log(`opening ${BASE}/`);
  const resp = await page.goto(`${BASE}/`, { waitUntil: 'domcontentloaded' });
  check(resp && resp.ok(), `GET ${BASE}/ answered ${resp?.status()} (is frontend/dist served by the gateway?)`);
  await page.getByRole('heading', { name: 'DamageLens', level: 1 }).waitFor({ timeout: 20000 });
  check((await page.getByTestId('gateway-banner').count()) === 0, 'the "Cannot reach the gateway" banner is shown on load');

  if (MODEL) {
    await page.locator(`input[name="model"][value="${MODEL}"]`).check({ timeout: 10000 });
    log(`model ${MODEL} selected`);
  }

  log(`uploading ${IMAGE}`);
  await page.locator('input[type="file"]').setInputFiles(IMAGE);
  const card = page.getByTestId('job-card').first();
  await card.waitFor({ timeout: 10000 });

  // Wait for the upload to be accepted (a job id) or rejected.
  const deadline = Date.now() + TIMEOUT_MS;
  let jobId = '';
  while (Date.now() < deadline) {
    const status = await card.getAttribute('data-job-status');
    if (status === 'rejected') throw new CheckError(`upload rejected: ${await cardErrors(card)}`);
    jobId = (await card.getAttribute('data-job-id')) || '';
    if (jobId) break;
    await page.waitForTimeout(200);
  }
  check(jobId, 'upload was never accepted (no job id)');
  log(`job ${jobId} submitted`);

  // Wait for the stages to finish (the three seed stages always; assess when the job has it).
  let last = '';
  let statuses = {};
  let waitFor = STAGES;
  for (;;) {
    statuses = await stageStatuses(card);
    waitFor = [...STAGES, ...OPTIONAL_STAGES.filter((s) => statuses[s])];
    const line = waitFor.map((s) => `${s}=${statuses[s] ?? '-'}`).join(' ');
    if (line !== last) log(`stages: ${line}  (job ${await card.getAttribute('data-job-status')})`);
    last = line;
    const failed = waitFor.filter((s) => statuses[s] === 'failed' || statuses[s] === 'canceled');
    if (failed.length) throw new CheckError(`stage(s) ${failed.join(', ')} ended ${failed.map((s) => statuses[s]).join('/')}: ${await cardErrors(card)}`);
    if (waitFor.every((s) => statuses[s] === 'succeeded')) break;
    if (Date.now() > deadline) throw new CheckError(`timed out after ${TIMEOUT_MS / 1000}s waiting for all stages to finish (${line}) ${await cardErrors(card)}`);
    await page.waitForTimeout(500);
  }
  await page.waitForFunction((id) => document.getElementById(`job-${id}`)?.getAttribute('data-job-status') === 'succeeded', jobId, { timeout: 15000 });
  const progress = await card.getByRole('progressbar').first().getAttribute('aria-valuenow');
  check(progress === '100', `overall progress bar shows ${progress}, expected 100`);

  // Prediction: top label and six probability bars.
  let panel = await openTab(card, 'prediction');
  const bars = await panel.getByTestId('prob-bar').count();
  check(bars === 6, `probability chart has ${bars} bars, expected 6`);
  const label = (await panel.getByTestId('prediction-label').innerText()).trim();
  check(label.length > 0, 'no predicted label shown');
  log(`prediction: ${label}, ${bars} bars`);
  await page.screenshot({ path: path.join(OUT, 'desktop-prediction.png'), fullPage: true });

  // Keyboard: ArrowRight moves to the next tab (ARIA tabs).
  await card.locator('[role="tab"][data-tab="prediction"]').focus();
  await page.keyboard.press('ArrowRight');
  check(
    (await card.locator('[role="tab"][data-tab="gradcam"]').getAttribute('aria-selected')) === 'true',
    'ArrowRight on the Prediction tab did not select the Grad-CAM tab',
  );

  // Grad-CAM: overlay image actually loaded.
  panel = await openTab(card, 'gradcam');
  const overlay = panel.getByTestId('gradcam-overlay');
  await overlay.waitFor({ timeout: 10000 });
  try {
    await page.waitForFunction((el) => el.complete && el.naturalWidth > 0, await overlay.elementHandle(), { timeout: 30000 });
  } catch {
    throw new CheckError(`Grad-CAM overlay image did not load (src=${await overlay.getAttribute('src')})`);
  }
  const overlaySize = await overlay.evaluate((el) => `${el.naturalWidth}x${el.naturalHeight}`);
  log(`grad-cam overlay loaded (${overlaySize})`);
  await page.screenshot({ path: path.join(OUT, 'desktop-gradcam.png'), fullPage: true });

  // Detection: list renders (zero detections is fine), boxes match the list.
  panel = await openTab(card, 'detection');
  const list = panel.getByTestId('detection-list');
  await list.waitFor({ state: 'visible', timeout: 10000 });
  const items = await panel.getByTestId('detection-item').count();
  const boxes = await panel.getByTestId('detection-box').count();
  const listText = (await list.innerText()).trim();
  if (items === 0) check(/No damage regions found|No regions at or above/.test(listText), `detection list is empty without an explanation: "${listText}"`);
  check(boxes === items, `${boxes} boxes drawn but ${items} detections listed`);
  log(`detection: ${items} region(s) listed, ${boxes} box(es) drawn${items === 0 ? ` ("${listText}")` : ''}`);
  await page.screenshot({ path: path.join(OUT, 'desktop-detection.png'), fullPage: true });

  // Assessment (when the job ran `assess`): severity with its three probabilities, typed boxes = listed regions,
  // and the per-type filter hides a type's boxes.
  let assessment = null;
  if (statuses.assess) {
    panel = await openTab(card, 'assessment');
    await panel.getByTestId('assessment').waitFor({ state: 'visible', timeout: 10000 });
    const severity = ((await panel.getByTestId('severity-label').textContent()) ?? '').trim(); // innerText would be CSS-capitalised
    check(['minor', 'moderate', 'severe'].includes(severity), `severity label is "${severity}"`);
    const rows = await panel.getByTestId('severity-row').count();
    check(rows === 3, `${rows} severity probability rows, expected 3`);
    const typed = await panel.getByTestId('assessment-box').count();
    const listed = await panel.getByTestId('assessment-item').count();
    check(typed === listed, `${typed} typed boxes drawn but ${listed} regions listed`);
    if (typed > 0) {
      const first = await panel.getByTestId('assessment-box').first().getAttribute('data-type');
      const toggle = panel.locator('.type-toggle', { hasText: first }).locator('input');
      await toggle.uncheck();
      const left = await panel.locator(`[data-testid="assessment-box"][data-type="${first}"]`).count();
      check(left === 0, `${left} ${first} boxes still drawn after unticking ${first}`);
      await toggle.check();
    }
    assessment = { severity, regions: typed };
    log(`assessment: severity ${severity}, ${typed} typed region(s)`);
    await page.screenshot({ path: path.join(OUT, 'desktop-assessment.png'), fullPage: true });
  }

  // Phone width: no horizontal scrolling, screenshot.
  await page.setViewportSize({ width: 375, height: 812 });
  await page.waitForTimeout(300);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: path.join(OUT, 'mobile-375.png'), fullPage: true });
  check(scrollWidth <= 376, `page is ${scrollWidth}px wide at a 375px viewport (horizontal scroll)`);
  log('375px layout ok');

  // Reopen by URL hash after a reload: the job comes back from the gateway, and is in Recent jobs.
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${BASE}/#/jobs/${jobId}`, { waitUntil: 'domcontentloaded' });
  await page.reload({ waitUntil: 'domcontentloaded' });
  const reopened = page.locator(`[data-testid="job-card"][data-job-id="${jobId}"]`);
  await reopened.waitFor({ timeout: 15000 });
  await page.waitForFunction((id) => document.getElementById(`job-${id}`)?.getAttribute('data-job-status') === 'succeeded', jobId, { timeout: 30000 });
  check((await page.locator(`[data-testid="recent-jobs"] a[href="#/jobs/${jobId}"]`).count()) === 1, 'job missing from Recent jobs after reload');
  log('reopened by #/jobs/{id} after reload, listed in Recent jobs');

  const inspection = INSPECTION_IMAGES.length ? await checkInspection(page, Boolean(statuses.assess)) : null;

  check(pageErrors.length === 0, `uncaught errors in the page: ${pageErrors.join(' | ')}`);
  const summary = { base: BASE, job_id: jobId, label, probability_bars: bars, overlay: overlaySize, detections: items, assessment, inspection, seconds: (Date.now() - t0) / 1000 };
  fs.writeFileSync(path.join(OUT, 'e2e-summary.json'), JSON.stringify(summary, null, 2));
  return { page, summary };
}

/** Several photos at once: one inspection bar whose "Download report" serves the finished report. */
async function checkInspection(page, withAssessment) {
  log(`uploading ${INSPECTION_IMAGES.length} photos together`);
  await page.locator('input[type="file"]').setInputFiles(INSPECTION_IMAGES);
  const bar = page.getByTestId('inspection').first();
  await bar.waitFor({ timeout: 60000 });
  const id = await bar.getAttribute('data-inspection-id');
  const link = bar.getByRole('link', { name: 'Download report' });
  const href = await link.getAttribute('href');
  check(href === `/v1/inspections/${id}/report`, `report link is ${href}`);
  const deadline = Date.now() + TIMEOUT_MS;
  let status = '';
  while (Date.now() < deadline) {
    status = (await (await page.request.get(`${BASE}/v1/inspections/${id}`)).json()).status;
    if (['succeeded', 'failed', 'canceled'].includes(status)) break;
    await page.waitForTimeout(1000);
  }
  check(status === 'succeeded', `inspection ${id} ended ${status || 'never'}`);
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 60000 }).catch(() => null), link.click({ modifiers: [] })]);
  let html = '';
  if (download) html = fs.readFileSync(await download.path(), 'utf8');
  else html = await (await page.request.get(`${BASE}${href}`)).text();
  const images = (html.match(/src="data:image\/jpeg;base64,/g) || []).length;
  // per photo: the input, the Grad-CAM overlay, the detection image, and the assessment image when assess ran
  const expected = (withAssessment ? 4 : 3) * INSPECTION_IMAGES.length;
  check(images === expected, `report has ${images} inlined images, expected ${expected}`);
  await page.screenshot({ path: path.join(OUT, 'desktop-inspection.png'), fullPage: true });
  log(`inspection ${id}: report with ${images} images (${download ? 'downloaded by the button' : 'fetched'})`);
  return { id, photos: INSPECTION_IMAGES.length, report_images: images };
}

async function main() {
  try {
    await preflight();
  } catch (e) {
    console.error(`E2E SETUP FAILED: ${e.message}`);
    return 2;
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'damagelens-e2e-'));
  let ctx;
  try {
    ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: !process.env.DAMAGELENS_E2E_HEADFUL,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1280, height: 900 },
    });
  } catch (e) {
    console.error(`E2E SETUP FAILED: could not start ${CHROMIUM}: ${e.message}`);
    fs.rmSync(profile, { recursive: true, force: true });
    return 2;
  }
  try {
    const { summary } = await run(ctx);
    console.log(`E2E PASSED ${JSON.stringify(summary)}`);
    console.log(`screenshots in ${OUT}`);
    return 0;
  } catch (e) {
    const page = ctx.pages()[0];
    if (page) await page.screenshot({ path: path.join(OUT, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`E2E FAILED: ${e instanceof CheckError ? e.message : e.stack || e}`);
    console.error(`see ${path.join(OUT, 'failure.png')}`);
    return 1;
  } finally {
    await ctx.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

process.exit(await main());
