// What the fuzzed doors are sent (docs/fuzzing.md): request bodies built valid and then mutated
// (wrong types, huge and deep values, edge numbers, unknown fields), their bytes mutated (invalid
// UTF-8, NUL bytes, truncation), HTTP headers and the raw transport (a lying Content-Length, a
// body sent slowly, a half-closed socket), and NATS subjects and headers. Everything is built from
// fast-check arbitraries, so a failing case shrinks and replays from its seed.
import fc from 'fast-check';
import { Headers } from '@sluice/contracts';

/** The door's endpoints: the HTTP path and the NATS `sluice-endpoint` value of each. */
export const ENDPOINTS = {
  chat: { path: '/v1/chat/completions', nats: 'chat.completions' },
  responses: { path: '/v1/responses', nats: 'responses' },
  embeddings: { path: '/v1/embeddings', nats: 'embeddings' },
} as const;
type FuzzEndpoint = keyof typeof ENDPOINTS;

/** What a target accepts: its keys, models and tenants (the in-process harness's differ from the stack's). */
export interface FuzzTarget {
  /** A key that authenticates, and its tenant (the NATS subject's last token). */
  key: string;
  tenant: string;
  /** A key of another tenant: over NATS on the first tenant's subject it must be refused. */
  otherKey: string;
  /** Chat models the tenant may use, and an embedding model. */
  chatModels: string[];
  embeddingModel: string;
}

/** How often the slow kinds of case come up: each waits for the server's request timeout. */
export interface FuzzWeights {
  /** Weight (an integer; 0 leaves them out) against 164 for the other framings together, of a Content-Length longer than the body with the socket kept open (answered 408 at the request timeout). */
  waitForTimeout: number;
}

const LONE_SURROGATES = ['\ud800', '\udbff', '\udc00', '\udfff', 'a\ud800b', '\udfff\ud800', '\ud83d'];
const EDGE_NUMBERS = [
  0,
  -0,
  1,
  -1,
  0.5,
  1.5,
  2,
  2.0000001,
  20,
  21,
  100,
  128,
  129,
  2 ** 31,
  2 ** 53,
  2 ** 53 + 2,
  -(2 ** 53),
  1e308,
  -1e308,
  5e-324,
  Number.MAX_VALUE,
];
/** Number-shaped JSON text JSON.parse reads differently from what a client meant (or refuses). */
const NUMBER_TEXTS = ['1e400', '-1e400', '-0', '01', '1.', '.5', 'NaN', 'Infinity', '-Infinity', '0x10', '1e-400', '9007199254740993', '+1'];

/** Strings no ordinary client sends: any code unit (NULs, lone surrogates), control characters, long runs. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  { weight: 2, arbitrary: fc.constantFrom(...LONE_SURROGATES, '\u0000', 'a\u0000b', '\u202e', '\ufeff', '\uffff', '', ' ', '\t\n\r') },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('\u0000', '\ud800', '\udc00', '\u0301', '\n', 'x', '"', '\\'), maxLength: 60 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', ' ', '\u0301', '\u0000', '€'), fc.integer({ min: 200, max: 6000 })).map(([c, n]) => c.repeat(n)) },
);

/** A value nested `depth` levels deep (arrays or objects), as JSON.parse would build it. */
const deep = (depth: number, kind: 'array' | 'object'): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = kind === 'array' ? [v] : { a: v };
  return v;
};

