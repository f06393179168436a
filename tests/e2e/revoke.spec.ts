// Signing out one other session through the confirmation dialog, on htmx 2 and htmx 4.
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
  windowMarker,
} from './fixtures';

for (const { htmx, path } of accountPages) {
  test.describe(htmx, () => {
    test('revoking another session removes its row without a reload', async ({
      signIn,
      signInElsewhere,
    }) => {
      const other = await signInElsewhere(userAgents.firefoxWindows);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: path });
      await markWindow(page);

      const dialog = await openSignOutDialog(page, 'Firefox on Windows');
      // The row goes by a swap, not by loading the page again.
      await confirmSignOutInPlace(page, dialog, 'Firefox on Windows');
      await expect(page.getByText('You are not signed in anywhere else.')).toBeVisible();
      await expect(page).toHaveURL(path);
      await expect(sessionRow(page, 'Chrome on macOS')).toContainText('This device');

      // The revoked browser finds out at its next request.
      await other.goto('/account/');
      await expect(other).toHaveURL('/login/?next=/account/');
    });

    test('cancelling the dialog changes nothing', async ({ signIn, signInElsewhere }) => {
      const other = await signInElsewhere(userAgents.firefoxWindows);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: path });

      const row = sessionRow(page, 'Firefox on Windows');
      const dialog = await openSignOutDialog(page, 'Firefox on Windows');
      await dialog.getByRole('button', { name: 'Cancel' }).click();

      await expect(dialog).toBeHidden();
      await expect(row).toBeVisible();
      await expect(signOutButton(row)).toBeFocused();

      // Nothing changed on the server either.
      await page.reload();
      await expect(sessionRow(page, 'Firefox on Windows')).toBeVisible();
      await expect(widget(page).getByRole('listitem')).toHaveCount(2);
      await other.goto('/account/');
      await expect(other).toHaveURL('/account/');
    });

    test('signing out this device from its own row', async ({ signIn, signInElsewhere }) => {
      const other = await signInElsewhere(userAgents.firefoxWindows);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: path });

      const dialog = await openSignOutDialog(page, 'This device', 'Sign out of this device?');
      await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();

      // A normal sign-out: off to LOGOUT_REDIRECT_URL (the home page), signed out.
      await expect(page).toHaveURL('/');
      await expect(page.getByRole('navigation', { name: 'Main' })).toContainText('Sign in');
      await other.goto('/account/');
      await expect(other).toHaveURL('/account/');
    });

    test('confirming a sign-out of a session that ended meanwhile', async ({
      signIn,
      signInElsewhere,
    }) => {
      const other = await signInElsewhere(userAgents.firefoxWindows);
      const page = await signIn({ userAgent: userAgents.chromeMac, next: path });
      await markWindow(page);

      const row = sessionRow(page, 'Firefox on Windows');
      const dialog = await openSignOutDialog(page, 'Firefox on Windows');
      // The other browser signs itself out while the dialog is open.
      const otherNav = other.getByRole('navigation', { name: 'Main' });
      await otherNav.getByRole('button', { name: 'Sign out', exact: true }).click();
      await expect(otherNav).toContainText('Sign in');
      await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();

      // The server answers with the fresh list and says what happened.
      await expect(dialog).toBeHidden();
      await expect(row).toHaveCount(0);
      await expect(statusMessage(page, 'That session had already ended.')).toBeVisible();
      await expect(page.getByText('You are not signed in anywhere else.')).toBeVisible();
      expect(await windowMarker(page)).toBe('no navigation');
    });
  });
}
