/**
 * The profile commands as a user meets them: on a terminal (a pseudo-terminal, util-linux
 * `script`) and without one, list/delete/logout, and the usage errors of get-token.
 */
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { inTerminal, run, start } from "../support/cli.ts";
import {
  approveShown,
  boxFor,
  cacheFile,
  createProfile,
  DEFAULT_TENANT_ID,
  DEMO_CLIENT_ID,
  emulatorPerFile,
  expectPrivateTree,
  seedBlock,
  signIn,
  tokenJson,
} from "./harness.ts";

const QUESTIONS = /Profile name:|Tenant ID|Client ID|Scopes, space-separated/;

const emulator = emulatorPerFile();

async function profilesJson(box: ReturnType<typeof boxFor>): Promise<Array<Record<string, unknown>>> {
  const result = await run(["list-profiles", "--output", "json"], box);
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as Array<Record<string, unknown>>;
}

describe.concurrent("create-profile", () => {
  it("with every flag asks nothing, even on a terminal", async () => {
    const box = boxFor(emulator());
    const command = `entratool create-profile --name lab-pi --tenant-id ${DEFAULT_TENANT_ID} --client-id ${DEMO_CLIENT_ID} --scope User.Read`;
    // No input at all: a question would meet the end of input and fail.
    const onTerminal = await inTerminal(command, box).done;
    expect(onTerminal.code).toBe(0);
    expect(onTerminal.stdout).not.toMatch(QUESTIONS);
    expect(onTerminal.stdout).toContain("Profile 'lab-pi' created.");
    const piped = await run(
      ["create-profile", "--name", "piped", "--tenant-id", "organizations", "--client-id", DEMO_CLIENT_ID],
      box,
    );
    expect(piped).toMatchObject({ code: 0, stdout: "Profile 'piped' created.\n", stderr: "" });
    expect(await profilesJson(box)).toEqual([
      {
        name: "lab-pi",
        tenantId: DEFAULT_TENANT_ID,
        clientId: DEMO_CLIENT_ID,
        scopes: ["User.Read"],
        authorityHost: emulator().host,
        defaultFlow: "device-code",
      },
      {
        name: "piped",
        tenantId: "organizations",
        clientId: DEMO_CLIENT_ID,
        scopes: [],
        authorityHost: emulator().host,
        defaultFlow: "device-code",
      },
    ]);
  });

  it.each([
    { missing: "--name", args: ["--tenant-id", "organizations", "--client-id", DEMO_CLIENT_ID] },
    { missing: "--tenant-id", args: ["--name", "x", "--client-id", DEMO_CLIENT_ID] },
    { missing: "--client-id", args: ["--name", "x", "--tenant-id", "organizations"] },
  ])("without a terminal, a missing $missing is exit 2 naming the flag", async ({ missing, args }) => {
    const box = boxFor(emulator());
    const result = await run(["create-profile", ...args], box);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `Missing ${missing} (there is no terminal to ask on). Run 'entratool create-profile --help'.\n`,
    );
    expect(existsSync(box.home)).toBe(false);
  });

  it("invalid values are exit 2 listing every problem", async () => {
    const box = boxFor(emulator());
    const result = await run(
      [
        "create-profile",
        "--name",
        "bad name!",
        "--tenant-id",
        "not a tenant",
        "--client-id",
        "not-a-guid",
        "--authority-host",
        "http://login.example.com/path",
      ],
      box,
    );
    expect(result.code).toBe(2);
    const lines = result.stderr.split("\n").filter((line) => line !== "");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Invalid profile: /);
    for (const flag of ["--name: ", "--tenant-id: ", "--client-id: ", "--authority-host: "]) {
      expect(lines[0]).toContain(flag);
    }
    expect(result.stderr).not.toContain("    at ");
    expect(await profilesJson(box)).toEqual([]);
  });

  it("--expect-tenant and --expect-user bind the profile to accounts, shown by list-profiles --output json", async () => {
    const box = boxFor(emulator());
    const result = await run(
      [
        "create-profile",
        "--name",
        "kiosk",
        "--tenant-id",
        DEFAULT_TENANT_ID,
        "--client-id",
        DEMO_CLIENT_ID,
        "--expect-tenant",
        DEFAULT_TENANT_ID,
        "--expect-user",
        "ada@contoso.com, @fabrikam.com",
        "--expect-user=Bob@Contoso.com",
      ],
      box,
    );
    expect(result).toMatchObject({ code: 0, stdout: "Profile 'kiosk' created.\n", stderr: "" });
    expect(await profilesJson(box)).toEqual([
      expect.objectContaining({
        name: "kiosk",
        expect: {
          tenantId: DEFAULT_TENANT_ID,
          users: ["ada@contoso.com", "@fabrikam.com", "Bob@Contoso.com"],
        },
      }),
    ]);
    // Without the flags there is no rule, and no `expect` key.
    await createProfile(box, "open");
    expect((await profilesJson(box))[1]).not.toHaveProperty("expect");
  });

  it("invalid --expect-tenant and --expect-user are exit 2 naming both flags in one sentence", async () => {
    const box = boxFor(emulator());
    const result = await run(
      [
        "create-profile",
        "--name",
        "kiosk",
        "--tenant-id",
        "organizations",
        "--client-id",
        DEMO_CLIENT_ID,
        "--expect-tenant",
        "contoso.onmicrosoft.com",
        "--expect-user",
        "ada,@contoso.com",
      ],
      box,
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'Invalid profile: --expect-tenant: must be the tenant\'s id, a GUID (found "contoso.onmicrosoft.com"); --expect-user[0]: must be a username such as ada@contoso.com, or @contoso.com for anyone of that domain (found "ada").\n',
    );
    expect(await profilesJson(box)).toEqual([]);
  });

  it("--help lists the account binding flags", async () => {
    const result = await run(["create-profile", "--help"], boxFor(emulator()));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("[--expect-tenant T] [--expect-user U]...");
    expect(result.stdout).toMatch(/^ {2}--expect-tenant T {4}accept only accounts of this tenant/m);
    expect(result.stdout).toMatch(/^ {2}--expect-user U {6}accept only this account/m);
  });

  it("the seed's 'Profile Setup' on a terminal asks for what is missing, again when invalid", async () => {
    const box = boxFor(emulator());
    const command = seedBlock("Profile Setup").trim();
    expect(command).toBe("entratool create-profile --name device-app");
    // Typed ahead, as a paste would: a tenant that is not one, then a valid one, the client id, scopes.
    const answers = `not a tenant\n${DEFAULT_TENANT_ID}\n${DEMO_CLIENT_ID}\nUser.Read Mail.Read\n`;
    const result = await inTerminal(command, box, answers).done;
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).not.toContain("Profile name:");
    expect(
      result.stdout.match(/Tenant ID \(GUID, domain, organizations, common or consumers\): /g),
    ).toHaveLength(2);
    expect(result.stdout).toContain("--tenant-id: must be a GUID");
    expect(result.stdout).toContain("Client ID of the public client app registration (GUID): ");
    expect(result.stdout).toContain("Profile 'device-app' created.");
    expect(await profilesJson(box)).toEqual([
      {
        name: "device-app",
        tenantId: DEFAULT_TENANT_ID,
        clientId: DEMO_CLIENT_ID,
        scopes: ["User.Read", "Mail.Read"],
        authorityHost: emulator().host,
        defaultFlow: "device-code",
      },
    ]);
  });

  it("Ctrl+C at a question is exit 130 and creates nothing", async () => {
    const box = boxFor(emulator());
    const child = inTerminal("entratool create-profile; echo exit=$?", box, null);
    await child.waitFor(/Profile name: /, "stdout");
    child.type("\x03", true);
    const result = await child.done;
    expect(result.stdout).toContain("Cancelled by user.");
    expect(result.stdout).toMatch(/exit=130/);
    expect(await profilesJson(box)).toEqual([]);
  });
});