/** Any JSON value of the wrong kind for some field: edge numbers, hostile strings, deep or wide values, nulls. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: hostileString },
  { weight: 3, arbitrary: fc.constantFrom<unknown>(...EDGE_NUMBERS, null, true, false, [], {}, [null], [''], { type: 1 }, [[]]) },
  { weight: 2, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 10, max: 120 }), fc.constantFrom<'array' | 'object'>('array', 'object')).map(([d, k]) => deep(d, k)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 3000 }).map((n) => Array.from({ length: n }, (_, i) => ({ role: 'user', content: `m${i}` }))) },
);

/** Field names a body may carry: the endpoints' own, other OpenAI ones, unknown and hostile ones. */
const FIELDS = [
  'model',
  'messages',
  'input',
  'stream',
  'stream_options',
  'user',
  'feature',
  'priority',
  'metadata',
  'n',
  'max_tokens',
  'max_completion_tokens',
  'max_output_tokens',
  'temperature',
  'top_p',
  'presence_penalty',
  'frequency_penalty',
  'seed',
  'stop',
  'tools',
  'tool_choice',
  'response_format',
  'logit_bias',
  'logprobs',
  'top_logprobs',
  'instructions',
  'previous_response_id',
  'encoding_format',
  'dimensions',
  '__proto__',
  'constructor',
  'toString',
  'x-unknown',
  '',
];
const MESSAGE_FIELDS = ['role', 'content', 'name', 'tool_calls', 'tool_call_id', 'refusal', 'function_call', '__proto__', 'extra'];

const words = fc.constantFrom('hello', 'queues', 'buckets', 'tell me', 'summarise this', 'why', 'ok', '¿qué?', '你好', '🙂');
/** Prompt text: words and hostile strings (never the fake terminal stage's command words, e.g. `shed`, alone). */
const promptText = fc.oneof(
  { weight: 3, arbitrary: fc.array(words, { minLength: 1, maxLength: 6 }).map((w) => w.join(' ')) },
  { weight: 1, arbitrary: hostileString.map((s) => `p ${s}`) },
);

const validChat = (t: FuzzTarget) =>
  fc.record(
    {
      model: fc.constantFrom(...t.chatModels, 'auto'),
      messages: fc.array(fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'developer'), content: promptText }), { minLength: 1, maxLength: 3 }),
      stream: fc.boolean(),
      user: fc.string({ minLength: 1, maxLength: 12 }),
      temperature: fc.double({ min: 0, max: 2, noNaN: true }),
      max_tokens: fc.integer({ min: 1, max: 64 }),
      metadata: fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 12 }), { maxKeys: 3 }),
    },
    { requiredKeys: ['messages'] },
  );

const validResponses = (t: FuzzTarget) =>
  fc.record(
    {
      model: fc.constantFrom(...t.chatModels, 'auto'),
      input: fc.oneof(promptText, fc.array(fc.record({ role: fc.constant('user'), content: promptText }), { minLength: 1, maxLength: 3 })),
      instructions: promptText,
      stream: fc.boolean(),
      max_output_tokens: fc.integer({ min: 1, max: 64 }),
    },
    { requiredKeys: ['input'] },
  );

const validEmbeddings = (t: FuzzTarget) =>
  fc.record(
    {
      model: fc.constant(t.embeddingModel),
      input: fc.oneof(promptText, fc.array(promptText, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(50_000), { minLength: 1, maxLength: 8 })),
      encoding_format: fc.constantFrom('float', 'base64'),
    },
    { requiredKeys: ['model', 'input'] },
  );

type Body = Record<string, unknown>;
/** One change to a valid body. */
type Mutation = { kind: 'set'; field: string; value: unknown } | { kind: 'drop'; field: string } | { kind: 'message'; field: string; value: unknown };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      field: fc.oneof(fc.constantFrom(...FIELDS), fc.string({ unit: 'binary', maxLength: 10 })),
      value: hostileValue,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), field: fc.constantFrom(...FIELDS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('message' as const), field: fc.constantFrom(...MESSAGE_FIELDS), value: hostileValue }) },
);

