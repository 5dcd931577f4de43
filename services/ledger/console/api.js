// The ledger's API as the console reads it: the key from this tab's session storage as a Bearer
// header, and the API's own coded errors (OpenAI's shape) turned into ApiError.

const KEY = 'sluice.console.key';

/** The key this tab signed in with; null when signed out. */
export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

/** An answer that was not 2xx: its status, the catalogue's code and a message a person can act on. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * GETs a ledger path (`/v1/...`, query included) with the tab's key; resolves with the JSON body.
 * @throws ApiError on any status but 2xx, and on a network failure (status 0)
 */
export async function get(path) {
  let res;
  try {
    res = await fetch(path, { headers: { authorization: `Bearer ${key.get() ?? ''}`, accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'unreachable', `The ledger did not answer (${e.message}).`);
  }
  const body = await res.json().catch(() => null);
  if (res.ok) return body;
  const err = body?.error;
  throw new ApiError(res.status, err?.code ?? 'http_error', err?.message ?? `The ledger answered ${res.status}.`);
}

/** A query string of the defined parameters. */
export const query = (params) => {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  return q.size > 0 ? `?${q}` : '';
};
