// Devices people recognise: client hints asked for and recorded, and an icon per device kind.
import type { BrowserContextOptions, Page, Request } from '@playwright/test';

import { expect, sessionRow, signInOn, test, userAgents, widget } from './fixtures';

const chromeWindows =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 ' +
  '(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

// What Chrome 124 on Windows 11 tells a site that asks; Chromium sends it
// itself (through Accept-CH), the test only chooses the values.
const windows11 = {
  brands: [
    { brand: 'Chromium', version: '124' },
    { brand: 'Google Chrome', version: '124' },
    { brand: 'Not-A.Brand', version: '99' },
  ],
  fullVersionList: [
    { brand: 'Chromium', version: '124.0.6367.91' },
    { brand: 'Google Chrome', version: '124.0.6367.91' },
    { brand: 'Not-A.Brand', version: '99.0.0.0' },
  ],
  platform: 'Windows',
  platformVersion: '15.0.0',
  architecture: 'x86',
  model: '',
  mobile: false,
};

async function pageAsWindows11(
  browser: import('@playwright/test').Browser,
  baseURL: string,
  options: BrowserContextOptions = {},
): Promise<Page> {
  const context = await browser.newContext({ baseURL, ...options });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setUserAgentOverride', {
    userAgent: chromeWindows,
    userAgentMetadata: windows11,
  });
  return page;
}

test('Chromium sends the hints the site asks for, and the widget names Windows 11', async ({
  browser,
  site,
  username,
}) => {
  const page = await pageAsWindows11(browser, site.baseURL);
  const signInRequests: Request[] = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && new URL(request.url()).pathname === '/login/') {
      signInRequests.push(request);
    }
  });
  const login = await page.goto('/login/');
  expect(login?.headers()['accept-ch']).toContain('Sec-CH-UA-Platform-Version');

  await signInOn(page, username);
  // The sign-in itself carried the high-entropy hints the login page asked for.
  const headers = await signInRequests[0].allHeaders();
  expect(headers['sec-ch-ua-platform-version']).toBe('"15.0.0"');
  expect(headers['sec-ch-ua-full-version-list']).toContain('"Google Chrome";v="124.0.6367.91"');

  const row = sessionRow(page, 'Chrome on Windows 11');
  await expect(row).toHaveCount(1);
  await expect(row.getByText('This device')).toBeVisible();
  await page.context().close();
});

test('hints that add nothing, or none at all, keep the user agent label', async ({
  signIn,
  signInElsewhere,
}) => {
  await signInElsewhere(userAgents.firefoxWindows);
  const page = await signIn({ userAgent: userAgents.chromeMac });
  // Playwright's Chromium, dressed as Chrome on a Mac, names only "Chromium"
  // and no macOS version; Firefox sends no hints.
  await expect(sessionRow(page, 'Chrome on macOS')).toHaveCount(1);
  await expect(sessionRow(page, 'Firefox on Windows')).toHaveCount(1);
});

test('every row has one icon, hidden from assistive technology', async ({
  signIn,
  signInElsewhere,
}) => {
  await signInElsewhere(userAgents.safariIphone);
  await signInElsewhere(userAgents.firefoxWindows);
  const page = await signIn({ userAgent: userAgents.chromeMac });
  const rows = widget(page).getByRole('listitem');
  await expect(rows).toHaveCount(3);
  const kinds: Record<string, string> = {};
  for (const row of await rows.all()) {
    const icon = row.locator('svg');
    await expect(icon).toHaveCount(1);
    await expect(icon).toHaveAttribute('aria-hidden', 'true');
    await expect(icon).toBeVisible();
    const label = (await row.locator('.us-row__device').textContent()) ?? '';
    kinds[label] = ((await icon.getAttribute('class')) ?? '').split(' ').pop() ?? '';
  }
  expect(kinds).toEqual({
    'Chrome on macOS': 'us-icon--desktop',
    'Safari on iPhone': 'us-icon--phone',
    'Firefox on Windows': 'us-icon--desktop',
  });
  // The label, not the icon, names the row's button.
  await expect(
    sessionRow(page, 'Safari on iPhone').getByRole('button', { name: 'Sign out', exact: true }),
  ).toHaveAccessibleDescription('Safari on iPhone');
});

for (const colorScheme of ['light', 'dark'] as const) {
  test(`icons take the widget's colour (${colorScheme})`, async ({ signIn }) => {
    const page = await signIn({ colorScheme, userAgent: userAgents.chromeMac });
    const icon = widget(page).locator('svg.us-icon').first();
    const { stroke, color } = await icon.evaluate((element) => {
      const style = getComputedStyle(element);
      return { stroke: style.stroke, color: style.color };
    });
    expect(stroke).toBe(color);
    const muted = await widget(page).evaluate((element) =>
      getComputedStyle(element).getPropertyValue('--us-color-muted').trim(),
    );
    expect(muted).not.toBe('');
  });
}

test('at 320 px the page does not scroll sideways', async ({ signIn, signInElsewhere }) => {
  await signInElsewhere(userAgents.edgeAndroid);
  const page = await signIn({ viewport: { width: 320, height: 720 }, userAgent: chromeWindows });
  await expect(widget(page).getByRole('listitem')).toHaveCount(2);
  const overflow = await page.evaluate(
    () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
  );
  expect(overflow).toBeLessThanOrEqual(0);
});
