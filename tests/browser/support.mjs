// What every browser test shares: the fixture tests/browser.rs made, Chromium, sign-in, and the layout checks.
// Elements are found by names, addresses and roles, never by their English words: the pages are being
// translated.

import { chromium } from 'playwright-core';

if (!process.env.TILLMARK_TEST_FIXTURE || !process.env.TILLMARK_TEST_CHROMIUM) {
  throw new Error('run these through `cargo test --test browser` with TILLMARK_TEST_CHROMIUM set');
}

/** What the Rust side set up: addresses, people, and the index numbers of the events it published. */
export const fixture = JSON.parse(process.env.TILLMARK_TEST_FIXTURE);

export const viewports = [
  { name: 'phone', width: 390, height: 844 },
  { name: 'tablet', width: 768, height: 1024 },
];

/** A laptop's browser: no touch screen, and its first screen is what an investigator sees without scrolling. */
export const desktop = { name: 'desktop', width: 1280, height: 800, mobile: false };

export function launch() {
  return chromium.launch({
    executablePath: process.env.TILLMARK_TEST_CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A fresh browser profile at this viewport, asking for pages in `locale`'s language: a touch screen unless the
 * viewport says `mobile: false`.
 */
export function newContext(browser, viewport, locale = 'en-US') {
  const mobile = viewport.mobile ?? true;
  return browser.newContext({
    baseURL: fixture.base,
    viewport: { width: viewport.width, height: viewport.height },
    isMobile: mobile,
    hasTouch: mobile,
    locale,
    acceptDownloads: true,
  });
}

/** Signs `who` in through the form at /login and returns the page, on the events list. */
export async function signIn(browser, viewport, who, locale = 'en-US') {
  const context = await newContext(browser, viewport, locale);
  const page = await context.newPage();
  await page.goto('/login');
  const form = page.locator('form[action="/login"]');
  await form.locator('input[name="username"]').fill(who.name);
  await form.locator('input[name="password"]').fill(who.password);
  await Promise.all([
    page.waitForURL((url) => url.pathname === '/'),
    form.locator('[type="submit"]').click(),
  ]);
  return { context, page };
}

/** The index numbers of the events a page links to (`/events/{seq}`), in page order, each once. */
export async function linkedEvents(page, scope = 'main') {
  const hrefs = await page
    .locator(`${scope} a[href^="/events/"]`)
    .evaluateAll((links) => links.map((a) => a.getAttribute('href')));
  const seqs = hrefs.map((h) => /^\/events\/(\d+)$/.exec(h)).filter(Boolean).map((m) => Number(m[1]));
  return [...new Set(seqs)];
}

/** Elements that stick out to the right of the viewport, when the page scrolls sideways. */
export function overflow(page) {
  return page.evaluate(() => {
    const root = document.documentElement;
    if (root.scrollWidth <= root.clientWidth) return [];
    const wide = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      // Only the outermost element that sticks out: its children would repeat it.
      if (r.right > root.clientWidth + 0.5 && !wide.some((w) => w.el.contains(el))) {
        wide.push({ el, right: r.right });
      }
    }
    const what = wide.map((w) => `${describe(w.el)} reaches ${Math.round(w.right)}px`);
    return [`scrollWidth ${root.scrollWidth} > clientWidth ${root.clientWidth}: ${what.join('; ')}`];

    function describe(el) {
      const cls = el.classList.length ? `.${[...el.classList].join('.')}` : '';
      return `<${el.tagName.toLowerCase()}${cls}>`;
    }
  });
}

/**
 * Links, buttons and form controls in the header (nav) and main content less than `min` px tall, each as
 * "<tag.class href-or-name> "text" in <parent> WxH". A checkbox inside its label is tapped through the label,
 * so the label counts.
 */
export function smallTargets(page, min = 40) {
  return page.evaluate((min) => {
    const small = [];
    const controls = ['header', 'main']
      .flatMap((area) => ['a[href]', 'button', 'input', 'select', 'textarea'].map((c) => `${area} ${c}`))
      .join(', ');
    for (const el of document.querySelectorAll(controls)) {
      if (el.type === 'hidden') continue;
      const label = (el.type === 'checkbox' || el.type === 'radio') && el.closest('label');
      // A link that wraps is as tall as one of its lines to a finger, not as the box around all of them.
      const rects = [...(label || el).getClientRects()].filter((r) => r.width > 0 || r.height > 0);
      if (rects.length === 0) continue;
      const r = rects.reduce((a, b) => (b.height > a.height ? b : a));
      if (r.height < min) {
        const lines = rects.length > 1 ? ` (on ${rects.length} lines)` : '';
        small.push(`${describe(el)} ${Math.round(r.width)}x${Math.round(r.height * 10) / 10}${lines}`);
      }
    }
    return small;

    function describe(el) {
      const tag = el.tagName.toLowerCase();
      const cls = el.classList.length ? `.${[...el.classList].join('.')}` : '';
      const attr = el.getAttribute('href') ?? el.getAttribute('name') ?? el.getAttribute('type') ?? '';
      const parent = el.parentElement;
      const where = parent ? ` in <${parent.tagName.toLowerCase()}${parent.classList.length ? `.${[...parent.classList].join('.')}` : ''}>` : '';
      const text = (el.textContent || el.value || '').trim().replace(/\s+/g, ' ').slice(0, 30);
      return `<${tag}${cls}${attr ? ` ${attr}` : ''}>${text ? ` "${text}"` : ''}${where}`;
    }
  }, min);
}

/** Collects every JavaScript dialog a page opens (and dismisses it), so a test can assert there was none. */
export function dialogs(page) {
  const opened = [];
  page.on('dialog', async (dialog) => {
    opened.push(`${dialog.type()}: ${dialog.message()}`);
    await dialog.dismiss();
  });
  return opened;
}

/** Parses CSV as RFC 4180 writes it: quoted cells, doubled quotes, CRLF rows. */
export function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else {
      cell += c;
    }
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}
