// Driven by benchmarks/push.py: two Chromium contexts signed in as one user on
// the example site. "watcher" keeps the account page open (the widget listens
// on its stream); "actor" signs out one of the user's other sessions at a time
// with the widget's own request. For each, the time from the actor's request
// leaving to the watcher's row disappearing, on one clock (both pages run in
// one browser; performance.timeOrigin + now() is wall time in milliseconds).
//   node benchmarks/push_browser.mjs BASE_URL USERNAME PASSWORD COUNT
import { chromium } from '@playwright/test';

const [baseURL, username, password, countArg] = process.argv.slice(2);
const count = Number(countArg);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});

async function signedIn(userAgent) {
  const context = await browser.newContext({ baseURL, userAgent });
  const page = await context.newPage();
  await page.goto('/login/?next=/account/');
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL('/account/');
  return page;
}

const watcher = await signedIn('Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0');
const actor = await signedIn(
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
);
await watcher.locator('[data-us-widget][data-us-live]').waitFor({ timeout: 10_000 });
const actorHandle = await actor.locator('[data-us-current]').getAttribute('data-handle');

const latencies = [];
for (let round = 0; round < count; round++) {
  // A row the watcher shows that is neither its own session nor the actor's.
  const handle = await watcher.evaluate((skip) => {
    const rows = document.querySelectorAll('[data-us-rows] > [data-handle]:not([data-us-current])');
    for (const row of rows) {
      if (row.getAttribute('data-handle') !== skip) return row.getAttribute('data-handle');
    }
    return null;
  }, actorHandle);
  if (!handle) throw new Error(`round ${round}: no session left to sign out`);
  await watcher.evaluate((target) => {
    window.pushBenchGone = new Promise((resolve) => {
      const root = document.querySelector('[data-us-widget]');
      const observer = new MutationObserver(() => {
        if (!root.querySelector(`[data-us-rows] > [data-handle="${target}"]`)) {
          observer.disconnect();
          resolve(performance.timeOrigin + performance.now());
        }
      });
      observer.observe(root, { childList: true, subtree: true });
    });
  }, handle);
  const sent = await actor.evaluate(async (target) => {
    const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
    const started = performance.timeOrigin + performance.now();
    const response = await fetch(`/account/sessions/${target}/delete/`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'HX-Request': 'true', 'X-CSRFToken': token },
    });
    if (!response.ok) throw new Error(`sign-out answered ${response.status}`);
    return started;
  }, handle);
  const gone = await watcher.evaluate(
    () => Promise.race([window.pushBenchGone, new Promise((_, fail) => setTimeout(() => fail(new Error('no change within 10 s')), 10_000))]),
  );
  latencies.push(gone - sent);
  // Let the watcher's refresh settle before the next round.
  await watcher.waitForTimeout(50);
}
console.log(JSON.stringify({ latencies }));
await browser.close();
