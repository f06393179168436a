// Where the example site runs for the browser tests, and the environment it
// runs with; shared by playwright.config.ts and the fixtures that add users.
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..');
export const port = Number(process.env.E2E_PORT ?? 8765);
export const baseURL = `http://127.0.0.1:${port}`;
export const python = path.resolve(repoRoot, process.env.PYTHON ?? '.venv/bin/python');

export const siteEnv: Record<string, string> = {
  PYTHON: python,
  E2E_PORT: String(port),
  // Derived from the port (not random) so every worker process computes the same file.
  EXAMPLE_DB_PATH: path.join(os.tmpdir(), `user-sessions-e2e-${port}`, 'db.sqlite3'),
  EXAMPLE_FAST_HASHER: '1',
  EXAMPLE_QUIET_SERVER: '1',
  EXAMPLE_REFRESH_INTERVAL: '2',
  PYTHONPATH: [repoRoot, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter),
};

// The seconds between two refreshes of the widget, as configured above.
export const refreshInterval = Number(siteEnv.EXAMPLE_REFRESH_INTERVAL);
export const demoPassword = 'demo-password';
