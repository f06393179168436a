// "Recent activity": the widget's collapsed list of ended sessions, why and when.
import path from 'node:path';

import AxeBuilder from '@axe-core/playwright';

import {
  expect,
  screenshotDir,
  sessionRow,
  statusMessage,
  test,
  userAgents,
  widget,
  widgetLooks,
} from './fixtures';

const looks = widgetLooks(900);

for (const look of looks) {
  test(`recent activity says what ended and why (${look.name})`, async ({
    signIn,
    signInElsewhere,
  }) => {
    const firefox = await signInElsewhere(userAgents.firefoxWindows);
    await signInElsewhere(userAgents.safariIphone);
    const page = await signIn({ ...look.context, userAgent: userAgents.chromeMac });
    // This one signs itself out.
    await firefox.getByRole('navigation', { name: 'Main' }).getByRole('button', { name: 'Sign out' }).click();
    await expect(firefox.getByRole('navigation', { name: 'Main' })).toContainText('Sign in');
    await page.reload();
    await widget(page).getByRole('button', { name: 'Sign out all other sessions' }).click();
    const dialog = page.getByRole('dialog', { name: 'Sign out all other sessions?' });
    await dialog.getByRole('button', { name: 'Sign out all' }).click();
    await expect(statusMessage(page, '1 other session was signed out.')).toBeVisible();
    if (look.language) {
      await page.getByLabel('Language').selectOption(look.language);
      await page.getByRole('button', { name: 'Change language' }).click();
      await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
    } else {
      await page.reload();
    }

    // Located by role but not by name: in Arabic the names are translated.
    const history = page.locator('[data-us-widget]').getByRole('group');
    await expect(history).toBeVisible();
    const entries = history.getByRole('listitem');
    // Collapsed at first: the entries are there, but not shown.
    await expect(entries).toHaveCount(0);
    await history.locator('summary').click();
    await expect(entries).toHaveCount(2);
    if (!look.language) {
      await expect(entries.nth(0)).toContainText('Safari on iPhone');
      await expect(entries.nth(0)).toContainText(
        'Signed out with “sign out all others”, 1 minute ago',
      );
      await expect(entries.nth(1)).toContainText('Firefox on Windows');
      await expect(entries.nth(1)).toContainText('Signed out, 1 minute ago');
    }
    // The live list is unaffected by the section below it.
    await expect(sessionRow(page, 'Chrome on macOS')).toHaveCount(look.language ? 0 : 1);

    const results = await new AxeBuilder({ page })
      .include('[data-us-widget]')
      .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
      .analyze();
    expect(results.violations.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
    await page.locator('[data-us-widget]').screenshot({
      path: path.join(screenshotDir, `history-${look.name}.png`),
      animations: 'disabled',
    });
  });
}
