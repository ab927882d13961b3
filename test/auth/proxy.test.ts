import { describe, expect, test } from "vitest";
import { noProxyMatches, proxyFor } from "../../agent/auth/proxy.ts";

const url = (u: string) => new URL(u);

describe("proxyFor", () => {
  test("uses HTTPS_PROXY for https, in either case", () => {
    expect(proxyFor(url("https://login.microsoftonline.com/x"), { HTTPS_PROXY: "http://p:3128" })).toBe(
      "http://p:3128",
    );
    expect(proxyFor(url("https://login.microsoftonline.com/x"), { https_proxy: "http://q:3128" })).toBe(
      "http://q:3128",
    );
    expect(
      proxyFor(url("https://login.microsoftonline.com/x"), { HTTP_PROXY: "http://p:3128" }),
    ).toBeUndefined();
  });

  test("falls back to ALL_PROXY and is absent without any", () => {
    expect(proxyFor(url("https://a.example/"), { ALL_PROXY: "http://all:1" })).toBe("http://all:1");
    expect(proxyFor(url("https://a.example/"), {})).toBeUndefined();
  });

  test("NO_PROXY bypasses the proxy", () => {
    const env = { HTTPS_PROXY: "http://p:3128", NO_PROXY: "localhost,.internal.example, 127.0.0.1" };
    expect(proxyFor(url("https://127.0.0.1:8443/t"), env)).toBeUndefined();
    expect(proxyFor(url("https://idp.internal.example/t"), env)).toBeUndefined();
    expect(proxyFor(url("https://login.microsoftonline.com/t"), env)).toBe("http://p:3128");
  });
});

describe("noProxyMatches (curl semantics)", () => {
  test.each([
    ["https://example.com/", "example.com", true],
    ["https://sub.example.com/", "example.com", true],
    ["https://sub.example.com/", ".example.com", true],
    ["https://sub.example.com/", "*.example.com", true],
    ["https://notexample.com/", "example.com", false],
    ["https://example.com:8443/", "example.com:8443", true],
    ["https://example.com/", "example.com:8443", false],
    ["https://[::1]:9000/", "[::1]", true],
    ["https://[::1]:9000/", "::1", true],
    ["https://anything.example/", "*", true],
    ["https://anything.example/", " , ", false],
  ])("%s against %j → %s", (target, list, expected) => {
    expect(noProxyMatches(url(target), list)).toBe(expected);
  });
});
