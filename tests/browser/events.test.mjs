// The owner's way through the index: sign in, search the receipts, open an event, follow its footage.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { dialogs, fixture, launch, linkedEvents, signIn, viewports } from './support.mjs';

const { seqs } = fixture;
const owner = fixture.owner;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Searches the events list for `words` with its search box, as a person types and presses Enter. */
async function search(page, words) {
  const box = page.locator('form[action="/"] input[name="q"]');
  await box.fill(words);
  await Promise.all([page.waitForURL((url) => url.searchParams.get('q') === words), box.press('Enter')]);
}

for (const viewport of viewports) {
  describe(`events at ${viewport.name} size (${viewport.width}x${viewport.height})`, () => {
    test('signing in lands on the events list with every event', async () => {
      const { context, page } = await signIn(browser, viewport, owner);
      try {
        assert.equal(new URL(page.url()).pathname, '/');
        assert.deepEqual(
          (await linkedEvents(page)).sort((a, b) => a - b),
          Object.values(seqs).sort((a, b) => a - b),
        );
      } finally {
        await context.close();
      }
    });

    test('a Japanese browser gets the index in Japanese, and the switch in the header turns it to English', async () => {
      const { context, page } = await signIn(browser, viewport, owner, 'ja-JP');
      try {
        assert.equal(await page.locator('html').getAttribute('lang'), 'ja');
        await search(page, '返品');
        const before = new URL(page.url());
        await Promise.all([
          page.waitForURL((url) => url.search === before.search && url.pathname === '/'),
          page.locator('header a[hreflang="en"]').click(),
        ]);
        assert.equal(await page.locator('html').getAttribute('lang'), 'en');
        assert.equal(await page.locator('input[name="q"]').inputValue(), '返品');
        await page.reload();
        assert.equal(await page.locator('html').getAttribute('lang'), 'en', 'the choice is remembered');
      } finally {
        await context.close();
      }
    });

    test('searching 返品 finds the refunds and nothing else', async () => {
      const { context, page } = await signIn(browser, viewport, owner);
      try {
        await search(page, '返品');
        assert.deepEqual(
          (await linkedEvents(page)).sort((a, b) => a - b),
          [seqs.refund, seqs['osaka-refund']].sort((a, b) => a - b),
        );
        assert.equal(await page.locator('input[name="q"]').inputValue(), '返品');
      } finally {
        await context.close();
      }
    });

    test("an event's footage link opens the web viewer at the bookmark's moment", async () => {
      const { context, page } = await signIn(browser, viewport, owner);
      try {
        await search(page, '返品 お客様都合');
        assert.deepEqual(await linkedEvents(page), [fixture.footage.seq]);
        await Promise.all([
          page.waitForURL((url) => url.pathname === `/events/${fixture.footage.seq}`),
          page.locator(`main a[href="/events/${fixture.footage.seq}"]`).first().click(),
        ]);

        // Each link goes through tillmark, which answers with the vendor's address: find the web viewer's.
        const hrefs = await page
          .locator(`main a[href^="/events/${fixture.footage.seq}/footage/"]`)
          .evaluateAll((links) => [...new Set(links.map((a) => a.getAttribute('href')))]);
        assert.ok(hrefs.length > 0, 'the event page has footage links');
        let viewer;
        for (const href of hrefs) {
          const answer = await context.request.get(href, { maxRedirects: 0 });
          assert.equal(answer.status(), 303, `${href} redirects`);
          // Two cameras watch the register: the counter camera's web viewer is the one checked.
          if (answer.headers().location === fixture.landing + fixture.footage.path) viewer = href;
        }
        assert.ok(viewer, `one of ${hrefs.join(', ')} leads to the counter camera's web viewer`);

        await Promise.all([
          page.waitForURL((url) => url.href.startsWith(fixture.landing)),
          page.locator(`main a[href="${viewer}"]`).first().click(),
        ]);
        const expected = fixture.footage.path;
        assert.equal(page.url(), fixture.landing + expected);
        const seen = await (await context.request.get(`${fixture.landing}/seen`)).json();
        assert.ok(seen.includes(expected), `the viewer was asked for ${expected}; it saw ${seen.join(', ')}`);
      } finally {
        await context.close();
      }
    });

    test('a receipt line holding a script tag is shown as text and never runs', async () => {
      const { context, page } = await signIn(browser, viewport, owner);
      const opened = dialogs(page);
      try {
        const script = '<script>alert(1)</script>';
        // Searched for, it comes back in the search box and the results.
        await search(page, script);
        assert.deepEqual(await linkedEvents(page), [seqs['void-script']]);
        assert.equal(await page.locator('input[name="q"]').inputValue(), script);

        await page.goto(`/events/${seqs['void-script']}`);
        const receipt = page.locator('main pre', { hasText: script });
        assert.equal(await receipt.count(), 1, 'the receipt shows the line as text');
        assert.ok(await receipt.isVisible());
        assert.equal(await page.locator('script').count(), 0, 'no script element on the page');
        await page.waitForLoadState('load');
        assert.deepEqual(opened, [], 'no dialog opened');
      } finally {
        await context.close();
      }
    });
  });
}
