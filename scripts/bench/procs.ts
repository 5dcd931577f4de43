import { readdirSync, readFileSync } from 'node:fs';

// What each target's processes spend: /proc reads, cheap enough to take around every run.

const TICK_MS = 1000 / 100; // USER_HZ

/** Processes by name (a process between restarts has no pid). */
export type Roots = Array<[string, number | undefined]>;

/** The fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], utime [11], stime [12]). */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  } catch {
    return undefined; // gone
  }
}

/** A /proc/<pid>/status field in MiB (VmRSS: resident now, VmHWM: peak resident). */
function statusMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`));
    return Number(/(\d+) kB/.exec(line ?? '')?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

export interface Usage {
  cpuMs: number;
  rssMiB: number;
}

/** CPU ms so far and resident MiB now of each root process, its descendants (live ones) counted with it. */
export function usage(roots: Roots): Map<string, Usage> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const ppid = /^\d+$/.test(entry) ? Number(statFields(entry)?.[1]) : NaN;
    if (Number.isFinite(ppid)) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out = new Map<string, Usage>();
  for (const [name, root] of roots) {
    if (!root) continue;
    const u = { cpuMs: 0, rssMiB: 0 };
    for (const pids = [root]; pids.length > 0;) {
      const pid = pids.pop()!;
      const f = statFields(pid);
      if (f) u.cpuMs += (Number(f[11]) + Number(f[12])) * TICK_MS;
      u.rssMiB += statusMiB(pid, 'VmRSS');
      pids.push(...(children.get(pid) ?? []));
    }
    out.set(name, u);
  }
  return out;
}

export const sum = (m: Map<string, Usage>, key: keyof Usage) => [...m.values()].reduce((s, u) => s + u[key], 0);

/** CPU ms this process (the bench, and the simulator and OTLP receiver inside it) has spent so far. */
export function benchCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Resident memory (MB) of each process: now, and the peak since start (VmHWM). */
export function memoryLine(roots: Roots): string {
  const parts = roots.flatMap(([name, pid]) => (pid ? [`${name} ${statusMiB(pid, 'VmRSS').toFixed(0)}/${statusMiB(pid, 'VmHWM').toFixed(0)}`] : []));
  return `memory MB (resident now/peak): ${parts.join(', ')}\n`;
}
