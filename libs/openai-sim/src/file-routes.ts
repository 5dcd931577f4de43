import type { FastifyInstance, FastifyReply } from 'fastify';
import { type ApiError, apiError, invalidRequest } from './errors.js';
import { type FilePurpose, fileObject, isMultipart, UPLOAD_PURPOSES } from './files.js';
import type { SimState } from './state.js';
import { pageOf } from './util.js';

type ById = { Params: { id: string } };
type ListQuery = { Querystring: { purpose?: string; order?: string; limit?: string; after?: string } };

/** OpenAI's default and largest page of `GET /v1/files`. */
const MAX_FILES_PAGE = 10_000;

/**
 * Registers the Files API: `POST /v1/files` (multipart `file` + `purpose`), `GET /v1/files`
 * (cursor pages; `purpose`, `order` desc by default, `limit`, `after`), `GET /v1/files/:id`,
 * `GET /v1/files/:id/content` (the raw bytes) and `DELETE /v1/files/:id`. An unknown id is a 404
 * in OpenAI's error shape.
 */
export function registerFiles(app: FastifyInstance, state: SimState): void {
  app.post('/v1/files', (req, reply) => {
    const body = req.body;
    const file = isMultipart(body) ? body.files.find((f) => f.field === 'file') : undefined;
    if (!isMultipart(body) || file === undefined)
      return send(reply, invalidRequest("Missing required parameter: 'file'.", 'file', 'missing_required_parameter'));
    const purpose = body.fields.purpose;
    if (purpose === undefined || purpose === '')
      return send(reply, invalidRequest("Missing required parameter: 'purpose'.", 'purpose', 'missing_required_parameter'));
    if (!UPLOAD_PURPOSES.has(purpose)) {
      const allowed = [...UPLOAD_PURPOSES].map((p) => `'${p}'`).join(', ');
      return send(reply, invalidRequest(`'${purpose}' is not one of [${allowed}] - 'purpose'`, 'purpose', 'invalid_value'));
    }
    const stored = state.files.add(file.filename, purpose as FilePurpose, file.data, Date.now());
    return reply.send(fileObject(stored));
  });

  app.get<ListQuery>('/v1/files', (req, reply) => {
    const { purpose, order = 'desc', after } = req.query;
    if (order !== 'asc' && order !== 'desc')
      return send(reply, invalidRequest(`Invalid value for 'order': expected 'asc' or 'desc'.`, 'order', 'invalid_value'));
    const limit = parseLimit(req.query.limit, MAX_FILES_PAGE, MAX_FILES_PAGE);
    if (typeof limit !== 'number') return send(reply, limit);
    let files = state.files.all().filter((f) => purpose === undefined || f.purpose === purpose);
    if (order === 'desc') files = files.reverse();
    return reply.send(pageOf(files, after, limit, fileObject));
  });

  app.get<ById>('/v1/files/:id', (req, reply) => {
    const f = state.files.get(req.params.id);
    return f === undefined ? send(reply, noSuchFile(req.params.id)) : reply.send(fileObject(f));
  });

  app.get<ById>('/v1/files/:id/content', (req, reply) => {
    const f = state.files.get(req.params.id);
    return f === undefined ? send(reply, noSuchFile(req.params.id)) : reply.type('application/octet-stream').send(f.data);
  });

  app.delete<ById>('/v1/files/:id', (req, reply) => {
    const { id } = req.params;
    return state.files.delete(id) ? reply.send({ id, object: 'file', deleted: true }) : send(reply, noSuchFile(id));
  });
}

/** 404 for an unknown file id, worded as OpenAI's; `param` names the field that held the id. */
export function noSuchFile(id: string, param = 'id'): ApiError {
  return apiError(404, `No such File object: ${id}`, 'invalid_request_error', param);
}

/** A list's `limit` query parameter: `fallback` when absent, an integer in [1, max], or the 400 to answer. */
export function parseLimit(raw: string | undefined, fallback: number, max: number): number | ApiError {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max)
    return invalidRequest(`Invalid 'limit': expected an integer between 1 and ${max}, got '${raw}'.`, 'limit', 'invalid_value');
  return n;
}

/** Sends an OpenAI error answer. */
export function send(reply: FastifyReply, err: ApiError): FastifyReply {
  return reply.code(err.status).type('application/json').send(JSON.stringify(err.body));
}
