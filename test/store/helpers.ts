import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Clock } from "../../agent/core/clock.ts";
import type { Logger } from "../../agent/core/log.ts";
import { VirtualClock } from "../../agent/core/virtual-clock.ts";
import { createLogger } from "../../agent/pino-logger.ts";
import { FileKeyProvider } from "../../agent/store/key.ts";
import { FlockLockManager } from "../../agent/store/lock.ts";
import type { MachineIdentitySource } from "../../agent/store/machine.ts";

/** A fresh directory under the OS temp dir, and a function that removes it. */
export async function makeTempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "entratool-store-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface LogRecord {
  readonly level: string;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** A real pino logger (with the project's redaction) whose lines land in `records`. */
export function captureLogger(): { logger: Logger; records: LogRecord[]; raw: string[] } {
  const records: LogRecord[] = [];
  const raw: string[] = [];
  const logger = createLogger({
    level: "debug",
    destination: {
      write(line: string): void {
        raw.push(line);
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  });
  return { logger, records, raw };
}

export function fixedIdentity(value: string): MachineIdentitySource {
  return { get: async () => value };
}

export interface KeyProviderOptions {
  readonly keyFile: string;
  readonly logger: Logger;
  readonly identity?: string | MachineIdentitySource;
  readonly credentialKeyFile?: string;
  /** Default: `tokens` beside the key file, as in the state directory. */
  readonly tokensDir?: string;
  readonly clock?: Clock;
}

/**
 * A FileKeyProvider as main.ts wires it, with flock locks of its own (another instance acts as
 * another process would).
 */
export function keyProvider(options: KeyProviderOptions): FileKeyProvider {
  const clock = options.clock ?? new VirtualClock();
  const identity = options.identity ?? "machine-a";
  return new FileKeyProvider({
    keyFile: options.keyFile,
    credentialKeyFile: options.credentialKeyFile,
    machineIdentity: typeof identity === "string" ? fixedIdentity(identity) : identity,
    logger: options.logger,
    tokensDir: options.tokensDir ?? join(dirname(options.keyFile), "tokens"),
    locks: new FlockLockManager({
      locksDir: join(dirname(options.keyFile), "locks"),
      clock,
      logger: options.logger,
    }),
    clock,
  });
}

/** Every file under `dir` (recursively), with its raw bytes. */
export async function allFiles(dir: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries.filter((entry) => entry.isFile());
  return Promise.all(
    files.map(async (entry) => {
      const path = join(entry.parentPath, entry.name);
      return { path, bytes: await readFile(path) };
    }),
  );
}

/** Paths of files under `dir` whose raw bytes contain `marker`. */
export async function filesContaining(dir: string, marker: string): Promise<string[]> {
  const needle = Buffer.from(marker, "utf8");
  return (await allFiles(dir)).filter((file) => file.bytes.includes(needle)).map((file) => file.path);
}
