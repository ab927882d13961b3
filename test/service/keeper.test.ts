import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { SignInSession } from "../../agent/auth/session.ts";
import type { SessionState } from "../../agent/auth/session-state.ts";
import { Keeper, refreshAheadMs, refreshJitterMs } from "../../agent/service/keeper.ts";
import { AgentTokens } from "../../agent/service/tokens.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { until, type World, worldPerTest } from "../auth/world.ts";

const start = worldPerTest();
const HOUR = 3_600_000;
const MINUTE = 60_000;

interface Kept {
  readonly keeper: Keeper;
  readonly tokens: AgentTokens;
  readonly states: SessionState[];
  /** Sets the wall clock by `ms` (a clock set by hand or by NTP; a resume from suspend is a jump forward). */
  jump(ms: number): void;
}

/**
 * A keeper on the world's engine and emulator, on virtual time: polls and back-offs move time by
 * themselves; the keeper's minute-long checks wait for the test to `advance`.
 */
function keep(
  w: World,
  options: { random?: number; approve?: boolean; unusedCodesPauseMs?: number } = {},
): Kept {
  w.clock.passiveSleepsFromMs = MINUTE;
  let offset = 0;
  const profile = w.profile();
  const engine = w.service();
  const locks = new FlockLockManager({
    locksDir: join(w.stateDir, "locks"),
    clock: w.clock,
    logger: w.logger,
  });
  const session = new SignInSession({
    profile,
    engine,
    tokenStore: w.tokenStore(),
    locks,
    clock: w.clock,
    logger: w.logger,
  });
  let keeper: Keeper | undefined;
  const tokens = new AgentTokens({
    profile,
    engine,
    clock: w.clock,
    logger: w.logger,
    signedIn: () => keeper?.signedIn() ?? false,
    onSignInLost: (error) => keeper?.signInLost(error),
  });
  keeper = new Keeper({
    session,
    tokens,
    clock: w.clock,
    logger: w.logger,
    monotonic: () => w.clock.now() - offset,
    random: () => options.random ?? 0.5,
    ...(options.unusedCodesPauseMs === undefined ? {} : { unusedCodesPauseMs: options.unusedCodesPauseMs }),
  });
  const states: SessionState[] = [];
  keeper.subscribe((state) => {
    states.push(state);
    if (state.kind === "code-issued" && options.approve !== false)
      w.emulator.approve({ userCode: state.userCode });
  });
  return {
    keeper,
    tokens,
    states,
    jump: (ms) => {
      // Virtual time only moves forward, and sleeps run on it. The skew is what matters: forward,
      // wall time moves and the monotonic clock does not; back, the monotonic clock moves ahead
      // of wall time by as much (what the keeper sees either way is their difference).
      offset += ms;
      if (ms > 0) w.clock.advance(ms);
    },
  };
}

const requests = (w: World, kind: string): number[] =>
  w.emulator
    .requests()
    .filter((entry) => (entry.grantType ?? entry.path).includes(kind))
    .map((entry) => entry.at);

/** Advances virtual time a minute at a time (the keeper's check) until `condition`, or `limitMs`. */
async function advanceUntil(w: World, condition: () => boolean, limitMs: number): Promise<void> {
  const end = w.clock.now() + limitMs;
  while (!condition() && w.clock.now() < end) {
    // Let the keeper park in its next check (I/O with the emulator is real) before moving on.
    await until(() => w.clock.waitingSleeps > 0 || condition(), "the keeper to wait", 10_000);
    if (condition()) break;
    w.clock.advance(MINUTE);
  }
}

