/**
 * Creates a stream or durable consumer that every replica creates at start. When `create` fails
 * because another replica created it first, `find` succeeds and that is fine; when `find` fails
 * too, the creation's own error is thrown (it says why, where "not found" would not).
 *
 * @example
 * await createOrFind(() => jsm.consumers.add(stream, config), () => jsm.consumers.info(stream, name));
 */
export async function createOrFind(create: () => Promise<unknown>, find: () => Promise<unknown>): Promise<void> {
  await create().catch(async (e: unknown) => {
    await find().catch(() => {
      throw e;
    });
  });
}
