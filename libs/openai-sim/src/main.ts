import { pino } from 'pino';
import { optionsFromEnv } from './env.js';
import { startSim } from './server.js';

// Standalone entry point: `npm run sim` or `tsx libs/openai-sim/src/main.ts`.
const log = pino({ name: 'openai-sim' });

try {
  const opts = optionsFromEnv(process.env);
  const sim = await startSim(opts);

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    sim.close().then(
      () => {
        log.info({ signal, stats: sim.stats() }, 'openai-sim stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'openai-sim failed to close');
        process.exit(1);
      },
    );
  };
  // `on`, not `once`: tsx re-raises a signal that has no listener left, which
  // would kill the process before close() finishes.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Logged only once the handlers are in place, so a supervisor that signals
  // on this line always gets a clean shutdown.
  log.info({ ...opts, url: sim.url, port: sim.port }, 'openai-sim listening');
} catch (err) {
  log.fatal({ err }, 'openai-sim failed to start');
  process.exit(1);
}
