import type { FastifyInstance } from 'fastify';
import { invalidRequest } from './errors.js';
import type { SimState } from './state.js';

/** Registers the control routes, outside /v1 so no OpenAI client can hit them by accident. */
export function registerAdmin(app: FastifyInstance, state: SimState): void {
  app.get('/admin/stats', (_req, reply) => reply.send({ ...state.stats }));
  app.get('/admin/faults', (_req, reply) => reply.send({ ...state.faults }));
  app.post('/admin/faults', (req, reply) => {
    // An empty POST is a harmless read of the current settings.
    const next = state.patchFaults(req.body ?? {});
    if (typeof next === 'string') {
      const err = invalidRequest(`Invalid faults: ${next}`);
      return reply.code(err.status).send(err.body);
    }
    return reply.send(next);
  });
  app.post('/admin/reset', (_req, reply) => {
    state.reset();
    return reply.send({ ...state.stats });
  });
}
