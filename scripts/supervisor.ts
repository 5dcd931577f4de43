import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * How a service process runs: `compiled` is the build's dist/main.js on plain node, as in
 * production; `source` is src/main.ts through tsx with the `sluice-src` export condition, so the
 * workspace packages resolve to their TypeScript too and nothing needs building (the tests).
 */
export type ServiceEntries = 'compiled' | 'source';

/** Node flags every service process starts with (`cwd` must be the repository root to resolve them). */
const SERVICE_NODE_ARGS: Record<ServiceEntries, readonly string[]> = {
  compiled: ['--import', '@sluice/telemetry/register'],
  source: ['--conditions=sluice-src', '--import', 'tsx', '--import', '@sluice/telemetry/register'],
};

export interface SupervisedOptions {
  name: string;
  /**
   * Script run with `node [source flags] --import @sluice/telemetry/register`: the preload starts
   * tracing (when OTEL_EXPORTER_OTLP_ENDPOINT is set) and metrics (unless SLUICE_METRICS=off)
   * before the script imports what it instruments.
   */
  entry: string;
  /** Whether `entry` is compiled JavaScript or TypeScript source. */
  entries: ServiceEntries;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Every output line, with the service name. */
  onLine: (name: string, line: string) => void;
  /** Told when the process exits and whether it is restarted. */
  onExit: (name: string, code: number | null, signal: NodeJS.Signals | null, restarting: boolean) => void;
  restart: boolean;
}

/**
 * One service process, restarted when it dies (backoff 250 ms doubling to 5 s, reset once it has
 * run for 30 s). Readiness is the service's `{sluice: 'ready'}` message over the IPC channel.
 */
export class Supervised {
  private proc?: ChildProcess;
  private stopped = false;
  private backoffMs = 250;
  private readyWaiters: Array<() => void> = [];
  restarts = 0;
  ready = false;

  constructor(private readonly opts: SupervisedOptions) {}

  start(): void {
    const { name, entry, entries, cwd, env } = this.opts;
    const startedAt = Date.now();
    this.ready = false;
    // SLUICE_CPU_PROFILE_DIR: each service writes V8 CPU profiles under <dir>/<service> when it
    // exits, one per thread (under tsx its loader has one too; the largest is the main thread's). Node
    // refuses --cpu-prof in NODE_OPTIONS, so it has to be an argument.
    const profile = env.SLUICE_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${join(env.SLUICE_CPU_PROFILE_DIR, name)}`] : [];
    const proc = spawn(process.execPath, [...profile, ...SERVICE_NODE_ARGS[entries], entry], { cwd, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.proc = proc;
    proc.on('message', (m: { sluice?: string }) => {
      if (m?.sluice !== 'ready' || this.ready) return;
      this.ready = true;
      for (const w of this.readyWaiters.splice(0)) w();
    });
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream! }).on('line', (line) => this.opts.onLine(name, line));
    }
    proc.once('exit', (code, signal) => {
      const restarting = this.opts.restart && !this.stopped;
      this.opts.onExit(name, code, signal, restarting);
      if (!restarting) return;
      if (Date.now() - startedAt > 30_000) this.backoffMs = 250;
      const wait = this.backoffMs;
      this.backoffMs = Math.min(5000, this.backoffMs * 2);
      this.restarts++;
      setTimeout(() => !this.stopped && this.start(), wait);
    });
  }

  /** Resolves when the (current or next) process logs that it started. */
  whenReady(timeoutMs = 60_000): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.opts.name} not ready after ${timeoutMs} ms`)), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Sends a signal to the running process (the supervisor restarts it unless stopped). */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.ready = false;
    this.proc?.kill(signal);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Stops for good: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 8000): Promise<void> {
    this.stopped = true;
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      proc.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  }
}