describe("create-profile in many processes at once", () => {
  const createArgs = (name: string, scope: string): string[] => [
    "create-profile",
    "--name",
    name,
    "--tenant-id",
    DEFAULT_TENANT_ID,
    "--client-id",
    DEMO_CLIENT_ID,
    "--scope",
    scope,
  ];

  it("ten runs with ten names: every run says created and all ten profiles are there", async () => {
    const box = boxFor(emulator());
    const names = Array.from({ length: 10 }, (_, index) => `pi-${index}`);
    const results = await Promise.all(names.map((name) => run(createArgs(name, "User.Read"), box)));
    for (const [index, result] of results.entries()) {
      expect(result).toMatchObject({ code: 0, stdout: `Profile '${names[index]}' created.\n`, stderr: "" });
    }
    const listed = await run(["list-profiles"], box);
    expect(listed.stdout.split("\n").filter(Boolean).sort()).toEqual([...names].sort());
    expectPrivateTree(box.home);
  });

  it("ten runs with five names, twice each: one of each pair is created, the other is exit 2 E_PROFILE_EXISTS", async () => {
    const box = boxFor(emulator());
    const names = Array.from({ length: 5 }, (_, index) => `dup-${index}`);
    const runs = names.flatMap((name) => [
      { name, scope: "first" },
      { name, scope: "second" },
    ]);
    const results = await Promise.all(runs.map(({ name, scope }) => run(createArgs(name, scope), box)));
    for (const name of names) {
      const mine = results.filter((_, index) => runs[index]?.name === name);
      expect(mine.map((result) => result.code).sort()).toEqual([0, 2]);
      expect(mine.find((result) => result.code === 0)?.stdout).toBe(`Profile '${name}' created.\n`);
      expect(mine.find((result) => result.code === 2)).toMatchObject({
        stdout: "",
        stderr: `A profile named '${name}' already exists. Delete it first or choose another name.\n`,
      });
    }
    const profiles = await profilesJson(box);
    expect(profiles.map((profile) => profile.name).sort()).toEqual(names);
    // The one kept is the one whose run said "created".
    for (const profile of profiles) {
      const winner = runs.find(({ name }, index) => name === profile.name && results[index]?.code === 0);
      expect(profile.scopes).toEqual([winner?.scope]);
    }
  });
});

