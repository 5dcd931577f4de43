import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './openai.js';

// the rows both users of formatDuration tested: ingress's x-ratelimit-reset-* headers and the simulator's
describe("formatDuration (OpenAI's reset durations)", () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [0.2, '1ms'],
    [17, '17ms'],
    [20, '20ms'],
    [120, '120ms'],
    [1000, '1s'],
    [1500, '1.5s'],
    [8640, '8.64s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [61_250, '1m1.25s'],
    [90_500, '1m30.5s'],
    [360_000, '6m0s'],
    [3_600_000, '1h0m0s'],
    [3_723_000, '1h2m3s'],
  ])('writes %j ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});

describe('parseDuration (x-ratelimit-reset-* as upstreams send them)', () => {
  it.each([
    ['0s', 0],
    ['20ms', 20],
    ['1s', 1000],
    ['8.64s', 8640],
    ['6m0s', 360_000],
    ['1m30.5s', 90_500],
    ['1h2m3s', 3_723_000],
    ['500us', 0.5],
    [' 2s ', 2000],
  ])('reads %j as %j ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', '5', '-1s', 's', '1.s', '1 s', 'soon', '1d', '2s extra'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });

  it('reads back what formatDuration writes', () => {
    for (const ms of [1, 17, 999, 1000, 1500, 59_999, 61_250, 3_723_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});
