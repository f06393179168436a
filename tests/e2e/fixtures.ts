// Fixtures shared by the specs: a fresh user per test, and browsers signed in as that user.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';

import {
  test as base,
  expect,
  type BrowserContext,
  type BrowserContextOptions,
  type Locator,
  type Page,
} from '@playwright/test';

import { defaultSite, demoPassword, python, repoRoot, type Site } from './site';

export { expect };

// Distinct user agents give each signed-in browser its own label in the
// widget ("Firefox on Windows"), which is how a test tells the rows apart.
export const userAgents = {
  firefoxWindows:
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0',
  safariIphone:
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 ' +
    '(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
  chromeMac:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 ' +
    '(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  edgeAndroid:
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/126.0.0.0 Mobile Safari/537.36 EdgA/126.0.0.0',
} as const;

const execFileAsync = promisify(execFile);

export async function createUser(username: string, site: Site = defaultSite): Promise<void> {
  await execFileAsync(python, ['example/manage.py', 'create_demo_users', '-v0', username], {
    cwd: repoRoot,
    env: { ...process.env, ...site.env },
  });
}

/** The example's demo sessions (five devices in five made-up places) for `username`. */
export async function addDemoSessions(username: string, site: Site = defaultSite): Promise<void> {
  await execFileAsync(python, ['example/manage.py', 'create_demo_sessions', '-v0', username], {
    cwd: repoRoot,
    env: { ...process.env, ...site.env },
  });
}

/** Sign in through the login form and wait for the page it leads to. */
export async function signInOn(page: Page, username: string, next = '/account/'): Promise<void> {
  await page.goto(`/login/?next=${encodeURIComponent(next)}`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(demoPassword);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(next);
}

type SignIn = (options?: BrowserContextOptions & { next?: string }) => Promise<Page>;
type SignInElsewhere = (userAgent: string) => Promise<Page>;

export const test = base.extend<{
  site: Site;
  username: string;
  signIn: SignIn;
  signInElsewhere: SignInElsewhere;
}>({
  // Which copy of the example site the test runs against: `test.use({ site })`.
  site: [defaultSite, { option: true }],

  // A user of this test alone: tests run in parallel and count sessions.
  username: async ({ site }, use, testInfo) => {
    const username = `u${testInfo.workerIndex}-${randomUUID().slice(0, 8)}`;
    await createUser(username, site);
    await use(username);
  },

  // Each call is one more browser (its own cookies) signed in as `username`,
  // on the account page unless `next` says otherwise.
  signIn: async ({ browser, site, username }, use) => {
    const contexts: BrowserContext[] = [];
    await use(async ({ next, ...contextOptions } = {}) => {
      const context = await browser.newContext({ baseURL: site.baseURL, ...contextOptions });
      contexts.push(context);
      const page = await context.newPage();
      await signInOn(page, username, next);
      return page;
    });
    await Promise.all(contexts.map((context) => context.close()));
  },

  // Another browser signed in as `username`, left on the home page: a session
  // to see and revoke, without a widget that keeps refreshing.
  signInElsewhere: async ({ signIn }, use) => {
    await use((userAgent) => signIn({ userAgent, next: '/' }));
  },
});

/** The widget, found the way a screen reader user finds it: a region named by its heading. */
export function widget(page: Page): Locator {
  return page.getByRole('region', { name: 'Your devices' });
}

/** The widget's row (a listitem) for one device, e.g. "Firefox on Windows". */
export function sessionRow(page: Page, device: string): Locator {
  return widget(page).getByRole('listitem').filter({ hasText: device });
}

/** The row's own "Sign out" button (not "Sign out all other sessions"). */
export function signOutButton(row: Locator): Locator {
  return row.getByRole('button', { name: 'Sign out', exact: true });
}

/**
 * Click the "Sign out" button of `device`'s row and return the confirmation
 * dialog it opens, once visible. Its name is the question it asks.
 */
export async function openSignOutDialog(
  page: Page,
  device: string,
  question = `Sign out ${device}?`,
): Promise<Locator> {
  await signOutButton(sessionRow(page, device)).click();
  const dialog = page.getByRole('dialog', { name: question });
  await expect(dialog).toBeVisible();
  return dialog;
}

/** The account page on each htmx version the widget supports. */
export const accountPages = [
  { htmx: 'htmx 2', path: '/account/' },
  { htmx: 'htmx 4', path: '/account/htmx4/' },
];

/**
 * Confirm `device`'s open sign-out dialog and check the widget ended the session
 * in place: the dialog closes, the row goes, a status message names the device,
 * and the page did not navigate (call markWindow before opening the dialog).
 */
export async function confirmSignOutInPlace(
  page: Page,
  dialog: Locator,
  device: string,
): Promise<void> {
  const row = sessionRow(page, device);
  await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(dialog).toBeHidden();
  await expect(row).toHaveCount(0);
  await expect(statusMessage(page, `${device} was signed out.`)).toBeVisible();
  expect(await windowMarker(page)).toBe('no navigation');
}

/** Where the specs put the screenshots a human looks at (and the README's picture). */
export const screenshotDir = path.join(__dirname, 'screenshots');

/**
 * The looks the widget must hold up in, for axe scans and screenshots. The
 * narrow (320px) viewport is `narrowHeight` tall, to fit what the spec photographs.
 */
export function widgetLooks(
  narrowHeight: number,
): { name: string; context: BrowserContextOptions; language?: string }[] {
  return [
    { name: 'light', context: { colorScheme: 'light' } },
    { name: 'dark', context: { colorScheme: 'dark' } },
    { name: 'rtl', context: { colorScheme: 'light' }, language: 'ar' },
    {
      name: 'narrow',
      context: { colorScheme: 'light', viewport: { width: 320, height: narrowHeight } },
    },
  ];
}

/** A value on `window` that only survives as long as no navigation happens. */
export async function markWindow(page: Page): Promise<void> {
  await page.evaluate(() => {
    (window as unknown as { e2eMarker: string }).e2eMarker = 'no navigation';
  });
}

export async function windowMarker(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (window as unknown as { e2eMarker?: string }).e2eMarker);
}

