// A private three-node NATS cluster on loopback, for the cluster chaos spec and for trying the
// stack on replicated streams (not needed by services at run time). Same shape as a node of
// deploy/nats/nats.conf: JetStream, routes to every node, Sluice's max_payload; no users.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { Topology } from '@sluice/contracts';
import { freePort, natsServerOnPath, spawnNatsServer, type LocalNats } from './nats-server.js';
import { eventually } from './testing.js';

export interface ClusterNode {
  /** Its `server_name` (`n0`, `n1`, ...): what a stream's `cluster.leader` names. */
  name: string;
  /** `nats://127.0.0.1:<client port>` */
  url: string;
  /** The running server; undefined while it is down. */
  server?: LocalNats;
}

export interface LocalNatsCluster {
  /** Every node's client URL, comma-separated: what NATS_URL and `startStack({ natsUrl })` take. */
  url: string;
  nodes: ClusterNode[];
  /** The node called `name`; throws for an unknown name. */
  node(name: string): ClusterNode;
  /** Kills one node (SIGKILL by default, as a crashed machine) and waits for it to exit. */
  kill(name: string, signal?: NodeJS.Signals): Promise<void>;
  /** Starts a node that is down again, on its ports and store, and waits until it answers. */
  restart(name: string): Promise<void>;
  /** Stops every node (SIGTERM). */
  stop(): Promise<void>;
}

/**
 * Starts `size` (default 3) nats-servers that route to each other as cluster `sluice`, each on a
 * free client and route port with its store under `<dir>/<name>`, and waits until JetStream has a
 * meta leader (streams and buckets can be created at replicas up to `size`).
 *
 * @example
 * const cluster = await startNatsCluster(mkdtempSync(join(tmpdir(), 'nats-')));
 * const leader = (await jsm.streams.info('S')).cluster!.leader!;
 * await cluster.kill(leader);
 * await cluster.restart(leader);
 */
export async function startNatsCluster(dir: string, size = 3): Promise<LocalNatsCluster> {
  const bin = natsServerOnPath();
  if (!bin) throw new Error('nats-server is not on PATH; install it (apt-get install nats-server)');
  const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), route: await freePort() })));
  const routes = ports.map((p) => `nats-route://127.0.0.1:${p.route}`);
  const specs = ports.map((p, i) => {
    const name = `n${i}`;
    const storeDir = join(dir, name);
    mkdirSync(storeDir, { recursive: true });
    const conf = join(storeDir, 'node.conf');
    writeFileSync(
      conf,
      [
        `# written by Sluice's startNatsCluster; see deploy/nats/nats.conf`,
        `server_name: ${name}`,
        `listen: 127.0.0.1:${p.client}`,
        `max_payload: ${Topology.maxPayloadBytes}`,
        `jetstream { store_dir: "${storeDir}" }`,
        // a route to itself is recognised and dropped, as in the shipped config
        `cluster { name: sluice, listen: 127.0.0.1:${p.route}, routes: [${routes.join(', ')}] }`,
        '',
      ].join('\n'),
    );
    return { name, conf, port: p.client };
  });
  const nodes: ClusterNode[] = specs.map((s) => ({ name: s.name, url: `nats://127.0.0.1:${s.port}` }));
  const startNode = async (i: number) => (nodes[i]!.server = await spawnNatsServer(bin, ['-c', specs[i]!.conf], specs[i]!.port));
  const indexOf = (name: string) => {
    const i = nodes.findIndex((n) => n.name === name);
    if (i < 0) throw new Error(`no node ${name} (nodes: ${nodes.map((n) => n.name).join(', ')})`);
    return i;
  };
  const stop = () => Promise.all(nodes.map((n) => n.server?.stop() ?? Promise.resolve())).then(() => undefined);
  try {
    await Promise.all(specs.map((_, i) => startNode(i)));
    await jetStreamReady(nodes.map((n) => n.url).join(','));
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url: nodes.map((n) => n.url).join(','),
    nodes,
    node: (name) => nodes[indexOf(name)]!,
    async kill(name, signal = 'SIGKILL') {
      const node = nodes[indexOf(name)]!;
      const proc = node.server?.process;
      node.server = undefined;
      if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill(signal);
      });
    },
    async restart(name) {
      const i = indexOf(name);
      if (nodes[i]!.server) throw new Error(`node ${name} is running; kill it first`);
      await startNode(i);
    },
    stop,
  };
}

/**
 * Waits until the cluster's JetStream answers API calls (a meta leader is elected), asking
 * through any of `url`'s comma-separated nodes.
 */
export async function jetStreamReady(url: string, timeoutMs = 30_000): Promise<void> {
  const nc = await connect({ servers: url.split(','), timeout: 2000 });
  try {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        // jetstreamManager asks for the account info too: it fails while there is no meta leader
        await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
        return;
      } catch (e) {
        if (Date.now() > end) throw new Error(`JetStream had no meta leader after ${timeoutMs} ms`, { cause: e });
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  } finally {
    await nc.close();
  }
}

/** What one node answered as a stream's leader: each subject's last message as `<sequence>:<text>`. */
export interface LeaderView {
  leader: string;
  lastSeq: number;
  last: Record<string, string>;
}

/**
 * What every replica of `stream` holds, seen through each node in turn as its leader (a stream
 * message get, as the leader answers it): the leader is stepped down until every node of the
 * group has led or `maxStepdowns` were made. `show` turns a subject's last message into text
 * (its value, say). Replicas that agree give the same texts; nats-server 2.9.10's may number
 * them differently after a leader was killed (docs/cluster.md). Moves the stream's leader.
 *
 * @example
 * const views = await leaderViews(nc, 'KV_sluice_limits', ['$KV.sluice_limits.t.tight'], (m) => m.string());
 */
export async function leaderViews(
  nc: NatsConnection,
  stream: string,
  subjects: readonly string[],
  show: (m: StoredMsg) => string,
  maxStepdowns = 8,
): Promise<LeaderView[]> {
  const jsm = await jetstreamManager(nc);
  const views = new Map<string, LeaderView>();
  // a leader, and every other replica caught up with it
  const settled = () =>
    eventually(
      async () => {
        const info = await jsm.streams.info(stream);
        const c = info.cluster;
        return (
          !!c?.leader && (c.replicas ?? []).every((p) => p.current) && { leader: c.leader, lastSeq: info.state.last_seq, size: (c.replicas?.length ?? 0) + 1 }
        );
      },
      30_000,
      { what: `a settled leader of stream ${stream}`, everyMs: 250 },
    );
  for (let n = 0; ; n++) {
    const { leader, lastSeq, size } = await settled();
    if (!views.has(leader)) {
      const last: Record<string, string> = {};
      for (const subject of subjects) {
        const m = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
        last[subject] = m ? `${m.seq}:${show(m)}` : 'none';
      }
      views.set(leader, { leader, lastSeq, last });
    }
    if (views.size >= size || n >= maxStepdowns) break;
    await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, undefined, { timeout: 5000 }).catch(() => undefined);
    // the old leader's answer says nothing of who follows: wait for another (or try again after 30 s)
    await eventually(async () => (await jsm.streams.info(stream).catch(() => undefined))?.cluster?.leader !== leader, 30_000, { everyMs: 250 }).catch(
      () => undefined,
    );
  }
  return [...views.values()];
}
