import type { Logger } from "../core/log.ts";
import { storeError } from "./errors.ts";

/** What the key derivation binds the token store to. */
export interface MachineIdentitySource {
  /** A string that stays the same across reboots of this machine and differs between machines. */
  get(): Promise<string>;
}

/** Returned when the machine has neither a machine id nor a board serial. */
export const UNKNOWN_MACHINE = "entratool:unknown-machine";

export interface MachineIdentityOptions {
  readonly logger: Logger;
  /** Tried in order; the first non-empty one wins. */
  readonly machineIdFiles?: readonly string[];
  /** Device-tree serial number (Raspberry Pi and other DT boards), NUL-terminated. */
  readonly serialNumberFile?: string;
  /** Fallback for the serial: the `Serial` line of /proc/cpuinfo. */
  readonly cpuinfoFile?: string;
}

export const DEFAULT_MACHINE_ID_FILES: readonly string[] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];
export const DEFAULT_SERIAL_NUMBER_FILE = "/sys/firmware/devicetree/base/serial-number";
export const DEFAULT_CPUINFO_FILE = "/proc/cpuinfo";

/**
 * The machine's identity: `/etc/machine-id` (systemd; generated on first boot) plus the board
 * serial when there is one. The serial matters because SD card images are cloned with their
 * machine-id; the machine-id matters because x86 and VMs have no serial. The result is memoised
 * per instance, so the files are read (and the "no identity" note is logged) once.
 *
 * Contract: the string must not change while the machine keeps its tokens, or every profile is
 * signed out. So values are normalised (trimmed, lower-cased; the serial without leading zeros,
 * because the device tree and /proc/cpuinfo pad it differently on some boards).
 */
export class MachineIdentity implements MachineIdentitySource {
  readonly #logger: Logger;
  readonly #machineIdFiles: readonly string[];
  readonly #serialNumberFile: string;
  readonly #cpuinfoFile: string;
  #identity: Promise<string> | undefined;

  constructor(options: MachineIdentityOptions) {
    this.#logger = options.logger;
    this.#machineIdFiles = options.machineIdFiles ?? DEFAULT_MACHINE_ID_FILES;
    this.#serialNumberFile = options.serialNumberFile ?? DEFAULT_SERIAL_NUMBER_FILE;
    this.#cpuinfoFile = options.cpuinfoFile ?? DEFAULT_CPUINFO_FILE;
  }

  get(): Promise<string> {
    this.#identity ??= this.#compute().catch((error: unknown) => {
      // A failed read is not memoised: the next call tries again.
      this.#identity = undefined;
      throw error;
    });
    return this.#identity;
  }

  async #compute(): Promise<string> {
    const machineId = await this.#machineId();
    const serial = await this.#serial();
    if (machineId === undefined && serial === undefined) {
      // Info, not warn: this runs on every invocation, and in a container it is the normal case.
      // FileKeyProvider warns once, when it creates a key file that this leaves unbound.
      this.#logger.info(
        { files: [...this.#machineIdFiles, this.#serialNumberFile, this.#cpuinfoFile] },
        "No machine id or board serial found: the token store key is bound only to the key file, so a copy of the state directory would decrypt elsewhere",
      );
      return UNKNOWN_MACHINE;
    }
    return `machine-id=${machineId ?? ""};serial=${serial ?? ""}`;
  }

  async #machineId(): Promise<string | undefined> {
    for (const file of this.#machineIdFiles) {
      const value = (await readOptional(file))?.trim().toLowerCase();
      // Images that have not booted yet hold an empty file or "uninitialized".
      if (value && value !== "uninitialized") return value;
    }
    return undefined;
  }

  async #serial(): Promise<string | undefined> {
    const fromDeviceTree = (await readOptional(this.#serialNumberFile))?.replace(/\0+$/, "");
    const fromCpuinfo = (await readOptional(this.#cpuinfoFile))?.match(/^Serial\s*:\s*(\S+)\s*$/m)?.[1];
    return normaliseSerial(fromDeviceTree) ?? normaliseSerial(fromCpuinfo);
  }
}

function normaliseSerial(value: string | undefined): string | undefined {
  const trimmed = value?.trim().toLowerCase().replace(/^0+/, "");
  // All zeros (some boards and emulators) is no serial at all.
  return trimmed ? trimmed : undefined;
}

/**
 * The file's text, or undefined when it does not exist. Other errors are E_STORE. Bun's reader
 * rather than node:fs: these files are read at every start, and loading node:fs's JavaScript layer
 * would cost more than the reads (core/files.ts). It reads /proc and /sys files (size 0 or 4096
 * in stat) to their end, as node:fs does.
 */
async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await Bun.file(file).text();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw storeError(file, "read the machine identity file", error);
  }
}
