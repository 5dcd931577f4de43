import type { KV, KvEntry } from '@nats-io/kv';
import { createOnce, decodeJson, encodeJson, followBucket, isWrongRevision, updateOnce } from '@sluice/bus';
import type { Logger } from '@sluice/telemetry';
import type { QueuedLine, UpstreamGroup } from './upstream-batch.js';

const LINE = 'line.';
const GROUP = 'group.';

/** Where a line is recorded: the invoker's batch-lane handler writes it, the upstream-batch runner reads it. */
export interface LineRecorder {
  /** Records a line once; a line already recorded (a redelivery) is left as it is. */
  record(line: QueuedLine): Promise<void>;
}

/**
 * `sluice_upstream_batches`: `line.<requestId>` (`QueuedLine`) and `group.<id>` (`UpstreamGroup`),
 * kept in memory by one watch of the bucket. Lines are created once and deleted once answered;
 * groups move by compare-and-set on the revision the watch (or this replica's write) showed
 * (`createOnce`/`updateOnce`: one writer wins on a cluster too, docs/cluster.md).
 */
export class UpstreamBatchStore implements LineRecorder {
  readonly lines = new Map<string, QueuedLine>();
  readonly groups = new Map<string, { group: UpstreamGroup; revision: number }>();
  private stopWatch: () => void = () => undefined;

  constructor(
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  /** Resolves once the bucket's records are in memory. */
  async start(): Promise<void> {
    const followed = await followBucket(this.kv, (e) => this.observe(e), { log: this.log, what: 'upstream batches' });
    this.stopWatch = () => followed.stop();
  }

  stop(): void {
    this.stopWatch();
  }

  async record(line: QueuedLine): Promise<void> {
    try {
      await createOnce(this.kv, `${LINE}${line.event.requestId}`, encodeJson(line));
    } catch (e) {
      // already recorded: a redelivery of the line's chat.routed
      if (!isWrongRevision(e)) throw e;
    }
  }

  /** Creates a group; one already there (the same lines, gathered again after a crash) is kept. */
  async createGroup(group: UpstreamGroup): Promise<void> {
    try {
      const revision = await createOnce(this.kv, `${GROUP}${group.id}`, encodeJson(group));
      this.keep(group, revision);
    } catch (e) {
      if (!isWrongRevision(e)) throw e;
    }
  }

  /** Moves a group by compare-and-set on the revision last seen; throws when another writer moved it first. */
  async updateGroup(group: UpstreamGroup): Promise<void> {
    const seen = this.groups.get(group.id);
    if (!seen) throw new Error(`group ${group.id} is not known`);
    const revision = await updateOnce(this.kv, `${GROUP}${group.id}`, encodeJson(group), seen.revision);
    this.keep(group, revision);
  }

  async deleteLine(requestId: string): Promise<void> {
    await this.kv.delete(`${LINE}${requestId}`);
    this.lines.delete(requestId);
  }

  async deleteGroup(id: string): Promise<void> {
    await this.kv.delete(`${GROUP}${id}`);
    this.groups.delete(id);
  }

  private keep(group: UpstreamGroup, revision: number): void {
    const known = this.groups.get(group.id);
    if (!known || known.revision < revision) this.groups.set(group.id, { group, revision });
  }

  private observe(e: KvEntry): void {
    const put = e.operation === 'PUT' && e.length > 0;
    if (e.key.startsWith(LINE)) {
      const id = e.key.slice(LINE.length);
      if (!put) this.lines.delete(id);
      else this.lines.set(id, decodeJson<QueuedLine>(e.value));
    } else if (e.key.startsWith(GROUP)) {
      const id = e.key.slice(GROUP.length);
      if (!put) this.groups.delete(id);
      else this.keep(decodeJson<UpstreamGroup>(e.value), e.revision);
    }
  }
}
