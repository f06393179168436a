// The sign-in alert loop, as a person lives it: a second browser signs in, the
// alert arrives in the example site's demo outbox, its "This wasn't me" link
// signs that browser out, and both browsers' "Recent activity" says why.
import path from 'node:path';

import AxeBuilder from '@axe-core/playwright';
import type { Locator, Page } from '@playwright/test';

import {
  accountPages,
  expect,
  screenshotDir,
  signInOn,
  test,
  userAgents,
  widget,
} from './fixtures';

const reported = 'Reported with “This wasn\'t me”';

/** The widget's "Recent activity" section, opened; its entries are listitems. */
async function openRecentActivity(page: Page): Promise<Locator> {
  const history = widget(page).getByRole('group');
  await history.getByText('Recent activity', { exact: true }).click();
  await expect(history.getByRole('list')).toBeVisible();
  return history;
}

async function expectNoAxeViolations(page: Page, include?: string): Promise<void> {
  const builder = new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']);
  const results = await (include ? builder.include(include) : builder).analyze();
  expect(results.violations.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
}

function shot(name: string, htmx: string): string {
  return path.join(screenshotDir, `${name}-${htmx.replace(' ', '')}.png`);
}

for (const { htmx, path: accountPath } of accountPages) {
  test(`"This wasn't me" in a sign-in alert signs the other browser out (${htmx})`, async ({
    signIn,
    username,
  }) => {
    // The owner reads on a narrow phone screen; the first sign-in of an account is not alerted.
    const owner = await signIn({
      userAgent: userAgents.chromeMac,
      viewport: { width: 320, height: 900 },
      next: accountPath,
    });
    const intruder = await signIn({ userAgent: userAgents.safariIphone, next: '/' });

    // The alert arrives: the owner opens the demo outbox from the site's navigation.
    const nav = owner.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Demo outbox' }).click();
    await expect(owner.getByText('Demo outbox: mail this site would have sent.')).toBeVisible();
    const alert = owner.getByRole('article').filter({ hasText: `${username}@example.com` });
    await expect(alert).toHaveCount(1);
    await expect(
      alert.getByRole('heading', { name: /^New sign-in to your .+ account$/ }),
    ).toBeVisible();
    const mail = alert.locator('iframe').contentFrame();
    await expect(mail.getByText('Safari on iPhone')).toBeVisible();
    await alert.screenshot({ path: shot('alerts-outbox-narrow', htmx) });
    await mail.getByRole('link', { name: "This wasn't me" }).click();

    // The link asks first and names the device.
    await expect(
      owner.getByRole('heading', { level: 1, name: "Sign out the device that wasn't you?" }),
    ).toBeVisible();
    await expect(owner.getByText('Safari on iPhone')).toBeVisible();
    await expectNoAxeViolations(owner);
    await owner.screenshot({ path: shot('alerts-report-confirm-narrow', htmx), fullPage: true });
    await owner.getByRole('button', { name: 'Sign out that device' }).click();
    await expect(owner.getByRole('heading', { level: 1, name: 'Signed out' })).toBeVisible();

    // The reported browser is signed out at its next request; the owner is not.
    await intruder.goto(accountPath);
    await expect(intruder).toHaveURL(/\/login\//);
    await owner.goto(accountPath);
    await expect(owner).toHaveURL(new RegExp(`${accountPath}$`));

    // The owner's Recent activity says why the iPhone's session ended.
    const ownerHistory = await openRecentActivity(owner);
    const ownerEntry = ownerHistory.getByRole('listitem').filter({ hasText: 'Safari on iPhone' });
    await expect(ownerEntry).toHaveCount(1);
    await expect(ownerEntry).toContainText(reported);
    await expectNoAxeViolations(owner, '[data-us-widget]');
    await widget(owner).screenshot({
      path: shot('alerts-recent-activity-narrow', htmx),
      animations: 'disabled',
    });

    // Signed in again, the iPhone sees the same: its earlier session was reported.
    await signInOn(intruder, username, accountPath);
    const intruderHistory = await openRecentActivity(intruder);
    const intruderEntry = intruderHistory
      .getByRole('listitem')
      .filter({ hasText: 'Safari on iPhone' });
    await expect(intruderEntry).toHaveCount(1);
    await expect(intruderEntry).toContainText(reported);
  });
}
