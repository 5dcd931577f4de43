import type { IncomingHttpHeaders } from 'node:http';
import { apiError, type ApiError } from './errors.js';

/**
 * Azure OpenAI's paths, as the openai SDK's `AzureOpenAI` client calls them: chat completions and
 * embeddings under the deployment, the Responses API at the resource with the deployment as
 * `model`. Each route's handler is the /v1 one, given the body `azureBody` returns.
 */
export const AZURE_ROUTES = {
  chat: '/openai/deployments/:deployment/chat/completions',
  embeddings: '/openai/deployments/:deployment/embeddings',
  responses: '/openai/responses',
} as const;

/**
 * The body an Azure request is served as, or the error Azure answers it with: 401 without an
 * `api-key` header (or an `Authorization` bearer, Azure's Entra ID tokens: any value passes here),
 * 400 without an `api-version` query parameter. The deployment in the path is the model (so a
 * deployment must be named after a served model); without one (/openai/responses) the body's
 * `model` is the deployment, as Azure reads it.
 */
export function azureBody(query: unknown, headers: IncomingHttpHeaders, body: unknown, deployment?: string): unknown {
  const key = headers['api-key'];
  if ((typeof key !== 'string' || key === '') && headers.authorization === undefined) {
    return apiError(
      401,
      'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.',
      'invalid_request_error',
      null,
      '401',
    ) satisfies ApiError;
  }
  const version = (query as Record<string, unknown> | undefined)?.['api-version'];
  if (typeof version !== 'string' || version === '') {
    return apiError(400, 'The api-version query parameter (?api-version=) is required for all requests.', 'invalid_request_error', 'api-version', 'BadRequest');
  }
  if (deployment === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  return { ...(body as Record<string, unknown>), model: deployment };
}
