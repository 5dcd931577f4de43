export * from './events.js';
export * from './request.js';
export * from './reply.js';
export * from './errors.js';
export * from './subjects.js';
export * from './topology.js';
export * from './config.js';
export * from './hash.js';
