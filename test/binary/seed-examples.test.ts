/**
 * Every runnable example of the original tool's page (test/binary/fixtures/device-code-flow.md),
 * run as written with bash or python3 against the compiled binary and the emulator. Where an
 * example cannot run as written (a path on a Pi, Microsoft Graph on the internet), the one
 * replacement is made with replaceOnce(), which fails if the seed text changes.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_USER } from "../../scripts/emulator/server.ts";
import { inTerminal, Running, run, runScript } from "../support/cli.ts";
import {
  approveNextCodeFor,
  approveShown,
  boxFor,
  CODE,
  createProfile,
  DEFAULT_TENANT_ID,
  DEMO_CLIENT_ID,
  ESC,
  emulatorPerFile,
  expectPrivateTree,
  replaceOnce,
  SPINNER_CHARS,
  seedBlock,
  signIn,
  tokenJson,
} from "./harness.ts";

const emulator = emulatorPerFile((emu) => {
  // No example may have been told to slow down: 1 s polls are on time.
  expect(emu.emulator.requests().filter((entry) => entry.error === "slow_down")).toEqual([]);
});

const bash = (script: string, box: ReturnType<typeof boxFor>, env: Record<string, string> = {}) =>
  runScript("bash", script, box, env);

describe.concurrent("the seed page's examples, run verbatim", () => {
  it("Quick Start: the URL and code on stderr, then success", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "myapp");
    const script = seedBlock("Quick Start");
    expect(script).toContain("entratool get-token --flow device-code --profile myapp");
    const child = bash(script, box);
    const userCode = await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`${emulator().host}/devicelogin`);
    expect(result.stderr).toContain(`Enter code: ${userCode}`);
    expect(result.stderr).toContain("Waiting for authentication...");
    expect(result.stdout).toContain("✓ Authentication successful! Token saved to profile 'myapp'");
  });

  it("Basic Authentication: default profile, a named profile, a custom scope", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    await createProfile(box, "production");
    const child = bash(seedBlock("Basic Authentication"), box);
    await approveShown(emulator(), child, { nth: 1 });
    await approveShown(emulator(), child, { nth: 2 });
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    // Two sign-ins; the custom scope is served from the default profile's refresh token.
    expect(result.stderr.match(new RegExp(CODE.source, "g"))).toHaveLength(2);
    expect(result.stdout.match(/^✓ /gm)).toHaveLength(3);
    expect(result.stdout).toContain("Token saved to profile 'production'");
    const scoped = await run(
      ["get-token", "--scope", "https://graph.microsoft.com/User.Read", "--output", "json"],
      box,
    );
    expect(scoped.code).toBe(0);
    expect(tokenJson(scoped.stdout)).toMatchObject({
      scopes: ["https://graph.microsoft.com/User.Read"],
      from_cache: true,
    });
  });

  it("In Scripts: the token calls the Graph-like /v1.0/me and the script prints the user", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const script = replaceOnce(
      seedBlock("In Scripts"),
      "https://graph.microsoft.com/v1.0/me",
      `${emulator().host}/v1.0/me`,
    );
    // curl trusts the emulator's CA through the environment, so the script text stays as written.
    const child = bash(script, box, { CURL_CA_BUNDLE: emulator().caPath });
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    const [before, json] = result.stdout.split("Fetching user profile...\n");
    expect(before).toContain("Authentication successful!");
    expect(JSON.parse(json ?? "")).toMatchObject({
      id: DEFAULT_USER.oid,
      displayName: DEFAULT_USER.name,
      userPrincipalName: DEFAULT_USER.username,
    });
  });

  it("SSH Sessions: the prompt, spinner and result on the session's terminal", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    // The test is the remote server: "ssh user@server" has already happened, and a session
    // has a terminal, so the example runs on a pseudo-terminal.
    const script = `ssh() { echo "(connected to $1)"; }\n${seedBlock("SSH Sessions")}`;
    const file = join(box.binDir, "..", "ssh-session.sh");
    writeFileSync(file, script);
    const child = inTerminal(`bash ${file}`, box);
    await child.waitFor(SPINNER_CHARS, "stdout");
    await approveShown(emulator(), child, { stream: "stdout" });
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("(connected to user@server)");
    expect(result.stdout).toMatch(/Waiting for authentication\.\.\. 1?\d:\d\d left/);
    expect(result.stdout).toContain("✓ Authentication successful! Token saved to profile 'default'");
    // Once signed in, the box is wiped: cursor up over its rows, then clear to the end.
    expect(result.stdout).toMatch(new RegExp(`${ESC}\\[\\d+A${ESC}\\[0J✓ Authentication successful`));
  });

  it("Raspberry Pi: the first run creates the profile and signs in, later runs reuse both", async () => {
    const box = boxFor(emulator());
    const dir = join(box.binDir, "..");
    const tokenFile = join(dir, "entratool-cache");
    const app = join(dir, "main.py");
    writeFileSync(
      app,
      [
        "import json",
        `token = json.load(open(${JSON.stringify(tokenFile)}))`,
        "print(f\"app started as {token['account']['username']}, from_cache={token['from_cache']}\")",
        "",
      ].join("\n"),
    );
    let script = seedBlock("Raspberry Pi");
    script = replaceOnce(script, 'TOKEN_FILE="/home/pi/.entratool-cache"', `TOKEN_FILE="${tokenFile}"`);
    script = replaceOnce(script, "python3 /home/pi/app/main.py", `python3 ${app}`);
    const env = { TENANT_ID: DEFAULT_TENANT_ID, CLIENT_ID: DEMO_CLIENT_ID };

    const first = bash(script, box, env);
    await approveShown(emulator(), first);
    const one = await first.done;
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain("Creating profile for Raspberry Pi...");
    expect(one.stdout).toContain("Profile 'raspberry-pi' created.");
    expect(one.stdout).toContain("✓ Authentication successful! Token saved to profile 'raspberry-pi'");
    expect(one.stdout).toContain("Authentication complete! Starting application...");
    expect(one.stdout).toContain(`app started as ${DEFAULT_USER.username}, from_cache=True`);

    const profiles = await run(["list-profiles", "--output", "json"], box);
    expect(JSON.parse(profiles.stdout)).toEqual([
      {
        name: "raspberry-pi",
        tenantId: DEFAULT_TENANT_ID,
        clientId: DEMO_CLIENT_ID,
        scopes: ["https://graph.microsoft.com/User.Read"],
        authorityHost: emulator().host,
        defaultFlow: "device-code",
      },
    ]);

    const again = await bash(script, box, env).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toContain("Creating profile");
    expect(again.stderr).not.toMatch(CODE);
    expect(again.stdout).toContain("✓ Using the saved sign-in of profile 'raspberry-pi'");
    expect(again.stdout).toContain(`app started as ${DEFAULT_USER.username}, from_cache=True`);
    expectPrivateTree(box.home);
  });

  it("IoT Devices: authenticate_device() in Python returns the access token", async () => {
    // A client id of its own: the script captures the prompt, so the test approves by client.
    const clientId = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f";
    const box = boxFor(emulator());
    await createProfile(box, "default", { clientId });
    const block = seedBlock("IoT Devices");
    // The seed's main loop calls functions it never defines; the example's API is the function.
    const functions = block.slice(0, block.indexOf("# Main IoT application"));
    expect(functions).toContain("def authenticate_device():");
    const child = runScript("python3", `${functions}\nprint(authenticate_device())\n`, box);
    await approveNextCodeFor(emulator(), clientId);
    const result = await child.done;
    expect(result.code, result.stderr).toBe(0);
    const [started, token, rest] = result.stdout.split("\n");
    expect(started).toBe("Starting device authentication...");
    expect(rest).toBe("");
    expect(emulator().emulator.issuedSecrets()).toContain(token);
  });

  it("Error Handling: authenticate_with_retry retries after a declined sign-in", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "myapp");
    // The seed waits 5 s between attempts; the function stands in for sleep so the test does not.
    const script = `sleep() { :; }\n${seedBlock("Error Handling")}`;
    const child = bash(script, box);
    const first = await child.waitFor(CODE);
    emulator().emulator.decline({ userCode: first[1] ?? "" });
    const second = await approveShown(emulator(), child, { nth: 2 });
    expect(second).not.toBe(first[1]);
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      "Authentication attempt 1 of 3...",
      "Authentication failed. Retrying...",
      "Authentication attempt 2 of 3...",
      "✓ Authentication successful! Token saved to profile 'myapp'",
      `  Account: ${DEFAULT_USER.username} (tenant ${DEFAULT_TENANT_ID})`,
      expect.stringMatching(/^ {2}Expires: .* UTC \(in 60 min\)$/),
      "✓ Authentication successful",
      "",
    ]);
    expect(result.stderr).toContain(
      "Sign-in was declined on the other device. Run the command again and approve the request.",
    );
  });

  it("Custom Timeout: jq '.expires_at' prints an ISO 8601 UTC time", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const child = bash(seedBlock("Custom Timeout"), box);
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code).toBe(0);
    const printed = result.stdout.trim();
    expect(printed).toMatch(/^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"$/);
    const expiresAt = Date.parse(JSON.parse(printed) as string);
    expect(Math.abs(expiresAt - (Date.now() + 3600_000))).toBeLessThan(60_000);
  });

  it("Token Security: TOKEN=$(... | jq -r .access_token) holds the token", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    await signIn(emulator(), box);
    const block = seedBlock("Token Security");
    // The "Bad" line is a counter-example ending in a literal "...": only the good one is run.
    const good = block.slice(block.indexOf("# ✅ Good"));
    expect(good).toContain("TOKEN=$(entratool get-token --output json | jq -r .access_token)");
    const result = await bash(`${good}printf '%s' "$TOKEN"\n`, box).done;
    expect(result.code).toBe(0);
    const raw = await run(["get-token", "--output", "raw"], box);
    expect(result.stdout).toBe(raw.stdout.trim());
    expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it("Docker Containers: entrypoint.sh signs in, then execs the command", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "container");
    const entrypoint = seedBlock("Docker Containers", 1);
    expect(entrypoint).toContain("# entrypoint.sh");
    const file = join(box.binDir, "..", "entrypoint.sh");
    writeFileSync(file, entrypoint, { mode: 0o755 });
    const child = new Running(file, ["sh", "-c", 'echo "app running: $0"', "with-token"], box.env);
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    expect(lines[0]).toBe("Authenticating container...");
    expect(lines[1]).toBe("✓ Authentication successful! Token saved to profile 'container'");
    expect(lines.at(-2)).toBe("app running: with-token");
  });

  it("Clear Instructions: the heredoc banner, then the sign-in", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const child = bash(seedBlock("Clear Instructions"), box);
    await approveShown(emulator(), child);
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("║             DEVICE AUTHENTICATION                  ║");
    expect(result.stdout).toContain("✓ Authentication successful! Token saved to profile 'default'");
  });

  it("User Consent: the first sign-in asks, the next run reuses the saved sign-in", async () => {
    const box = boxFor(emulator());
    await createProfile(box, "default");
    const script = seedBlock("User Consent");
    const first = bash(script, box);
    await approveShown(emulator(), first);
    expect((await first.done).code).toBe(0);
    const again = await bash(script, box).done;
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(CODE);
    expect(again.stdout).toContain("✓ Using the saved sign-in of profile 'default'");
  });

  it("Progress Feedback: no spinner or escape codes when stderr is not a terminal", async () => {
    const box = boxFor(emulator());
    // A tenant of its own, to count this sign-in's polls among the other tests' requests (a GUID:
    // a domain's endpoints, as discovered, carry the emulator's tenant id instead).
    const tenantId = "9a9a9a9a-1111-4222-8333-444455556666";
    await createProfile(box, "default", { tenantId });
    const child = runScript("bash", "entratool get-token --flow device-code", box);
    const userCode = (await child.waitFor(CODE))[1] ?? "";
    // Approve only after a few polls (and so ticks of the once-a-second status timer).
    for (let polls = 0; polls < 2; polls++) {
      await emulator().emulator.waitForRequest(
        (entry) => entry.path === `/${tenantId}/oauth2/v2.0/token`,
        "answered",
      );
    }
    emulator().emulator.approve({ userCode });
    const result = await child.done;
    expect(result.code).toBe(0);
    expect(result.stderr).not.toMatch(SPINNER_CHARS);
    expect(result.stderr).not.toContain(ESC);
    expect(result.stdout).not.toContain(ESC);
    expect(result.stderr).toContain("Waiting for authentication...");
  });
});
