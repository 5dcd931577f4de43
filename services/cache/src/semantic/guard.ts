import {
  AMBIGUOUS_MONTHS,
  DATE_SHIFTERS,
  JOINED_PHRASALS,
  MONTHS,
  NEGATING_PREFIXES,
  NEGATORS,
  NOT_ENTITIES,
  NUMBER_SCALES,
  NUMBER_WORDS,
  ONE_AS_PRONOUN,
  ORDINALS,
  PARTICLES,
  PHRASAL_VERBS,
  POLARITY_GROUPS,
  RELATIVE_DAYS,
  SWITCH_CONTEXT,
  TIME_UNITS,
  WEEKDAYS,
} from './guard-words.js';

/**
 * Why serving `candidate`'s answer for `query` would change the meaning, or undefined when nothing
 * says so. A semantic hit above the similarity threshold still passes through this: embeddings put
 * "turn on dark mode" next to "turn off dark mode", and this is what tells them apart.
 *
 * The families, checked in this order, the first difference wins:
 * - negation: how many negators each text has (not, no, never, without, cannot, the n't forms);
 * - polarity: different sides of an opposite pair (on/off, enable/disable, start/stop, add/remove,
 *   before/after, max/min, upload/download... see guard-words.ts), of a phrasal particle
 *   ("log in" / "log out", "sign up" / "sign in"), or a negating prefix ("unlock" / "lock", "invalid" / "valid");
 * - numbers, as a multiset: digits, decimals and versions (3.11), digit-letter tokens (gpt-4o, ipv6,
 *   3pm), spelled numbers up to billions, ordinals;
 * - dates and times: months, weekdays, today/tomorrow/yesterday, "next week", time units ("per day" = "daily");
 * - named entities: capitalised words not at a sentence start, ALL-CAPS acronyms, quoted strings,
 *   each missing from the other text (case-insensitively, so "Docker" matches "docker");
 * - code: camelCase, snake_case, dotted.names, paths and URLs, flags (--force), calls (save()),
 *   `backticked` text (compared with its case).
 * Word order, "How do I" / "How can I", "please", punctuation and a sentence's first capital change nothing.
 * Not caught: a capitalised word opening a sentence is not taken for an entity ("Paris is nice in
 * May" / "London is nice in May" is left to the threshold), nor are lower-cased names ("flights to
 * paris" / "flights to london") or synonyms of opposite meaning outside the lists.
 * The reason reads `polarity differs: "on" vs "off"`.
 *
 * Pure and linear in the texts' length (a character scan, then sets and maps); no
 * regular expression that can backtrack. A veto costs a cache hit, never a wrong answer, so the
 * families lean towards vetoing: "Add a drop-down" / "Add a dropdown" is vetoed ("drop" is an opposite of "add").
 */
export function meaningVeto(query: string, candidate: string): string | undefined {
  const q = factsOf(query);
  const c = factsOf(candidate);
  if (q.negators.length !== c.negators.length) return `negation differs: ${list(q.negators)} vs ${list(c.negators)}`;
  return polarityVeto(q, c) ?? numbersVeto(q, c) ?? setVeto('dates', q.dates, c.dates) ?? entitiesVeto(q, c) ?? codeVeto(q, c);
}

interface Word {
  text: string;
  lower: string;
  /** First word of a sentence (or of a line, or of a list item). */
  initial: boolean;
  /** Last word before a sentence or clause mark, or of the text. */
  final: boolean;
  /** Has a digit: a number token. */
  digits: boolean;
}

interface Facts {
  negators: string[];
  /** group → side → the first word seen on that side. */
  polarity: Map<string, [string | undefined, string | undefined]>;
  /** phrasal verb → its particles, e.g. log → {in}. */
  particles: Map<string, Set<string>>;
  numbers: string[];
  dates: Map<string, string>;
  /** Named entities, lower-cased → as written. */
  entities: Map<string, string>;
  quotes: Set<string>;
  /** Code identifiers, lower-cased without a call's () → as written. */
  code: Map<string, string>;
  backticks: Set<string>;
  /** Every word and every whitespace-separated token, lower-cased: where an entity or identifier is looked for. */
  tokens: Set<string>;
  /** The same with their case, for backticked text. */
  casedTokens: Set<string>;
  stems: Set<string>;
}

