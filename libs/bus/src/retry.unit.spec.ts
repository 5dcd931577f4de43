import { describe, expect, it } from 'vitest';
import { retryFor } from './retry.js';

describe('retryFor', () => {
  it('tries again until the attempt succeeds', async () => {
    let calls = 0;
    const value = await retryFor(10_000, async () => {
      if (++calls < 3) throw new Error(`fail ${calls}`);
      return 'ok';
    });
    expect(value).toBe('ok');
    expect(calls).toBe(3);
  });

  it('rethrows the last error once the time is up', async () => {
    let calls = 0;
    await expect(
      retryFor(0, async () => {
        calls++;
        throw new Error(`fail ${calls}`);
      }),
    ).rejects.toThrow('fail 1');
    expect(calls).toBe(1);
  });
});
