/**
 * An identity provider (or whatever answers in its name) that misbehaves: redirects, empty or
 * malformed token responses, outages during a refresh, answers lost after an approval, endless
 * bodies, long Retry-After, control characters in what reaches a screen. Against the emulator.
 */
import { createServer, type Server } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { MsalModule } from "../../agent/auth/msal.ts";
import type { SignInState } from "../../agent/auth/signin.ts";
import { ERRORS } from "../../agent/core/errors.ts";
import type { Fault } from "../../scripts/emulator/server.ts";
import { rejection, SECOND, StateLog, TENANT, until, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();

function approving(w: World): StateLog {
  return new StateLog().on((state: SignInState) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
}

async function signIn(w: World): Promise<void> {
  await w.service().getToken(w.profile(), { onState: approving(w).onState });
}

function tokenUrl(w: World): string {
  return `${w.harness.host}/${TENANT}/oauth2/v2.0/token`;
}

/** A plain-HTTP server that only counts what reaches it: where a hostile redirect points. */
class Trap {
  readonly requests: string[] = [];
  readonly #server: Server = createServer((req, res) => {
    this.requests.push(`${req.method} ${req.url}`);
    req.resume();
    res.end("thanks");
  });
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("no port");
    this.port = address.port;
    return this;
  }

  stop(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

let trap: Trap | undefined;
afterEach(async () => {
  await trap?.stop();
  trap = undefined;
});

const REDIRECT_SENTENCE =
  "and entratool follows no redirects from the identity provider (so that no secret leaves for another host or scheme): check --authority-host and any proxy.";

describe("redirects from the identity provider", () => {
  it.each([301, 302, 303, 307, 308] as const)(
    "a %i from the token endpoint during a refresh is not followed: the refresh token stays home",
    async (status) => {
      const w = await start();
      await signIn(w);
      trap = await new Trap().start();
      const location = `http://127.0.0.1:${trap.port}/steal`;
      w.emulator.injectFaults("token", [{ type: "redirect", status, location }]);
      const log = new StateLog();
      const error = await rejection(
        w.service().getToken(w.profile(), { forceRefresh: true, onState: log.onState }),
      );
      expect([error.code, error.exitCode]).toEqual(["E_REDIRECT", 8]);
      expect(error.message).toBe(`${tokenUrl(w)} redirected to ${location}, ${REDIRECT_SENTENCE}`);
      expect(trap.requests).toEqual([]);
      // One attempt: a redirect is not retried either.
      expect(w.requestKinds().filter((kind) => kind === "refresh_token")).toHaveLength(1);
      expect(log.last()).toMatchObject({ kind: "error", error: { code: "E_REDIRECT" } });
      // The refresh token was not spent: the next refresh works.
      expect((await w.service().getToken(w.profile(), { forceRefresh: true })).fromCache).toBe(false);
    },
  );

  it("a redirect of a device code poll is not followed: the device_code stays home", async () => {
    const w = await start();
    trap = await new Trap().start();
    const location = `http://127.0.0.1:${trap.port}/poll`;
    w.emulator.injectFaults("token", [{ type: "redirect", status: 307, location }]);
    const error = await rejection(w.service().getToken(w.profile()));
    expect(error.code).toBe("E_REDIRECT");
    expect(error.message).toBe(`${tokenUrl(w)} redirected to ${location}, ${REDIRECT_SENTENCE}`);
    expect(trap.requests).toEqual([]);
  });

  it("a redirect of the OpenID configuration is not followed either, even to https on the same host", async () => {
    const w = await start();
    const location = `${w.harness.host}/elsewhere/v2.0/.well-known/openid-configuration`;
    w.emulator.injectFaults("discovery", [{ type: "redirect", status: 302, location }]);
    const error = await rejection(w.service().getToken(w.profile()));
    expect(error.code).toBe("E_REDIRECT");
    expect(w.emulator.requests().map((entry) => entry.path)).toEqual([
      `/${TENANT}/v2.0/.well-known/openid-configuration`,
    ]);
  });
});

describe("token responses that are no token", () => {
  const unusable: Array<[string, Record<string, unknown>, string]> = [
    ["an empty object", {}, "no access_token"],
    [
      "an empty access token",
      { access_token: "", token_type: "Bearer", expires_in: 3600 },
      "no access_token",
    ],
    ["a PoP token", { access_token: "t", token_type: "pop", expires_in: 3600 }, "token_type is not Bearer"],
    ["no expiry", { access_token: "t", token_type: "Bearer" }, "no positive expires_in"],
    ["a negative expiry", { access_token: "t", expires_in: -5 }, "no positive expires_in"],
    ["a word for an expiry", { access_token: "t", expires_in: "soon" }, "no positive expires_in"],
    [
      "a refresh token that is a number",
      { access_token: "t", expires_in: 3600, refresh_token: 42 },
      "refresh_token is not a string",
    ],
    [
      "an id token that is no JWT",
      { access_token: "t", expires_in: 3600, id_token: "x" },
      "id_token is not a JWT",
    ],
  ];

  it.each(unusable)(
    "a refresh answered 200 with %s: E_IDP, exit 11, a sentence",
    async (_what, body, problem) => {
      const w = await start();
      await signIn(w);
      w.emulator.injectFaults("token", [
        { type: "respond", status: 200, body: body as Fault extends { body: infer B } ? B : never },
      ]);
      const error = await rejection(w.service().getToken(w.profile(), { forceRefresh: true }));
      expect([error.code, error.exitCode]).toEqual(["E_IDP", 11]);
      expect(error.message).toBe(
        `${tokenUrl(w)} answered with an unusable token response (${problem}): try again later, and check --authority-host if it persists.`,
      );
    },
  );

  it("a poll answered 200 {}: E_IDP, not an empty token", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "respond", status: 200, body: {} }]);
    const error = await rejection(w.service().getToken(w.profile(), { onState: approving(w).onState }));
    expect([error.code, error.exitCode]).toEqual(["E_IDP", 11]);
    expect(error.message).toContain("(no access_token)");
  });

  it("takes a numeric string expires_in and a missing token_type (Bearer)", async () => {
    const w = await start();
    await signIn(w);
    w.emulator.injectFaults("token", [
      { type: "respond", status: 200, body: { access_token: "opaque-1", expires_in: "1800" } },
    ]);
    const result = await w.service().getToken(w.profile(), { forceRefresh: true });
    expect(result).toMatchObject({
      accessToken: "opaque-1",
      tokenType: "Bearer",
      expiresAt: w.clock.now() + 1800 * SECOND,
    });
  });

  it("the engine refuses an empty or expired token whatever msal-node makes of an answer", async () => {
    const w = await start();
    await signIn(w);
    const real = await import("../../agent/auth/msal.ts");
    const fake = (accessToken: string, expiresOn: Date): MsalModule => ({
      ...real,
      createPublicClient: (profile, deps) => {
        const client = real.createPublicClient(profile, deps);
        client.acquireTokenSilent = async (request) => ({
          ...(await real.createPublicClient(profile, deps).acquireTokenSilent(request)),
          accessToken,
          expiresOn,
        });
        return client;
      },
    });
    for (const [token, expiresOn] of [
      ["", new Date(w.clock.now() + 3600 * SECOND)],
      ["t", new Date(0)],
    ] as const) {
      const error = await rejection(
        w
          .service({ loadMsal: async () => fake(token, expiresOn) })
          .getToken(w.profile(), { forceRefresh: true }),
      );
      expect([error.code, error.exitCode]).toEqual(["E_IDP", 11]);
      expect(error.message).toBe(
        "The identity provider returned an unusable token (empty, or already expired): try again later, and check --authority-host if it persists.",
      );
    }
  });
});

