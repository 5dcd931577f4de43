export { SluiceClient, type ClientRequest, type SluiceClientOptions, type RequestOptions, type SluiceResult } from './client.js';
export { SluiceHeldError, SluiceRequestError } from './errors.js';
export type { CacheKind, ChatChunk, ChatResult, Endpoint, Usage, Priority } from '@sluice/contracts';
