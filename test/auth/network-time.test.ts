import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { SignInState } from "../../agent/auth/signin.ts";
import { TIME_SYNC_POLL_MS } from "../../agent/auth/signin.ts";
import { SystemTimeSync, TIME_FLOOR_MS, type TimeSync } from "../../agent/auth/time-sync.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { screenFor } from "../../display/screens.ts";
import { rejection, SECOND, StateLog, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

/** A clock that is not synchronised until the test says so (or until the nth question); counts the questions. */
class FakeTimeSync implements TimeSync {
  synchronised = false;
  asked = 0;
  constructor(readonly synchronisedFromQuestion = Number.POSITIVE_INFINITY) {}
  async isSynchronised(): Promise<boolean> {
    this.asked += 1;
    return this.synchronised || this.asked >= this.synchronisedFromQuestion;
  }
}

/** Approves the code as soon as it is issued. */
function approving(w: World): StateLog {
  return new StateLog().on((state: SignInState) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
}

describe("waiting for network time before talking to Entra", () => {
  it("sends nothing until the clock is synchronised, then signs in", async () => {
    const w = await start();
    const timeSync = new FakeTimeSync();
    const log = approving(w).on((state) => {
      if (state.kind === "waiting-for-time") w.clock.hold();
    });
    const startedAt = w.clock.now();
    const outcome = w.service({ timeSync }).getToken(w.profile(), { onState: log.onState });

    await w.clock.whenParked();
    expect(log.kinds()).toEqual(["starting", "waiting-for-time"]);
    expect(log.last()).toEqual({ kind: "waiting-for-time", profile: "default" });
    expect(screenFor({ kind: "waiting-for-time", profile: "default" })).toEqual({ kind: "waiting-for-time" });
    expect(w.fetchCalls).toEqual([]);
    expect(w.emulator.requests()).toEqual([]);
    expect(w.clock.sleeps).toEqual([TIME_SYNC_POLL_MS]);
    expect(timeSync.asked).toBe(1);

    timeSync.synchronised = true;
    w.clock.release();
    const result = await outcome;

    expect(result.fromCache).toBe(false);
    expect(timeSync.asked).toBe(2);
    expect(log.kinds()).toEqual(["starting", "waiting-for-time", "code-issued", "signed-in"]);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code"]);
    // The first request went out after the 2 s wait, not before.
    const first = w.emulator.requests()[0];
    expect(first?.at).toBeGreaterThanOrEqual(startedAt + TIME_SYNC_POLL_MS);
  });

  it("asks every 2 s on the injected clock while the clock stays unsynchronised", async () => {
    const w = await start();
    // Synchronised on the fifth question, after four 2 s sleeps.
    const timeSync = new FakeTimeSync(5);
    const log = approving(w);
    const startedAt = w.clock.now();
    await w.service({ timeSync }).getToken(w.profile(), { onState: log.onState });
    expect(timeSync.asked).toBe(5);
    // One waiting-for-time state, however long the wait.
    expect(log.kinds().filter((kind) => kind === "waiting-for-time")).toHaveLength(1);
    expect(w.clock.sleeps.slice(0, 4)).toEqual(Array(4).fill(TIME_SYNC_POLL_MS));
    expect(w.emulator.requests()[0]?.at).toBe(startedAt + 4 * TIME_SYNC_POLL_MS);
  });

  it("does not serve a cached token before the clock can be trusted", async () => {
    const w = await start();
    await w.service().getToken(w.profile(), { onState: approving(w).onState });
    const timeSync = new FakeTimeSync();
    const log = new StateLog().on((state) => {
      if (state.kind === "waiting-for-time") w.clock.hold();
    });
    const requestsBefore = w.emulator.requests().length;
    const outcome = w.service({ timeSync }).getToken(w.profile(), { onState: log.onState });
    await w.clock.whenParked();
    expect(log.kinds()).toEqual(["starting", "waiting-for-time"]);

    timeSync.synchronised = true;
    w.clock.release();
    const cached = await outcome;
    expect(cached.fromCache).toBe(true);
    expect(log.kinds()).toEqual(["starting", "waiting-for-time", "signed-in"]);
    expect(w.emulator.requests()).toHaveLength(requestsBefore);
  });

  it("emits no waiting-for-time state when the clock is already synchronised", async () => {
    const w = await start();
    const timeSync = new FakeTimeSync();
    timeSync.synchronised = true;
    const log = approving(w);
    await w.service({ timeSync }).getToken(w.profile(), { onState: log.onState });
    expect(timeSync.asked).toBe(1);
    expect(log.kinds()).toEqual(["starting", "code-issued", "signed-in"]);
  });

  it("stops at once with E_CANCELLED when cancelled while waiting for time", async () => {
    const w = await start();
    const timeSync = new FakeTimeSync();
    const controller = new AbortController();
    const log = new StateLog().on((state) => {
      if (state.kind === "waiting-for-time") w.clock.hold();
    });
    const outcome = rejection(
      w.service({ timeSync }).getToken(w.profile(), { signal: controller.signal, onState: log.onState }),
    );
    await w.clock.whenParked();
    const waitingSince = w.clock.now();
    const started = performance.now();
    controller.abort();
    const error = await outcome;

    expect(error.code).toBe("E_CANCELLED");
    expect(error.exitCode).toBe(130);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(w.clock.parkedSleeps).toBe(0);
    expect(w.clock.now()).toBe(waitingSince);
    expect(log.kinds()).toEqual(["starting", "waiting-for-time", "cancelled"]);
    expect(w.fetchCalls).toEqual([]);
  });

  it("stops promptly when cancelled while a time check hangs", async () => {
    const w = await start();
    const controller = new AbortController();
    let asked = false;
    const timeSync: TimeSync = {
      isSynchronised: () => {
        asked = true;
        return new Promise<boolean>(() => {});
      },
    };
    const log = new StateLog();
    const outcome = rejection(
      w.service({ timeSync }).getToken(w.profile(), { signal: controller.signal, onState: log.onState }),
    );
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(asked).toBe(true);
    controller.abort();
    expect((await outcome).code).toBe("E_CANCELLED");
    expect(log.kinds()).toEqual(["starting", "cancelled"]);
    expect(w.fetchCalls).toEqual([]);
  });

  it("gives up with E_TIMEOUT when the clock never synchronises within timeoutMs", async () => {
    const w = await start();
    w.clock.passiveSleepsFromMs = 10 * SECOND;
    const timeSync = new FakeTimeSync();
    const log = new StateLog();
    const startedAt = w.clock.now();
    const error = await rejection(
      w.service({ timeSync }).getToken(w.profile(), { timeoutMs: 10 * SECOND, onState: log.onState }),
    );
    expect(error.code).toBe("E_TIMEOUT");
    expect(log.kinds()).toEqual(["starting", "waiting-for-time", "expired"]);
    expect(w.clock.now() - startedAt).toBe(10 * SECOND);
    expect(w.fetchCalls).toEqual([]);
  });
});

describe("SystemTimeSync", () => {
  let dir = "";
  let file = "";
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "entratool-timesync-"));
    file = join(dir, "run", "systemd", "timesync", "synchronized");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const touch = async (): Promise<void> => {
    await mkdir(join(dir, "run", "systemd", "timesync"), { recursive: true });
    await writeFile(file, "");
  };

  it("has the release's floor", () => {
    expect(new Date(TIME_FLOOR_MS).toISOString()).toBe("2026-11-01T00:00:00.000Z");
  });

  it("is not synchronised at 1970 before timesyncd has synchronised", async () => {
    const sync = new SystemTimeSync({ clock: new VirtualClock(0), synchronizedFile: file });
    expect(await sync.isSynchronised()).toBe(false);
  });

  it("is not synchronised just below the floor", async () => {
    const sync = new SystemTimeSync({ clock: new VirtualClock(TIME_FLOOR_MS - 1), synchronizedFile: file });
    expect(await sync.isSynchronised()).toBe(false);
  });

  it("is synchronised once timesyncd touched its file, whatever the clock says", async () => {
    const clock = new VirtualClock(0);
    const sync = new SystemTimeSync({ clock, synchronizedFile: file });
    expect(await sync.isSynchronised()).toBe(false);
    await touch();
    expect(await sync.isSynchronised()).toBe(true);
  });

  it("is synchronised at and after the floor without timesyncd", async () => {
    expect(
      await new SystemTimeSync({
        clock: new VirtualClock(TIME_FLOOR_MS),
        synchronizedFile: file,
      }).isSynchronised(),
    ).toBe(true);
    const later = new VirtualClock(Date.UTC(2027, 5, 1));
    expect(await new SystemTimeSync({ clock: later, synchronizedFile: file }).isSynchronised()).toBe(true);
  });

  it("turns synchronised when the clock is stepped past the floor", async () => {
    const clock = new VirtualClock(Date.UTC(1970, 0, 1));
    const sync = new SystemTimeSync({ clock, synchronizedFile: file });
    expect(await sync.isSynchronised()).toBe(false);
    clock.advance(TIME_FLOOR_MS - clock.now());
    expect(await sync.isSynchronised()).toBe(true);
  });

  it("defaults to systemd-timesyncd's file", async () => {
    const { TIMESYNCD_SYNCHRONIZED_FILE } = await import("../../agent/auth/time-sync.ts");
    expect(TIMESYNCD_SYNCHRONIZED_FILE).toBe("/run/systemd/timesync/synchronized");
  });
});
