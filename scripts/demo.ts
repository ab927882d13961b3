/**
 * `npm run demo`: the whole sign-in, on this machine, with no Azure tenant.
 *
 * Starts the local Entra emulator, creates a profile that points at it, and runs the compiled
 * `entratool get-token --flow device-code` with its prompt in this terminal. Open the verification
 * URL it shows and approve the code yourself, or wait: the demo approves it after a few seconds.
 * Then a second `get-token` shows the token served silently from the encrypted cache.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_TENANT_ID, DEMO_CLIENT_ID, EntraEmulator } from "./emulator/server.ts";

const APPROVE_AFTER_SECONDS = 8;
const root = join(import.meta.dir, "..");
const binary = join(root, "dist", "entratool");
const say = (text: string): void => {
  process.stdout.write(`\x1b[2m${text}\x1b[22m\n`);
};

function build(): void {
  say("Building dist/entratool ...");
  const result = spawnSync(process.execPath, [join(root, "scripts", "build.ts"), "--host-only"], {
    stdio: "inherit",
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function entratool(args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    // Inherit the terminal: the prompt, spinner and countdown appear as a user would see them.
    const child = spawn(binary, [...args], { env, stdio: "inherit" });
    child.on("error", reject);
    child.on("close", (code) => resolve(code ?? 1));
  });
}

async function main(): Promise<number> {
  build();
  const home = mkdtempSync(join(tmpdir(), "entratool-demo-"));
  const emulator = new EntraEmulator({
    tlsDir: join(root, ".emulator"),
    port: 0,
    autoApproveAfter: APPROVE_AFTER_SECONDS,
    defaults: { interval: 2 },
  });
  const started = await emulator.start();
  const env = {
    ...process.env,
    ENTRATOOL_HOME: home,
    NODE_EXTRA_CA_CERTS: started.caPath,
  };
  try {
    say(`Entra emulator on ${started.authorityHost} (its CA: ${started.caPath})`);
    say(`State in ${home}\n`);
    say("$ entratool create-profile --name default --tenant-id ... --client-id ... --authority-host ...");
    const created = await entratool(
      [
        "create-profile",
        "--name",
        "default",
        "--tenant-id",
        DEFAULT_TENANT_ID,
        "--client-id",
        DEMO_CLIENT_ID,
        "--scope",
        "https://graph.microsoft.com/User.Read",
        "--authority-host",
        started.authorityHost,
      ],
      env,
    );
    if (created !== 0) return created;

    say(
      `\nOpen the URL below and approve the code yourself (accept the self-signed certificate),\n` +
        `or wait ${APPROVE_AFTER_SECONDS} s and the demo approves it for you.\n`,
    );
    say("$ entratool get-token --flow device-code");
    const signedIn = await entratool(["get-token", "--flow", "device-code"], env);
    if (signedIn !== 0) return signedIn;

    say("\nSecond call: served from the encrypted cache, no prompt, no network.");
    say("$ entratool get-token");
    const before = performance.now();
    const cached = await entratool(["get-token"], env);
    say(`(${Math.round(performance.now() - before)} ms)`);
    return cached;
  } finally {
    await emulator.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

process.exit(await main());
