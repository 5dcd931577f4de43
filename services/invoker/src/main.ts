// invoker: chat.routed -> invoke.attempted / invoke.failed per upstream attempt,
// circuit.opened / circuit.closed, then chat.completed | chat.failed (+ the reply to ctx.replyTo).
import { runService } from '@sluice/bus';
import { ServiceName } from '@sluice/contracts';
import { startInvoker } from './service.js';

await runService(ServiceName.Invoker, async (ctx) => [await startInvoker(ctx)]);
