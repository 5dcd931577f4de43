import type { BatchRecord } from '@sluice/contracts';

/** What the runner does next for one batch. */
export type BatchStep =
  | { kind: 'validate' }
  /** Publish these lines (0-based, file order), then record `submitted`. */
  | { kind: 'submit'; lines: number[]; submitted: number }
  /** Write the files and end the batch in `to` (`completed` passes through `finalizing`). */
  | { kind: 'finish'; to: 'completed' | 'cancelled' | 'expired' }
  | { kind: 'wait' };

/**
 * The runner's decision for a batch, from its record, the lines that have a stored result and the
 * time: pure. Lines are submitted in file order while fewer than `maxInFlight` of them are in the
 * pipeline (submitted, no result yet), so a batch feeds its lane and never floods it. A line that
 * already has a result is never submitted again (after a restart, lines published past the
 * recorded cursor may have been answered). A cancelled batch ends once every submitted line is
 * answered; one past `expires_at` ends at once.
 *
 * @example
 * nextStep({ ...record, status: 'in_progress', lines: 100, submitted: 0 }, new Set(), Date.now(), 32)
 * // → { kind: 'submit', lines: [0, ..., 31], submitted: 32 }
 */
export function nextStep(record: BatchRecord, answered: ReadonlySet<number>, now: number, maxInFlight: number): BatchStep {
  const expired = now >= record.expires_at * 1000;
  switch (record.status) {
    case 'validating':
      return expired ? { kind: 'finish', to: 'expired' } : { kind: 'validate' };
    case 'in_progress': {
      if (answered.size >= record.lines) return { kind: 'finish', to: 'completed' };
      if (expired) return { kind: 'finish', to: 'expired' };
      const room = maxInFlight - inFlight(record, answered);
      const lines: number[] = [];
      let next = record.submitted;
      for (; next < record.lines && lines.length < room; next++) if (!answered.has(next)) lines.push(next);
      return lines.length > 0 || next > record.submitted ? { kind: 'submit', lines, submitted: next } : { kind: 'wait' };
    }
    case 'finalizing':
      // a runner died while writing the files: write them again
      return { kind: 'finish', to: 'completed' };
    case 'cancelling':
      return inFlight(record, answered) === 0 || expired ? { kind: 'finish', to: 'cancelled' } : { kind: 'wait' };
    case 'failed':
    case 'completed':
    case 'expired':
    case 'cancelled':
      return { kind: 'wait' };
    default: {
      const _exhaustive: never = record.status;
      return _exhaustive;
    }
  }
}

/** Lines submitted and not answered yet. */
function inFlight(record: BatchRecord, answered: ReadonlySet<number>): number {
  let done = 0;
  for (const line of answered) if (line < record.submitted) done++;
  return record.submitted - done;
}
