import type { Clock } from "../core/clock.ts";
import { EntraToolError, isEntraToolError } from "../core/errors.ts";
import type { Logger } from "../core/log.ts";
import { SerialQueue } from "../core/serial.ts";
import { checkAccount } from "../store/expect.ts";
import type { LockManager, Profile, TokenStore } from "../store/types.ts";
import type { SessionState } from "./session-state.ts";
import type { SignInService, TokenRequest, TokenResult } from "./signin.ts";

/** What a caller asks of the session; like the engine's request, without `onState` (subscribe instead). */
export type SessionTokenRequest = Omit<TokenRequest, "onState">;

/** What the sign-in button does: a short press asks for a new code, a long press signs out. */
export type ButtonPress = "new-code" | "sign-out";

export interface SignInSessionOptions {
  readonly profile: Profile;
  /** One attempt of cache → refresh → device code (./signin.ts). */
  readonly engine: Pick<SignInService, "getToken">;
  readonly tokenStore: Pick<TokenStore, "remove">;
  /** The per-profile locks the engine also takes: tokens are removed under them. */
  readonly locks: LockManager;
  readonly clock: Clock;
  readonly logger: Logger;
  /** After a wrong account, how long until the next code unless `newCode()` comes first, ms; default 30 000. */
  readonly wrongAccountDelayMs?: number;
  /** New codes in a row after an approval whose answer was lost, before giving up; default 3. */
  readonly maxLostCodes?: number;
}

/** Why the session itself ended an attempt (as opposed to the caller's signal or a failure). */
type StopReason = "new-code" | "sign-out" | "cancel";

interface Current {
  readonly controller: AbortController;
  /** "attempt": the engine is running; "delay": waiting after a wrong account. */
  readonly phase: "attempt" | "delay";
  reason: StopReason | undefined;
  /** How the stop was asked for, for the sentence that says so ("with the button"). */
  how: string | undefined;
  /** A sign-out asked for during this step: settled once the tokens are removed (or could not be). */
  signOut: { readonly done: Promise<void>; resolve(): void; reject(error: unknown): void } | undefined;
  /** The account the engine signed in that the profile does not accept; its state is held back. */
  rejected: { readonly username: string; readonly tenantId: string; readonly expected: string } | undefined;
}

const DEFAULT_WRONG_ACCOUNT_DELAY_MS = 30_000;
const DEFAULT_MAX_LOST_CODES = 3;

/**
 * One profile's sign-in, shared by everything that needs it: the CLI's get-token, the agent's
 * sinks and socket, the displays and the button. In the style of a login state machine with a
 * notify bus:
 *
 * - `state` is the current state, plain data (session-state.ts), readable at any time;
 *   `subscribe` delivers it at once and then every change, to any number of subscribers.
 * - `getToken` runs the engine (cache → refresh → device code); calls run one after another, so a
 *   profile never shows two codes. The session adds what a person at the device needs on top of
 *   one attempt: `newCode()` (the button's short press) replaces the code on the screens with a
 *   new one in the same call; `signOut()` (a long press) removes the tokens and ends the call with
 *   E_SIGNED_OUT; `cancel()` ends it with E_CANCELLED; an approval whose answer was lost on the
 *   network gets a new code; and a sign-in by an account the profile does not accept (its `expect`)
 *   is undone at once — its tokens removed, the screens saying who signed in and who is expected —
 *   and a new code follows after a button press or `wrongAccountDelayMs`.
 */
export class SignInSession {
  readonly #options: SignInSessionOptions;
  readonly #listeners = new Set<(state: SessionState) => void>();
  readonly #queue = new SerialQueue();
  #state: SessionState;
  #current: Current | undefined;

  constructor(options: SignInSessionOptions) {
    this.#options = options;
    this.#state = { kind: "idle", profile: options.profile.name };
  }

