import { defineConfig, devices } from '@playwright/test';

import { baseURL, sites } from './tests/e2e/site';

export default defineConfig({
  testDir: 'tests/e2e',
  // Each test signs in its own fresh user, so two workers never share sessions.
  fullyParallel: true,
  workers: 2,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  // Generous: a loaded 2-core machine runs these next to everything else.
  timeout: 60_000,
  expect: { timeout: 10_000 },
  use: {
    ...devices['Desktop Chrome'],
    baseURL,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
  },
  // One server per configuration the specs need (see tests/e2e/site.ts).
  webServer: sites.map((site) => ({
    command: 'scripts/e2e-server',
    env: site.env,
    url: `${site.baseURL}/login/`,
    timeout: 120_000,
    // A server started by hand would not know the database the fixtures add users to.
    reuseExistingServer: false,
    gracefulShutdown: { signal: 'SIGTERM' as const, timeout: 5000 },
  })),
});