describe("outages during a refresh", () => {
  it("three 503s: E_NETWORK, exit 3, the unavailable sentence, the offline state", async () => {
    const w = await start();
    await signIn(w);
    w.emulator.injectFaults(
      "token",
      Array.from({ length: 3 }, () => ({ type: "status", status: 503 }) as const),
    );
    const log = new StateLog();
    const error = await rejection(
      w.service().getToken(w.profile(), { forceRefresh: true, onState: log.onState }),
    );
    expect([error.code, error.exitCode]).toEqual(["E_NETWORK", 3]);
    expect(error.message).toBe("Microsoft Entra ID is unavailable (HTTP 503). Try again in a few minutes.");
    expect(log.last()).toMatchObject({ kind: "offline" });
    expect(w.requestKinds().filter((kind) => kind === "refresh_token")).toHaveLength(3);
  });

  it("honours a long Retry-After (capped at 10 minutes) on the injected clock, and says why it waits", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [
      { type: "429", retryAfterSeconds: 120 },
      { type: "429", retryAfterSeconds: 3600 },
    ]);
    const startedAt = w.clock.now();
    await signIn(w);
    const devicecode = w.emulator.requests().filter((entry) => entry.path.endsWith("/devicecode"));
    expect(devicecode.map((entry) => (entry.at - startedAt) / SECOND)).toEqual([0, 120, 720]);
    const waits = w.logLines
      .map((line) => JSON.parse(line))
      .filter((record) => /asked to wait/.test(record.msg))
      .map((record) => [record.level, record.msg]);
    expect(waits).toEqual([
      ["warn", "the identity provider asked to wait 120 s before trying again"],
      ["warn", "the identity provider asked to wait 600 s before trying again"],
    ]);
  });
});

