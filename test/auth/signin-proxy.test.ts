import { afterEach, describe, expect, it } from "vitest";
import type { Env } from "../../agent/core/paths.ts";
import { ConnectProxy } from "../support/proxy.ts";
import { rejection, StateLog, type World, worldPerTest } from "./world.ts";

const start = worldPerTest();
let proxy: ConnectProxy | undefined;

afterEach(async () => {
  await proxy?.stop();
  proxy = undefined;
});

async function signInWith(env: (proxyUrl: string) => Env): Promise<{ w: World; proxy: ConnectProxy }> {
  const w = await start();
  const p = new ConnectProxy();
  proxy = p;
  const url = await p.start();
  const log = new StateLog().on((state) => {
    if (state.kind === "code-issued") w.emulator.approve({ userCode: state.userCode });
  });
  const result = await w.service({ env: env(url) }).getToken(w.profile(), { onState: log.onState });
  expect(result.fromCache).toBe(false);
  return { w, proxy: p };
}

describe("proxies", () => {
  it("tunnels every request through HTTPS_PROXY", async () => {
    const { w, proxy } = await signInWith((url) => ({ HTTPS_PROXY: url }));
    const hostPort = w.harness.host.replace("https://", "");
    expect(proxy.targets.length).toBeGreaterThan(0);
    expect(new Set(proxy.targets)).toEqual(new Set([hostPort]));
    // The OpenID configuration, the device code and the poll.
    expect(w.fetchCalls.map((call) => call.proxy)).toEqual(
      Array.from({ length: 3 }, () => `http://127.0.0.1:${proxy.port}`),
    );
  });

  it("goes direct for hosts in NO_PROXY", async () => {
    const { w, proxy } = await signInWith((url) => ({ https_proxy: url, NO_PROXY: "localhost,127.0.0.1" }));
    expect(proxy.targets).toEqual([]);
    expect(w.fetchCalls.map((call) => call.proxy)).toEqual([undefined, undefined, undefined]);
    expect(w.requestKinds()).toEqual(["discovery", "devicecode", "device_code"]);
  });

  it("reports a proxy that cannot be reached as E_NETWORK", async () => {
    const w = await start();
    const closed = new ConnectProxy();
    const url = await closed.start();
    await closed.stop();
    const log = new StateLog();
    const error = await rejection(
      w.service({ env: { HTTPS_PROXY: url } }).getToken(w.profile(), { onState: log.onState }),
    );
    expect(error.code).toBe("E_NETWORK");
    expect(log.last()).toMatchObject({ kind: "offline" });
    expect(w.emulator.requests()).toEqual([]);
  });
});
