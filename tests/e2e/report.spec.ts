// "This wasn't me": the link a sign-in alert carries, opened in a browser that is not signed in.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

import AxeBuilder from '@axe-core/playwright';

import { expect, screenshotDir, test, userAgents } from './fixtures';
import { python, repoRoot, type Site } from './site';

const execFileAsync = promisify(execFile);

// The path of the link an alert for the user's latest session would carry
// (the mail itself is the example site's concern; the link is the same).
async function reportPath(username: string, site: Site): Promise<string> {
  const code = [
    'from user_sessions.alerts import make_report_token',
    'from user_sessions.models import Session',
    `session = Session.objects.filter(user__username=${JSON.stringify(username)}).latest("created_at")`,
    'print(f"/account/sessions/report/{make_report_token(session)}/")',
  ].join('\n');
  const { stdout } = await execFileAsync(python, ['example/manage.py', 'shell', '-v0', '-c', code], {
    cwd: repoRoot,
    env: { ...process.env, ...site.env },
  });
  // The last line: Django 5.2's shell may announce its automatic imports first.
  return stdout.trim().split('\n').pop() ?? '';
}

test('the link asks first, then signs that device out once', async ({
  browser,
  site,
  signIn,
  signInElsewhere,
  username,
}) => {
  const owner = await signIn({ userAgent: userAgents.chromeMac });
  const intruder = await signInElsewhere(userAgents.safariIphone);
  const link = await reportPath(username, site);

  // The mailbox: another browser, signed in as nobody.
  const mailbox = await browser.newContext({ baseURL: site.baseURL });
  const page = await mailbox.newPage();
  await page.goto(link);
  await expect(
    page.getByRole('heading', { level: 1, name: "Sign out the device that wasn't you?" }),
  ).toBeVisible();
  await expect(page.getByText('Safari on iPhone')).toBeVisible();
  const everyDevice = page.getByRole('checkbox', { name: /Also sign out every other device/ });
  await expect(everyDevice).not.toBeChecked();
  const axe = await new AxeBuilder({ page }).analyze();
  expect(axe.violations).toEqual([]);
  await page.screenshot({ path: path.join(screenshotDir, 'report-confirm.png'), fullPage: true });

  // Opening the link changed nothing: the intruder is still signed in.
  await intruder.goto('/account/');
  await expect(intruder).toHaveURL(/\/account\/$/);

  await page.getByRole('button', { name: 'Sign out that device' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Signed out' })).toBeVisible();

  await intruder.goto('/account/');
  await expect(intruder).toHaveURL(/\/login\//);
  await owner.goto('/account/');
  await expect(owner).toHaveURL(/\/account\/$/);

  // Once used, the link only says so.
  await page.goto(link);
  await expect(
    page.getByRole('heading', { level: 1, name: 'That session has already ended' }),
  ).toBeVisible();
  await mailbox.close();
});

test('a link that was cut or altered gets a clear page', async ({ page }) => {
  const response = await page.goto('/account/sessions/report/not-a-real-token/');
  expect(response?.status()).toBe(400);
  await expect(
    page.getByRole('heading', { level: 1, name: 'This link is not valid' }),
  ).toBeVisible();
});
