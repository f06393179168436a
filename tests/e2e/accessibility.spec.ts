// axe-core scans of the widget (closed and with a dialog open) in every look it
// has, plus screenshots of those looks under tests/e2e/screenshots/ for a human to check.
import path from 'node:path';

import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';

import { expect, screenshotDir, test, userAgents, widgetLooks } from './fixtures';

const wcagTags = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
// The widget's root element (see user_sessions/widget.html); the dialogs live inside it.
const widgetSelector = '[data-us-widget]';

const looks = widgetLooks(720);

async function expectNoViolations(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page })
    .include(widgetSelector)
    .withTags(wcagTags)
    .analyze();
  const violations = results.violations.map((violation) => ({
    rule: violation.id,
    help: violation.help,
    nodes: violation.nodes.map((node) => `${node.target.join(' ')}: ${node.failureSummary}`),
  }));
  expect(violations).toEqual([]);
}

for (const look of looks) {
  test(`the widget passes axe-core (${look.name})`, async ({ signIn, signInElsewhere }) => {
    await signInElsewhere(userAgents.firefoxWindows);
    await signInElsewhere(userAgents.safariIphone);
    const page = await signIn({ ...look.context, userAgent: userAgents.chromeMac });
    if (look.language) {
      await page.getByLabel('Language').selectOption(look.language);
      await page.getByRole('button', { name: 'Change language' }).click();
      await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
      // The widget's script runs on load; a click before that would post the plain form.
      await page.waitForLoadState('load');
    }
    // Located by role but not by name: in Arabic the names are translated.
    const rows = page.locator(widgetSelector).getByRole('listitem');
    await expect(rows).toHaveCount(3);

    await expectNoViolations(page);
    await page.locator(widgetSelector).screenshot({
      path: path.join(screenshotDir, `widget-${look.name}.png`),
      animations: 'disabled',
    });

    // The first row is this device; the second one is another session.
    await rows.nth(1).getByRole('button').first().click();
    const dialog = page.getByRole('dialog');
    await expect(dialog).toBeVisible();
    await expectNoViolations(page);
    await page.screenshot({
      path: path.join(screenshotDir, `dialog-${look.name}.png`),
      animations: 'disabled',
    });
  });
}
