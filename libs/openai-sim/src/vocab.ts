/**
 * Filler words that are each exactly one o200k_base token both bare and with
 * a leading space, so a reply built from them has a token count known by
 * construction (verified in vocab.unit.spec.ts).
 */
export const VOCAB: readonly string[] = [
  'river', 'stone', 'light', 'water', 'cloud', 'field', 'quiet', 'garden',
  'paper', 'window', 'silver', 'forest', 'bridge', 'market', 'summer', 'winter',
  'signal', 'pattern', 'circle', 'engine', 'letter', 'answer', 'simple', 'bright',
  'yellow', 'orange', 'purple', 'green', 'blue', 'red', 'black', 'white',
  'small', 'large', 'early', 'later', 'north', 'south', 'east', 'west',
  'story', 'music', 'voice', 'table', 'chair', 'house', 'street', 'city',
  'world', 'system', 'model', 'token', 'value', 'number', 'order', 'reason',
  'result', 'source', 'point', 'level', 'state', 'power', 'space', 'place',
];
