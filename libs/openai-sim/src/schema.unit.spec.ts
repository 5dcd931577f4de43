import { describe, expect, it } from 'vitest';
import { valueForSchema } from './schema.js';

describe('valueForSchema', () => {
  it('fills the required properties by type, deterministically', () => {
    const schema = {
      type: 'object',
      properties: {
        city: { type: 'string' },
        days: { type: 'integer', minimum: 3, maximum: 10 },
        ratio: { type: 'number', exclusiveMaximum: 0.5 },
        metric: { type: 'boolean' },
        unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
        tags: { type: 'array', items: { type: 'string' } },
        where: { type: 'object', properties: { lat: { type: 'number' }, lon: { type: 'number' } }, required: ['lat'] },
        optional: { type: 'string' },
      },
      required: ['city', 'days', 'ratio', 'metric', 'unit', 'tags', 'where'],
    };
    const v = valueForSchema(schema, ['Paris', 'weather']);
    expect(v).toEqual({ city: 'Paris', days: 3, ratio: -0.5, metric: true, unit: 'celsius', tags: ['weather'], where: { lat: 1 } });
    expect(valueForSchema(schema, ['Paris', 'weather'])).toEqual(v);
  });

  it('handles const, anyOf, nullable type lists, string bounds, minItems and local $refs', () => {
    const schema = {
      type: 'object',
      $defs: { Step: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
      properties: {
        kind: { const: 'fixed' },
        either: { anyOf: [{ type: 'null' }, { type: 'integer' }] },
        maybe: { type: ['null', 'string'], minLength: 5, maxLength: 6 },
        steps: { type: 'array', items: { $ref: '#/$defs/Step' }, minItems: 2 },
      },
      required: ['kind', 'either', 'maybe', 'steps'],
    };
    expect(valueForSchema(schema, ['ab'])).toEqual({ kind: 'fixed', either: 1, maybe: 'ababab', steps: [{ n: 1 }, { n: 1 }] });
  });

  it('falls back to a fixed word and stops on cyclic refs', () => {
    expect(valueForSchema({ type: 'string' }, [])).toBe('sim');
    const cyclic = { $ref: '#' };
    expect(valueForSchema(cyclic, ['x'])).toBeNull();
  });
});
