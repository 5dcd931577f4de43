import { addCall, addTools, MESSAGE_TOKENS, objects, PRIME_TOKENS } from './framing.js';
import { addContent } from './parts.js';
import { isObject, jsonText, type Json } from './shapes.js';
import type { FunctionDefinition } from './tools.js';
import type { Tally } from './tally.js';

/**
 * Walks a Responses API body (OpenAI API reference, "Create a model response"): `instructions`
 * as a system message; `input` as one user message when a string, else its items — messages
 * (string content or parts), `function_call` / `custom_tool_call` (name and arguments or
 * input), `function_call_output` / `custom_tool_call_output` (their output, a string or parts),
 * any other item (reasoning, item references, built-in tool calls) as its JSON text; the tool
 * definitions; a json_schema `text.format`'s schema. Each item is framed as a message.
 */
export function walkResponses(body: Json, tally: Tally): void {
  tally.fixed += PRIME_TOKENS;
  if (typeof body.instructions === 'string') {
    tally.fixed += MESSAGE_TOKENS;
    addContent(tally, body.instructions, false);
  }
  if (typeof body.input === 'string') {
    tally.fixed += MESSAGE_TOKENS;
    tally.turns++;
    addContent(tally, body.input, true);
  }
  for (const item of objects(body.input)) {
    tally.fixed += MESSAGE_TOKENS;
    switch (item.type) {
      case undefined:
      case 'message': {
        const user = item.role === 'user';
        if (user) tally.turns++;
        addContent(tally, item.content, user);
        break;
      }
      case 'function_call':
        addCall(tally, item.name, item.arguments);
        break;
      case 'custom_tool_call':
        addCall(tally, item.name, item.input);
        break;
      case 'function_call_output':
      case 'custom_tool_call_output':
        addContent(tally, item.output, false);
        break;
      default:
        tally.add(jsonText(item), false);
    }
  }
  const functions: FunctionDefinition[] = [];
  const others: unknown[] = [];
  for (const tool of objects(body.tools)) {
    if (tool.type === 'function') functions.push({ name: tool.name, description: tool.description, parameters: tool.parameters });
    else others.push(tool);
  }
  addTools(tally, functions, others);
  const format = isObject(body.text) ? body.text.format : undefined;
  if (isObject(format) && format.type === 'json_schema') tally.add(jsonText(format.schema), false);
}
