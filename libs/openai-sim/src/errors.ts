/** The `error` object of an OpenAI error response. */
interface ErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/** An error answer: HTTP status plus the OpenAI-shaped body. */
export interface ApiError {
  status: number;
  body: { error: ErrorBody };
}

/** Builds an {@link ApiError}; `param` and `code` default to null like OpenAI's. */
export function apiError(status: number, message: string, type: string, param: string | null = null, code: string | null = null): ApiError {
  return { status, body: { error: { message, type, param, code } } };
}

/** 400 invalid_request_error. */
export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return apiError(400, message, 'invalid_request_error', param, code);
}

/** 404 for a model that is not served, worded as OpenAI does. */
export function modelNotFound(model: string): ApiError {
  return apiError(404, `The model \`${model}\` does not exist or you do not have access to it.`, 'invalid_request_error', null, 'model_not_found');
}

/** The injected 500, worded as OpenAI's transient server errors. */
export function serverError(requestId: string): ApiError {
  return apiError(
    500,
    `The server had an error while processing your request. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if the error persists. (Please include the request ID ${requestId} in your message.)`,
    'server_error',
  );
}

/** True when a value is an {@link ApiError} rather than a parsed request. */
export function isApiError(v: unknown): v is ApiError {
  return typeof v === 'object' && v !== null && 'status' in v && 'body' in v;
}

/** The 429 body, worded as OpenAI's; a request larger than the whole budget gets the "too large" variant. */
export function rateLimited(kind: 'requests' | 'tokens', model: string, limit: number, used: number, requested: number, retryAfter: string): ApiError {
  const what = kind === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
  const message =
    requested > limit
      ? `Request too large for ${model} in organization org-sluice-sim on ${what}: Limit ${limit}, Requested ${requested}. The input or output tokens must be reduced in order to run successfully.`
      : `Rate limit reached for ${model} in organization org-sluice-sim on ${what}: Limit ${limit}, Used ${used}, Requested ${requested}. Please try again in ${retryAfter}. Visit https://platform.openai.com/account/rate-limits to learn more.`;
  return apiError(429, message, kind, null, 'rate_limit_exceeded');
}
