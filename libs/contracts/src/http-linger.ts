import type { Server } from 'node:http';
import type { Socket } from 'node:net';

// A lingering close (nginx's lingering_close): how a Sluice HTTP server closes a connection whose
// client may still be sending. Closing a socket while bytes it received are unread makes the
// kernel send a reset instead of a FIN, and drop what was still queued to send; a client that had
// not read the answer yet then sees ECONNRESET or EPIPE instead of it. A server refuses many
// requests before it has read them whole (no key, a body over the limit, a header node cannot
// parse), so it ends its side after the answer, reads and drops what still comes until the client
// closes too, and only then closes the socket: bounded in time and in bytes, so a client trickling
// or pouring bytes cannot hold the socket longer than it could hold a request.

/** Bytes read and dropped at most while lingering; past them the socket is closed (and may reset). */
const LINGER_MAX_BYTES = 16 * 1024 * 1024;
/** How long a socket lingers when the server has no request timeout (node's `requestTimeout` 0). */
const LINGER_FALLBACK_MS = 30_000;

const lingering = new WeakSet<Socket>();

/** Whether the socket is closing with a linger: its answer is out, what comes is dropped. */
export function isLingering(socket: Socket): boolean {
  return lingering.has(socket);
}

/**
 * Closes `socket` without losing what was written on it: ends it (a FIN after the answer), takes
 * node's HTTP parser off it (nothing more is parsed or answered on it), reads and drops whatever
 * the client still sends, and closes the socket when the client has closed its side, or the
 * server's `requestTimeout` (read now) after the answer is out, or past LINGER_MAX_BYTES dropped,
 * whichever comes first; in all, never longer than `requestTimeout` plus the idle timeout
 * (`server.timeout`). `cause` is the error the socket is destroyed with at the end
 * (`socket.errored`, which a handler still waiting for the body reads to tell a timeout from a
 * client that left). Calling it again on a lingering socket does nothing.
 *
 * @example
 * socket.write(answer);
 * lingeringClose(socket);
 */
export function lingeringClose(socket: Socket, cause?: Error): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  const server = (socket as Socket & { server?: Server }).server;
  const lingerMs = server?.requestTimeout || LINGER_FALLBACK_MS;
  let dropped = 0;
  const close = () => socket.destroy(cause);
  // the clock starts once the answer is out, so a client reading a long answer slowly is not cut
  // by it; until then the idle timeout holds as on any socket, and so does a cap in all
  const timers = [setTimeout(close, lingerMs + (server?.timeout || LINGER_FALLBACK_MS))];
  const answerOut = () => timers.push(setTimeout(close, lingerMs));
  if (socket.writableFinished) answerOut();
  else socket.once('finish', answerOut);
  socket.once('close', () => timers.forEach(clearTimeout));
  // node's parser reads the socket through its 'data' listener (a 'data' listener added to a
  // server's socket takes the parser off its handle): removed, the bytes come to this one alone
  socket.removeAllListeners('data');
  // closed once the answer is out (or at a timer), never while it may still be lost with the socket
  const closeOnceAnswered = () => (socket.writableFinished ? close() : socket.once('finish', close));
  socket.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped <= LINGER_MAX_BYTES) return;
    // enough: nothing more is read (the client's writes stall), and the socket closes, and may reset
    socket.pause();
    closeOnceAnswered();
  });
  // the client closed its side: everything it sent is read, so closing sends no reset
  if (socket.readableEnded) closeOnceAnswered();
  else socket.once('end', closeOnceAnswered);
  socket.end();
  socket.resume();
  // a body nobody read has stopped the handle's reads (node's parser paused it) without the
  // stream knowing: started again as net.Socket starts them, or nothing more would be read
  const handle = (socket as Socket & { _handle?: { reading?: boolean; readStart?: () => number } | null })._handle;
  if (handle?.reading === false && typeof handle.readStart === 'function') {
    handle.reading = true;
    handle.readStart();
  }
}

/**
 * Makes every connection `server` closes after an answer (a `Connection: close` response, which
 * node ends with `socket.destroySoon()`) close with a linger (lingeringClose) instead of at once.
 * A connection whose client reads its answer and closes costs nothing more; one whose client is
 * still sending is read until it stops, within the bounds.
 *
 * @example
 * lingerOnClose(app.server);
 */
export function lingerOnClose(server: Server): void {
  server.on('connection', (socket: Socket) => {
    // node's own call, after the last answer on the connection has been written
    socket.destroySoon = () => lingeringClose(socket);
  });
}
