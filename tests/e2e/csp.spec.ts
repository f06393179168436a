// The widget on a page under a strict Content Security Policy (nonce-based
// script-src with 'strict-dynamic', no 'unsafe-inline'), with its script placed
// before the page's other nonce user: the policy refuses nothing, on htmx 2 and 4.
// The example site takes the policy from Django 6 when it runs on Django 6,
// else from django-csp: PYTHON=.venv-django6/bin/python scripts/e2e csp.spec.ts
// runs this on Django's own.
import type { Page, TestInfo } from '@playwright/test';

import {
  confirmSignOutInPlace,
  expect,
  markWindow,
  openSignOutDialog,
  strictCspPages,
  test,
  userAgents,
  watchCsp,
  widget,
} from './fixtures';

/** A full-page screenshot, kept with the test's results to look at. */
async function attachScreenshot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  const body = await page.screenshot({ fullPage: true });
  await testInfo.attach(name, { body, contentType: 'image/png' });
}

for (const { htmx, path } of strictCspPages) {
  test.describe(htmx, () => {
    test('signing out another device, the policy refuses nothing', async ({
      signIn,
      signInElsewhere,
    }, testInfo) => {
      await signInElsewhere(userAgents.firefoxWindows);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: '/' });
      const refused = await watchCsp(page);

      const response = await page.goto(path);
      await page.waitForLoadState('load');
      const policy = response?.headers()['content-security-policy'] ?? '';
      const nonce = /script-src 'nonce-([^']+)' 'strict-dynamic'/.exec(policy)?.[1];
      expect(nonce, `a strict policy (django-csp installed?): "${policy}"`).toBeTruthy();
      expect(policy).toContain(`style-src 'self' 'nonce-${nonce}'`);
      expect(policy).not.toContain('unsafe-');

      expect(refused, 'refused while the page loaded').toEqual([]);

      // The widget's own files ran and apply: htmx, its script, its stylesheet.
      const widgetScript = page.locator('script[src$="user_sessions/user_sessions.js"]');
      expect(await widgetScript.evaluate((script: HTMLScriptElement) => script.nonce)).toBe(nonce);
      expect(await page.evaluate(() => 'UserSessions' in window && 'htmx' in window)).toBe(true);
      await expect(widget(page)).toHaveCSS('border-top-style', 'solid');

      await markWindow(page);
      const dialog = await openSignOutDialog(page, 'Firefox on Windows');
      await attachScreenshot(page, testInfo, 'dialog-open');
      await confirmSignOutInPlace(page, dialog, 'Firefox on Windows');
      await expect(page.getByText('You are not signed in anywhere else.')).toBeVisible();
      await attachScreenshot(page, testInfo, 'signed-out');

      expect(refused).toEqual([]);
    });
  });
}
