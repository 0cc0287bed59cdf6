// Every page an owner opens fits a phone and a tablet: nothing scrolls sideways, and every link, button and
// field in the navigation and the content is tall enough for a finger (40 px).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { fixture, launch, newContext, overflow, signIn, smallTargets, viewports } from './support.mjs';

const t = fixture.timeline;
const timeline = `/timeline?${new URLSearchParams({ store: t.store, register: t.register, from: t.from, to: t.to })}`;
const pages = [
  '/',
  `/?${new URLSearchParams({ q: '返品' })}`,
  `/events/${fixture.seqs.refund}`,
  `/events/${fixture.seqs['void-script']}`,
  '/timeline',
  timeline,
  '/cashiers',
  '/integrations',
  '/dead-letters',
  '/audit',
  '/people',
  '/tokens',
  '/account/password',
];

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

// Japanese and English words differ in length: each language must fit.
for (const viewport of viewports) for (const locale of ['ja-JP', 'en-US']) {
  describe(`layout at ${viewport.name} size (${viewport.width}x${viewport.height}) in ${locale}`, () => {
    // Each page is visited once per check, so the two report separately and each names everything it found.
    for (const [what, check] of [
      ['nothing scrolls sideways', overflow],
      ['touch targets are at least 40px tall', smallTargets],
    ]) {
      test(what, async () => {
        const found = [];
        const signedOut = await newContext(browser, viewport, locale);
        try {
          const page = await signedOut.newPage();
          await page.goto('/login');
          found.push(...(await check(page)).map((p) => `/login: ${p}`));
        } finally {
          await signedOut.close();
        }
        const { context, page } = await signIn(browser, viewport, fixture.owner, locale);
        try {
          for (const path of pages) {
            const answer = await page.goto(path);
            assert.equal(answer.status(), 200, `${path} answers`);
            found.push(...(await check(page)).map((p) => `${path}: ${p}`));
          }
        } finally {
          await context.close();
        }
        assert.ok(found.length === 0, `at ${viewport.width}x${viewport.height}:\n${found.join('\n')}`);
      });
    }
  });
}
