import { addCall, addTools, MESSAGE_TOKENS, objects, PRIME_TOKENS } from './framing.js';
import { addContent } from './parts.js';
import { isObject, jsonText, type Json } from './shapes.js';
import type { FunctionDefinition } from './tools.js';
import type { Tally } from './tally.js';

/**
 * Walks a Chat Completions body (OpenAI API reference, "Create chat completion"): each
 * message's framing, content, name, refusal, tool calls (and legacy function_call); the tool
 * definitions (`tools`, legacy `functions`); a json_schema `response_format`'s schema.
 */
export function walkChat(body: Json, tally: Tally): void {
  tally.fixed += PRIME_TOKENS;
  for (const m of objects(body.messages)) {
    tally.fixed += MESSAGE_TOKENS;
    const user = m.role === 'user';
    if (user) tally.turns++;
    addContent(tally, m.content, user);
    tally.add(m.name, false);
    tally.add(m.refusal, true);
    for (const call of objects(m.tool_calls)) {
      if (isObject(call.function)) addCall(tally, call.function.name, call.function.arguments);
      else if (isObject(call.custom)) addCall(tally, call.custom.name, call.custom.input);
      else tally.add(jsonText(call), false);
    }
    if (isObject(m.function_call)) addCall(tally, m.function_call.name, m.function_call.arguments);
  }
  const functions: FunctionDefinition[] = objects(body.functions).map((f) => ({ name: f.name, description: f.description, parameters: f.parameters }));
  const others: unknown[] = [];
  for (const tool of objects(body.tools)) {
    if (tool.type === 'function' && isObject(tool.function))
      functions.push({ name: tool.function.name, description: tool.function.description, parameters: tool.function.parameters });
    else others.push(tool);
  }
  addTools(tally, functions, others);
  const format = body.response_format;
  if (isObject(format) && format.type === 'json_schema') tally.add(jsonText(format.json_schema), false);
}
