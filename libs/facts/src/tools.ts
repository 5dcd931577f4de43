import { isObject, text, type Json } from './shapes.js';

/** A function the model may call, as chat `tools[].function`, legacy `functions[]` or a Responses function tool give it. */
export interface FunctionDefinition {
  name: unknown;
  description?: unknown;
  parameters?: unknown;
}

/**
 * Tokens the tool section costs beyond its rendered text (the "# Tools" header and the
 * namespace's framing), as measured by hmarr/openai-chat-tokens against the API's own
 * prompt_tokens.
 */
export const FUNCTIONS_OVERHEAD_TOKENS = 9;

// a JSON schema nested deeper than this is written as `any`: the rendering, like OpenAI's,
// spells out the first levels, and ingress caps a body's nesting at 64 anyway
const MAX_SCHEMA_DEPTH = 16;

/**
 * The text OpenAI is understood to put into the system prompt for function tools: a TypeScript
 * namespace with each function's description as a comment and its JSON-schema parameters as
 * a type. OpenAI does not publish this; the layout is the one reverse-engineered by the
 * community (OpenAI developer forum, "How to calculate the tokens when using function call",
 * and the hmarr/openai-chat-tokens package that tests it against real prompt_tokens), which
 * lands within a few tokens for ordinary schemas. Count it as text and add
 * FUNCTIONS_OVERHEAD_TOKENS. Pure, never throws.
 *
 * @example
 * renderFunctions([{ name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }])
 * // 'namespace functions {\n\n// Weather now\ntype get_weather = (_: {\ncity: string,\n}) => any;\n\n} // namespace functions'
 */
export function renderFunctions(functions: readonly FunctionDefinition[]): string {
  const lines = ['namespace functions {', ''];
  for (const f of functions) {
    const description = text(f.description);
    if (description) lines.push(`// ${description}`);
    const params = isObject(f.parameters) ? f.parameters : undefined;
    if (params && isObject(params.properties) && Object.keys(params.properties).length > 0) {
      lines.push(`type ${String(f.name)} = (_: {`, properties(params, 0, 0), '}) => any;');
    } else {
      lines.push(`type ${String(f.name)} = () => any;`);
    }
    lines.push('');
  }
  lines.push('} // namespace functions');
  return lines.join('\n');
}

function properties(schema: Json, indent: number, depth: number): string {
  const required = Array.isArray(schema.required) ? schema.required : [];
  const lines: string[] = [];
  for (const [name, param] of Object.entries(isObject(schema.properties) ? schema.properties : {})) {
    const p = isObject(param) ? param : {};
    const description = text(p.description);
    if (description && indent < 2) lines.push(`// ${description}`);
    lines.push(`${name}${required.includes(name) ? '' : '?'}: ${type(p, indent, depth)},`);
  }
  return lines.map((line) => ' '.repeat(indent) + line).join('\n');
}

function type(p: Json, indent: number, depth: number): string {
  if (depth > MAX_SCHEMA_DEPTH) return 'any';
  const values = Array.isArray(p.enum) ? p.enum : undefined;
  switch (p.type) {
    case 'string':
      return values ? values.map((v) => JSON.stringify(v)).join(' | ') : 'string';
    case 'number':
    case 'integer':
      return values ? values.map((v) => String(v)).join(' | ') : 'number';
    case 'boolean':
      return 'boolean';
    case 'null':
      return 'null';
    case 'object':
      return ['{', properties(p, indent + 2, depth + 1), '}'].join('\n');
    case 'array':
      return isObject(p.items) ? `${type(p.items, indent, depth + 1)}[]` : 'any[]';
    default: {
      // unions and references are not in the community layout; spelling them out keeps their
      // text counted instead of dropped
      const union = Array.isArray(p.anyOf) ? p.anyOf : Array.isArray(p.oneOf) ? p.oneOf : undefined;
      if (union) return union.map((u) => type(isObject(u) ? u : {}, indent, depth + 1)).join(' | ');
      return 'any';
    }
  }
}
