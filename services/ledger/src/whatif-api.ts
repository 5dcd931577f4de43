/**
 * The ledger's exact money, for the what-if replay (`npm run whatif`, docs/whatif.md): a request
 * costs there what the ledger would bill for it, to the last of 1e-18 USD, and counts on a budget
 * what the ledger's spend counts (nano-USD, rounded up per request).
 */
export { costUsd, formatUsd, nanosCeil, usdUnits, type Price } from './money.js';
