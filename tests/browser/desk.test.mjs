// The investigator's desk: an event page opens on its footage, one button per camera named by the camera, on
// the first screen of a laptop, a tablet and a phone; a timeline row with two cameras stays one line of buttons.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { desktop, fixture, launch, signIn, viewports } from './support.mjs';

const t = fixture.timeline;
const timeline = `/timeline?${new URLSearchParams({ store: t.store, register: t.register, from: t.from, to: t.to })}`;
const refund = fixture.seqs.refund;
// A folder to save what each test saw, for a person to look at: `TILLMARK_TEST_SCREENSHOTS=/tmp/shots`.
const shots = process.env.TILLMARK_TEST_SCREENSHOTS;

/** Saves the first screen of `page` (the whole page with `full`) when screenshots are asked for. */
async function shoot(page, name, full = false) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: full });
}

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Each footage button in `within`: the camera it names, its kind of link if shown, its box and its lines. */
function buttons(within) {
  return within.locator('a.footage').evaluateAll((links) =>
    links.map((a) => {
      const camera = a.querySelector('.footage-camera');
      const r = a.getBoundingClientRect();
      return {
        href: a.getAttribute('href'),
        camera: camera?.textContent.trim(),
        kind: a.querySelector('.footage-kind')?.textContent.trim(),
        top: r.top,
        bottom: r.bottom,
        height: r.height,
        // A name on one line: no word of it was pushed under the others.
        nameLines: camera ? Math.round(camera.getBoundingClientRect().height / parseFloat(getComputedStyle(camera).lineHeight)) : 0,
      };
    }),
  );
}

for (const viewport of [desktop, ...viewports]) for (const locale of ['en-US', 'ja-JP']) {
  describe(`the desk at ${viewport.name} size (${viewport.width}x${viewport.height}) in ${locale}`, () => {
    test("the event page's first footage button is on the first screen, and every camera has one by name", async () => {
      const { context, page } = await signIn(browser, viewport, fixture.owner, locale);
      try {
        await page.goto(`/events/${refund}`);
        await shoot(page, `event-${viewport.width}-${locale}`);
        const found = await buttons(page.locator('main'));
        assert.ok(found.length > 0, 'the event page has footage buttons');
        assert.ok(
          found[0].bottom <= viewport.height,
          `the first footage button ends at ${Math.round(found[0].bottom)}px, below the ${viewport.height}px screen`,
        );
        assert.ok(found.every((b) => /^\/events\/\d+\/footage\/\d+$/.test(b.href)), 'each goes through tillmark');
        assert.deepEqual([...new Set(found.map((b) => b.camera))].sort(), [...t.cameras].sort());
        // Each camera has the Nx client's link and the web viewer's: the kind tells them apart.
        assert.ok(found.every((b) => b.kind), `each button says its kind of link: ${JSON.stringify(found)}`);
        assert.ok(found.every((b) => b.nameLines === 1), `a name per line: ${JSON.stringify(found)}`);

        // The register five minutes either side, and the transaction's other events, are one tap away.
        await Promise.all([
          page.waitForURL((url) => url.pathname === '/timeline'),
          page.locator('main a[href^="/timeline?"]').first().click(),
        ]);
        assert.ok(
          (await page.locator(`main table a[href="/events/${refund}"]`).count()) > 0,
          'the timeline it opens lists the event',
        );
        await page.goto(`/events/${refund}`);
        await Promise.all([
          page.waitForURL((url) => url.pathname === '/' && url.searchParams.has('txn')),
          page.locator('main a[href*="txn="]').first().click(),
        ]);
        assert.ok((await page.locator(`main table a[href="/events/${refund}"]`).count()) > 0, 'the list holds it');
      } finally {
        await context.close();
      }
    });

    test('a timeline row with two cameras names both on buttons that never wrap a word', async () => {
      const { context, page } = await signIn(browser, viewport, fixture.owner, locale);
      try {
        await page.goto(timeline);
        await shoot(page, `timeline-${viewport.width}-${locale}`, true);
        const rows = page.locator('main table.timeline-lines tbody tr.cash');
        assert.ok((await rows.count()) > 0, 'the timeline has cash lines');
        for (const row of await rows.all()) {
          const found = await buttons(row);
          assert.deepEqual([...new Set(found.map((b) => b.camera))].sort(), [...t.cameras].sort());
          assert.ok(found.every((b) => b.nameLines === 1), `a name per line: ${JSON.stringify(found)}`);
          const height = (await row.boundingBox()).height;
          if (viewport === desktop) {
            assert.ok(height < 80, `a row is ${Math.round(height)}px tall at ${viewport.width}px`);
          }
        }
      } finally {
        await context.close();
      }
    });
  });
}
