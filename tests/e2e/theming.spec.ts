// The theming guide's CSS (docs/howto/theming.md, its first css block) on the
// demo devices: the custom properties take effect, the themed widget still
// passes axe, and it is photographed as showcase-themed.png (the guide's
// "after" picture: copy it to docs/_static/widget-themed.png).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import AxeBuilder from '@axe-core/playwright';

import {
  addDemoSessions,
  expect,
  screenshotDir,
  sessionRow,
  signOutButton,
  test,
  userAgents,
} from './fixtures';
import { repoRoot } from './site';

function guideCss(): string {
  const guide = readFileSync(path.join(repoRoot, 'docs', 'howto', 'theming.md'), 'utf8');
  const block = /```css\n([\s\S]*?)```/.exec(guide);
  if (!block) throw new Error('docs/howto/theming.md has no css block');
  return block[1];
}

test("the theming guide's custom properties restyle the widget", async ({
  signIn,
  site,
  username,
}) => {
  await addDemoSessions(username, site);
  const page = await signIn({ colorScheme: 'light', userAgent: userAgents.chromeMac });
  await page.waitForLoadState('load');
  const root = page.locator('[data-us-widget]');
  await expect(root.getByRole('listitem')).toHaveCount(6);
  const signOut = signOutButton(sessionRow(page, 'Chrome on Windows 11'));
  const before = await signOut.evaluate((button) => getComputedStyle(button).borderTopLeftRadius);

  await page.addStyleTag({ content: guideCss() });

  // Each property named in the guide reaches what it says it styles.
  await expect(signOut).toHaveCSS('border-top-left-radius', '999px');
  expect(before).not.toBe('999px');
  await expect(signOut).toHaveCSS('color', 'rgb(159, 18, 57)');
  await expect(root).toHaveCSS('font-family', 'Georgia, serif');
  await expect(root.locator('.us-badge')).toHaveCSS('color', 'rgb(91, 33, 182)');

  const results = await new AxeBuilder({ page })
    .include('[data-us-widget]')
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  expect(results.violations.map((violation) => violation.id)).toEqual([]);
  await root.screenshot({
    path: path.join(screenshotDir, 'showcase-themed.png'),
    animations: 'disabled',
  });
});
