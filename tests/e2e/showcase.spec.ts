// The example's demo devices (scripts/example gives alice the same ones): every
// icon kind, hint-based labels and places on one widget, checked with axe and
// photographed under tests/e2e/screenshots/ (showcase-*.png; the README's picture).
import path from 'node:path';

import AxeBuilder from '@axe-core/playwright';

import {
  addDemoSessions,
  expect,
  screenshotDir,
  sessionRow,
  test,
  userAgents,
  widgetLooks,
} from './fixtures';

const looks = widgetLooks(900);

for (const look of looks) {
  test(`the demo devices, with places and icons (${look.name})`, async ({
    signIn,
    site,
    username,
  }) => {
    await addDemoSessions(username, site);
    const page = await signIn({ ...look.context, userAgent: userAgents.chromeMac });
    if (look.language) {
      await page.getByLabel('Language').selectOption(look.language);
      await page.getByRole('button', { name: 'Change language' }).click();
      await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
      await page.waitForLoadState('load');
    } else {
      // Labels from client hints, places from the demo GeoIP database.
      await expect(sessionRow(page, 'Chrome on Windows 11')).toContainText('Zwolle, Netherlands');
      await expect(sessionRow(page, 'Chrome on Pixel 8')).toContainText('São Paulo, Brazil');
      await expect(sessionRow(page, 'Edge on macOS 15')).toContainText('Berlin, Germany');
      await expect(sessionRow(page, 'Safari on iPad')).toContainText('Tokyo, Japan');
    }
    const root = page.locator('[data-us-widget]');
    // This browser and the five demo devices (the widget shows up to 11 rows).
    await expect(root.getByRole('listitem')).toHaveCount(6);
    for (const kind of ['desktop', 'phone', 'tablet']) {
      await expect(root.locator(`svg.us-icon--${kind}[aria-hidden="true"]`).first()).toBeVisible();
    }

    const results = await new AxeBuilder({ page })
      .include('[data-us-widget]')
      .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
      .analyze();
    expect(results.violations.map((violation) => violation.id)).toEqual([]);
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    expect(overflow).toBeLessThanOrEqual(0);

    await root.screenshot({
      path: path.join(screenshotDir, `showcase-${look.name}.png`),
      animations: 'disabled',
    });
  });
}
