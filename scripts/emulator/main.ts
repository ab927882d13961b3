/**
 * Runs the Entra ID emulator for demos and manual testing:
 *
 *   npx bun scripts/emulator/main.ts [--port N] [--dir DIR] [--auto-approve SECONDS]
 *
 * stdout carries only what a person needs to point a client at it; request logs go to stderr.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEMO_CLIENT_ID, EntraEmulator } from "./server.ts";

const USAGE = "usage: bun scripts/emulator/main.ts [--port N] [--dir DIR] [--auto-approve SECONDS]";

interface CliOptions {
  port: number;
  dir: string;
  autoApprove: number | null;
}

function parseCli(argv: string[]): CliOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "0" },
      dir: { type: "string", default: ".emulator" },
      "auto-approve": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: not a port: ${values.port}`);
  const rawAutoApprove = values["auto-approve"];
  const autoApprove = rawAutoApprove === undefined ? null : Number(rawAutoApprove);
  if (autoApprove !== null && !(Number.isFinite(autoApprove) && autoApprove >= 0)) {
    throw new Error(`--auto-approve: not a number of seconds: ${rawAutoApprove}`);
  }
  return { port, dir: resolve(values.dir), autoApprove };
}

async function main(): Promise<void> {
  let options: CliOptions;
  try {
    options = parseCli(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    process.exit(2);
  }
  const emulator = new EntraEmulator({
    tlsDir: options.dir,
    port: options.port,
    autoApproveAfter: options.autoApprove,
    logger: (line) => process.stderr.write(`emulator: ${line}\n`),
  });
  const { authorityHost, caPath } = await emulator.start();
  const autoApprove =
    options.autoApprove === null
      ? "off (approve at the verification URL or POST /_emulator/approve)"
      : `every new code after ${options.autoApprove} s`;
  process.stdout.write(
    [
      "Entra ID emulator running.",
      `  authority host:   ${authorityHost}`,
      `  CA certificate:   ${caPath}`,
      `  verification URL: ${emulator.verificationUri}`,
      `  tenant id:        ${emulator.tenantId}`,
      `  auto-approve:     ${autoApprove}`,
      "",
      "In the shell that runs the client:",
      `  export NODE_EXTRA_CA_CERTS=${caPath}`,
      `  entratool create-profile --name emulator --tenant-id ${emulator.tenantId} --client-id ${DEMO_CLIENT_ID} --authority-host ${authorityHost}`,
      "",
      "Approve the newest code from a shell:",
      `  curl --cacert ${caPath} -X POST ${authorityHost}/_emulator/approve -d '{}'`,
      "",
      "Ctrl-C stops the emulator.",
      "",
    ].join("\n"),
  );

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`emulator: ${signal}, stopping\n`);
    emulator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`emulator: stop failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
}

main().catch((error: unknown) => {
  process.stderr.write(`emulator: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
