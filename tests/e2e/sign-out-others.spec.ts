// "Sign out all other sessions": every other browser goes, this one stays.
import {
  expect,
  markWindow,
  sessionRow,
  statusMessage,
  test,
  userAgents,
  widget,
  windowMarker,
} from './fixtures';

test('signing out all other sessions', async ({ signIn, signInElsewhere }) => {
  const firefox = await signInElsewhere(userAgents.firefoxWindows);
  const iphone = await signInElsewhere(userAgents.safariIphone);
  const page = await signIn({ userAgent: userAgents.chromeMac });
  await markWindow(page);
  await expect(widget(page).getByRole('listitem')).toHaveCount(3);

  await widget(page).getByRole('button', { name: 'Sign out all other sessions' }).click();
  const dialog = page.getByRole('dialog', { name: 'Sign out all other sessions?' });
  await expect(dialog).toBeVisible();
  await dialog.getByRole('button', { name: 'Sign out all' }).click();

  await expect(dialog).toBeHidden();
  await expect(statusMessage(page, '2 other sessions were signed out.')).toBeVisible();
  await expect(sessionRow(page, 'Firefox on Windows')).toHaveCount(0);
  await expect(sessionRow(page, 'Safari on iPhone')).toHaveCount(0);
  await expect(sessionRow(page, 'Chrome on macOS')).toContainText('This device');
  await expect(page.getByText('You are not signed in anywhere else.')).toBeVisible();
  await expect(
    widget(page).getByRole('button', { name: 'Sign out all other sessions' }),
  ).toHaveCount(0);
  expect(await windowMarker(page)).toBe('no navigation');

  for (const other of [firefox, iphone]) {
    await other.goto('/account/');
    await expect(other).toHaveURL('/login/?next=/account/');
  }
  await page.reload();
  await expect(page).toHaveURL('/account/');
  await expect(widget(page).getByRole('listitem')).toHaveCount(1);
});
