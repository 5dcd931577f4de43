// The meaning guard's vocabulary (see guard.ts). English only: a text in another language passes
// the word families unchecked and relies on numbers, entities, code and the threshold.

/** Words that negate. `n't` forms are found by the tokenizer; these are the spelled ones and common apostrophe-less typos. */
export const NEGATORS = new Set(
  words(
    'not no never none nobody nothing nowhere neither nor cannot without non ' +
      'dont doesnt didnt isnt arent wasnt werent cant couldnt shouldnt wouldnt wont havent hasnt hadnt mustnt neednt aint',
  ),
);

/**
 * Opposite pairs, as groups of two sides: two texts using different sides of a group mean different
 * things ("enable" / "turn off" share the `switch` group). "on" joins `switch` only in a switching
 * context (see guard.ts), being mostly a preposition.
 */
export const POLARITY_GROUPS: ReadonlyArray<readonly [string, string, string]> = [
  ['switch', 'enable activate', 'disable deactivate off'],
  ['start', 'start begin launch', 'stop end finish halt'],
  ['open', 'open reopen', 'close shut'],
  ['lock', 'lock', 'unlock'],
  ['show', 'show unhide reveal visible', 'hide hidden invisible'],
  ['allow', 'allow permit accept approve grant whitelist allowlist', 'deny block forbid disallow reject decline refuse revoke blacklist blocklist ban'],
  ['increase', 'increase raise grow boost expand', 'decrease reduce shrink'],
  ['more', 'more most', 'less fewer least'],
  ['high', 'high higher highest upper above', 'low lower lowest below'],
  ['big', 'big bigger biggest large larger largest', 'small smaller smallest'],
  ['long', 'long longer longest', 'short shorter shortest'],
  ['fast', 'fast faster fastest quick quicker', 'slow slower slowest'],
  ['max', 'max maximum maximize maximise', 'min minimum minimize minimise'],
  ['add', 'add insert create append', 'remove delete drop erase destroy subtract'],
  ['include', 'include inclusive', 'exclude exclusive'],
  ['before', 'before prior earlier', 'after later'],
  ['first', 'first', 'last'],
  ['true', 'true', 'false'],
  ['yes', 'yes', 'no'],
  ['import', 'import', 'export'],
  ['upload', 'upload', 'download'],
  ['buy', 'buy purchase', 'sell'],
  ['encrypt', 'encrypt', 'decrypt'],
  ['encode', 'encode serialize serialise compress zip', 'decode deserialize deserialise decompress unzip'],
  ['install', 'install', 'uninstall'],
  ['subscribe', 'subscribe', 'unsubscribe'],
  ['connect', 'connect online', 'disconnect offline'],
  ['success', 'success succeed successful pass', 'fail failure broken'],
  ['public', 'public', 'private'],
  ['input', 'input', 'output'],
  ['send', 'send sent', 'receive'],
  ['push', 'push', 'pull'],
  ['inbound', 'inbound incoming ingress', 'outbound outgoing egress'],
  ['upstream', 'upstream', 'downstream'],
  ['upgrade', 'upgrade', 'downgrade'],
  ['ascending', 'ascending asc', 'descending desc'],
  ['left', 'left', 'right'],
  ['top', 'top', 'bottom'],
  ['horizontal', 'horizontal', 'vertical'],
  ['light', 'light', 'dark'],
  ['old', 'old older oldest', 'new newer newest latest'],
  ['early', 'early earliest', 'late'],
  ['sync', 'sync synchronous', 'async asynchronous'],
  ['client', 'client frontend', 'server backend'],
  ['local', 'local internal', 'remote external'],
  ['read', 'read', 'write'],
  ['required', 'required mandatory', 'optional'],
  ['credit', 'credit', 'debit'],
  ['plus', 'plus positive', 'minus negative'],
  ['multiply', 'multiply', 'divide'],
  ['win', 'win', 'lose'],
  ['cheap', 'cheap cheaper cheapest', 'expensive'],
  ['best', 'best', 'worst'],
  ['good', 'good better', 'bad worse'],
  ['easy', 'easy easier', 'hard harder difficult'],
];