function factsOf(text: string): Facts {
  const f: Facts = {
    negators: [],
    polarity: new Map(),
    particles: new Map(),
    numbers: [],
    dates: new Map(),
    entities: new Map(),
    quotes: new Set(),
    code: new Map(),
    backticks: new Set(),
    tokens: new Set(),
    casedTokens: new Set(),
    stems: new Set(),
  };
  quoted(text, f);
  const words = scan(text, f);
  for (const w of words) {
    f.tokens.add(w.lower);
    f.stems.add(stem(w.lower));
  }
  wordFacts(words, f);
  return f;
}

/** Quoted and backticked spans, by a one-pass state machine (an unclosed quote is dropped, not searched for). */
function quoted(text: string, f: Facts): void {
  let open: string | undefined;
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (open === undefined) {
      if (ch === '`' || ch === '"' || ch === '\u201c') [open, from] = [ch === '\u201c' ? '\u201d' : ch, i + 1];
      else if ((ch === "'" || ch === '\u2018') && !isAlnum(text[i - 1]) && isAlnum(text[i + 1])) [open, from] = [ch === '\u2018' ? '\u2019' : "'", i + 1];
    } else if (ch === open || (open === '"' && ch === '\u201d')) {
      if (open === "'" && isAlnum(text[i + 1])) continue; // an apostrophe inside the quote: don't
      const inner = text.slice(from, i).trim();
      if (inner !== '') (open === '`' ? f.backticks : f.quotes).add(inner);
      open = undefined;
    }
  }
}

const LEADING = new Set('"\'`\u201c\u201d\u2018\u2019([{<*_');
const TRAILING = new Set('"\'`\u201c\u201d\u2018\u2019)]}>*_.,;:!?');
const SENTENCE_END = new Set('.!?:;');
const CLAUSE_END = new Set('.!?:;,');

/** Splits on whitespace; collects code identifiers per token and returns the words. */
function scan(text: string, f: Facts): Word[] {
  const words: Word[] = [];
  let atStart = true;
  let i = 0;
  while (i < text.length) {
    if (isSpace(text[i]!)) {
      if (text[i] === '\n') atStart = true;
      i++;
      continue;
    }
    const from = i;
    while (i < text.length && !isSpace(text[i]!)) i++;
    const raw = text.slice(from, i);
    calls(raw, f);
    let a = 0;
    let b = raw.length;
    while (a < b && LEADING.has(raw[a]!)) a++;
    while (b > a && TRAILING.has(raw[b - 1]!) && !(raw[b - 1] === ')' && raw[b - 2] === '(')) b--;
    const core = raw.slice(a, b);
    if (core !== '') {
      f.tokens.add(core.toLowerCase());
      f.casedTokens.add(core);
      codeOf(core, f);
      const before = words.length;
      split(core, atStart, words);
      const last = words[words.length - 1];
      const ends = CLAUSE_END.has(raw[raw.length - 1]!) || CLAUSE_END.has(raw[b] ?? '');
      if (last && words.length > before) last.final = ends || i >= text.length;
    }
    // a bullet ("-", "1.") keeps the next word at a start; a sentence mark makes one
    const bullet = core === '' || /^\d{1,3}[.)]$/.test(raw);
    atStart = bullet ? atStart : SENTENCE_END.has(raw[raw.length - 1]!) || (SENTENCE_END.has(raw[b] ?? '') && raw[b] !== ':');
  }
  if (words.length > 0) words[words.length - 1]!.final = true;
  return words;
}

