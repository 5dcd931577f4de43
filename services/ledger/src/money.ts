/** A price, USD per million tokens: one recorded on an event (`BilledPrice`), or a model's in the config. */
export interface Price {
  inputPerMTok: number;
  outputPerMTok: number;
}

// Exact arithmetic without a decimal library: a price with up to 12 decimals is an integer of
// 1e-12 USD per million tokens, so tokens × price is an integer of 1e-18 USD. Floats would
// drift once millions of requests are summed; Postgres `numeric` keeps the sums exact.
const PRICE_DECIMALS = 12;
const USD_DECIMALS = 18;

function priceUnits(perMTok: number): bigint {
  if (!Number.isFinite(perMTok) || perMTok < 0 || perMTok >= 1e9) throw new RangeError(`price ${perMTok} is not a sane USD amount per million tokens`);
  const [whole, frac = ''] = perMTok.toFixed(PRICE_DECIMALS).split('.');
  return BigInt(`${whole}${frac}`);
}

function formatUnits(units: bigint): string {
  const digits = units.toString().padStart(USD_DECIMALS + 1, '0');
  const whole = digits.slice(0, -USD_DECIMALS);
  const frac = digits.slice(-USD_DECIMALS).replace(/0+$/, '');
  return frac ? `${whole}.${frac}` : whole;
}

/**
 * The cost of tokens at `price` in USD as an exact decimal string (for a `numeric` column);
 * '0' without a price.
 *
 * @example
 * costUsd(1000, 500, { inputPerMTok: 0.15, outputPerMTok: 0.6 }) // '0.00045'
 */
export function costUsd(inputTokens: number, outputTokens: number, price: Price | undefined): string {
  if (!price) return '0';
  return formatUnits(BigInt(inputTokens) * priceUnits(price.inputPerMTok) + BigInt(outputTokens) * priceUnits(price.outputPerMTok));
}

/** An exact decimal USD string as an integer of 1e-18 USD. Throws on anything but a plain non-negative decimal. */
export function usdUnits(usd: string): bigint {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(usd);
  if (!m) throw new RangeError(`${usd} is not a decimal USD amount`);
  const frac = (m[2] ?? '').replace(/0+$/, '');
  if (frac.length > USD_DECIMALS) throw new RangeError(`${usd} has more than ${USD_DECIMALS} decimals`);
  return BigInt(m[1]!) * 10n ** BigInt(USD_DECIMALS) + BigInt(frac.padEnd(USD_DECIMALS, '0') || '0');
}

/** The exact decimal string of an integer of 1e-18 USD (the inverse of usdUnits). */
export function formatUsd(units: bigint): string {
  return formatUnits(units);
}

const UNITS_PER_NANO = 10n ** BigInt(USD_DECIMALS - 9);

/**
 * A USD amount in whole nano-USD, rounded up: what a budget counter counts (see NANOS_PER_USD in
 * contracts), so a budget never looks less spent than it is.
 *
 * @example
 * nanosCeil('0.00045') // 450000n; nanosCeil('0.0000000001') // 1n
 */
export function nanosCeil(usd: string): bigint {
  const units = usdUnits(usd);
  return (units + UNITS_PER_NANO - 1n) / UNITS_PER_NANO;
}
