// Where the example site runs for the browser tests, and the environment it
// runs with; shared by playwright.config.ts and the fixtures that add users.
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const python = path.resolve(repoRoot, process.env.PYTHON ?? '.venv/bin/python');

/** One running copy of the example site: its address and the environment it runs with. */
export interface Site {
  port: number;
  baseURL: string;
  env: Record<string, string>;
}

function site(port: number, settings: Record<string, string> = {}): Site {
  return {
    port,
    baseURL: `http://127.0.0.1:${port}`,
    env: {
      PYTHON: python,
      E2E_PORT: String(port),
      // Derived from the port (not random) so every worker process computes the same file.
      EXAMPLE_DB_PATH: path.join(os.tmpdir(), `user-sessions-e2e-${port}`, 'db.sqlite3'),
      EXAMPLE_FAST_HASHER: '1',
      EXAMPLE_QUIET_SERVER: '1',
      EXAMPLE_REFRESH_INTERVAL: '2',
      PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
      ...settings,
    },
  };
}

const firstPort = Number(process.env.E2E_PORT ?? 8765);

/** The site most specs use: default settings. */
export const defaultSite = site(firstPort);
/** The same site with USER_SESSIONS_REQUIRE_PASSWORD = "others". */
export const passwordSite = site(firstPort + 1, { EXAMPLE_REQUIRE_PASSWORD: 'others' });
/**
 * The same site over ASGI (uvicorn, two worker processes) with push on through
 * Redis and polling off: the widget changes only on pushed events, which cross
 * processes through the broker. Its own channel, so parallel runs never mix.
 */
export const pushRedisURL = process.env.E2E_REDIS_URL ?? 'redis://127.0.0.1:6379/14';
export const pushSite = site(firstPort + 2, {
  E2E_SERVER: 'uvicorn',
  E2E_WORKERS: '2',
  EXAMPLE_PUSH_BROKER: 'redis',
  EXAMPLE_PUSH_URL: pushRedisURL,
  EXAMPLE_PUSH_CHANNEL: `user_sessions_e2e_${firstPort + 2}`,
  EXAMPLE_REFRESH_INTERVAL: '0',
});
export const sites = [defaultSite, passwordSite, pushSite];

export const baseURL = defaultSite.baseURL;
export const siteEnv = defaultSite.env;

// The seconds between two refreshes of the widget, as configured above.
export const refreshInterval = Number(siteEnv.EXAMPLE_REFRESH_INTERVAL);
export const demoPassword = 'demo-password';
