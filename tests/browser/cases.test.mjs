// An investigator works a case on a tablet or a phone, in Japanese: flags an event with a note, cannot close it
// without a reason, closes it as escalated, and finds it among the closed cases, not the open ones.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { fixture, launch, linkedEvents, signIn, viewports } from './support.mjs';

// Each size works its own event, so the two runs do not meet the other's case.
const eventOf = { phone: fixture.seqs['no-sale'], tablet: fixture.seqs.sale };

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Submits the case form for `action` and waits for the event page it returns to. */
async function submit(page, action) {
  const form = page.locator(`form[action$="/case"]:has(input[name="action"][value="${action}"])`);
  await Promise.all([page.waitForURL((url) => url.hash === '#case'), form.locator('button[type="submit"]').click()]);
}

for (const viewport of viewports) {
  describe(`cases at ${viewport.name} size (${viewport.width}x${viewport.height})`, () => {
    test('flag, note, a reason required to close, closed as escalated', async () => {
      const seq = eventOf[viewport.name];
      const { context, page } = await signIn(browser, viewport, fixture.investigator, 'ja-JP');
      try {
        await page.goto(`/events/${seq}`);
        const open = page.locator('form:has(input[name="action"][value="open"])');
        await open.locator('textarea[name="text"]').fill('レジ締めで ¥5,000 不足');
        await submit(page, 'open');
        assert.match(await page.locator('#case .case-badge').innerText(), /対応中/);
        assert.match(await page.locator('#case .case-history').innerText(), /レジ締めで ¥5,000 不足/);

        // The browser itself holds back a close without a reason: nothing is sent, the page stays.
        const close = page.locator('form:has(input[name="action"][value="close"])');
        await close.locator('input[name="outcome"][value="escalated"]').check();
        const before = page.url();
        await close.locator('button[type="submit"]').click();
        assert.equal(page.url(), before);
        assert.equal(await close.locator('textarea[name="text"]').evaluate((t) => t.validity.valueMissing), true);

        await close.locator('textarea[name="text"]').fill('本部に映像とともに報告');
        await submit(page, 'close');
        assert.match(await page.locator('#case .case-badge').innerText(), /エスカレーション/);
        const history = await page.locator('#case .case-history li').allInnerTexts();
        assert.equal(history.length, 2, history.join('\n'));
        assert.match(history[1], /本部に映像とともに報告/);

        await page.goto('/?case=open');
        assert.ok(!(await linkedEvents(page)).includes(seq), 'no longer among the open cases');
        await page.goto('/?case=closed');
        assert.ok((await linkedEvents(page)).includes(seq), 'among the closed cases');
      } finally {
        await context.close();
      }
    });
  });
}
