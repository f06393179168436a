// The example site around the widget: signing in and out, and the language switch.
import { demoPassword } from './site';
import { expect, test } from './fixtures';

test('a wrong password keeps the visitor on the sign-in page', async ({ page, username }) => {
  await page.goto('/login/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(`not-${demoPassword}`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByText(/enter a correct username and password/)).toBeVisible();
  await expect(page).toHaveURL('/login/');
});

test('signing in and out', async ({ signIn, username }) => {
  const page = await signIn({ next: '/' });
  await expect(page.getByText(`Signed in as ${username}.`)).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('navigation', { name: 'Main' })).toContainText('Sign in');
  await page.goto('/account/');
  await expect(page).toHaveURL('/login/?next=/account/');
});

test('the language switch changes language and direction', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel('Language').selectOption('ar');
  await page.getByRole('button', { name: 'Change language' }).click();
  await expect(page.locator('html')).toHaveAttribute('lang', 'ar');
  await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
  await expect(page).toHaveURL('/');

  await page.getByRole('combobox').selectOption('de');
  await page.getByRole('button').last().click();
  await expect(page.locator('html')).toHaveAttribute('lang', 'de');
  await expect(page.locator('html')).toHaveAttribute('dir', 'ltr');
});