/** Alphanumeric runs of one token; digits keep their decimal points and thousands commas; n't becomes "not". */
function split(core: string, atStart: boolean, out: Word[]): void {
  let first = atStart;
  let i = 0;
  while (i < core.length) {
    if (!isAlnum(core[i])) {
      i++;
      continue;
    }
    const from = i;
    let digits = false;
    for (;;) {
      for (; i < core.length && isAlnum(core[i]); i++) digits ||= isDigit(core[i]!);
      // 3.11, 1,000 (a comma then exactly three digits)
      if ((core[i] === '.' && isDigit(core[i - 1]!) && isDigit(core[i + 1] ?? '')) || (core[i] === ',' && isThousands(core, i))) i++;
      else break;
    }
    let text = core.slice(from, i);
    const negative = digits && core[from - 1] === '-' && !isAlnum(core[from - 2]);
    if (negative) text = `-${text}`;
    let negated = false;
    if ((core[i] === "'" || core[i] === '\u2019') && isAlnum(core[i + 1])) {
      let j = i + 1;
      while (j < core.length && isAlnum(core[j])) j++;
      const suffix = core.slice(i + 1, j).toLowerCase();
      if (suffix === 't' && text.toLowerCase().endsWith('n')) {
        negated = true;
        text = { ca: 'can', wo: 'will', sha: 'shall', ai: 'is' }[text.slice(0, -1).toLowerCase()] ?? text.slice(0, -1);
      }
      i = j;
    }
    const lower = text.toLowerCase();
    if (lower !== '') out.push({ text, lower, initial: first, final: false, digits });
    if (negated) out.push({ text: "n't", lower: 'not', initial: false, final: false, digits: false });
    first = false;
  }
}

/** Code identifiers in one whitespace-free token. Case-folded: "JavaScript" and "javascript" are one. */
function codeOf(core: string, f: Facts): void {
  const add = (id: string): void => {
    if (!f.code.has(id.toLowerCase())) f.code.set(id.toLowerCase(), id);
  };
  if (core.startsWith('--') || (core[0] === '-' && isLetter(core[1]))) return add(core.split('=')[0]!);
  let slashes = 0;
  let dotted = false;
  let snake = false;
  let camel = false;
  let at = false;
  for (let i = 1; i < core.length; i++) {
    const ch = core[i]!;
    if (ch === '/' || ch === '\\') slashes++;
    else if (ch === '.' && isLetter(core[i + 1]) && isAlnum(core[i - 1]) && isAlnum(core[i + 2])) dotted = true;
    else if (ch === '_' && isAlnum(core[i - 1]) && isAlnum(core[i + 1])) snake = true;
    else if (ch === '@' && isAlnum(core[i - 1]) && isAlnum(core[i + 1])) at = true;
    else if (isLower(core[i - 1]!) && isUpper(ch)) camel = true;
  }
  const path = core.includes('://') || (slashes > 0 && (slashes > 1 || '/~.\\'.includes(core[0]!) || dotted || core.includes(':')));
  if (path || dotted || snake || camel || at || core[0] === '@') add(core.endsWith('()') ? core.slice(0, -2) : core);
}

/** Names called in a token: `save(` and `os.path.join(` (walking back from each bracket to the last one: linear). */
function calls(raw: string, f: Facts): void {
  let floor = 0;
  for (let i = 1; i < raw.length; i++) {
    if (raw[i] !== '(') continue;
    let j = i;
    while (j > floor && (isAlnum(raw[j - 1]) || raw[j - 1] === '_' || raw[j - 1] === '.' || raw[j - 1] === '$')) j--;
    if (j < i && isLetter(raw[j])) f.code.set(raw.slice(j, i).toLowerCase(), `${raw.slice(j, i)}()`);
    floor = i + 1;
  }
}

