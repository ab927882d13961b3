import { describe, expect, it } from "vitest";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import { MemoryKeeper } from "../../agent/service/memory.ts";

const logger = createLogger({ level: "silent", destination: { write: () => undefined } });
const MiB = 1024 * 1024;

describe("MemoryKeeper", () => {
  it("collects when the heap grew by 16 MiB since the last collection, and only then", async () => {
    const clock = new VirtualClock(0, { auto: false });
    let heap = 20 * MiB;
    const collect = (): void => {
      heap = 21 * MiB;
    };
    const keeper = new MemoryKeeper({ clock, logger, heapUsed: () => heap, collect });
    keeper.start();
    heap = 30 * MiB;
    clock.advance(10_000);
    await Promise.resolve();
    expect(keeper.collections).toBe(0);
    heap = 37 * MiB;
    keeper.check();
    expect(keeper.collections).toBe(1);
    expect(heap).toBe(21 * MiB);
    // Measured from the heap after the collection, not from the start.
    heap = 36 * MiB;
    keeper.check();
    expect(keeper.collections).toBe(1);
    heap = 38 * MiB;
    clock.advance(10_000);
    await new Promise((resolve) => setImmediate(resolve));
    expect(keeper.collections).toBe(2);
    await keeper.stop();
  });
});
