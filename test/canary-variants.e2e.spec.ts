import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type OpenAI from 'openai';
import type { Subscription } from '@nats-io/transport-node';
import { Subjects, type SluiceEvent } from '@sluice/contracts';
import { startSim, type Sim } from '@sluice/openai-sim';
import { defaultConfig, startE2eStack, startRecorder, type E2eStack, type Recorder, type UpstreamCall } from './harness.js';

// docs/canaries.md through the real stack, what test/canary.e2e.spec.ts (a failing canary rolled
// back within seconds) cannot show: on a healthy 50/50 canary with no guard, every user keeps one
// variant over several questions and the users split about evenly; and the candidate's system
// message, temperature and model reach the upstream (seen by a recording proxy in front of the
// simulator), while the baseline's users' requests go as the clients sent them.
const CANARY = 'mini-to-4o-terse';
const TERSE = 'Answer in one short sentence.';
const USERS = Array.from({ length: 20 }, (_, i) => `variant-user-${i}`);
const QUESTIONS = 3;
/** The clients' own settings: what the baseline's upstream requests must still carry. */
const CLIENT_SYSTEM = 'You are a patient tutor.';
const CLIENT_TEMPERATURE = 0.7;

let sim: Sim;
let upstream: Recorder;
let stack: E2eStack;
let routedSub: Subscription;
/** Every `chat.routed` on the bus, by request id: the router's `ctx.variant`. */
const routed = new Map<string, SluiceEvent<'chat.routed'>>();

beforeAll(async () => {
  sim = await startSim({ port: 0 });
  upstream = await startRecorder(sim.url);
  const config = defaultConfig();
  // every request must reach the router and the upstream: a semantic hit takes no variant
  for (const t of config.tenants) delete t.cache;
  config.canaries = [
    {
      id: CANARY,
      match: { model: 'gpt-4o-mini' },
      baseline: 'stable',
      variants: [
        { name: 'stable', percent: 50 },
        { name: 'terse', percent: 50, model: 'gpt-4o', system: TERSE, params: { temperature: 0.1 } },
      ],
    },
  ];
  stack = await startE2eStack({ config, upstreamUrl: upstream.url });
  // the ledger's timeline keeps the request context only on chat.requested's row, so the variant is read off the bus
  routedSub = stack.nc.subscribe(Subjects.routedAll, {
    callback: (_err, m) => {
      const e = m.json<SluiceEvent<'chat.routed'>>();
      routed.set(e.requestId, e);
    },
  });
  await stack.nc.flush();
});
afterAll(async () => {
  routedSub?.unsubscribe();
  await stack?.close();
  await upstream?.close();
  await sim?.close();
});

interface Asked {
  user: string;
  n: number;
  requestId: string;
  /** The model that answered, as the upstream named it. */
  model: string;
  /** The client's messages, for comparing with what went upstream. */
  messages: OpenAI.ChatCompletionMessageParam[];
}

/**
 * Question `n` of `user`'s, unique (no exact-cache hit). The last question has no system message
 * of the client's, so the candidate's is put first instead of replacing one.
 */
async function ask(user: string, n: number): Promise<Asked> {
  const question: OpenAI.ChatCompletionMessageParam = { role: 'user', content: `question ${n} of ${user} at ${Date.now()}: what is ${n} + ${user.length}?` };
  const messages: OpenAI.ChatCompletionMessageParam[] = n < QUESTIONS ? [{ role: 'system', content: CLIENT_SYSTEM }, question] : [question];
  const { data, response } = await stack
    .openai()
    .chat.completions.create({ model: 'gpt-4o-mini', user, temperature: CLIENT_TEMPERATURE, messages })
    .withResponse();
  return { user, n, requestId: response.headers.get('x-sluice-request-id')!, model: data.model, messages };
}

/** The recorded upstream chat call of one question (its prompt is unique). */
function sentFor(a: Asked): UpstreamCall {
  const prompt = a.messages[a.messages.length - 1]!.content;
  const calls = upstream.calls.filter((c) => c.path.endsWith('/chat/completions') && c.body?.messages?.at(-1)?.content === prompt);
  expect(calls, `upstream calls of ${a.user}'s question ${a.n}`).toHaveLength(1);
  return calls[0]!;
}

