import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { countMessages, countMessagesAsync, INLINE_MAX_CHARS } from './messages.js';
import { countOffThread, stopWorker } from './pool.js';
import { prose, TEXT_SHAPES } from './shapes.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

afterAll(() => stopWorker());

describe('counting off the event loop', () => {
  it('counts a long request on the worker exactly as on this thread, and remembers it', async () => {
    const messages = [
      { content: prose(INLINE_MAX_CHARS) },
      { content: TEXT_SHAPES['word random']!(200_000), name: 'ana' },
      { content: TEXT_SHAPES.cjk!(30_000) },
    ];
    const counted = await countMessagesAsync(messages);
    expect(counted).toEqual(countMessages(messages.map((m) => ({ ...m }))));
    // the same array again is not counted again (route() relies on it)
    expect(countMessages(messages)).toBe(counted);
  });

  it('answers a short job that arrives while a long one is being counted first', async () => {
    const order: string[] = [];
    const long = countOffThread([TEXT_SHAPES['words random']!(8_000_000)]).then(() => order.push('long'));
    // the worker takes the shortest job first: once this one is answered, the long one is running
    await countOffThread(['tiny']);
    const short = countOffThread([prose(100_000)]).then(() => order.push('short'));
    await Promise.all([long, short]);
    expect(order).toEqual(['short', 'long']);
  });

  it('starts a new worker after the last one stopped', async () => {
    await countOffThread(['warm']);
    await stopWorker();
    expect(await countOffThread(['hello world', ''])).toEqual([2, 0]);
  });

  it('works under tsx from the sources, as the end-to-end tests run the services', async () => {
    const script = [
      "import { countMessagesAsync } from '@sluice/tokens';",
      `const counts = await countMessagesAsync([{ content: 'x'.repeat(${2 * INLINE_MAX_CHARS}) }, { content: 'hello world', name: 'bob' }]);`,
      'console.log(JSON.stringify(counts));',
    ].join('\n');
    const { stdout } = await promisify(execFile)(process.execPath, ['--conditions=sluice-src', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
    });
    expect(JSON.parse(stdout)).toEqual(countMessages([{ content: 'x'.repeat(2 * INLINE_MAX_CHARS) }, { content: 'hello world', name: 'bob' }]));
  });
});
