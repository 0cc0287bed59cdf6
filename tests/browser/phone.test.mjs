// On a phone the events come first: the header is two rows, the filters fold behind one button, and the first
// event of the list is on the first screen. And a person whose stores are all in Tokyo never reads "UTC".
// With TILLMARK_TEST_SCREENSHOTS naming a folder, the list is also photographed at phone and laptop width.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { desktop, fixture, launch, signIn, viewports } from './support.mjs';

const phone = viewports.find((v) => v.name === 'phone');
const t = fixture.timeline;
const timeline = `/timeline?${new URLSearchParams({ store: t.store, register: t.register, from: t.from, to: t.to })}`;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

for (const locale of ['en-US', 'ja-JP']) {
  describe(`a phone (${phone.width}x${phone.height}) in ${locale}`, () => {
    test('the first event of the list is inside the first screen', async () => {
      const { context, page } = await signIn(browser, phone, fixture.owner, locale);
      try {
        const row = page.locator('main table.events tbody tr').first();
        const box = await row.boundingBox();
        assert.ok(box, 'the list has an event row');
        assert.ok(
          box.y + box.height <= phone.height,
          `the first event spans y ${Math.round(box.y)} to ${Math.round(box.y + box.height)}, past ${phone.height}`,
        );
        // Folded, the filters still open with one tap.
        const fields = page.locator('details.more-filters select[name="store"]');
        assert.equal(await fields.isVisible(), false, 'the filters are folded');
        await page.locator('details.more-filters > summary').click();
        assert.equal(await fields.isVisible(), true, 'one tap shows them');
      } finally {
        await context.close();
      }
    });

    test('no page says UTC to a person whose stores are all in Tokyo', async () => {
      const { context, page } = await signIn(browser, phone, fixture.owner, locale);
      try {
        const found = [];
        for (const path of ['/', '/?flagged=true&day=today', '/audit', '/integrations', '/dead-letters', '/timeline', timeline, '/cashiers']) {
          const answer = await page.goto(path);
          assert.equal(answer.status(), 200, `${path} answers`);
          // Everything on the page, folded or not, the footer's last event included.
          const text = await page.evaluate(() => document.body.textContent);
          if (/UTC/.test(text)) {
            const at = text.indexOf('UTC');
            found.push(`${path}: …${text.slice(Math.max(0, at - 60), at + 20).replace(/\s+/g, ' ')}…`);
          }
          if (path === '/') {
            assert.match(await page.locator('footer').innerText(), /JST/, 'the footer names the zone');
          }
        }
        assert.deepEqual(found, []);
      } finally {
        await context.close();
      }
    });
  });
}

const shots = process.env.TILLMARK_TEST_SCREENSHOTS;
if (shots) {
  test('screenshots of the events list at phone and laptop width', async () => {
    for (const viewport of [phone, desktop]) {
      for (const locale of ['en-US', 'ja-JP']) {
        const { context, page } = await signIn(browser, viewport, fixture.owner, locale);
        try {
          const name = `events-${viewport.width}-${locale}.png`;
          await page.screenshot({ path: join(shots, name) });
          await page.screenshot({ path: join(shots, `full-${name}`), fullPage: true });
        } finally {
          await context.close();
        }
      }
    }
  });
}
