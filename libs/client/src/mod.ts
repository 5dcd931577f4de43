export { SluiceClient, type ClientChatRequest, type SluiceClientOptions, type RequestOptions } from './client.js';
export { SluiceRequestError } from './errors.js';
export type { ChatChunk, ChatResult, ChatMessage, Usage, Priority } from '@sluice/contracts';