/** Press Tab until `target` has focus, as a keyboard user would. */
export async function tabTo(page: Page, target: Locator, maxPresses = 50): Promise<void> {
  for (let press = 0; press < maxPresses; press++) {
    await page.keyboard.press('Tab');
    if (await target.evaluate((element) => element === document.activeElement)) {
      return;
    }
  }
  throw new Error(`${maxPresses} presses of Tab never reached ${target}`);
}

/** Whether keyboard focus is somewhere inside `container`. */
export async function holdsFocus(container: Locator): Promise<boolean> {
  return container.evaluate((element) => element.contains(document.activeElement));
}

/** A status message (a polite live region) saying `text`: the widget's or the site's. */
export function statusMessage(page: Page, text: string): Locator {
  return page.getByRole('status').filter({ hasText: text });
}

/** The account page under a strict Content Security Policy (example_site/csp.py), per htmx version. */
export const strictCspPages = [
  { htmx: 'htmx 2', path: '/account/strict-csp/' },
  { htmx: 'htmx 4', path: '/account/htmx4/strict-csp/' },
];

/**
 * From the next page `page` loads on: what its Content Security Policy
 * refuses, heard in the page (every securitypolicyviolation event, from
 * before its first script) and in the console (errors naming the policy).
 * The list survives navigations.
 */
export async function watchCsp(page: Page): Promise<string[]> {
  const refused: string[] = [];
  await page.exposeBinding('e2eCspRefused', (_source, description: string) => {
    refused.push(description);
  });
  await page.addInitScript(() => {
    // Capturing on window hears violations on any element and on the document.
    window.addEventListener(
      'securitypolicyviolation',
      (event) => {
        const report = (window as unknown as { e2eCspRefused: (d: string) => void })
          .e2eCspRefused;
        const where = event.sourceFile ? ` (${event.sourceFile}:${event.lineNumber})` : '';
        report(
          `${event.effectiveDirective} refused ${event.blockedURI || 'inline code'}${where}` +
            ` ${event.sample}`.trimEnd(),
        );
      },
      true,
    );
  });
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy/i.test(message.text())) {
      refused.push(`console: ${message.text()}`);
    }
  });
  return refused;
}
