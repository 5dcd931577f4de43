import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

/** One OTLP/HTTP export request in the JSON encoding, as far as the receiver reads it. */
export interface OtlpExport<Span = unknown> {
  resourceSpans?: Array<{ resource?: { attributes?: unknown[] }; scopeSpans?: Array<{ spans?: Span[] }> }>;
}

/** An OTLP/HTTP trace receiver standing in for a collector: it counts what it is sent, and hands each export to `onExport` if given. */
export interface OtlpReceiver {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  /** Spans received so far. */
  spans(): number;
  /** Export requests received so far. */
  exports(): number;
  close(): Promise<void>;
}

/**
 * Starts a receiver on a free port: POST /v1/traces in the OTLP JSON encoding (what
 * `@opentelemetry/exporter-trace-otlp-http` sends, gzip or not), answered 200 `{}`. In the bench it
 * runs inside the bench process, so its CPU is the bench's, not the gateway's (a real collector
 * runs elsewhere); the trace e2e test keeps the spans through `onExport`.
 */
export async function startOtlpReceiver(onExport?: (body: OtlpExport) => void): Promise<OtlpReceiver> {
  let spans = 0;
  let exports = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const parsed = JSON.parse(body.toString('utf8')) as OtlpExport;
      for (const rs of parsed.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
      exports++;
      onExport?.(parsed);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    exports: () => exports,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
