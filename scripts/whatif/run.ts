import type { Bus } from '@sluice/bus';
import { ControlKeys, parseConfig, Topology, type SluiceConfig } from '@sluice/contracts';
import { recordedFate } from './actual.js';
import { loadCandidate, readConfigFile } from './candidate.js';
import type { WhatifArgs } from './args.js';
import { readWindow } from './read.js';
import { RecordingBuilder } from './record.js';
import { replay } from './replay.js';
import { changes, type WhatifReport } from './report.js';
import { summarize } from './summary.js';

/**
 * The what-if: reads the window's events from the stream, sums what actually happened, replays
 * the requests under the candidate and reports both. The baseline config (the prices of events
 * that recorded none) is `--baseline`, else the live config in the control bucket, else the
 * candidate. Reads only: no stream, bucket or durable consumer is created or changed.
 *
 * @example
 * const report = await whatif(args, bus, process.env);
 */
export async function whatif(args: WhatifArgs, bus: Bus, env: Record<string, string | undefined>): Promise<WhatifReport> {
  const policy = loadCandidate(args, env);
  const baseline = args.baseline ? readConfigFile(args.baseline, env).config : ((await liveConfig(bus)) ?? policy.config);
  const builder = new RecordingBuilder();
  const read = await readWindow(bus, args.from, args.to, (e) => builder.add(e));
  const recording = builder.finish(args.from, args.to);
  const actual = recording.requests.map((r) => recordedFate(r, baseline));
  const candidate = replay(recording, policy);
  const tenants = recording.requests.map((r) => r.tenant);
  return {
    window: { from: new Date(args.from).toISOString(), to: new Date(args.to).toISOString() },
    source: {
      stream: Topology.stream.name,
      nats: args.nats,
      firstSeq: read.firstSeq,
      lastSeq: read.lastSeq,
      events: read.events,
      unreadable: read.unreadable,
    },
    policy: { config: args.config, cache: policy.cache, degradeLevel: policy.degradeLevel ?? 'recorded', balance: policy.balance },
    actual: summarize(actual, tenants),
    candidate: summarize(candidate, tenants),
    ...changes(
      recording.requests.map((r) => r.requestId),
      actual,
      candidate,
    ),
  };
}

/** The config in the control bucket (what the services run now), read from its stream; undefined when it has none. */
async function liveConfig(bus: Bus): Promise<SluiceConfig | undefined> {
  const bucket = Topology.buckets.control.name;
  const m = await bus.jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${ControlKeys.config}` }).catch(() => null);
  // a deleted or purged config is a marker with a KV-Operation header and no data
  if (!m || m.header?.get('KV-Operation') || m.data.length === 0) return undefined;
  // stored without its key hashes (sluice_tenant_keys): a replay needs none
  return parseConfig(m.json(), { keyHashesApart: true });
}
