// USER_SESSIONS_REQUIRE_PASSWORD = "others": signing out another session asks
// for the account password, in the dialog (htmx 2 and 4) and without JavaScript.
import {
  accountPages,
  confirmSignOutInPlace,
  expect,
  markWindow,
  openSignOutDialog,
  sessionRow,
  signOutButton,
  statusMessage,
  test,
  userAgents,
  widget,
} from './fixtures';
import { demoPassword, passwordSite } from './site';

test.use({ site: passwordSite });

for (const { htmx, path } of accountPages) {
  test(`a wrong password keeps the dialog open, the right one signs out (${htmx})`, async ({
    signIn,
    signInElsewhere,
  }) => {
    const other = await signInElsewhere(userAgents.firefoxWindows);
    const page = await signIn({ userAgent: userAgents.chromeMac, next: path });
    await markWindow(page);

    const row = sessionRow(page, 'Firefox on Windows');
    const dialog = await openSignOutDialog(page, 'Firefox on Windows');
    // The password is what there is to do, so it has focus.
    await expect(dialog.getByLabel('Password')).toBeFocused();

    await dialog.getByLabel('Password').fill('not-the-password');
    await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();

    // Refused: the same dialog comes back with the error, focused on the field.
    await expect(dialog.getByText('The password is not correct.')).toBeVisible();
    await expect(dialog).toBeVisible();
    await expect(dialog.getByLabel('Password')).toBeFocused();
    await expect(dialog.getByLabel('Password')).toHaveAttribute('aria-invalid', 'true');
    await expect(dialog.getByLabel('Password')).toHaveValue('');
    await expect(row).toBeAttached();

    await dialog.getByLabel('Password').fill(demoPassword);
    await confirmSignOutInPlace(page, dialog, 'Firefox on Windows');
    await other.goto('/account/');
    await expect(other).toHaveURL('/login/?next=/account/');
  });
}

test('signing out all others asks for the password too', async ({ signIn, signInElsewhere }) => {
  const other = await signInElsewhere(userAgents.safariIphone);
  const page = await signIn({ userAgent: userAgents.chromeMac });

  await widget(page).getByRole('button', { name: 'Sign out all other sessions' }).click();
  const dialog = page.getByRole('dialog', { name: 'Sign out all other sessions?' });
  await expect(dialog.getByLabel('Password')).toBeFocused();
  await dialog.getByLabel('Password').fill(demoPassword);
  await dialog.getByRole('button', { name: 'Sign out all' }).click();

  await expect(dialog).toBeHidden();
  await expect(statusMessage(page, '1 other session was signed out.')).toBeVisible();
  await other.goto('/account/');
  await expect(other).toHaveURL('/login/?next=/account/');
});

test('signing out this device needs no password', async ({ signIn }) => {
  const page = await signIn({ userAgent: userAgents.chromeMac });

  const dialog = await openSignOutDialog(page, 'This device', 'Sign out of this device?');
  await expect(dialog.getByLabel('Password')).toHaveCount(0);
  await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(page).toHaveURL('/');
});

test('without JavaScript the password is asked on a page of its own', async ({
  signIn,
  signInElsewhere,
}) => {
  const other = await signInElsewhere(userAgents.firefoxWindows);
  const page = await signIn({ userAgent: userAgents.chromeMac, javaScriptEnabled: false });

  await signOutButton(sessionRow(page, 'Firefox on Windows')).click();
  const confirm = page.getByRole('region', { name: 'Sign out Firefox on Windows?' });
  await expect(confirm).toBeVisible();
  await confirm.getByLabel('Password').fill('not-the-password');
  await confirm.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(confirm.getByText('The password is not correct.')).toBeVisible();
  await other.goto('/account/');
  await expect(other).toHaveURL('/account/');

  await confirm.getByLabel('Password').fill(demoPassword);
  await confirm.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(page).toHaveURL('/account/');
  await expect(statusMessage(page, 'Firefox on Windows was signed out.')).toBeVisible();
  await other.goto('/account/');
  await expect(other).toHaveURL('/login/?next=/account/');
});
