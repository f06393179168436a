// The widget in the site's language: German (left to right) and Arabic (right to
// left), chosen through the example site's language switch, down to a completed revoke.
import { expect, test, userAgents } from './fixtures';

const languages = [
  {
    code: 'de',
    dir: 'ltr',
    heading: 'Ihre Geräte',
    thisDevice: 'Dieses Gerät',
    other: 'Firefox unter Windows',
    dialog: 'Firefox unter Windows abmelden?',
    confirm: 'Abmelden',
    cancel: 'Abbrechen',
    done: 'Firefox unter Windows wurde abgemeldet.',
    alone: 'Sie sind nirgendwo sonst angemeldet.',
  },
  {
    code: 'ar',
    dir: 'rtl',
    heading: 'أجهزتك',
    thisDevice: 'هذا الجهاز',
    other: 'Firefox على Windows',
    dialog: 'هل تريد تسجيل الخروج من Firefox على Windows؟',
    confirm: 'تسجيل الخروج',
    cancel: 'إلغاء',
    done: 'تم تسجيل الخروج من Firefox على Windows.',
    alone: 'لا توجد لديك جلسات نشطة في أي مكان آخر.',
  },
];

for (const lang of languages) {
  test(`the widget speaks ${lang.code} and revokes in it`, async ({ signIn, signInElsewhere }) => {
    const other = await signInElsewhere(userAgents.firefoxWindows);
    const page = await signIn({ userAgent: userAgents.chromeMac });
    await page.getByLabel('Language').selectOption(lang.code);
    await page.getByRole('button', { name: 'Change language' }).click();
    await expect(page.locator('html')).toHaveAttribute('lang', lang.code);
    await page.waitForLoadState('load');

    const widget = page.getByRole('region', { name: lang.heading });
    await expect(widget).toBeVisible();
    await expect(widget).toHaveAttribute('dir', lang.dir);
    await expect(widget.getByRole('listitem').first()).toContainText(lang.thisDevice);

    const row = widget.getByRole('listitem').filter({ hasText: lang.other });
    await row.getByRole('button', { name: lang.confirm, exact: true }).click();
    const dialog = page.getByRole('dialog', { name: lang.dialog });
    await expect(dialog).toBeVisible();
    await expect(dialog.getByRole('button', { name: lang.cancel })).toBeVisible();
    await dialog.getByRole('button', { name: lang.confirm, exact: true }).click();

    await expect(dialog).toBeHidden();
    await expect(widget.getByRole('listitem')).toHaveCount(1);
    await expect(page.getByRole('status').filter({ hasText: lang.done })).toBeVisible();
    await expect(widget.getByText(lang.alone)).toBeVisible();

    // The refresh (every 2 s here) keeps the language too.
    await page.waitForTimeout(2500);
    await expect(page.getByRole('region', { name: lang.heading })).toBeVisible();

    await other.goto('/account/');
    await expect(other).toHaveURL('/login/?next=/account/');
  });
}
