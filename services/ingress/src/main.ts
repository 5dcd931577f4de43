import { runService } from '@sluice/bus';
import { startIngress } from './start.js';

// Listens: sluice.chat.* (queue group "ingress"), HTTP on SLUICE_HOST:SLUICE_INGRESS_PORT.
// Emits: chat.requested, chat.rejected.
await runService('ingress', async (ctx) => (await startIngress(ctx)).closers);