describe('a healthy 50/50 canary', () => {
  const asked: Asked[] = [];
  /** Each user's variant on each question: its `chat.routed`'s `ctx.variant`. */
  const variants = new Map<string, string[]>();

  it('keeps each user on one variant for every question, and splits the users about evenly', async () => {
    // question by question, every user's at once: a user's later questions come after the earlier ones
    for (let n = 1; n <= QUESTIONS; n++) asked.push(...(await Promise.all(USERS.map((u) => ask(u, n)))));
    await stack.ledgerCaughtUp();

    for (const a of asked) {
      const event = routed.get(a.requestId);
      expect(event?.data.ctx.variant, `${a.user}'s question ${a.n}: ctx.variant`).toMatchObject({ canary: CANARY });
      const name = event!.data.ctx.variant!.name;
      // the ledger's timeline gives the same variant, and the cohort that chose it
      const report = await stack.ledger(`/v1/requests/${a.requestId}`);
      expect(report.outcome).toBe('completed');
      const row = report.timeline.find((e: { type: string }) => e.type === 'chat.routed');
      expect(row.reason).toMatch(new RegExp(`canary ${CANARY}: user ${a.user} in cohort [\\d.]+ -> variant ${name} \\(50 %\\)`));
      // and so does the answering model: the candidate's, or the route's
      expect(a.model).toBe(name === 'terse' ? 'gpt-4o' : 'gpt-4o-mini');
      variants.set(a.user, [...(variants.get(a.user) ?? []), name]);
    }

    for (const [user, names] of variants) {
      expect(names, user).toHaveLength(QUESTIONS);
      expect(new Set(names).size, `${user}'s variants: ${names.join(', ')}`).toBe(1);
    }
    const terse = USERS.filter((u) => variants.get(u)![0] === 'terse');
    console.log(`canary ${CANARY}: ${terse.length} of ${USERS.length} users on terse, ${USERS.length - terse.length} on stable (configured 50/50)`);
    // the cohorts are a fixed hash of the users: this split is the same on every run
    expect(terse.length).toBeGreaterThanOrEqual(5);
    expect(terse.length).toBeLessThanOrEqual(15);

    // the ledger's report counts every question under its user's variant
    const report = await stack.ledger(`/v1/variants?canary=${CANARY}`);
    const byName = Object.fromEntries(report.rows.map((r: { variant: string }) => [r.variant, r]));
    expect(byName.terse).toMatchObject({ requests: terse.length * QUESTIONS, completed: terse.length * QUESTIONS, failed: 0 });
    expect(byName.stable).toMatchObject({
      requests: (USERS.length - terse.length) * QUESTIONS,
      completed: (USERS.length - terse.length) * QUESTIONS,
      failed: 0,
    });
  });

  it("sends the candidate's system message, temperature and model upstream, and the baseline's requests as the clients sent them", async () => {
    expect(asked).toHaveLength(USERS.length * QUESTIONS);
    for (const a of asked) {
      const sent = sentFor(a).body;
      expect(sent.user).toBe(a.user);
      if (variants.get(a.user)![0] === 'terse') {
        // the client's system message replaced by the variant's, or the variant's put first when there was none
        const rest = a.n < QUESTIONS ? a.messages.slice(1) : a.messages;
        expect(sent.messages).toEqual([{ role: 'system', content: TERSE }, ...rest]);
        expect(sent.temperature).toBe(0.1);
        expect(sent.model).toBe('gpt-4o');
      } else {
        expect(sent.messages).toEqual(a.messages);
        expect(sent.temperature).toBe(CLIENT_TEMPERATURE);
        expect(sent.model).toBe('gpt-4o-mini');
      }
    }

    // and the candidate's attempt says what it changed
    const one = asked.find((a) => a.n === 1 && variants.get(a.user)![0] === 'terse')!;
    const report = await stack.ledger(`/v1/requests/${one.requestId}`);
    const reasons = report.timeline.map((e: { reason: string }) => e.reason).join('\n');
    expect(reasons).toContain("system message replaced by the variant's (variant terse)");
    expect(reasons).toContain('temperature 0.7 -> 0.1 (variant terse)');
  });
});
