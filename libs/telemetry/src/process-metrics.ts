import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';
import type {
  ATTR_CPU_MODE,
  CPU_MODE_VALUE_SYSTEM,
  CPU_MODE_VALUE_USER,
  METRIC_NODEJS_EVENTLOOP_UTILIZATION,
  METRIC_PROCESS_CPU_TIME,
  METRIC_PROCESS_MEMORY_USAGE,
} from '@opentelemetry/semantic-conventions/incubating';

/** The process metrics every service reports, in semconv's names (incubating: copied and checked, as in attributes.ts). */
const ProcessMetrics = {
  /** Seconds of CPU this process used since it started, by `cpu.mode` (`user`, `system`): counter, Prometheus `process_cpu_time_total`. */
  cpuTime: 'process.cpu.time' satisfies typeof METRIC_PROCESS_CPU_TIME,
  /** Resident set size in bytes: gauge, `process_memory_usage`. */
  memoryUsage: 'process.memory.usage' satisfies typeof METRIC_PROCESS_MEMORY_USAGE,
  /** Share of the time since the previous collection the event loop was busy, 0 to 1: gauge, `nodejs_eventloop_utilization`. */
  eventLoopUtilization: 'nodejs.eventloop.utilization' satisfies typeof METRIC_NODEJS_EVENTLOOP_UTILIZATION,
} as const;

const CPU_MODE = 'cpu.mode' satisfies typeof ATTR_CPU_MODE;
const USER = 'user' satisfies typeof CPU_MODE_VALUE_USER;
const SYSTEM = 'system' satisfies typeof CPU_MODE_VALUE_SYSTEM;

/**
 * Registers the process's CPU time, memory and event-loop utilization as observable
 * instruments: read only when a reader collects (a scrape, an OTLP push), never on the hot path.
 * Event-loop utilization is over the time since the previous collection (since start for the
 * first), so with a scrape and an OTLP push each sees the share since the other's.
 */
export function observeProcess(meter: Meter): void {
  meter.createObservableCounter(ProcessMetrics.cpuTime, { unit: 's', description: 'CPU seconds this process used, by cpu.mode.' }).addCallback((result) => {
    const { user, system } = process.cpuUsage();
    result.observe(user / 1e6, { [CPU_MODE]: USER });
    result.observe(system / 1e6, { [CPU_MODE]: SYSTEM });
  });
  meter
    .createObservableGauge(ProcessMetrics.memoryUsage, { unit: 'By', description: 'Resident set size of this process.' })
    .addCallback((result) => result.observe(process.memoryUsage.rss()));
  let last: EventLoopUtilization | undefined;
  meter
    .createObservableGauge(ProcessMetrics.eventLoopUtilization, {
      unit: '1',
      description: 'Share of the time since the last collection the event loop was busy.',
    })
    .addCallback((result) => {
      const now = performance.eventLoopUtilization();
      result.observe((last ? performance.eventLoopUtilization(now, last) : now).utilization);
      last = now;
    });
}
