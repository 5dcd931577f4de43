import { describe, expect, it } from 'vitest';
import { parseBatchInput } from './batch-input.js';

const line = (customId: string, body: object = { model: 'm', input: 'x' }, url = '/v1/embeddings') =>
  JSON.stringify({ custom_id: customId, method: 'POST', url, body });

describe('parseBatchInput', () => {
  it('given valid lines and a trailing newline, returns the requests in order and their model', () => {
    expect(parseBatchInput(`${line('a')}\n\n${line('b')}\n`, '/v1/embeddings')).toEqual({
      tasks: [
        { customId: 'a', body: { model: 'm', input: 'x' } },
        { customId: 'b', body: { model: 'm', input: 'x' } },
      ],
      model: 'm',
    });
  });

  it('given bad lines, reports each with its 1-based line and nothing to run', () => {
    const text = [line('a'), '[1]', line('a'), line('c', {}, '/v1/chat/completions'), line('d', { model: 'other' }), '{"custom_id":"e"}'].join('\n');
    const r = parseBatchInput(text, '/v1/embeddings');
    expect('errors' in r && r.errors.map((e) => [e.line, e.code, e.param])).toEqual([
      [2, 'invalid_json_line', null],
      [3, 'duplicate_custom_id', 'custom_id'],
      [4, 'url_mismatch', 'url'],
      [5, 'model_mismatch', 'body.model'],
      [6, 'missing_required_parameter', 'method'],
    ]);
  });

  it('given no lines, reports an empty file', () => {
    expect(parseBatchInput('\n', '/v1/embeddings')).toEqual({
      errors: [{ code: 'empty_file', message: 'The batch input file is empty.', param: null, line: null }],
    });
  });
});
