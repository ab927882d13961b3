import { chmod, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isEntraToolError } from "../../agent/core/errors.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import { GUID } from "../../agent/store/names.ts";
import { JsonProfileStore, validateProfile } from "../../agent/store/profiles.ts";
import type { Profile } from "../../agent/store/types.ts";
import { captureLogger, makeTempDir } from "./helpers.ts";

const valid: Profile = {
  name: "work",
  tenantId: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  clientId: "11111111-2222-3333-4444-555555555555",
  scopes: ["User.Read", "api://telemetry/ingest"],
  authorityHost: "https://login.microsoftonline.com",
  defaultFlow: "device-code",
};

function errorsOf(input: unknown): readonly string[] {
  const result = validateProfile(input);
  if (result.ok) throw new Error("expected validation to fail");
  return result.errors;
}

describe("GUID", () => {
  it("matches a GUID in either case, every time (no lastIndex state), and nothing else", () => {
    for (let round = 0; round < 2; round++) {
      expect(GUID.test("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")).toBe(true);
      expect(GUID.test("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE")).toBe(true);
    }
    for (const text of [
      "{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}",
      "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee ",
      "aaaaaaaabbbbccccddddeeeeeeeeeeee",
      "gaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
      "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee",
    ]) {
      expect(GUID.test(text)).toBe(false);
    }
  });

  it("is what validateProfile checks client ids with", () => {
    expect(validateProfile({ ...valid, clientId: valid.clientId.toUpperCase() }).ok).toBe(true);
    expect(errorsOf({ ...valid, clientId: `{${valid.clientId}}` })).toEqual([
      expect.stringMatching(/^clientId: /),
    ]);
  });
});

describe("validateProfile", () => {
  it("accepts a valid profile and strips a trailing slash from the authority host", () => {
    const result = validateProfile({ ...valid, authorityHost: "https://login.microsoftonline.us/" });
    expect(result).toEqual({
      ok: true,
      profile: { ...valid, authorityHost: "https://login.microsoftonline.us" },
    });
  });

  it.each(["organizations", "common", "consumers", "contoso.onmicrosoft.com", "fabrikam.com"])(
    "accepts the tenant %s",
    (tenantId) => {
      expect(validateProfile({ ...valid, tenantId }).ok).toBe(true);
    },
  );

  it("accepts an empty scope list and a sovereign cloud host with a port", () => {
    expect(validateProfile({ ...valid, scopes: [], authorityHost: "https://127.0.0.1:8443" })).toMatchObject({
      ok: true,
      profile: { scopes: [], authorityHost: "https://127.0.0.1:8443" },
    });
  });

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["name with a slash", { name: "../etc" }, /^name: /],
    ["name too long", { name: "a".repeat(65) }, /^name: /],
    ["empty name", { name: "" }, /^name: /],
    ["name not a string", { name: 7 }, /^name: /],
    ["tenant not a GUID or domain", { tenantId: "not a tenant" }, /^tenantId: /],
    ["tenant with a path", { tenantId: "contoso.com/x" }, /^tenantId: /],
    ["client id not a GUID", { clientId: "my-app" }, /^clientId: /],
    ["scopes not a list", { scopes: "User.Read" }, /^scopes: /],
    ["scope with a space", { scopes: ["User.Read Mail.Read"] }, /^scopes\[0\]: /],
    ["empty scope", { scopes: ["User.Read", ""] }, /^scopes\[1\]: /],
    ["http authority", { authorityHost: "http://login.microsoftonline.com" }, /^authorityHost: /],
    [
      "authority with a path",
      { authorityHost: "https://login.microsoftonline.com/common" },
      /^authorityHost: /,
    ],
    [
      "authority with a query",
      { authorityHost: "https://login.microsoftonline.com?x=1" },
      /^authorityHost: /,
    ],
    ["authority not a URL", { authorityHost: "login.microsoftonline.com" }, /^authorityHost: /],
    ["another flow", { defaultFlow: "browser" }, /^defaultFlow: /],
    ["unknown field", { clientID: "x" }, /^clientID: unknown field/],
  ];
  it.each(cases)("reports %s, naming the field", (_label, change, pattern) => {
    const errors = errorsOf({ ...valid, ...change });
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(pattern);
  });

  it("reports every problem at once", () => {
    const errors = errorsOf({
      name: "a b",
      tenantId: "",
      clientId: "x",
      scopes: [1],
      authorityHost: "ftp://h",
    });
    expect(errors.map((error) => error.split(/[:[]/)[0])).toEqual([
      "name",
      "tenantId",
      "clientId",
      "scopes",
      "authorityHost",
      "defaultFlow",
    ]);
  });

  it("rejects what is not an object", () => {
    expect(errorsOf(null)).toHaveLength(1);
    expect(errorsOf([valid])).toHaveLength(1);
  });
});

