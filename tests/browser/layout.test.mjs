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
  '/account/password',
];

// Checks that web/static/style.css fails today, reported to be fixed there. They run and print everything
// they find, but as node:test "todo" they do not fail the run; delete an entry once its check passes, and
// the check guards the fix from then on.
const knownFailures = new Set([
  'phone: nothing scrolls sideways',
  'phone: touch targets are at least 40px tall',
  'tablet: touch targets are at least 40px tall',
]);

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

for (const viewport of viewports) {
  describe(`layout at ${viewport.name} size (${viewport.width}x${viewport.height})`, () => {
    // Each page is visited once per check, so the two report separately and each names everything it found.
    for (const [what, check] of [
      ['nothing scrolls sideways', overflow],
      ['touch targets are at least 40px tall', smallTargets],
    ]) {
      const known = knownFailures.has(`${viewport.name}: ${what}`);
      test(what, { todo: known && 'style.css fails this: see the list below' }, async () => {
        const found = [];
        const signedOut = await newContext(browser, viewport);
        try {
          const page = await signedOut.newPage();
          await page.goto('/login');
          found.push(...(await check(page)).map((p) => `/login: ${p}`));
        } finally {
          await signedOut.close();
        }
        const { context, page } = await signIn(browser, viewport, fixture.owner);
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
