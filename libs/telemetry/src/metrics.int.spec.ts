import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { meter, metricsHandler, metricsOn, serveMetrics, shutdownMetrics, startMetrics } from './metrics.js';

// The metrics pipeline on real sockets: the switch, the /metrics server a service without an
// HTTP port runs, the route handler ingress and the ledger mount, and the OTLP push.

/** An OTLP/HTTP receiver keeping each POST's path and JSON body. */
async function startReceiver(): Promise<{ url: string; posts: Array<{ path: string; body: any }>; close(): Promise<void> }> {
  const posts: Array<{ path: string; body: any }> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push({ path: req.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await listen(server, 0);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, posts, close: () => close(server) };
}

const listen = (server: Server, port: number) => new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
const close = (server: Server) =>
  new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });

/** A node:http server answering every request with `metricsHandler`, given what fastify hands it. */
async function routeServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => metricsHandler({ raw: req }, { hijack: () => undefined, raw: res }));
  await listen(server, 0);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`, close: () => close(server) };
}

const saved = { ...process.env };
afterAll(() => {
  process.env = saved;
});

describe('SLUICE_METRICS', () => {
  it('refuses a value that is neither on nor off, naming the key', async () => {
    process.env.SLUICE_METRICS = 'false';
    await expect(startMetrics()).rejects.toThrow(/SLUICE_METRICS: "false" is neither on nor off/);
    expect(metricsOn()).toBe(false);
    delete process.env.SLUICE_METRICS;
  });
});

describe('SLUICE_METRICS=off', () => {
  it('starts nothing: no server on a port, no-op instruments, and the route answers 404', async () => {
    process.env.SLUICE_METRICS = 'off';
    expect(await startMetrics()).toBe(false);
    expect(metricsOn()).toBe(false);
    expect(await serveMetrics(1)).toBeUndefined();
    const route = await routeServer();
    const res = await fetch(route.url);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/SLUICE_METRICS=off/);
    await route.close();
    delete process.env.SLUICE_METRICS;
  });
});

describe('metrics on, pushed over OTLP as well', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeAll(async () => {
    receiver = await startReceiver();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    process.env.OTEL_SERVICE_NAME = 'sluice-test';
    // far beyond the test: only the shutdown's flush pushes
    process.env.OTEL_METRIC_EXPORT_INTERVAL = '600000';
    expect(await startMetrics()).toBe(true);
  });
  afterAll(async () => {
    await shutdownMetrics();
    await receiver?.close();
  });

  const requests = () => meter('sluice.router').createCounter('sluice.test.requests', { unit: '{request}', description: 'test' });

  it('serves what a meter recorded on /metrics, and only there; port 0 is no server', async () => {
    requests().add(3, { 'sluice.tenant': 'acme' });
    expect(await serveMetrics(0)).toBeUndefined();
    const probe = createServer();
    await listen(probe, 0);
    const port = (probe.address() as AddressInfo).port;
    await close(probe);
    const server = (await serveMetrics(port))!;
    expect(server.url).toBe(`http://127.0.0.1:${port}/metrics`);
    const text = await (await fetch(server.url)).text();
    expect(text).toMatch(/^sluice_test_requests_total\{sluice_tenant="acme",otel_scope_name="sluice.router"\} 3$/m);
    expect(text).toMatch(/^target_info\{.*service_name="sluice-test"/m);
    // the process's own, read at the scrape
    expect(text).toMatch(/^process_cpu_time_total\{cpu_mode="user",otel_scope_name="@sluice\/telemetry"\} [\d.]+$/m);
    expect(Number(/^process_memory_usage\{.*\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThan(1e6);
    const elu = Number(/^nodejs_eventloop_utilization\{.*\} ([\d.e-]+)$/m.exec(text)?.[1]);
    expect(elu).toBeGreaterThanOrEqual(0);
    expect(elu).toBeLessThanOrEqual(1);
    expect((await fetch(server.url.replace('/metrics', '/'))).status).toBe(404);
    // a second server on the same port is refused, not silently skipped
    await expect(serveMetrics(port)).rejects.toThrow(/EADDRINUSE/);
    await server.close();
  });

  it('answers a scrape through the route handler ingress and the ledger mount', async () => {
    const route = await routeServer();
    const res = await fetch(route.url);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^sluice_test_requests_total\{.*\} 3$/m);
    await route.close();
  });

  it('pushes what is left to <endpoint>/v1/metrics when it shuts down, then records nothing', async () => {
    await shutdownMetrics();
    expect(metricsOn()).toBe(false);
    const pushed = receiver.posts.filter((p) => p.path === '/v1/metrics');
    expect(pushed.length).toBeGreaterThan(0);
    const all = pushed.flatMap((p) => p.body.resourceMetrics ?? []);
    const names = all.flatMap((rm: any) => rm.scopeMetrics.flatMap((sm: any) => sm.metrics.map((m: any) => `${sm.scope.name} ${m.name} ${m.unit}`)));
    expect(names).toContain('sluice.router sluice.test.requests {request}');
    const service = all[0].resource.attributes.find((a: any) => a.key === 'service.name');
    expect(service.value.stringValue).toBe('sluice-test');
  });
});
