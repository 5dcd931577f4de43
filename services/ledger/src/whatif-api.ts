/**
 * The ledger's exact money, for the what-if replay (`npm run whatif`, docs/whatif.md): a request
 * costs there what the ledger would bill for it, to the last of 1e-18 USD.
 */
export { costUsd, formatUsd, usdUnits, type Price } from './money.js';
