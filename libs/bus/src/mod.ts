export * from './connect.js';
export * from './topology.js';
export * from './publish.js';
export * from './consume.js';
export * from './kv.js';
export * from './control.js';
export * from './reply.js';
export * from './service.js';
