import { describe, expect, it } from 'vitest';
import { cancelledUsage, Cancels } from './cancels.js';

describe('Cancels', () => {
  it('given a running request, when its cancel arrives, then its signal aborts', () => {
    const cancels = new Cancels(() => 0);
    const signal = cancels.watch('r1');
    expect(signal.aborted).toBe(false);
    cancels.cancel('r1');
    expect(signal.aborted).toBe(true);
  });

  it('given a cancel that came first, when the request arrives within the memory, then it starts cancelled (once)', () => {
    let now = 0;
    const cancels = new Cancels(() => now, 120_000);
    cancels.cancel('r1');
    now = 119_000;
    expect(cancels.watch('r1').aborted).toBe(true);
    cancels.done('r1');
    expect(cancels.watch('r1').aborted).toBe(false);
  });

  it('given a cancel older than the memory, then the request runs', () => {
    let now = 0;
    const cancels = new Cancels(() => now, 120_000);
    cancels.cancel('r1');
    now = 120_001;
    expect(cancels.watch('r1').aborted).toBe(false);
  });

  it('given more unknown cancels than it keeps, then the oldest are forgotten first', () => {
    const cancels = new Cancels(() => 0, 120_000, 2);
    for (const id of ['r1', 'r2', 'r3']) cancels.cancel(id);
    expect(cancels.watch('r1').aborted).toBe(false);
    expect(cancels.watch('r2').aborted).toBe(true);
    expect(cancels.watch('r3').aborted).toBe(true);
  });

  it('given a finished request, then a late cancel does not touch its signal', () => {
    const cancels = new Cancels(() => 0);
    const signal = cancels.watch('r1');
    cancels.done('r1');
    cancels.cancel('r1');
    expect(signal.aborted).toBe(false);
  });
});

describe('cancelledUsage', () => {
  it("bills the upstream's usage when it sent one", () => {
    const usage = { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 };
    expect(cancelledUsage({ text: 'whatever', usage }, 99)).toEqual({ usage, counted: false });
  });
  it('else counts the streamed text with the tokenizer, beside the prompt as ingress counted it', () => {
    expect(cancelledUsage({ text: 'Hello there' }, 12)).toEqual({ usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 }, counted: true });
  });
  it('bills nothing when no call was running', () => {
    expect(cancelledUsage(undefined, 12)).toEqual({ usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, counted: false });
  });
});
