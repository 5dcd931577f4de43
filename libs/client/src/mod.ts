export { SluiceClient, type ClientRequest, type SluiceClientOptions, type RequestOptions } from './client.js';
export { SluiceRequestError } from './errors.js';
export type { ChatChunk, ChatResult, Endpoint, Usage, Priority } from '@sluice/contracts';
