// Test support shared by the services' specs (vitest): assertions on the contracts' shapes.
import { expect } from 'vitest';

/** An error body as the catalogue sends it (`openAiErrorBody`). */
export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string };
}

/**
 * Asserts the catalogue's error shape, exactly: only `error`, with its four fields, the given
 * code and a message. Returns the error for further checks.
 *
 * @example
 * expectErrorShape(await res.json(), 'not_found').message // 'No request ...'
 */
export function expectErrorShape(body: unknown, code: string): ErrorBody['error'] {
  expect(Object.keys(body as object)).toEqual(['error']);
  const error = (body as ErrorBody).error;
  expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(error.code).toBe(code);
  expect(error.message.length).toBeGreaterThan(0);
  return error;
}

/**
 * The error `fn` throws, which must be an instance of `type`; anything else fails the test.
 *
 * @example
 * expect(thrown(() => parseJsonBody('{'), RequestRejected).code).toBe('invalid_json');
 */
export function thrown<E extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => E): E {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return e;
    throw e;
  }
  throw new Error(`expected ${type.name} to be thrown`);
}