function wordFacts(words: Word[], f: Facts): void {
  let spelled: { value: number; current: number; text: string[] } | undefined;
  const flushNumber = (): void => {
    if (spelled) f.numbers.push(String(spelled.value + spelled.current));
    spelled = undefined;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const prev = words[i - 1];
    const next = words[i + 1];
    if (NEGATORS.has(w.lower)) f.negators.push(w.text);

    // numbers
    const unit = NUMBER_WORDS.get(w.lower);
    const scale = NUMBER_SCALES.get(w.lower);
    if (unit !== undefined && !(unit === 1 && prev && ONE_AS_PRONOUN.has(prev.lower) && !spelled)) {
      spelled ??= { value: 0, current: 0, text: [] };
      spelled.current += unit;
    } else if (scale !== undefined) {
      spelled ??= { value: 0, current: 0, text: [] };
      if (scale === 100) spelled.current = (spelled.current || 1) * 100;
      else [spelled.value, spelled.current] = [spelled.value + (spelled.current || 1) * scale, 0];
    } else {
      flushNumber();
      const ordinal = ORDINALS.get(w.lower);
      if (ordinal !== undefined) f.numbers.push(String(ordinal));
      else if (w.digits) f.numbers.push(numberOf(w.lower));
    }

    // polarity
    const joined = JOINED_PHRASALS.get(w.lower);
    if (joined) phrasal(f, joined[0], joined[1], w.text);
    const particle = PARTICLES.get(w.lower);
    if (particle !== undefined && prev) {
      const verb = VERB_STEMS.has(stem(prev.lower)) ? prev : PRONOUNS.has(prev.lower) ? words[i - 2] : undefined;
      if (verb && VERB_STEMS.has(stem(verb.lower))) phrasal(f, stem(verb.lower), w.lower, `${verb.text} ${w.text}`);
    }
    if (w.lower === 'on' && ((prev && SWITCH_CONTEXT.has(prev.lower)) || w.final || next?.lower === 'off' || next?.lower === 'or'))
      side(f, 'switch', 0, w.text);
    const pole = POLES.get(stem(w.lower));
    if (pole && !(pole[0] === 'show' && (next?.lower === 'me' || next?.lower === 'us'))) side(f, pole[0], pole[1], w.text);

    // dates and times
    const dated = dateOf(w, prev, next);
    if (dated) {
      const shifted = prev && DATE_SHIFTERS.has(prev.lower) ? `${prev.lower} ${dated}` : dated;
      f.dates.set(shifted, prev && shifted !== dated ? `${prev.text} ${w.text}` : w.text);
    }

    // named entities: capitalised mid-sentence, or ALL-CAPS (capitals inside a word, iPhone, are code's)
    if (!w.digits && !NOT_ENTITIES.has(w.lower) && isUpper(w.text[0]!) && (!w.initial || isAllCaps(w.text))) f.entities.set(w.lower, w.text);
  }
  flushNumber();
}

const PRONOUNS = new Set(['me', 'us', 'them', 'him', 'her', 'it', 'you']);
const VERB_STEMS = new Set([...PHRASAL_VERBS].map(stem));
const POLES = new Map<string, readonly [string, 0 | 1]>(
  POLARITY_GROUPS.flatMap(([group, a, b]) => [
    ...a.split(' ').map((w) => [stem(w), [group, 0]] as const),
    ...b.split(' ').map((w) => [stem(w), [group, 1]] as const),
  ]),
);

function phrasal(f: Facts, verb: string, particle: string, text: string): void {
  const p = particle === 'into' ? 'in' : particle;
  const set = f.particles.get(verb) ?? new Set();
  f.particles.set(verb, set.add(p));
  side(f, 'particle', PARTICLES.get(p)!, text);
  if (p === 'on' || p === 'off') side(f, 'switch', p === 'on' ? 0 : 1, text);
}

function side(f: Facts, group: string, s: 0 | 1, text: string): void {
  const sides = f.polarity.get(group) ?? [undefined, undefined];
  sides[s] ??= text;
  f.polarity.set(group, sides);
}