describe("an approval whose answer is lost", () => {
  it("the poll that got the tokens is dropped; the retry says the code is spent: E_CODE_LOST, exit 9", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "lose_answer" }]);
    const error = await rejection(w.service().getToken(w.profile(), { onState: approving(w).onState }));
    expect([error.code, error.exitCode]).toEqual(["E_CODE_LOST", 9]);
    expect(error.message).toBe(ERRORS.E_CODE_LOST.message);
    expect(error.message).toBe(
      "The sign-in was approved, but its answer was lost on the network; a new code is needed.",
    );
    expect(w.polls().map((poll) => [poll.fault, poll.status, poll.error])).toEqual([
      ["lose_answer", 200, undefined],
      [undefined, 400, "invalid_grant"],
    ]);
  });

  it("the poll that got the tokens timed out; the retry says the code is spent: E_CODE_LOST", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "latency", ms: 600 }]);
    const heldAnswered = w.emulatorAnswered((line) => line.includes("[latency]"));
    const log = approving(w).on((state) => {
      if (state.kind === "waiting" && state.poll.type === "retry") w.clock.hold();
    });
    const outcome = rejection(
      w.service({ requestTimeoutMs: 100 }).getToken(w.profile(), { onState: log.onState }),
    );
    await w.clock.whenParked();
    // The server redeems the held poll (its answer goes nowhere) before the client asks again.
    await heldAnswered;
    w.clock.release();
    const error = await outcome;
    expect(error.code).toBe("E_CODE_LOST");
    expect(w.polls().map((poll) => [poll.fault, poll.status])).toEqual([
      ["latency", 200],
      [undefined, 400],
    ]);
  });

  it("a spent code after a lost poll that was followed by a pending answer is just a bad code", async () => {
    const w = await start();
    w.emulator.injectFaults("token", [{ type: "drop" }]);
    let pending = 0;
    const log = new StateLog().on((state) => {
      // After the drop, a poll is answered pending: that lost poll redeemed nothing. Then the
      // server forgets the code.
      if (state.kind === "waiting" && state.poll.type === "pending" && ++pending === 1) w.emulator.reset();
    });
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect([error.code, error.exitCode]).toEqual(["E_BAD_CODE", 6]);
  });
});

describe("answers too large to be a sign-in's", () => {
  it("a refresh answered with an endless 1 GiB body is cut off after 1 MiB, in bounded memory", async () => {
    const w = await start();
    await signIn(w);
    const huge = 1024 ** 3;
    w.emulator.injectFaults("token", [{ type: "huge", bytes: huge }]);
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;
    const startedAt = performance.now();
    const error = await rejection(w.service().getToken(w.profile(), { forceRefresh: true }));
    const elapsedMs = performance.now() - startedAt;
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    expect([error.code, error.exitCode]).toEqual(["E_IDP", 11]);
    expect(error.message).toBe(
      `${tokenUrl(w)} answered with more than 1 MiB, far more than any sign-in answer: check --authority-host and any proxy.`,
    );
    // The emulator writes only as fast as entratool reads: it stopped soon after the cap.
    const entry = () => w.emulator.requests().find((request) => request.fault === "huge");
    await until(() => (entry()?.bytesSent ?? 0) > 0, "the huge body to start");
    expect(entry()?.bytesSent).toBeLessThan(64 * 1024 * 1024);
    expect(rssGrowth).toBeLessThan(200 * 1024 * 1024);
    expect(elapsedMs).toBeLessThan(10_000);
  });

  it("a body whose Content-Length is past the cap is refused before it is read", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [{ type: "huge", bytes: 50 * 1024 * 1024, declareLength: true }]);
    const error = await rejection(w.service().getToken(w.profile()));
    expect(error.code).toBe("E_IDP");
    expect(error.message).toContain("/oauth2/v2.0/devicecode answered with more than 1 MiB");
  });
});

