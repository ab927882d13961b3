/**
 * The agent under a service manager: with NOTIFY_SOCKET set (systemd's Type=notify), it says
 * READY=1 once it runs, STATUS= with every sign-in state (the code while one is shown), pings
 * WATCHDOG=1 at half of WATCHDOG_USEC, and STOPPING=1 on SIGTERM. The listener is a real
 * AF_UNIX datagram socket (python3: neither Node nor Bun binds one), as systemd's is.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { removeSandboxes } from "../support/cli.ts";
import { type Pipeline, startPipeline, stopAgent } from "./agent-world.ts";
import { CODE } from "./harness.ts";

const LISTENER = `
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print("listening", flush=True)
while True:
    data = s.recv(65536)
    for line in data.decode().split("\\n"):
        print(line, flush=True)
`;

let p: Pipeline | undefined;
let listener: ChildProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), "entratool-notify-"));
afterAll(async () => {
  listener?.kill("SIGKILL");
  await p?.close();
  removeSandboxes();
  rmSync(dir, { recursive: true, force: true });
});

it("tells systemd READY, the sign-in as STATUS, pings the watchdog, and says STOPPING", async () => {
  const socketPath = join(dir, "notify.sock");
  const child = spawn("python3", ["-c", LISTENER, socketPath], { stdio: ["ignore", "pipe", "inherit"] });
  listener = child;
  let heard = "";
  const waiters: Array<() => void> = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    heard += chunk;
    for (const wake of waiters.splice(0)) wake();
  });
  const hear = async (pattern: RegExp): Promise<void> => {
    while (!pattern.test(heard)) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  await hear(/listening/);

  p = await startPipeline({ noHttp: true });
  p.box.env.NOTIFY_SOCKET = socketPath;
  p.box.env.WATCHDOG_USEC = "2000000";
  const agent = await p.startAgent({ approve: false });
  await hear(/READY=1/);
  const code = (await agent.waitFor(CODE))[1] ?? "";
  await hear(new RegExp(`STATUS=waiting for sign-in: code ${code} at https://`));
  p.emu.emulator.approve({ userCode: code });
  await hear(/STATUS=signed in as pi@contoso.example/);
  // WATCHDOG_USEC=2 s: a ping every second, from the event loop.
  const pings = (): number => (heard.match(/WATCHDOG=1/g) ?? []).length;
  const before = pings();
  await hear(new RegExp(`(WATCHDOG=1[\\s\\S]*){${before + 2}}`));
  await stopAgent(agent);
  await hear(/STOPPING=1/);
  expect(heard.indexOf("READY=1")).toBeLessThan(heard.indexOf("STOPPING=1"));
}, 120_000);