  get profile(): Profile {
    return this.#options.profile;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Calls `listener` with the current state now, then with every change; returns the unsubscribe. */
  subscribe(listener: (state: SessionState) => void): () => void {
    this.#listeners.add(listener);
    this.#deliver(listener, this.#state);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * A token for the request. Waits for any earlier call to finish first (its signal ends the wait);
   * rejects with the same EntraToolErrors as the engine, plus E_SIGNED_OUT and E_WRONG_ACCOUNT
   * (`allowDeviceCode: false` and an account the profile does not accept).
   */
  getToken(request: SessionTokenRequest = {}): Promise<TokenResult> {
    const { signal } = request;
    if (signal?.aborted) return Promise.reject(new EntraToolError("E_CANCELLED"));
    // The caller's time counts from the call, waiting for its turn included.
    const deadline =
      request.timeoutMs === undefined ? undefined : this.#options.clock.now() + request.timeoutMs;
    let started = false;
    const queued = this.#queue.run(() => {
      // Given up while waiting for its turn: nothing runs, nothing is published.
      if (signal?.aborted) return Promise.reject(new EntraToolError("E_CANCELLED"));
      started = true;
      return this.#getToken(request, deadline);
    });
    if (!signal) return queued;
    // Cancelled while an earlier call still runs: give up the place in the queue at once. Once
    // started, the call ends itself (a refresh in flight may still finish and be saved first).
    return new Promise<TokenResult>((resolve, reject) => {
      const onAbort = (): void => {
        if (!started) reject(new EntraToolError("E_CANCELLED"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      queued.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  /**
   * Replaces the code on the screens with a new one (the code in hand is abandoned), or ends the
   * wait after a wrong account at once. false when there is no code and no wait to cut short.
   */
  newCode(how?: string): boolean {
    const current = this.#current;
    if (current === undefined || current.reason !== undefined) return false;
    const showingCode = this.#state.kind === "code-issued" || this.#state.kind === "waiting";
    if (current.phase === "attempt" && !showingCode) return false;
    this.#stop(current, "new-code", how);
    return true;
  }

  /**
   * Removes the profile's tokens (under its lock) and ends a call in progress with E_SIGNED_OUT;
   * resolves once the tokens are gone.
   */
  async signOut(how?: string): Promise<void> {
    const current = this.#current;
    if (current !== undefined) {
      // The call in progress removes the tokens once its step has ended (and released the lock).
      // A sign-out overrides a new code or a cancel asked for in the same step.
      current.signOut ??= deferred();
      this.#stop(current, "sign-out", how);
      return current.signOut.done;
    }
    await this.#queue.run(async () => {
      await this.#removeTokens();
      this.#publish({ kind: "signed-out", profile: this.profile.name });
    });
  }

  /**
   * Ends the call in progress with E_CANCELLED (a sign-out asked for in the same step still
   * happens). Calls still waiting for their turn end with their own signals.
   */
  cancel(): void {
    const current = this.#current;
    if (current !== undefined) this.#stop(current, "cancel");
  }

  /** The button's policy, the same for the CLI and the agent. */
  press(action: ButtonPress): void {
    if (action === "new-code") {
      if (this.newCode("with the button")) {
        this.#options.logger.info({ profile: this.profile.name }, "new code asked for with the button");
      }
      return;
    }
    this.signOut("with the button").catch((error: unknown) => {
      this.#options.logger.error(
        { profile: this.profile.name, err: error },
        `signing out profile '${this.profile.name}' failed`,
      );
    });
  }

  async #getToken(request: SessionTokenRequest, deadline: number | undefined): Promise<TokenResult> {
    const { clock } = this.#options;
    let lostCodes = 0;
    for (;;) {
      const current = this.#begin("attempt", request.signal);
      let outcome: { ok: true; result: TokenResult } | { ok: false; error: unknown };
      try {
        const timeoutMs = deadline === undefined ? undefined : Math.max(1, deadline - clock.now());
        const result = await this.#options.engine.getToken(this.profile, {
          ...request,
          signal: current.controller.signal,
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
          onState: (state) => this.#fromEngine(current, state),
        });
        outcome = { ok: true, result };
      } catch (error) {
        outcome = { ok: false, error };
      } finally {
        this.#end(current, request.signal);
      }
      // What the session asked for wins over what the engine made of the abort; a token that
      // arrived anyway is still handed out, except after a sign-out.
      if (current.reason === "sign-out") throw await this.#signOutNow(current, true);
      if (!outcome.ok) {
        if (current.reason === "new-code") {
          this.#publish({
            kind: "sign-in-required",
            profile: this.profile.name,
            reason: {
              code: "E_NEW_CODE",
              message: `A new code was asked for${current.how ? ` ${current.how}` : ""}.`,
            },
          });
          continue;
        }
        if (current.reason === "cancel") throw new EntraToolError("E_CANCELLED");
        if (isEntraToolError(outcome.error, "E_CODE_LOST")) {
          const again = ++lostCodes < (this.#options.maxLostCodes ?? DEFAULT_MAX_LOST_CODES);
          const reason = { code: outcome.error.code, message: outcome.error.message };
          this.#publish(
            again
              ? { kind: "sign-in-required", profile: this.profile.name, reason }
              : { kind: "error", profile: this.profile.name, error: reason },
          );
          if (again) continue;
        }
        throw outcome.error;
      }
      const rejected = current.rejected;
      if (rejected === undefined) return outcome.result;
      if (request.allowDeviceCode === false) {
        await this.#rejectAccount(rejected);
        throw new EntraToolError("E_WRONG_ACCOUNT", {
          message: `Profile '${this.profile.name}' was signed in as ${rejected.username}, but it expects ${rejected.expected}: the tokens were removed; sign in again with an account it accepts.`,
        });
      }
      await this.#waitBeforeNextCode(request.signal, deadline, () => this.#rejectAccount(rejected));
    }
  }

  /** Publishes the engine's states, except those the session replaces with its own. */
  #fromEngine(current: Current, state: SessionState): void {
    // A code abandoned on purpose: the new code (or signed-out) follows; a "cancelled" in between
    // would only make an e-ink panel refresh twice more.
    if (state.kind === "cancelled" && (current.reason === "new-code" || current.reason === "sign-out"))
      return;
    // Whether a lost approval gets a new code is the session's call (see #getToken).
    if (state.kind === "error" && state.error.code === "E_CODE_LOST") return;
    if (state.kind === "signed-in") {
      const check = checkAccount(this.profile.expect, { username: state.username, tenantId: state.tenantId });
      if (!check.ok) {
        // Held back: the wrong account is never shown as signed in.
        current.rejected = { username: state.username, tenantId: state.tenantId, expected: check.expected };
        return;
      }
    }
    this.#publish(state);
  }

  /** Undoes a sign-in by an account the profile does not accept: its tokens go, the screens say why. */
  async #rejectAccount(rejected: NonNullable<Current["rejected"]>): Promise<void> {
    const { logger, clock } = this.#options;
    await this.#removeTokens();
    // The screens first: a log line written under the terminal's box would only get in its way.
    this.#publish({
      kind: "wrong-account",
      profile: this.profile.name,
      username: rejected.username,
      tenantId: rejected.tenantId,
      expected: rejected.expected,
      nextCodeAt: clock.now() + (this.#options.wrongAccountDelayMs ?? DEFAULT_WRONG_ACCOUNT_DELAY_MS),
    });
    logger.warn(
      { profile: this.profile.name, username: rejected.username, tenantId: rejected.tenantId },
      `Profile '${this.profile.name}' was signed in as ${rejected.username}, but it expects ${rejected.expected}: the tokens were removed and a new code follows`,
    );
  }

  /**
   * After a wrong account: `first` (undoing it, which tells the screens), then the delay, cut short
   * by `newCode()` (from the moment the screens say "wrong account"), ended by `cancel()`,
   * `signOut()` or the deadline.
   */
  async #waitBeforeNextCode(
    signal: AbortSignal | undefined,
    deadline: number | undefined,
    first: () => Promise<void>,
  ): Promise<void> {
    const { clock } = this.#options;
    const delay = this.#options.wrongAccountDelayMs ?? DEFAULT_WRONG_ACCOUNT_DELAY_MS;
    const current = this.#begin("delay", signal);
    try {
      await first().catch((error: unknown) => {
        // A sign-out asked for meanwhile learns why it did not happen.
        current.signOut?.reject(error);
        throw error;
      });
      const left = deadline === undefined ? delay : Math.min(delay, deadline - clock.now());
      await clock.sleep(Math.max(0, left), current.controller.signal).catch(() => {
        // Aborted: the reason says what comes next.
      });
    } finally {
      this.#end(current, signal);
    }
    if (current.reason === "cancel" || (current.reason === undefined && signal?.aborted)) {
      this.#publish({ kind: "cancelled", profile: this.profile.name });
      throw new EntraToolError("E_CANCELLED");
    }
    if (current.reason === "sign-out") throw await this.#signOutNow(current, false);
    if (current.reason === undefined && deadline !== undefined && clock.now() >= deadline) {
      this.#publish({ kind: "expired", profile: this.profile.name });
      throw new EntraToolError("E_TIMEOUT");
    }
  }

  #begin(phase: Current["phase"], signal: AbortSignal | undefined): Current {
    const current: Current = {
      controller: new AbortController(),
      phase,
      reason: undefined,
      how: undefined,
      rejected: undefined,
      signOut: undefined,
    };
    this.#current = current;
    if (signal?.aborted) current.controller.abort(new EntraToolError("E_CANCELLED"));
    signal?.addEventListener("abort", this.#forward, { once: true });
    return current;
  }

  #end(current: Current, signal: AbortSignal | undefined): void {
    signal?.removeEventListener("abort", this.#forward);
    if (this.#current === current) this.#current = undefined;
  }

  /** The caller's signal ends the step in progress as a cancel (the engine says E_CANCELLED). */
  readonly #forward = (): void => {
    this.#current?.controller.abort(new EntraToolError("E_CANCELLED"));
  };

  #stop(current: Current, reason: StopReason, how?: string): void {
    // Nothing overrides a sign-out: the person asked for the tokens to go.
    if (current.reason === "sign-out" && reason !== "sign-out") return;
    current.reason = reason;
    current.how = how;
    current.controller.abort(new EntraToolError("E_CANCELLED"));
  }

  async #removeTokens(): Promise<void> {
    const { locks, tokenStore } = this.#options;
    const lock = await locks.acquire(this.profile.name);
    try {
      await tokenStore.remove(this.profile.name);
    } finally {
      await lock.release();
    }
  }

  /**
   * A sign-out asked for during `current`: removes the tokens (unless a wrong account's were just
   * removed), says so, settles `signOut()`, and returns the error that ends the call.
   */
  async #signOutNow(current: Current, remove: boolean): Promise<EntraToolError> {
    try {
      if (remove) await this.#removeTokens();
    } catch (error) {
      current.signOut?.reject(error);
      throw error;
    }
    this.#publish({ kind: "signed-out", profile: this.profile.name });
    current.signOut?.resolve();
    const how = current.how ? ` ${current.how}` : "";
    return new EntraToolError("E_SIGNED_OUT", {
      message: `Signed out${how}: the saved sign-in of profile '${this.profile.name}' was removed. Run the command again to sign in.`,
    });
  }

  #publish(state: SessionState): void {
    this.#state = state;
    this.#options.logger.debug({ profile: state.profile, state: state.kind }, "sign-in state");
    for (const listener of [...this.#listeners]) this.#deliver(listener, state);
  }

  #deliver(listener: (state: SessionState) => void, state: SessionState): void {
    try {
      listener(state);
    } catch (error) {
      // A broken screen must never break the sign-in.
      this.#options.logger.warn({ err: error, state: state.kind }, "state listener failed");
    }
  }
}

/** A promise with its settle functions, for a result that another step delivers. */
function deferred(): { readonly done: Promise<void>; resolve(): void; reject(error: unknown): void } {
  let resolve: () => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const done = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { done, resolve, reject };
}
