/**
 * Operator commands for the control bucket, applied live to running services:
 *   npm run config -- apply [file]      validate and load a config (default config/sluice.json); its key
 *                                       hashes go to sluice_tenant_keys (ingress and the ledger read
 *                                       them), the rest to sluice_control (every service reads it)
 *   npm run config -- show              print the current config (without its key hashes)
 *   npm run config -- degrade <0-4|auto> force a degrade level, or hand it back to the degrader
 *   npm run config -- hash-key <key>    the SHA-256 to put in a tenant's keySha256
 *   npm run config -- parked [durable]  list dead letters: events a consumer parked, and why
 *   npm run config -- replay <durable> [dlqSeq ...]
 *                                       send them back to that consumer (all, or the ones named)
 * NATS at NATS_URL (default: the one `npm start` last ran on, noted in SLUICE_DATA_DIR/nats.url, else
 * 127.0.0.1:4222) as NATS_USER / NATS_PASSWORD when set; else as `operator` when `npm start` left
 * its password under SLUICE_DATA_DIR (default .sluice/credentials/operator); else without a user.
 * `${ENV}` references in the file are filled from the environment; SLUICE_DEV_KEY (default
 * sk-sluice-dev) is hashed into SLUICE_DEV_KEY_SHA256, SLUICE_ADMIN_KEY (default sk-sluice-admin)
 * into SLUICE_ADMIN_KEY_SHA256.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connectBus, ensureTopology, getJson, listParked, putConfig, putDegrade, replayParked, type ParkedEvent } from '@sluice/bus';
import { ControlKeys, hashKey, interpolateEnv, type DegradeState } from '@sluice/contracts';
import { storedNatsUrl, storedOperatorPassword } from './nats-auth-server.js';
import { connectOperator, OPERATOR_USER, ROOT } from './stack.js';

const [command, arg, ...rest] = process.argv.slice(2);
const env = { ...process.env };
if (command === 'hash-key') {
  if (!arg) throw new Error('usage: hash-key <key>');
  process.stdout.write(`${hashKey(arg)}\n`);
  process.exit(0);
}
const dataDir = resolve(env.SLUICE_DATA_DIR ?? join(ROOT, '.sluice'));
// npm start notes the NATS it ran on (4222, or the next free port when another server had 4222)
const natsUrl = env.NATS_URL ?? storedNatsUrl(dataDir) ?? 'nats://127.0.0.1:4222';
// npm start's nats-server has users: its operator's password is where it left it
const operatorPassword = env.NATS_USER ? undefined : storedOperatorPassword(dataDir);
const bus = operatorPassword
  ? await connectOperator(natsUrl, { [OPERATOR_USER]: operatorPassword }, 'sluice-config')
  : await connectBus(natsUrl, 'sluice-config');
const buckets = await ensureTopology(bus, { replicas: Number(env.SLUICE_STREAM_REPLICAS ?? 1) });
const { control } = buckets;
switch (command) {
  case 'apply': {
    env.SLUICE_DEV_KEY_SHA256 ??= hashKey(env.SLUICE_DEV_KEY ?? 'sk-sluice-dev');
    env.SLUICE_ADMIN_KEY_SHA256 ??= hashKey(env.SLUICE_ADMIN_KEY ?? 'sk-sluice-admin');
    env.SLUICE_UPSTREAM_URL ??= env.OPENAI_API_KEY ? 'https://api.openai.com/v1' : `http://127.0.0.1:${env.SIM_PORT ?? 8090}/v1`;
    const file = resolve(arg ?? join(ROOT, 'config', 'sluice.json'));
    const config = await putConfig(buckets, interpolateEnv(JSON.parse(readFileSync(file, 'utf8')), env));
    process.stdout.write(`applied ${file}: ${config.tenants.length} tenants, ${Object.keys(config.models).length} models\n`);
    break;
  }
  case 'show': {
    const current = await getJson(control, ControlKeys.config);
    process.stdout.write(`${JSON.stringify(current?.value ?? null, null, 2)}\n`);
    break;
  }
  case 'degrade': {
    const current = (await getJson<DegradeState>(control, ControlKeys.degrade))?.value ?? { level: 0, since: Date.now(), reason: 'initial' };
    const { override: _previous, ...rest } = current;
    const next: DegradeState =
      arg === 'auto'
        ? { ...rest, reason: 'override cleared by operator' }
        : { ...rest, level: Number(arg), override: Number(arg), since: Date.now(), reason: 'operator override' };
    if (arg !== 'auto' && !(Number(arg) >= 0 && Number(arg) <= 4)) throw new Error('usage: degrade <0-4|auto>');
    await putDegrade(control, next);
    process.stdout.write(`degrade: ${JSON.stringify(next)}\n`);
    break;
  }
  case 'parked': {
    const parked = await listParked(bus, arg);
    for (const p of parked) process.stdout.write(`${describeParked(p)}\n`);
    process.stdout.write(`${parked.length} parked${arg ? ` by ${arg}` : ''}\n`);
    break;
  }
  case 'replay': {
    if (!arg) throw new Error('usage: replay <durable> [dlqSeq ...]');
    const seqs = rest.map(Number);
    if (seqs.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error('usage: replay <durable> [dlqSeq ...] (sequences as `parked` lists them)');
    const replayed = await replayParked(bus, arg, seqs.length ? seqs : undefined);
    for (const p of replayed) process.stdout.write(`replayed ${describeParked(p)}\n`);
    process.stdout.write(`${replayed.length} sent back to ${arg}; one that fails again is parked again\n`);
    break;
  }
  default:
    process.stderr.write('usage: config apply [file] | show | degrade <0-4|auto> | hash-key <key> | parked [durable] | replay <durable> [dlqSeq ...]\n');
    process.exitCode = 2;
}
await bus.nc.close();

/** "dlq 12  ledger  seq 4711  chat.completed  req-abc  5 tries  2026-11-30T15:00:00.000Z  <error>" */
function describeParked(p: ParkedEvent): string {
  let event: { type?: string; requestId?: string } = {};
  try {
    event = JSON.parse(new TextDecoder().decode(p.data)) as typeof event;
  } catch {
    // an unreadable event is listed by its place alone
  }
  const fields = [
    `dlq ${p.dlqSeq}`,
    p.durable,
    `seq ${p.seq}`,
    event.type ?? '(unreadable)',
    event.requestId || '-',
    `${p.deliveries} tries`,
    p.parkedAt.toISOString(),
    p.error,
  ];
  return fields.join('  ');
}
