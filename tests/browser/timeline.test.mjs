// The shortage timeline, built from its form as an investigator would, and its CSV export.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';

import { fixture, launch, linkedEvents, parseCsv, signIn, viewports } from './support.mjs';

const t = fixture.timeline;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Opens the timeline from the navigation and fills its form for the fixture's register and span. */
async function buildTimeline(page) {
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/timeline'),
    page.locator('header nav a[href="/timeline"]').click(),
  ]);
  const form = page.locator('form[action="/timeline"]');
  await form.locator('select[name="store"]').selectOption(t.store);
  await form.locator('input[name="register"]').fill(t.register);
  await form.locator('input[name="from"]').fill(t.from);
  await form.locator('input[name="to"]').fill(t.to);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/timeline' && url.searchParams.get('register') === t.register),
    form.locator('[type="submit"]').click(),
  ]);
}

for (const viewport of viewports) {
  describe(`timeline at ${viewport.name} size (${viewport.width}x${viewport.height})`, () => {
    test("the form lists the register's cash events and sign-on in order", async () => {
      const { context, page } = await signIn(browser, viewport, fixture.owner);
      try {
        await buildTimeline(page);
        const url = new URL(page.url());
        assert.equal(url.searchParams.get('store'), t.store);
        assert.equal(url.searchParams.get('from'), t.from);
        assert.equal(url.searchParams.get('to'), t.to);
        // The sale is no cash movement and r2's void is another register: neither is listed.
        assert.deepEqual(await linkedEvents(page, 'main table'), t.seqs);
      } finally {
        await context.close();
      }
    });

    test('the CSV export downloads with a byte-order mark, a header row and the cash events', async () => {
      const { context, page } = await signIn(browser, viewport, fixture.owner);
      try {
        await buildTimeline(page);
        const [download] = await Promise.all([
          page.waitForEvent('download'),
          page.locator('main a[href^="/timeline.csv?"]').click(),
        ]);
        assert.match(download.suggestedFilename(), /\.csv$/);
        const bytes = await readFile(await download.path());
        assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'starts with the UTF-8 byte-order mark');

        const rows = parseCsv(bytes.subarray(3).toString('utf8'));
        const [header, ...lines] = rows;
        assert.equal(header.length, 8, `a header row of 8 columns: ${header}`);
        assert.ok(header.every((name) => name.length > 0), `every column is named: ${header}`);
        assert.ok(lines.every((l) => l.length === header.length), 'every row has a cell per column');
        assert.deepEqual(
          lines.map((l) => l[2]),
          t.csv_types,
          'a row per cash event, in order, with its type',
        );
        const refund = lines[t.csv_types.indexOf('refund')];
        assert.ok(refund.includes('返品 お客様都合'), `the refund's reason survives in UTF-8: ${refund}`);
      } finally {
        await context.close();
      }
    });
  });
}
