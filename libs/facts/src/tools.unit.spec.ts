import { describe, expect, it } from 'vitest';
import { renderFunctions } from './tools.js';

describe('renderFunctions', () => {
  it("writes OpenAI's function namespace: descriptions as comments, parameters as a type", () => {
    const text = renderFunctions([
      {
        name: 'get_weather',
        description: 'Current weather',
        parameters: {
          type: 'object',
          properties: {
            city: { type: 'string', description: 'City name' },
            unit: { type: 'string', enum: ['c', 'f'] },
            days: { type: 'integer' },
            where: { type: 'object', properties: { lat: { type: 'number', description: 'deep, so not written' } }, required: ['lat'] },
            tags: { type: 'array', items: { type: 'string' } },
            either: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          },
          required: ['city'],
        },
      },
      { name: 'now' },
    ]);
    expect(text).toBe(
      [
        'namespace functions {',
        '',
        '// Current weather',
        'type get_weather = (_: {',
        '// City name',
        'city: string,',
        'unit?: "c" | "f",',
        'days?: number,',
        'where?: {',
        '  lat: number,',
        '},',
        'tags?: string[],',
        'either?: string | null,',
        '}) => any;',
        '',
        'type now = () => any;',
        '',
        '} // namespace functions',
      ].join('\n'),
    );
  });

  it('writes a schema nested past its depth as any, and never throws on bad shapes', () => {
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 10_000; i++) deep = { type: 'array', items: deep };
    expect(renderFunctions([{ name: 'f', parameters: { type: 'object', properties: { x: deep } } }])).toContain(`x?: any${'[]'.repeat(17)},`);
    expect(() =>
      renderFunctions([{ name: 1, description: 2, parameters: { properties: { a: null, b: { type: 'object', properties: 'x' } }, required: 3 } }]),
    ).not.toThrow();
  });
});