describe("what reaches a screen", () => {
  it("loses its control characters: the user code, the message, the account name", async () => {
    const w = await start({ userCodeFormat: "AAAA\u0007-\u001b[2JAAAA" });
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") {
        // (The emulator's own code has the control characters: approve its newest one.)
        w.emulator.approve({ username: "evil\u001b]0;owned\u0007\u202e@contoso.example" });
      }
    });
    const result = await w.service().getToken(w.profile(), { onState: log.onState });
    const issued = log.codeIssued();
    expect(issued.userCode).toMatch(/^[A-Z]{4}-\[2J[A-Z]{4}$/);
    const controls = [...issued.message].filter((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
    expect(controls).toEqual([]);
    expect(issued.message).toContain(issued.userCode);
    expect(result.account.username).toBe("evil]0;owned@contoso.example");
    expect(log.last()).toMatchObject({ kind: "signed-in", username: "evil]0;owned@contoso.example" });
  });

  it("a verification URI that is not https never reaches a screen", async () => {
    const w = await start();
    w.emulator.injectFaults("devicecode", [
      {
        type: "respond",
        status: 200,
        body: {
          device_code: "d",
          user_code: "ABCD-EFGH",
          verification_uri: "http://phish.example/login",
          expires_in: 900,
        },
      },
    ]);
    const log = new StateLog();
    const error = await rejection(w.service().getToken(w.profile(), { onState: log.onState }));
    expect([error.code, error.exitCode]).toEqual(["E_IDP", 11]);
    expect(error.message).toContain("the verification address an https URL");
    expect(log.kinds()).not.toContain("code-issued");
  });

  it("a verification_uri_complete that is not https is dropped; the QR code carries the plain URI", async () => {
    const w = await start();
    const uri = `${w.harness.host}/devicelogin`;
    w.emulator.injectFaults("devicecode", [
      {
        type: "respond",
        status: 200,
        body: {
          device_code: "d",
          user_code: "ABCD-EFGH",
          verification_uri: uri,
          verification_uri_complete: "javascript:alert(1)",
          message: "Go to\u001b[31m the page\r\nnow",
          expires_in: 900,
        },
      },
    ]);
    const controller = new AbortController();
    const log = new StateLog().on((state) => {
      if (state.kind === "code-issued") controller.abort();
    });
    await rejection(w.service().getToken(w.profile(), { onState: log.onState, signal: controller.signal }));
    const issued = log.codeIssued();
    expect(issued.verificationUriComplete).toBeUndefined();
    expect(issued.qrPayload).toBe(uri);
    expect(issued.message).toBe("Go to[31m the page now");
  });
});

describe("certificate checks switched off", () => {
  it("NODE_TLS_REJECT_UNAUTHORIZED=0 is warned about once, in one sentence", async () => {
    const w = await start();
    const service = w.service({ env: { NODE_TLS_REJECT_UNAUTHORIZED: "0" } });
    await service.getToken(w.profile(), { onState: approving(w).onState });
    await service.getToken(w.profile(), { forceRefresh: true });
    const warnings = w.logLines
      .map((line) => JSON.parse(line))
      .filter((record) => String(record.msg).includes("NODE_TLS_REJECT_UNAUTHORIZED"));
    expect(warnings.map((record) => [record.level, record.msg])).toEqual([
      [
        "warn",
        "NODE_TLS_REJECT_UNAUTHORIZED=0 switches TLS certificate checks off, so anyone on the network path can read and change the sign-in: unset it (for a private CA, use NODE_EXTRA_CA_CERTS).",
      ],
    ]);
    await w
      .service({ env: { NODE_TLS_REJECT_UNAUTHORIZED: "1" } })
      .getToken(w.profile(), { forceRefresh: true });
    expect(w.logLines.filter((line) => line.includes("NODE_TLS_REJECT_UNAUTHORIZED"))).toHaveLength(1);
  });
});
