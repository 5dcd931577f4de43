export { startFrontDoors, type FrontDoors } from './ingress.js';
export { buildApp, CHAT_PATH } from './http.js';
export { ingressDeps, type IngressDeps } from './deps.js';
export { openReplyInbox, type ReplyInbox, type PendingReplies } from './inbox.js';
export { openNatsDoor, INGRESS_QUEUE } from './nats-door.js';
export { normaliseChat, checkModel, validateChat, parseJsonBody, type ChatHints, type NormalisedChat } from './validate.js';
export { authenticate, bearerKey, indexTenants, modelsFor, type TenantIndex } from './tenants.js';
export { RequestRejected } from './rejection.js';
export { newRequestId, continueTrace } from './ids.js';
