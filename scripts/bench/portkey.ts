import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep } from './load.js';

/**
 * Starts Portkey's Node server (the package's `bin`) on `port`, headless (no console UI or log
 * stream), and resolves once it answers. Its stdout is only a start banner; errors reach stderr.
 */
export async function startPortkey(port: number): Promise<ChildProcess> {
  const pkg = fileURLToPath(import.meta.resolve('@portkey-ai/gateway/package.json'));
  const { bin } = JSON.parse(readFileSync(pkg, 'utf8')) as { bin: string };
  const proc = spawn(process.execPath, [join(dirname(pkg), bin), `--port=${port}`, '--headless'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const until = performance.now() + 30_000;
  while (performance.now() < until) {
    if (proc.exitCode !== null) throw new Error(`Portkey exited with code ${proc.exitCode} before answering on port ${port}`);
    const answers = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    if (answers?.ok) return proc;
    await sleep(100);
  }
  proc.kill();
  throw new Error(`Portkey did not answer on port ${port} within 30 s`);
}

/** Stops Portkey and waits for it to exit. */
export async function stopPortkey(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill();
  await exited;
}
