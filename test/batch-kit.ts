import type OpenAI from 'openai';
import { toFile } from 'openai/uploads';

/** A line of a batch's output or error file, in OpenAI's format. */
export interface OutputLine {
  id: string;
  custom_id: string;
  response: { status_code: number; request_id: string; body: any } | null;
  error: { code: string; message: string } | null;
}

/** Uploads `lines` as a `batch` file (`input.jsonl`; a string line is sent as it is) and returns its id. */
export async function uploadBatchFile(client: OpenAI, lines: unknown[]): Promise<string> {
  const jsonl = lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n';
  return (await client.files.create({ file: await toFile(Buffer.from(jsonl), 'input.jsonl'), purpose: 'batch' })).id;
}

/** The lines of an output or error file; none when the batch has no such file. */
export async function linesOf(client: OpenAI, fileId: string | null | undefined): Promise<OutputLine[]> {
  if (!fileId) return [];
  const text = await (await client.files.content(fileId)).text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as OutputLine);
}
