import { FUNCTIONS_OVERHEAD_TOKENS, renderFunctions, type FunctionDefinition } from './tools.js';
import { isObject, jsonText } from './shapes.js';
import type { Tally } from './tally.js';

/**
 * Chat framing as OpenAI's cookbook counts it for the gpt-4o family ("How to count tokens with
 * tiktoken", num_tokens_from_messages): 3 tokens prime the reply, each message costs 4 beyond
 * its content and name (its role and delimiters). A Responses input item is framed as a message.
 */
export const PRIME_TOKENS = 3;
export const MESSAGE_TOKENS = 4;

/**
 * What a tool call costs beyond its name and arguments: framed as a message of its own (the
 * model writes each call as one), an approximation with no published figure behind it.
 */
const TOOL_CALL_TOKENS = 4;

/** A call the model made: its framing, name and arguments (or a custom tool's input). */
export function addCall(tally: Tally, name: unknown, args: unknown): void {
  tally.fixed += TOOL_CALL_TOKENS;
  tally.add(name, false);
  tally.add(args, false);
}

/**
 * The tool definitions: function tools rendered as OpenAI is understood to render them
 * (`renderFunctions`), any other tool (custom, web search, MCP, ...) as its JSON text.
 */
export function addTools(tally: Tally, functions: readonly FunctionDefinition[], others: readonly unknown[]): void {
  if (functions.length > 0) {
    tally.fixed += FUNCTIONS_OVERHEAD_TOKENS;
    tally.add(renderFunctions(functions), false);
  }
  for (const tool of others) tally.add(jsonText(tool), false);
}

/** The elements of an array field that are objects; none for anything else. */
export function objects(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}
