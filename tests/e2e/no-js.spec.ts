// Without JavaScript the "Sign out" buttons are plain forms that post and come back.
import { expect, sessionRow, signOutButton, statusMessage, test, userAgents } from './fixtures';

test('revoking another session without JavaScript', async ({ signIn, signInElsewhere }) => {
  const other = await signInElsewhere(userAgents.firefoxWindows);
  const page = await signIn({ userAgent: userAgents.chromeMac, javaScriptEnabled: false });

  await signOutButton(sessionRow(page, 'Firefox on Windows')).click();

  await expect(page).toHaveURL('/account/');
  await expect(statusMessage(page, 'Firefox on Windows was signed out.')).toBeVisible();
  await expect(sessionRow(page, 'Firefox on Windows')).toHaveCount(0);
  await expect(sessionRow(page, 'Chrome on macOS')).toContainText('This device');
  await other.goto('/account/');
  await expect(other).toHaveURL('/login/?next=/account/');
});