function mutate(body: Body, mutations: Mutation[]): Body {
  // a copy with own properties only: `__proto__` as a field is written as JSON would carry it
  const out: Body = JSON.parse(JSON.stringify(body)) as Body;
  for (const m of mutations) {
    if (m.kind === 'drop') delete out[m.field];
    else if (m.kind === 'set') Object.defineProperty(out, m.field, { value: m.value, enumerable: true, writable: true, configurable: true });
    else {
      const list = Array.isArray(out.messages) ? out.messages : Array.isArray(out.input) ? out.input : undefined;
      const first: unknown = list?.[0];
      if (first && typeof first === 'object') Object.defineProperty(first, m.field, { value: m.value, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

/** A body for an endpoint: valid (about a quarter of them), or valid and then mutated, or not an object at all. */
function bodyOf(endpoint: FuzzEndpoint, t: FuzzTarget): fc.Arbitrary<unknown> {
  const valid: fc.Arbitrary<Body> = endpoint === 'chat' ? validChat(t) : endpoint === 'responses' ? validResponses(t) : validEmbeddings(t);
  return fc.oneof(
    { weight: 5, arbitrary: valid },
    { weight: 8, arbitrary: fc.tuple(valid, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([b, ms]) => mutate(b, ms)) },
    { weight: 1, arbitrary: hostileValue },
  );
}

/** Invalid UTF-8: a lone continuation byte, overlong forms, a UTF-8-encoded surrogate, bytes never valid, a cut sequence. */
const INVALID_UTF8 = [
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf5, 0x80, 0x80, 0x80],
  [0xff],
  [0xfe],
  [0xe2, 0x82],
  [0xf0, 0x9f],
];

/** A change to the body's bytes after it was serialised. */
type ByteMutation =
  | { kind: 'none' }
  | { kind: 'insert'; at: number; bytes: number[] }
  | { kind: 'truncate'; at: number }
  | { kind: 'replace'; text: string }
  | { kind: 'random'; bytes: Uint8Array };

const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: fc.double({ min: 0, max: 1, noNaN: true }),
      bytes: fc.oneof(fc.constantFrom(...INVALID_UTF8), fc.constant([0])).map((b): number[] => [...b]),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('replace' as const),
      text: fc.oneof(
        fc.constantFrom('', ' ', 'null', '[]', '"x"', '{', '}', '{"messages":', '\ufeff{}', '{"a":1,"a":2}', '{"__proto__":{"messages":[]}}'),
        fc.constantFrom(...NUMBER_TEXTS).map((n) => `{"model":"m","messages":[{"role":"user","content":"n"}],"temperature":${n},"max_tokens":${n}}`),
        fc.constantFrom(...NUMBER_TEXTS),
        fc.integer({ min: 30, max: 70_000 }).map((n) => `{"messages":${'['.repeat(n)}${']'.repeat(n)}}`),
        fc.integer({ min: 30, max: 5000 }).map((n) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`),
        fc.constantFrom(
          '{"messages":[{"role":"user","content":"\\ud800"}]}',
          '{"messages":[{"role":"user","content":"\\u0000"}],"user":"\\udfff"}',
          '{"model":"\\u0000"}',
        ),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('random' as const), bytes: fc.uint8Array({ maxLength: 200 }) }) },
);

function applyBytes(json: Buffer, m: ByteMutation): Buffer {
  switch (m.kind) {
    case 'none':
      return json;
    case 'insert': {
      const at = Math.floor(m.at * json.length);
      return Buffer.concat([json.subarray(0, at), Buffer.from(m.bytes), json.subarray(at)]);
    }
    case 'truncate':
      return json.subarray(0, Math.floor(m.at * json.length));
    case 'replace':
      return Buffer.from(m.text, 'utf8');
    case 'random':
      return Buffer.from(m.bytes);
    default: {
      const _exhaustive: never = m;
      return _exhaustive;
    }
  }
}

/** A body's bytes: a generated body serialised (lone surrogates go out as JSON escapes), then perhaps its bytes mutated. */
function bodyBytes(endpoint: FuzzEndpoint, t: FuzzTarget): fc.Arbitrary<Buffer> {
  return fc.tuple(bodyOf(endpoint, t), byteMutation).map(([body, m]) => applyBytes(Buffer.from(JSON.stringify(body) ?? 'undefined', 'utf8'), m));
}

/** A header value that is valid, junk, or hostile (latin-1 bytes, control characters, very long). */
const junkHeader = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'true',
    'false',
    'TRUE',
    'skip',
    'default',
    '0',
    '-1',
    '1e3',
    '60.0',
    '999999999999',
    'null',
    'ä',
    '\u00ff\u00fe',
    'a b',
    'x'.repeat(300),
  ),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
);

/** A header that is absent most of the time (7 in 8) and, when present, valid or junk alike. */
function sometimes(name: string, valid: fc.Arbitrary<string>): fc.Arbitrary<[string, string] | undefined> {
  return fc.oneof(
    { weight: 14, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: valid.map((v): [string, string] => [name, v]) },
    { weight: 1, arbitrary: junkHeader.map((v): [string, string] => [name, v]) },
  );
}

/** An HTTP header: its lower-case name and value as latin-1 bytes, possibly a control character in it. */
type HttpHeader = [name: string, value: string];

function httpHeaders(t: FuzzTarget): fc.Arbitrary<HttpHeader[]> {
  const authorization = fc.oneof(
    { weight: 20, arbitrary: fc.constant(`Bearer ${t.key}`) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.constantFrom(
          '',
          'Bearer',
          'Bearer ',
          `bearer ${t.key}`,
          `Bearer  ${t.key}`,
          `Bearer ${t.key} `,
          `Basic ${Buffer.from(`x:${t.key}`).toString('base64')}`,
          `Bearer ${t.otherKey}`,
          `Bearer ${t.key}\u00ff`,
        ),
        junkHeader.map((v) => `Bearer ${v}`),
        junkHeader,
      ),
    },
  );
  const contentType = fc.oneof(
    { weight: 20, arbitrary: fc.constant('application/json') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=latin1',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
        'json',
        '',
      ),
    },
  );
  return fc
    .tuple(
      fc.option(authorization, { freq: 20, nil: undefined }),
      fc.option(contentType, { freq: 20, nil: undefined }),
      sometimes('x-sluice-feature', fc.constantFrom('search', 'summarize', 'nightly-report')),
      sometimes('x-sluice-priority', fc.constantFrom('critical', 'realtime', 'standard', 'batch', 'low')),
      sometimes('x-sluice-cache', fc.constantFrom('skip', 'default')),
      sometimes('x-sluice-cache-ttl', fc.constantFrom('1', '60', '31536000', '31536001')),
      sometimes('x-sluice-cache-namespace', fc.constantFrom('ns', 'a.b-c_d')),
      sometimes('x-sluice-async', fc.constantFrom('true', 'false', 'TRUE')),
      sometimes('x-sluice-webhook', fc.constantFrom('ops', 'none')),
      sometimes('idempotency-key', fc.uuid()),
      sometimes('traceparent', fc.constant('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')),
    )
    .map(([auth, type, ...rest]) => [
      ...(auth !== undefined ? [['authorization', auth] as HttpHeader] : []),
      ...(type !== undefined ? [['content-type', type] as HttpHeader] : []),
      ...rest.filter((h): h is HttpHeader => h !== undefined),
    ]);
}

/** How the bytes travel: the Content-Length told (true, absent and chunked, lying short or long, not a number) and the pace. */
type Framing =
  | { kind: 'length' }
  | { kind: 'chunked' }
  | { kind: 'short'; by: number }
  | { kind: 'long-then-close'; by: number }
  | { kind: 'long-then-wait'; by: number }
  | { kind: 'bad-length'; value: string }
  | { kind: 'two-lengths'; other: number };

export interface HttpCase {
  door: 'http';
  endpoint: FuzzEndpoint;
  /** The request path (the endpoint's, or a near miss). */
  path: string;
  headers: HttpHeader[];
  body: Buffer;
  framing: Framing;
  /** The body written in this many pieces, `gapMs` apart: a slow client. */
  pieces: number;
  gapMs: number;
}

function framing(w: FuzzWeights): fc.Arbitrary<Framing> {
  return fc.oneof(
    { weight: 120, arbitrary: fc.constant({ kind: 'length' as const }) },
    { weight: 16, arbitrary: fc.constant({ kind: 'chunked' as const }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('short' as const), by: fc.integer({ min: 1, max: 50 }) }) },
    { weight: 8, arbitrary: fc.record({ kind: fc.constant('long-then-close' as const), by: fc.integer({ min: 1, max: 1_000_000 }) }) },
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('bad-length' as const),
        value: fc.constantFrom('-1', 'abc', '1.5', '0x10', '', '99999999999999999999', ' 5', '+5'),
      }),
    },
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('two-lengths' as const), other: fc.integer({ min: 0, max: 100 }) }) },
    ...(w.waitForTimeout > 0
      ? [{ weight: w.waitForTimeout, arbitrary: fc.record({ kind: fc.constant('long-then-wait' as const), by: fc.integer({ min: 1, max: 100 }) }) }]
      : []),
  );
}

/**
 * A body past the stack's ingress.maxBodyBytes (1 MiB): a valid chat body with one huge prompt.
 * HTTP only: NATS refuses a payload past its max_payload (1 MiB by default) in the client, before
 * the door sees it.
 */
const hugeBody: fc.Arbitrary<Buffer> = fc
  .integer({ min: 1_100_000, max: 3_000_000 })
  .map((n) => Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: 'x'.repeat(n) }] }), 'utf8'));

/** One HTTP request to a door. */
export function httpCase(t: FuzzTarget, w: FuzzWeights): fc.Arbitrary<HttpCase> {
  return fc.constantFrom<FuzzEndpoint>('chat', 'responses', 'embeddings').chain((endpoint) =>
    fc.record({
      door: fc.constant('http' as const),
      endpoint: fc.constant(endpoint),
      path: fc.oneof(
        { weight: 40, arbitrary: fc.constant(ENDPOINTS[endpoint].path) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            `${ENDPOINTS[endpoint].path}?x=%ff`,
            `${ENDPOINTS[endpoint].path}/`,
            `${ENDPOINTS[endpoint].path}%00`,
            '/v1//chat/completions',
            '/v1/chat/completions/../embeddings',
            `/v1/${'a'.repeat(2000)}`,
          ),
        },
      ),
      headers: httpHeaders(t),
      body: fc.oneof({ weight: 60, arbitrary: bodyBytes(endpoint, t) }, { weight: 1, arbitrary: hugeBody }),
      framing: framing(w),
      pieces: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 6 }) }),
      gapMs: fc.integer({ min: 0, max: 25 }),
    }),
  );
}

/** One NATS request to the door: a subject, headers and payload bytes. */
export interface NatsCase {
  door: 'nats';
  /** The subject's tenant token: the key's, another, or a made-up one. */
  tenant: string;
  headers: Array<[name: string, value: string]>;
  payload: Buffer;
}

export function natsCase(t: FuzzTarget): fc.Arbitrary<NatsCase> {
  const endpoint = fc.constantFrom<FuzzEndpoint>('chat', 'responses', 'embeddings');
  const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
  const key = fc.oneof({ weight: 20, arbitrary: fc.constant(t.key) }, { weight: 1, arbitrary: fc.oneof(fc.constant(t.otherKey), junkHeader) });
  return endpoint.chain((e) =>
    fc.record({
      door: fc.constant('nats' as const),
      tenant: fc.oneof({ weight: 20, arbitrary: fc.constant(t.tenant) }, { weight: 1, arbitrary: token }),
      headers: fc
        .tuple(
          fc.option(
            key.map((v): [string, string] => [Headers.tenantKey, v]),
            { freq: 20, nil: undefined },
          ),
          fc.oneof(
            { weight: 20, arbitrary: fc.constant<[string, string] | undefined>(e === 'chat' ? undefined : [Headers.endpoint, ENDPOINTS[e].nats]) },
            { weight: 1, arbitrary: junkHeader.map((v): [string, string] => [Headers.endpoint, v]) },
          ),
          sometimes(Headers.cache, fc.constantFrom('skip', 'default')),
          sometimes(Headers.cacheTtl, fc.constantFrom('1', '60', '31536001')),
          sometimes(Headers.cacheNamespace, fc.constantFrom('ns', 'a.b-c_d')),
          sometimes(Headers.async, fc.constantFrom('true', 'false')),
          sometimes(Headers.webhook, fc.constantFrom('ops', 'none')),
          sometimes(Headers.idempotencyKey, fc.uuid()),
          sometimes(Headers.traceparent, fc.constant('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')),
          sometimes(Headers.tracestate, fc.constant('vendor=1')),
        )
        .map((hs) => hs.filter((h): h is [string, string] => h !== undefined)),
      payload: bodyBytes(e, t),
    }),
  );
}
