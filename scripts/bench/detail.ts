import type { NatsConnection } from '@nats-io/transport-node';
import { pct, sleep } from './load.js';
import { benchCpuMs, usage, type Roots, type Usage } from './procs.js';
import type { Measured } from './sluice.js';

// BENCH_DETAIL: where a Sluice request's time and the machine's CPU go.

/** Records when each request's events arrive on the bus (this process's clock), to measure the gaps between hops. */
export function watchHops(nc: NatsConnection) {
  const hops = new Map<string, Array<[string, number]>>();
  nc.subscribe('sluice.evt.>', {
    callback: (_err, msg) => {
      const t = performance.now();
      const e = JSON.parse(new TextDecoder().decode(msg.data)) as { type: string; requestId: string };
      const list = hops.get(e.requestId) ?? [];
      list.push([e.type, t]);
      hops.set(e.requestId, list);
    },
  });
  return {
    clear: () => hops.clear(),
    /** Each process's CPU per request (this one, client and simulator, as bench+sim), and the median gap between a request's events. */
    describe(name: string, c: number, m: Measured): string {
      const perRequest = (ms: number) => (ms / m.requests).toFixed(2);
      const cpu = [...m.after].map(([n, u]) => `${n} ${perRequest(u.cpuMs - (m.before.get(n)?.cpuMs ?? 0))}`);
      const gaps = new Map<string, number[]>();
      for (const list of hops.values()) {
        for (let i = 1; i < list.length; i++) {
          const pair = `${list[i - 1]![0]}→${list[i]![0]}`;
          gaps.set(pair, [...(gaps.get(pair) ?? []), list[i]![1] - list[i - 1]![1]]);
        }
      }
      const common = [...gaps]
        .filter(([, v]) => v.length >= m.requests / 2)
        .map(
          ([pair, v]) =>
            `${pair} ${pct(
              v.sort((a, b) => a - b),
              50,
            ).toFixed(2)}`,
        );
      return `${name} c=${c}: CPU ms/request ${cpu.join(', ')}, bench+sim ${perRequest(m.benchMs)}\n  event gaps p50 ms: ${common.join(', ')}\n`;
    },
  };
}

/** What each process burns with no traffic at all, after a pause for the warm-up's backlog to drain. */
export async function idleCpu(roots: Roots): Promise<string> {
  await sleep(2000);
  const [before, bench0] = [usage(roots), benchCpuMs()];
  await sleep(3000);
  const share = (u: Usage, n: string) => (((u.cpuMs - (before.get(n)?.cpuMs ?? 0)) / 3000) * 100).toFixed(1);
  const idle = [...usage(roots)].map(([n, u]) => `${n} ${share(u, n)}%`);
  return `idle CPU: ${idle.join(', ')}, bench+sim ${(((benchCpuMs() - bench0) / 3000) * 100).toFixed(1)}%\n`;
}