/** Verbs whose particle (in/out, up/down, on/off) decides the meaning: "log in" / "log out", "sign up" / "sign in". */
export const PHRASAL_VERBS = new Set(words('log sign opt check zoom scale scroll round plug clock roll spin power turn switch shut back'));
/** Particles, each with its side: in, on and up against out, off and down. */
export const PARTICLES = new Map<string, 0 | 1>([
  ['in', 0],
  ['into', 0],
  ['on', 0],
  ['up', 0],
  ['out', 1],
  ['off', 1],
  ['down', 1],
]);
/** One-word forms of phrasal verbs. */
export const JOINED_PHRASALS = new Map<string, readonly [string, string]>([
  ['login', ['log', 'in']],
  ['logon', ['log', 'on']],
  ['logout', ['log', 'out']],
  ['logoff', ['log', 'off']],
  ['signin', ['sign', 'in']],
  ['signon', ['sign', 'on']],
  ['signout', ['sign', 'out']],
  ['signup', ['sign', 'up']],
  ['checkin', ['check', 'in']],
  ['checkout', ['check', 'out']],
  ['optin', ['opt', 'in']],
  ['optout', ['opt', 'out']],
  ['shutdown', ['shut', 'down']],
  ['startup', ['start', 'up']],
  ['backup', ['back', 'up']],
  ['rollback', ['roll', 'back']],
]);
/** A preceding word that makes "on" a switch position rather than a preposition ("turn it on", "is on"). */
export const SWITCH_CONTEXT = new Set(
  words('turn turns turned turning switch switched flip flipped toggle toggled set is be are was stay stays keep leave left it them'),
);
/** Prefixes that negate the rest of a word ("unlock", "invalid", "disconnect", "deactivate"). */
export const NEGATING_PREFIXES = words('un in im il ir dis non de');

export const NUMBER_WORDS = new Map<string, number>(
  [
    ...words('zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty').map(
      (w, i) => [w, i] as const,
    ),
    ...words('thirty forty fifty sixty seventy eighty ninety').map((w, i) => [w, 30 + 10 * i] as const),
    ['dozen', 12] as const,
  ].map(([w, n]) => [w, n]),
);
export const NUMBER_SCALES = new Map<string, number>([
  ['hundred', 100],
  ['thousand', 1_000],
  ['million', 1_000_000],
  ['billion', 1_000_000_000],
]);
export const ORDINALS = new Map<string, number>(
  words('first _ third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth').map((w, i) => [w, i + 1]),
);
/** A preceding word that makes "one" a pronoun ("which one", "the one"). */
export const ONE_AS_PRONOUN = new Set(words('which this that the each any every no another a last new old right wrong'));

export const MONTHS = new Set(
  words('january february april june july august september october november december jan feb apr jun jul aug sep sept oct nov dec'),
);
/** Months that are also ordinary words: a month only when capitalised mid-sentence or next to a number. */
export const AMBIGUOUS_MONTHS = new Set(words('march may'));
export const WEEKDAYS = new Set(words('monday tuesday wednesday thursday friday saturday sunday'));
export const RELATIVE_DAYS = new Set(words('today tonight tomorrow yesterday weekend weekday morning afternoon evening midnight noon ago overnight fortnight'));
/** Time units and frequencies, to one name each ("daily" is "day"). */
export const TIME_UNITS = new Map<string, string>([
  ...words('millisecond minute hour day week month year quarter decade century').flatMap((u) => [[u, u] as const, [`${u}s`, u] as const]),
  ...(
    [
      ['ms', 'millisecond'],
      ['msec', 'millisecond'],
      ['sec', 'second'],
      ['secs', 'second'],
      ['mins', 'minute'],
      ['hr', 'hour'],
      ['hrs', 'hour'],
      ['yr', 'year'],
      ['yrs', 'year'],
      ['hourly', 'hour'],
      ['daily', 'day'],
      ['weekly', 'week'],
      ['monthly', 'month'],
      ['quarterly', 'quarter'],
      ['yearly', 'year'],
      ['annual', 'year'],
      ['annually', 'year'],
      ['centuries', 'century'],
    ] as const
  ).map(([w, u]) => [w, u] as const),
]);
/** Words that make the next time word relative: "next week" and "last week" differ. */
export const DATE_SHIFTERS = new Set(words('next last this previous coming following past'));

/** Function words and greetings: never named entities however they are capitalised. */
export const NOT_ENTITIES = new Set(
  words(
    'i a an the my me we us our you your it its is are was were be been am do does did to of in on for with at by from as about into ' +
      'can could should would will shall may might must how what which who whom whose where when why there here this that these those ' +
      'so just please hi hello hey thanks thank ok okay and or but if then than also not no yes',
  ),
);

function words(s: string): string[] {
  return s.split(' ').filter((w) => w !== '');
}
