import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './stack.js';

/** What a script run by `runScript` did: its exit code and everything it wrote. */
export interface ScriptRun {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs one of scripts/ as `npm run <name> -- <args>` does (from the TypeScript sources through
 * tsx), against the NATS server at `natsUrl`, with `env` added; for the CLIs' specs.
 *
 * @example
 * const { code, out } = await runScript('config.ts', t.nats.url, ['apply', file]);
 */
export function runScript(script: string, natsUrl: string, args: string[], env: Record<string, string> = {}): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=sluice-src', '--import', 'tsx', join(ROOT, 'scripts', script), ...args], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: natsUrl, ...env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
  });
}
