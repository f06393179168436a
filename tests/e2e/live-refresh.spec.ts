// The widget refreshes itself (every EXAMPLE_REFRESH_INTERVAL seconds in these tests).
import {
  expect,
  markWindow,
  openSignOutDialog,
  sessionRow,
  test,
  userAgents,
  windowMarker,
} from './fixtures';

test('a new sign-in elsewhere shows up without a reload', async ({ signIn, signInElsewhere }) => {
  const page = await signIn({ userAgent: userAgents.chromeMac });
  await markWindow(page);
  await expect(page.getByText('You are not signed in anywhere else.')).toBeVisible();

  await signInElsewhere(userAgents.edgeAndroid);

  await expect(sessionRow(page, 'Edge on Android')).toBeVisible();
  await expect(sessionRow(page, 'Edge on Android')).toContainText('Active now');
  expect(await windowMarker(page)).toBe('no navigation');
});

test('a refresh after this session was revoked leads to the sign-in page', async ({
  signIn,
}) => {
  const page = await signIn({ userAgent: userAgents.chromeMac });
  const other = await signIn({ userAgent: userAgents.firefoxWindows });

  const dialog = await openSignOutDialog(other, 'Chrome on macOS');
  await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();
  await expect(sessionRow(other, 'Chrome on macOS')).toHaveCount(0);

  // No action on `page`: its own refresh finds out and sends the tab away.
  await expect(page).toHaveURL('/login/?next=/account/');
  await expect(page.getByRole('heading', { name: 'Sign in' })).toBeVisible();
});
