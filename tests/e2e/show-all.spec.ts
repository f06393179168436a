// A user with more sessions than one render shows (USER_SESSIONS_WIDGET_LIMIT,
// 10): "Show all (N)" loads the rest a page (50) at a time, by keyboard, on
// htmx 2 and 4, and without JavaScript as plain links.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';

import {
  accountPages,
  expect,
  screenshotDir,
  statusMessage,
  tabTo,
  test,
  userAgents,
  widget,
} from './fixtures';
import { python, repoRoot, type Site } from './site';

const execFileAsync = promisify(execFile);

/**
 * `count` sessions of `username` that no browser holds, each from its own
 * address 192.0.2.<n + 1>, the first active 5 minutes ago, each one a minute
 * before the previous: the order the widget lists them in.
 */
async function addSessions(site: Site, username: string, count: number): Promise<void> {
  const code = `
import datetime, secrets
from django.contrib.auth import get_user_model
from django.utils import timezone
from user_sessions.models import Session
user = get_user_model().objects.get(username=${JSON.stringify(username)})
now = timezone.now()
Session.objects.bulk_create(
    Session(
        session_key=secrets.token_hex(16), session_data="", user=user,
        expire_date=now + datetime.timedelta(days=1),
        user_agent=${JSON.stringify(userAgents.safariIphone)},
        ip=f"192.0.2.{n + 1}",
        created_at=now - datetime.timedelta(days=1),
        last_activity=now - datetime.timedelta(minutes=5 + n),
    )
    for n in range(${count})
)
`;
  await execFileAsync(python, ['example/manage.py', 'shell', '-c', code], {
    cwd: repoRoot,
    env: { ...process.env, ...site.env },
  });
}

function rows(page: Page) {
  return widget(page).getByRole('listitem');
}

/** The row of the session from `address` (192.0.2.1 is not 192.0.2.10). */
function rowAt(page: Page, address: string) {
  return rows(page).filter({ hasText: new RegExp(`${address.replace(/\./g, '\\.')}(?!\\d)`) });
}

async function handles(page: Page): Promise<string[]> {
  return widget(page)
    .locator('[data-handle]')
    .evaluateAll((found) => found.map((row) => row.getAttribute('data-handle') ?? ''));
}

async function expectNoAxeViolations(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page })
    .include('[data-us-widget]')
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  expect(results.violations.map((violation) => violation.id)).toEqual([]);
}

for (const { htmx, path: accountPath } of accountPages) {
  test.describe(htmx, () => {
    // About 130 key presses and two axe scans of 71 rows: slow on a busy machine.
    test.describe.configure({ timeout: 150_000 });

    test('"Show all" loads the rest in pages, by keyboard', async ({
      signIn,
      signInElsewhere,
      site,
      username,
    }) => {
      await addSessions(site, username, 70);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: accountPath });
      await page.waitForLoadState('load');

      // This device and the 10 most recently active others.
      await expect(rows(page)).toHaveCount(11);
      await expect(rows(page).first()).toContainText('This device');
      await expect(rowAt(page, '192.0.2.10')).toHaveCount(1);
      await expect(rowAt(page, '192.0.2.11')).toHaveCount(0);
      const showAll = widget(page).getByRole('link', { name: 'Show all (71)' });
      await expect(showAll).toBeVisible();
      if (htmx === 'htmx 2') {
        await expectNoAxeViolations(page);
        await widget(page).screenshot({ path: path.join(screenshotDir, 'show-all-capped.png') });
      }

      await tabTo(page, showAll, 80);
      await page.keyboard.press('Enter');

      // The next 50 join the one list; focus goes to the first of them.
      await expect(rows(page)).toHaveCount(61);
      await expect(widget(page).getByRole('list')).toHaveCount(1);
      await expect(rowAt(page, '192.0.2.11')).toBeFocused();
      await expect(statusMessage(page, '50 more sessions shown.')).toBeVisible();
      const showMore = widget(page).getByRole('link', { name: 'Show more' });
      await expect(showMore).toBeVisible();
      await expect(showAll).toHaveCount(0);

      // Tab goes on from the new rows: through their buttons to "Show more".
      await tabTo(page, showMore, 80);
      await page.keyboard.press('Enter');
      await expect(rows(page)).toHaveCount(71);
      await expect(rowAt(page, '192.0.2.61')).toBeFocused();
      await expect(statusMessage(page, '10 more sessions shown.')).toBeVisible();
      await expect(widget(page).getByRole('link', { name: /^Show (all|more)/ })).toHaveCount(0);
      const shown = await handles(page);
      expect(new Set(shown).size).toBe(71);
      if (htmx === 'htmx 2') {
        await expectNoAxeViolations(page);
        // The viewport: where focus went, among the rows that came in.
        await page.screenshot({ path: path.join(screenshotDir, 'show-all-expanded.png') });
      }

      // The refresh brings a new sign-in to the top and keeps what was loaded.
      await signInElsewhere(userAgents.firefoxWindows);
      await expect(rows(page).filter({ hasText: 'Firefox on Windows' })).toBeVisible();
      await expect(rows(page)).toHaveCount(72);

      // Signing out a session far down the list: only that row goes.
      const far = rowAt(page, '192.0.2.40');
      const next = rowAt(page, '192.0.2.41');
      await far.getByRole('button', { name: 'Sign out', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Sign out Safari on iPhone?' });
      await expect(dialog).toBeVisible();
      await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();
      await expect(dialog).toBeHidden();
      await expect(statusMessage(page, 'Safari on iPhone was signed out.')).toBeVisible();
      await expect(rows(page)).toHaveCount(71);
      await expect(far).toHaveCount(0);
      await expect(next).toBeVisible();
      await expect(next.getByRole('button', { name: 'Sign out', exact: true })).toBeFocused();
      await expect(rowAt(page, '192.0.2.70')).toBeVisible();
    });
  });
}

test('without JavaScript "Show all" leads to pages of their own', async ({
  signIn,
  site,
  username,
}) => {
  await addSessions(site, username, 70);
  const page = await signIn({ userAgent: userAgents.chromeMac, javaScriptEnabled: false });

  await expect(rows(page)).toHaveCount(11);
  await widget(page).getByRole('link', { name: 'Show all (71)' }).click();

  await expect(page).toHaveURL(/\/account\/sessions\/\?after=/);
  await expect(page.getByRole('heading', { level: 1, name: 'Your devices' })).toBeVisible();
  await expect(rows(page)).toHaveCount(51);
  await expect(rows(page).first()).toContainText('This device');
  await expect(rows(page).nth(1)).toContainText('192.0.2.11');
  await widget(page).getByRole('link', { name: 'Show more' }).click();
  await expect(rows(page)).toHaveCount(11);
  await expect(rows(page).nth(1)).toContainText('192.0.2.61');
  await expect(widget(page).getByRole('link', { name: 'Show more' })).toHaveCount(0);
});
