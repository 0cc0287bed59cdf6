// An investigator limited to one store sees that store and nothing of another, wherever they look.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { fixture, launch, linkedEvents, signIn, viewports } from './support.mjs';

const other = fixture.other_store;
const ownSeqs = Object.values(fixture.seqs)
  .filter((seq) => !other.seqs.includes(seq))
  .sort((a, b) => a - b);

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

for (const viewport of viewports) {
  describe(`store scope at ${viewport.name} size (${viewport.width}x${viewport.height})`, () => {
    test("an investigator of shibuya-01 sees none of the other store's events", async () => {
      const { context, page } = await signIn(browser, viewport, fixture.investigator);
      try {
        assert.deepEqual((await linkedEvents(page)).sort((a, b) => a - b), ownSeqs);
        assert.ok(!(await page.content()).includes(other.id), `the events list names ${other.id}`);

        // Both stores have a 返品 refund: only their own comes back.
        const box = page.locator('form[action="/"] input[name="q"]');
        await box.fill('返品');
        await Promise.all([page.waitForURL((url) => url.searchParams.has('q')), box.press('Enter')]);
        assert.deepEqual(await linkedEvents(page), [fixture.seqs.refund]);

        await page.goto(`/?store=${other.id}`);
        assert.deepEqual(await linkedEvents(page), [], `filtering by ${other.id} lists nothing`);

        for (const seq of other.seqs) {
          const answer = await page.goto(`/events/${seq}`);
          assert.equal(answer.status(), 404, `event ${seq} of ${other.id} is not found`);
          assert.ok(!(await page.content()).includes(other.id), `its not-found page names ${other.id}`);
          for (const n of [0, 1]) {
            const footage = await context.request.get(`/events/${seq}/footage/${n}`, { maxRedirects: 0 });
            assert.equal(footage.status(), 404, `footage ${n} of event ${seq} of ${other.id} is not found`);
          }
        }

        await page.goto('/timeline');
        const offered = await page
          .locator('form[action="/timeline"] select[name="store"] option')
          .evaluateAll((options) => options.map((o) => o.value).filter(Boolean));
        assert.deepEqual(offered, ['shibuya-01'], 'the timeline offers only their store');
      } finally {
        await context.close();
      }
    });
  });
}