describe("Keeper", () => {
  it("signs in once, then refreshes ahead of expiry, with jitter", async () => {
    const w = await start();
    const { keeper, states } = keep(w, { random: 0.5 });
    keeper.start();
    await until(() => keeper.signedIn(), "signed in", 20_000);
    const signedIn = states.find((state) => state.kind === "signed-in");
    if (signedIn?.kind !== "signed-in") throw new Error("no signed-in state");
    const lifetime = signedIn.expiresAt - w.clock.now();
    const due = signedIn.expiresAt - refreshAheadMs(lifetime) - refreshJitterMs(lifetime, 0.5);
    await advanceUntil(w, () => requests(w, "refresh_token").length > 0, 2 * HOUR);
    const [refreshAt] = requests(w, "refresh_token");
    // An hour's token: refreshed 10 min + 0.5 × 5 min before it expires, to the second.
    expect(refreshAt).toBeGreaterThanOrEqual(due - 1000);
    expect(refreshAt).toBeLessThanOrEqual(due + 1000);
    expect(requests(w, "devicecode")).toHaveLength(1);
    await keeper.stop();
  });

  it("spreads the refresh of a fleet: another board's jitter refreshes minutes apart", () => {
    const lifetime = HOUR;
    const early = refreshAheadMs(lifetime) + refreshJitterMs(lifetime, 0.9);
    const late = refreshAheadMs(lifetime) + refreshJitterMs(lifetime, 0.1);
    expect(early - late).toBe(4 * MINUTE);
    // Short test tokens get proportionate margins: a 20 s token is refreshed 5-7 s ahead.
    expect(refreshAheadMs(20_000) + refreshJitterMs(20_000, 1)).toBe(7_000);
  });

  it("retries an identity provider that is down during a refresh while the old token lasts, without a new code", async () => {
    const w = await start();
    const { keeper } = keep(w);
    keeper.start();
    await until(() => keeper.signedIn(), "signed in", 20_000);
    w.emulator.injectFaults(
      "token",
      Array.from({ length: 4 }, () => ({ type: "status" as const, status: 503 })),
    );
    await advanceUntil(w, () => requests(w, "refresh_token").length >= 5, 2 * HOUR);
    await until(() => requests(w, "refresh_token").length >= 5, "the refresh after the outage", 20_000);
    await advanceUntil(
      w,
      () => keeper.signedIn() && w.emulator.requests().at(-1)?.status === 200,
      10 * MINUTE,
    );
    // Four 503s, then the refresh that worked; the board stayed signed in and showed no code.
    expect(keeper.signedIn()).toBe(true);
    expect(requests(w, "devicecode")).toHaveLength(1);
    await keeper.stop();
  });

  it("honours the provider's Retry-After between its own tries", async () => {
    const w = await start();
    const { keeper } = keep(w);
    keeper.start();
    await until(() => keeper.signedIn(), "signed in", 20_000);
    w.emulator.injectFaults(
      "token",
      Array.from({ length: 3 }, () => ({ type: "429" as const, retryAfterSeconds: 240 })),
    );
    await advanceUntil(w, () => requests(w, "refresh_token").length >= 4, 3 * HOUR);
    const refreshes = requests(w, "refresh_token");
    // The network client waits 240 s between its tries; after its third, the keeper waits 240 s
    // too, not its own 5 s back-off.
    expect((refreshes[3] as number) - (refreshes[2] as number)).toBeGreaterThanOrEqual(240_000);
    await keeper.stop();
  });

  it("a long press while signed in signs the board out at once: tokens dropped, a new code", async () => {
    const w = await start();
    const { keeper, tokens, states } = keep(w, { approve: false });
    keeper.start();
    await until(() => states.some((state) => state.kind === "code-issued"), "a code", 20_000);
    const first = states.find((state) => state.kind === "code-issued");
    if (first?.kind === "code-issued") w.emulator.approve({ userCode: first.userCode });
    await until(() => keeper.signedIn(), "signed in", 20_000);
    await until(() => w.clock.waitingSleeps > 0, "the keeper to wait for the refresh", 10_000);
    keeper.press("sign-out");
    await until(
      () => states.filter((state) => state.kind === "code-issued").length === 2,
      "a new code",
      20_000,
    );
    expect(keeper.signedIn()).toBe(false);
    await expect(tokens.get({ scopes: ["api://x/.default"] })).rejects.toMatchObject({
      code: "E_SIGN_IN_REQUIRED",
    });
    await keeper.stop();
  });

  it("shows a new code when the refresh token is revoked", async () => {
    const w = await start();
    const { keeper, states } = keep(w, { approve: false });
    keeper.start();
    await until(() => states.some((state) => state.kind === "code-issued"), "a code", 20_000);
    const first = states.find((state) => state.kind === "code-issued");
    if (first?.kind === "code-issued") w.emulator.approve({ userCode: first.userCode });
    await until(() => keeper.signedIn(), "signed in", 20_000);
    w.emulator.revokeRefreshTokens();
    await advanceUntil(w, () => states.filter((state) => state.kind === "code-issued").length >= 2, 2 * HOUR);
    expect(states.filter((state) => state.kind === "code-issued")).toHaveLength(2);
    // The access token in hand still serves the sinks until it expires; then nothing does.
    expect(keeper.state.kind).toMatch(/code-issued|waiting/);
    w.clock.advance(HOUR);
    expect(keeper.signedIn()).toBe(false);
    await keeper.stop();
  });

  it("backs off for hours when a policy blocks the sign-in, and never loops", async () => {
    const w = await start();
    const { keeper, states } = keep(w, { approve: false });
    states.length = 0;
    keeper.subscribe((state) => {
      if (state.kind === "code-issued")
        w.emulator.approve({ userCode: state.userCode, outcome: "policy_blocked" });
    });
    keeper.start();
    await until(() => states.some((state) => state.kind === "blocked-by-policy"), "blocked", 20_000);
    const blockedAt = w.clock.now();
    await advanceUntil(w, () => requests(w, "devicecode").length >= 2, 6 * HOUR);
    const codes = requests(w, "devicecode");
    expect(codes).toHaveLength(2);
    // The second try comes after at least half of the first hour-long step.
    expect((codes[1] as number) - blockedAt).toBeGreaterThanOrEqual(30 * MINUTE);
    await keeper.stop();
  });

  it("after three codes nobody used, waits for the button (or the pause) before the next", async () => {
    const w = await start({ expiresIn: 120 });
    const { keeper, states } = keep(w, { approve: false, unusedCodesPauseMs: 5 * HOUR });
    keeper.start();
    await advanceUntil(
      w,
      () =>
        states.some(
          (state) => state.kind === "sign-in-required" && state.reason.message.includes("last 3 codes"),
        ),
      HOUR,
    );
    expect(requests(w, "devicecode")).toHaveLength(3);
    // An hour on: still no fourth code.
    await advanceUntil(w, () => false, HOUR);
    expect(requests(w, "devicecode")).toHaveLength(3);
    keeper.press("new-code");
    await until(() => requests(w, "devicecode").length === 4, "a fourth code after the press", 20_000);
    await keeper.stop();
  });

  it("a clock set back a day refreshes at once instead of a day late; one request, no burst", async () => {
    const w = await start();
    const kept = keep(w);
    kept.keeper.start();
    await until(() => kept.keeper.signedIn(), "signed in", 20_000);
    await until(() => w.clock.waitingSleeps > 0, "the keeper to wait", 10_000);
    // Wall time back a day: the token now "expires" in 25 h by the wall clock.
    kept.jump(-24 * HOUR);
    await advanceUntil(w, () => requests(w, "refresh_token").length > 0, 2 * HOUR);
    const refreshes = requests(w, "refresh_token");
    expect(refreshes).toHaveLength(1);
    await kept.keeper.stop();
  });

  it("a clock set forward 100 days (or a resume) signs in again: the refresh token has expired", async () => {
    const w = await start();
    const kept = keep(w);
    kept.keeper.start();
    await until(() => kept.keeper.signedIn(), "signed in", 20_000);
    await until(() => w.clock.waitingSleeps > 0, "the keeper to wait", 10_000);
    kept.jump(100 * 24 * HOUR);
    await advanceUntil(w, () => requests(w, "devicecode").length >= 2, 10 * MINUTE);
    expect(requests(w, "refresh_token")).toHaveLength(1);
    expect(requests(w, "devicecode")).toHaveLength(2);
    await until(() => kept.keeper.signedIn(), "signed in again", 20_000);
    await kept.keeper.stop();
  });
});