describe.concurrent("list-profiles, delete-profile, logout", () => {
  it("a profiles file that is endless (a link to /dev/zero) fails at once with exit 2 naming it and the limit", async () => {
    const box = boxFor(emulator());
    const config = join(box.home, "config");
    mkdirSync(config, { recursive: true, mode: 0o700 });
    const file = join(config, "profiles.json");
    symlinkSync("/dev/zero", file);
    for (const args of [
      ["list-profiles"],
      ["get-token"],
      ["create-profile", "--name", "x", "--tenant-id", "common", "--client-id", DEMO_CLIENT_ID],
    ]) {
      const result = await run(args, box);
      expect(result).toMatchObject({
        code: 2,
        stdout: "",
        stderr: `The profiles file ${file} is larger than 1 MiB, more than any profiles file needs: fix it, or remove it to start without profiles.\n`,
      });
    }
  });

  it("list-profiles prints names (text) or the profiles (json)", async () => {
    const box = boxFor(emulator());
    expect(await run(["list-profiles"], box)).toMatchObject({ code: 0, stdout: "", stderr: "" });
    await createProfile(box, "default");
    await createProfile(box, "lab-pi", {
      tenantId: "contoso.onmicrosoft.com",
      extra: ["--scope", "User.Read"],
    });
    expect(await run(["list-profiles"], box)).toMatchObject({ code: 0, stdout: "default\nlab-pi\n" });
    expect(await profilesJson(box)).toEqual([
      expect.objectContaining({ name: "default", tenantId: DEFAULT_TENANT_ID, scopes: [] }),
      expect.objectContaining({ name: "lab-pi", tenantId: "contoso.onmicrosoft.com", scopes: ["User.Read"] }),
    ]);
  });

  it("delete-profile removes the profile and its tokens", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    await createProfile(box, "doomed");
    await signIn(emulator(), box, ["--profile", "doomed"]);
    expect(existsSync(cacheFile(box, "doomed"))).toBe(true);
    const deleted = await run(["delete-profile", "--name", "doomed"], box);
    expect(deleted).toMatchObject({ code: 0, stdout: "Profile 'doomed' deleted, with its saved tokens.\n" });
    expect(existsSync(cacheFile(box, "doomed"))).toBe(false);
    expect(await run(["list-profiles"], box)).toMatchObject({ stdout: "default\n" });
    const gone = await run(["get-token", "--profile", "doomed"], box);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain("Profile 'doomed' does not exist.");
    expectPrivateTree(box.home);
  });

  it("logout removes the tokens: the next get-token prompts again", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    await signIn(emulator(), box);
    const out = await run(["logout"], box);
    expect(out).toMatchObject({ code: 0, stdout: "Signed out: tokens of profile 'default' removed.\n" });
    expect(existsSync(cacheFile(box))).toBe(false);
    expect(await run(["logout"], box)).toMatchObject({
      code: 0,
      stdout: "Profile 'default' had no saved sign-in.\n",
    });
    const child = start(["get-token", "--output", "json"], box);
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(tokenJson(result.stdout).from_cache).toBe(false);
    expect(await profilesJson(box)).toHaveLength(1);
  });
});

describe.concurrent("get-token usage errors", () => {
  it("an unknown profile is exit 2 with the create-profile command to run", async () => {
    const box = boxFor(emulator());
    const result = await run(["get-token", "--flow", "device-code", "--profile", "nosuch"], box);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "Profile 'nosuch' does not exist. Create it with 'entratool create-profile --name nosuch --tenant-id <tenant> --client-id <app id>'.\n",
    );
  });

  it("--flow interactive-browser is exit 2, checked before anything else", async () => {
    // No profile at all: the flow is refused before the profile is even looked up.
    const box = boxFor(emulator());
    const result = await run(["get-token", "--flow", "interactive-browser"], box);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "The 'interactive-browser' flow is not supported; entratool signs in with '--flow device-code'.\n",
    );
    expect(result.stdout).toBe("");
    expect(existsSync(box.home)).toBe(false);
  });
});