function dateOf(w: Word, prev: Word | undefined, next: Word | undefined): string | undefined {
  const l = w.lower;
  const byNumber = Boolean(prev?.digits || next?.digits);
  if (MONTHS.has(l)) return l.slice(0, 3);
  if (AMBIGUOUS_MONTHS.has(l) && ((isUpper(w.text[0]!) && !w.initial) || byNumber)) return l.slice(0, 3);
  const day = l.endsWith('s') ? l.slice(0, -1) : l;
  if (WEEKDAYS.has(day) || RELATIVE_DAYS.has(l)) return day;
  if ((l === 'am' || l === 'pm') && prev?.digits) return l;
  if ((l === 'second' || l === 'seconds') && (prev?.digits || prev?.lower === 'per')) return 'second';
  return TIME_UNITS.get(l);
}

function polarityVeto(q: Facts, c: Facts): string | undefined {
  for (const [group, qs] of q.polarity) {
    const cs = c.polarity.get(group);
    if (!cs || ((qs[0] === undefined) === (cs[0] === undefined) && (qs[1] === undefined) === (cs[1] === undefined))) continue;
    // name a side one text has and the other lacks, against what the other has instead
    const x = qs[0] !== undefined && cs[0] === undefined ? 0 : qs[1] !== undefined && cs[1] === undefined ? 1 : undefined;
    if (x !== undefined) return `polarity differs: "${qs[x]}" vs "${cs[1 - x] ?? cs[x]}"`;
    const y = cs[0] !== undefined && qs[0] === undefined ? 0 : 1;
    return `polarity differs: "${qs[1 - y] ?? qs[y]}" vs "${cs[y]}"`;
  }
  for (const [verb, ps] of q.particles) {
    const cs = c.particles.get(verb);
    if (cs && !sameSet(ps, cs)) return `polarity differs: "${verb} ${[...ps].join('/')}" vs "${verb} ${[...cs].join('/')}"`;
  }
  for (const [a, b] of [
    [q, c],
    [c, q],
  ] as const) {
    for (const s of a.stems) {
      if (b.stems.has(s)) continue;
      for (const p of NEGATING_PREFIXES) {
        const rest = s.slice(p.length);
        if (s.startsWith(p) && rest.length >= 3 && b.stems.has(rest) && !a.stems.has(rest)) {
          return a === q ? `polarity differs: "${s}" vs "${rest}"` : `polarity differs: "${rest}" vs "${s}"`;
        }
      }
    }
  }
  return undefined;
}

function numbersVeto(q: Facts, c: Facts): string | undefined {
  // multisets as counts: a text of a thousand numbers costs a thousand map operations, not a million comparisons
  const counts = new Map<string, number>();
  for (const n of q.numbers) counts.set(n, (counts.get(n) ?? 0) + 1);
  for (const n of c.numbers) counts.set(n, (counts.get(n) ?? 0) - 1);
  const onlyQ = [...counts].filter(([, k]) => k > 0).map(([n]) => n);
  const onlyC = [...counts].filter(([, k]) => k < 0).map(([n]) => n);
  return onlyQ.length || onlyC.length ? `numbers differ: ${list(onlyQ)} vs ${list(onlyC)}` : undefined;
}

function setVeto(family: string, q: Map<string, string>, c: Map<string, string>): string | undefined {
  const onlyQ = [...q].filter(([k]) => !c.has(k)).map(([, v]) => v);
  const onlyC = [...c].filter(([k]) => !q.has(k)).map(([, v]) => v);
  return onlyQ.length || onlyC.length ? `${family} differ: ${list(onlyQ)} vs ${list(onlyC)}` : undefined;
}

/** An entity of one text missing from the other's words: "Paris" / "London" differ, "Docker" / "docker" do not. */
function entitiesVeto(q: Facts, c: Facts): string | undefined {
  const missing = (a: Facts, b: Facts): string[] => [
    ...[...a.entities].filter(([k]) => !b.tokens.has(k)).map(([, v]) => v),
    ...[...a.quotes].filter(
      (s) =>
        !b.quotes.has(s) &&
        !s
          .toLowerCase()
          .split(/\s+/)
          .every((w) => b.tokens.has(w)),
    ),
  ];
  const onlyQ = missing(q, c);
  const onlyC = missing(c, q);
  return onlyQ.length || onlyC.length ? `entities differ: ${list(onlyQ)} vs ${list(onlyC)}` : undefined;
}