describe("JsonProfileStore", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let file: string;
  beforeEach(async () => {
    ({ dir, cleanup } = await makeTempDir());
    file = join(dir, "config", "profiles.json");
  });
  afterEach(() => cleanup());

  /** A store as another process would have it: its own instance and its own lock manager. */
  const store = () => {
    const logger = captureLogger().logger;
    const locks = new FlockLockManager({ locksDir: join(dir, "locks"), clock: new VirtualClock(), logger });
    return new JsonProfileStore({ file, logger, locks });
  };

  it("has no profiles without a file", async () => {
    expect(await store().list()).toEqual([]);
    expect(await store().get("work")).toBeUndefined();
    expect(await store().delete("work")).toBe(false);
  });

  it("creates, lists, gets and deletes; the file is 0600 JSON in a 0700 directory", async () => {
    await store().create(valid);
    await store().create({ ...valid, name: "lab", scopes: [] });
    expect((await store().list()).map((profile) => profile.name)).toEqual(["work", "lab"]);
    expect(await store().get("lab")).toEqual({ ...valid, name: "lab", scopes: [] });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(file))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({
      version: 1,
      profiles: [{ name: "work" }, { name: "lab" }],
    });

    expect(await store().delete("work")).toBe(true);
    expect(await store().delete("work")).toBe(false);
    expect((await store().list()).map((profile) => profile.name)).toEqual(["lab"]);
  });

  it("keeps an account binding (expect), and reports a bad one in the file with its path", async () => {
    const expectRule = { tenantId: valid.tenantId, users: ["ada@contoso.com", "@contoso.com"] };
    await store().create({ ...valid, expect: expectRule });
    expect(await store().get("work")).toEqual({ ...valid, expect: expectRule });
    expect(JSON.parse(await readFile(file, "utf8")).profiles[0].expect).toEqual(expectRule);

    await writeFile(
      file,
      JSON.stringify({ version: 1, profiles: [{ ...valid, expect: { users: ["ada"] } }] }),
    );
    await expect(store().list()).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringContaining("profiles[0].expect.users[0]: must be a username"),
    });
  });

  it("normalises the authority host on create", async () => {
    await store().create({ ...valid, authorityHost: "https://login.microsoftonline.com/" });
    expect((await store().get("work"))?.authorityHost).toBe("https://login.microsoftonline.com");
  });

  it("refuses a duplicate name with E_PROFILE_EXISTS and keeps the original", async () => {
    await store().create(valid);
    await expect(store().create({ ...valid, scopes: [] })).rejects.toMatchObject({
      code: "E_PROFILE_EXISTS",
    });
    expect((await store().get("work"))?.scopes).toEqual(valid.scopes);
  });

  it("serialises concurrent creates of one instance", async () => {
    const profiles = store();
    const names = ["p1", "p2", "p3", "p4", "p5"];
    await Promise.all(names.map((name) => profiles.create({ ...valid, name })));
    expect((await profiles.list()).map((profile) => profile.name).sort()).toEqual(names);
  });

  it("keeps every profile when several stores (as separate processes would) create at once", async () => {
    const names = Array.from({ length: 10 }, (_, index) => `p${index}`);
    await Promise.all(names.map((name) => store().create({ ...valid, name })));
    expect((await store().list()).map((profile) => profile.name).sort()).toEqual(names.sort());
    await Promise.all(names.slice(0, 5).map((name) => store().delete(name)));
    expect((await store().list()).map((profile) => profile.name).sort()).toEqual(names.slice(5));
  });

  it("lets exactly one of several stores creating the same name at once succeed", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, index) => store().create({ ...valid, scopes: [`s${index}`] })),
    );
    expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(1);
    const failures = results.flatMap((result) => (result.status === "rejected" ? [result.reason] : []));
    expect(failures).toHaveLength(5);
    for (const failure of failures) expect(failure).toMatchObject({ code: "E_PROFILE_EXISTS" });
    expect(await store().list()).toHaveLength(1);
  });

  it("deleting a profile that is not there creates nothing", async () => {
    expect(await store().delete("work")).toBe(false);
    await expect(stat(dirname(file))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it.each([
    { what: "a file over 1 MiB", make: (path: string) => writeFile(path, " ".repeat(1024 * 1024 + 1)) },
    { what: "a link to /dev/zero", make: (path: string) => symlink("/dev/zero", path) },
  ])("reports $what as E_CONFIG naming the file and the limit, without reading it all", async ({ make }) => {
    await mkdir(dirname(file), { recursive: true });
    await make(file);
    const expected = {
      code: "E_CONFIG",
      message: `The profiles file ${file} is larger than 1 MiB, more than any profiles file needs: fix it, or remove it to start without profiles.`,
    };
    await expect(store().list()).rejects.toMatchObject(expected);
    await expect(store().create({ ...valid, name: "new" })).rejects.toMatchObject(expected);
  });

  it("reads a file of exactly 1 MiB", async () => {
    await mkdir(dirname(file), { recursive: true });
    const document = JSON.stringify({ version: 1, profiles: [valid] });
    await writeFile(file, document.padEnd(1024 * 1024, " "));
    expect(await store().list()).toEqual([valid]);
  });

  it("refuses an invalid profile with E_CONFIG listing the problems and writes nothing", async () => {
    const bad = { ...valid, clientId: "nope", tenantId: "" } as Profile;
    const error = await store()
      .create(bad)
      .catch((caught: unknown) => caught);
    expect(isEntraToolError(error, "E_CONFIG")).toBe(true);
    expect((error as Error).message).toMatch(/tenantId: .*clientId: /);
    await expect(stat(file)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("reports a file that is not JSON as E_CONFIG naming the file, and leaves it in place", async () => {
    await store().create(valid);
    await writeFile(file, '{"version": 1, "profiles": [');
    await expect(store().list()).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringContaining(file),
    });
    expect(await readFile(file, "utf8")).toBe('{"version": 1, "profiles": [');
  });

  it("reports an invalid file as E_CONFIG with the first problems, and refuses to write over it", async () => {
    await store().create(valid);
    const broken = {
      version: 1,
      profiles: [
        { ...valid, clientId: "x" },
        { ...valid, name: "b", tenantId: "?", authorityHost: "http://x", defaultFlow: "y" },
      ],
    };
    await writeFile(file, JSON.stringify(broken));
    const error = (await store()
      .list()
      .catch((caught: unknown) => caught)) as Error & { code?: string };
    expect(error.code).toBe("E_CONFIG");
    expect(error.message).toContain(file);
    expect(error.message).toContain("profiles[0].clientId");
    expect(error.message).toContain("profiles[1].tenantId");
    expect(error.message).toContain("and 1 more");
    await expect(store().create({ ...valid, name: "new" })).rejects.toMatchObject({ code: "E_CONFIG" });
    expect(JSON.parse(await readFile(file, "utf8"))).toEqual(broken);
  });

  it("reports a wrong version and a duplicate name in the file", async () => {
    await store().create(valid);
    await writeFile(file, JSON.stringify({ version: 2, profiles: [valid, valid] }));
    await expect(store().list()).rejects.toMatchObject({
      code: "E_CONFIG",
      message: expect.stringMatching(/version: must be 1.*used twice/),
    });
  });

  it("rewrites a file that was made world-readable back to 0600", async () => {
    await store().create(valid);
    await chmod(file, 0o644);
    await store().create({ ...valid, name: "lab" });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });
});
