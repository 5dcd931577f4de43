export { countText, MAX_PIECE_CHARS } from './count.js';
export { countMessages, countMessagesAsync, INLINE_MAX_CHARS, type MessageTokens, type TextMessage } from './messages.js';
export { stopWorker as stopTokenWorker } from './pool.js';
export { loadTables as warmTokenizer } from './ranks.js';