function codeVeto(q: Facts, c: Facts): string | undefined {
  const missing = (a: Facts, b: Facts): string[] => [
    ...[...a.code].filter(([k]) => !b.code.has(k) && !b.tokens.has(k)).map(([, v]) => v),
    ...[...a.backticks].filter((s) => !b.backticks.has(s) && !b.casedTokens.has(s)),
  ];
  const onlyQ = missing(q, c);
  const onlyC = missing(c, q);
  return onlyQ.length || onlyC.length ? `code differs: ${list(onlyQ)} vs ${list(onlyC)}` : undefined;
}

/** A crude stem for looking words up in the polarity lists: "enabled", "enables", "enabling" → "enabl". */
function stem(word: string): string {
  let s = word;
  if (s.endsWith('ing') && s.length >= 6) s = s.slice(0, -3);
  else if (s.endsWith('ed') && s.length >= 5) s = s.slice(0, -2);
  else if (s.endsWith('es') && s.length >= 5 && !s.endsWith('ses')) s = s.slice(0, -2);
  else if (s.endsWith('s') && s.length >= 4 && !s.endsWith('ss') && !s.endsWith('us')) s = s.slice(0, -1);
  if (s !== word && s.length >= 4 && s[s.length - 1] === s[s.length - 2] && !'lsz'.includes(s[s.length - 1]!)) s = s.slice(0, -1);
  if (s.length >= 4 && s.endsWith('e')) s = s.slice(0, -1);
  return s;
}

/** Digits as a value: leading zeros off ("05" is 5), ordinals to their number ("3rd" is 3); other letter-digit tokens as written. */
function numberOf(lower: string): string {
  let s = lower.replaceAll(',', '');
  const sign = s.startsWith('-') ? '-' : '';
  if (sign) s = s.slice(1);
  if (['st', 'nd', 'rd', 'th'].includes(s.slice(-2)) && isDigit(s[s.length - 3] ?? '')) s = s.slice(0, -2);
  for (const ch of s) if (!isDigit(ch) && ch !== '.') return lower;
  let zeros = 0;
  while (zeros < s.length - 1 && s[zeros] === '0' && isDigit(s[zeros + 1]!)) zeros++;
  return sign + s.slice(zeros);
}

function list(items: readonly string[]): string {
  return items.length === 0 ? 'none' : items.map((s) => `"${s}"`).join(', ');
}

function sameSet<T>(a: ReadonlySet<T>, b: ReadonlySet<T>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

function isThousands(s: string, i: number): boolean {
  return isDigit(s[i - 1] ?? '') && isDigit(s[i + 1] ?? '') && isDigit(s[i + 2] ?? '') && isDigit(s[i + 3] ?? '') && !isDigit(s[i + 4] ?? '');
}

const LETTER_OR_DIGIT = /^[\p{L}\p{N}]$/u;
function isAlnum(ch: string | undefined): boolean {
  if (ch === undefined) return false;
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return LETTER_OR_DIGIT.test(ch);
}
function isDigit(ch: string): boolean {
  return ch >= '0' && ch <= '9';
}
function isLetter(ch: string | undefined): boolean {
  return ch !== undefined && isAlnum(ch) && !isDigit(ch);
}
function isUpper(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return c >= 65 && c <= 90;
  return ch !== ch.toLowerCase() && ch === ch.toUpperCase();
}
function isLower(ch: string): boolean {
  const c = ch.charCodeAt(0);
  if (c < 128) return c >= 97 && c <= 122;
  return ch !== ch.toUpperCase() && ch === ch.toLowerCase();
}
function isAllCaps(text: string): boolean {
  return text.length >= 2 && text === text.toUpperCase() && text !== text.toLowerCase();
}
function isSpace(ch: string): boolean {
  return ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r' || ch === '\f' || ch === '\v' || ch === '\u00a0';
}
