// Small DOM and number helpers. Every value from the API goes in as text (textContent), never as
// markup, so a tenant or model name cannot inject anything into the page.

/** An element with attributes (`class`, `scope`, data-*, ...) and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? '')));
  return node;
}

/**
 * Replaces a table section's rows. Each row is a list of cells: a value (text or a node), or
 * `{ text, num, th, span }` (`num`: a right-aligned figure; `th`: the row's header cell; `span`: columns it spans).
 */
export function fillRows(section, rows) {
  section.replaceChildren(
    ...rows.map((cells) =>
      el(
        'tr',
        {},
        ...cells.map((cell) => {
          const c = typeof cell === 'object' && cell !== null && !(cell instanceof Node) ? cell : { text: cell };
          return el(c.th ? 'th' : 'td', { class: c.num ? 'num' : undefined, scope: c.th ? 'row' : undefined, colspan: c.span }, c.text ?? '');
        }),
      ),
    ),
  );
}

/** A definition list's terms and values. */
export function fillFacts(dl, facts) {
  dl.replaceChildren(...facts.flatMap(([term, value]) => [el('dt', {}, term), el('dd', {}, value ?? '—')]));
}

/** Shows a section's error line (role=alert), or hides it with `null`. */
export function showError(p, message) {
  p.textContent = message ?? '';
  p.hidden = !message;
}

const NO_DATA = '—';

/** USD: cents above a dollar, micro-dollars below (single requests cost fractions of a cent). */
export const usd = (n) => (n === null || n === undefined ? NO_DATA : `$${Math.abs(n) >= 1 ? n.toFixed(2) : n.toFixed(6)}`);
/** A ratio as a percentage; null (no requests) as a dash, not 0 %. */
export const pct = (r, digits = 2) => (r === null || r === undefined ? NO_DATA : `${(r * 100).toFixed(digits)} %`);
export const int = (n) => (n === null || n === undefined ? NO_DATA : Math.round(n).toLocaleString('en-US'));
export const ms = (n) => (n === null || n === undefined ? NO_DATA : n.toFixed(1));
/** An ISO 8601 instant as `YYYY-MM-DD HH:MM:SS.mmm` UTC. */
export const when = (iso) => (iso ? iso.replace('T', ' ').replace('Z', '') : NO_DATA);
