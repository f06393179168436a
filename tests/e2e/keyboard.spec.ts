// The revoke flow with the keyboard alone: Tab, Enter or Space, Escape.
import {
  expect,
  holdsFocus,
  sessionRow,
  signOutButton,
  tabTo,
  test,
  userAgents,
  widget,
} from './fixtures';

for (const confirmKey of ['Enter', 'Space']) {
  test(`revoking with Tab and ${confirmKey}`, async ({ signIn, signInElsewhere }) => {
    await signInElsewhere(userAgents.firefoxWindows);
    await signInElsewhere(userAgents.safariIphone);
    const page = await signIn({ userAgent: userAgents.chromeMac });

    const row = sessionRow(page, 'Firefox on Windows');
    await tabTo(page, signOutButton(row));
    await page.keyboard.press('Enter');

    const dialog = page.getByRole('dialog', { name: 'Sign out Firefox on Windows?' });
    await expect(dialog).toBeVisible();
    expect(await holdsFocus(dialog)).toBe(true);
    await tabTo(page, dialog.getByRole('button', { name: 'Sign out', exact: true }), 5);
    await page.keyboard.press(confirmKey);

    await expect(dialog).toBeHidden();
    await expect(row).toHaveCount(0);
    await expect(sessionRow(page, 'Safari on iPhone')).toBeVisible();
    // Focus moves on to another row's button (or the heading), not back to the page start.
    expect(await holdsFocus(widget(page))).toBe(true);
    await expect(page.locator(':focus')).toHaveAccessibleName(/^(Sign out|Your devices)$/);
  });
}

test('Escape closes the dialog and gives focus back', async ({ signIn, signInElsewhere }) => {
  await signInElsewhere(userAgents.firefoxWindows);
  const page = await signIn({ userAgent: userAgents.chromeMac });

  const row = sessionRow(page, 'Firefox on Windows');
  await tabTo(page, signOutButton(row));
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Sign out Firefox on Windows?' });
  await expect(dialog).toBeVisible();
  expect(await holdsFocus(dialog)).toBe(true);

  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(signOutButton(row)).toBeFocused();
  await page.reload();
  await expect(sessionRow(page, 'Firefox on Windows')).toBeVisible();
});
