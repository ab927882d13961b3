import { describe, expect, it } from "vitest";
import { checkAccount, validateExpect } from "../../agent/store/expect.ts";
import { validateProfile } from "../../agent/store/profiles.ts";
import type { Profile, ProfileExpect } from "../../agent/store/types.ts";

const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

describe("checkAccount", () => {
  const rule: ProfileExpect = { tenantId: TENANT, users: ["ada@contoso.com", "@fabrikam.com"] };
  const expected = `ada@contoso.com or anyone @fabrikam.com in tenant ${TENANT}`;

  it("accepts anyone when the profile has no rule", () => {
    expect(checkAccount(undefined, { username: "anyone@anywhere.example", tenantId: OTHER_TENANT })).toEqual({
      ok: true,
    });
    expect(checkAccount(undefined, { username: "", tenantId: "" })).toEqual({ ok: true });
  });

  it("accepts a listed user and anyone of a listed domain, in any case, in the tenant", () => {
    for (const username of ["ada@contoso.com", "Ada@Contoso.COM", " ada@contoso.com ", "bob@FABRIKAM.com"]) {
      expect(checkAccount(rule, { username, tenantId: TENANT })).toEqual({ ok: true });
    }
    expect(checkAccount(rule, { username: "ada@contoso.com", tenantId: TENANT.toUpperCase() })).toEqual({
      ok: true,
    });
  });

  it("refuses other users, subdomains and look-alikes, saying who is expected", () => {
    for (const username of [
      "bob@contoso.com",
      "ada@contoso.com.evil.example",
      "xada@contoso.com",
      "bob@sales.fabrikam.com",
      "bob@notfabrikam.com",
      "@fabrikam.com",
    ]) {
      expect(checkAccount(rule, { username, tenantId: TENANT }), username).toEqual({ ok: false, expected });
    }
  });

  it("refuses an empty username when users are listed, and accepts it when only the tenant is", () => {
    expect(checkAccount(rule, { username: "", tenantId: TENANT })).toEqual({ ok: false, expected });
    expect(checkAccount({ tenantId: TENANT }, { username: "", tenantId: TENANT })).toEqual({ ok: true });
  });

  it("refuses an allowed user signed in to another tenant", () => {
    expect(checkAccount(rule, { username: "ada@contoso.com", tenantId: OTHER_TENANT })).toEqual({
      ok: false,
      expected,
    });
    expect(
      checkAccount({ tenantId: TENANT }, { username: "ada@contoso.com", tenantId: OTHER_TENANT }),
    ).toEqual({
      ok: false,
      expected: `an account in tenant ${TENANT}`,
    });
  });

  it("with users only, any tenant will do; the rule reads as a list", () => {
    const users: ProfileExpect = { users: ["ada@contoso.com", "bob@contoso.com", "@fabrikam.com"] };
    expect(checkAccount(users, { username: "bob@contoso.com", tenantId: OTHER_TENANT })).toEqual({
      ok: true,
    });
    expect(checkAccount(users, { username: "eve@contoso.com", tenantId: TENANT })).toEqual({
      ok: false,
      expected: "ada@contoso.com, bob@contoso.com or anyone @fabrikam.com",
    });
    expect(
      checkAccount({ users: ["@contoso.com"] }, { username: "eve@x.example", tenantId: TENANT }),
    ).toEqual({
      ok: false,
      expected: "anyone @contoso.com",
    });
  });
});

describe("validateExpect", () => {
  it("accepts a tenant, users, or both, and keeps them as written", () => {
    expect(validateExpect({ tenantId: TENANT.toUpperCase() })).toEqual({
      ok: true,
      expect: { tenantId: TENANT.toUpperCase() },
    });
    expect(
      validateExpect({
        users: ["Ada@Contoso.com", "@contoso.com", "guest_gmail.com#EXT#@contoso.onmicrosoft.com"],
      }),
    ).toEqual({
      ok: true,
      expect: { users: ["Ada@Contoso.com", "@contoso.com", "guest_gmail.com#EXT#@contoso.onmicrosoft.com"] },
    });
  });

  it("reports every problem at once, each with its path", () => {
    const result = validateExpect({
      tenantId: "contoso.onmicrosoft.com",
      users: ["ada", "ada@", "a da@contoso.com", "@contoso", 7, "ok@contoso.com"],
      user: "typo",
    });
    expect(result).toEqual({
      ok: false,
      errors: [
        `expect.tenantId: must be the tenant's id, a GUID (found "contoso.onmicrosoft.com")`,
        ...['"ada"', '"ada@"', '"a da@contoso.com"', '"@contoso"', "7"].map(
          (found, index) =>
            `expect.users[${index}]: must be a username such as ada@contoso.com, or @contoso.com for anyone of that domain (found ${found})`,
        ),
        "expect.user: unknown field",
      ],
    });
  });

  it.each([
    [null, "expect: must be an object with tenantId, users or both (found null)"],
    [
      ["ada@contoso.com"],
      'expect: must be an object with tenantId, users or both (found ["ada@contoso.com"])',
    ],
    [{}, "expect: must give tenantId, users or both"],
    [{ users: [] }, expect.stringMatching(/^expect\.users: must be a list of at least one entry/)],
    [{ users: "ada@contoso.com" }, expect.stringMatching(/^expect\.users: must be a list/)],
  ])("refuses %j", (input, error) => {
    expect(validateExpect(input)).toEqual({ ok: false, errors: [error] });
  });
});

describe("validateProfile with expect", () => {
  const valid: Profile = {
    name: "kiosk",
    tenantId: TENANT,
    clientId: "11111111-2222-3333-4444-555555555555",
    scopes: [],
    authorityHost: "https://login.microsoftonline.com",
    defaultFlow: "device-code",
  };

  it("keeps a valid rule and leaves the field out when there is none", () => {
    const rule = { tenantId: TENANT, users: ["@contoso.com"] };
    expect(validateProfile({ ...valid, expect: rule })).toEqual({
      ok: true,
      profile: { ...valid, expect: rule },
    });
    const plain = validateProfile(valid);
    expect(plain.ok && "expect" in plain.profile).toBe(false);
  });

  it("reports the rule's problems together with the profile's", () => {
    const result = validateProfile({ ...valid, clientId: "x", expect: { tenantId: "x", users: ["y"] } });
    expect(result.ok ? [] : result.errors.map((error) => error.split(":")[0])).toEqual([
      "clientId",
      "expect.tenantId",
      "expect.users[0]",
    ]);
  });
});
