import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import type { Clock } from "../../agent/core/clock.ts";
import { errnoCode } from "../../agent/core/errors.ts";
import { BusError } from "./errors.ts";
import type { GpioLine } from "./types.ts";

/**
 * Labels of the chips that carry the 40-pin header, newest board first: pinctrl-rp1 (Pi 5),
 * pinctrl-bcm2711 (Pi 4, 400, CM4), pinctrl-bcm2835 (Pi 3, Zero 2 W).
 */
export const HEADER_CHIP_LABELS: readonly string[] = ["pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"];

export interface SysfsGpioOptions {
  /** The sysfs GPIO class directory; "/sys/class/gpio" unless a test points at a fake tree. */
  readonly root?: string;
  /** Waits between retries while udev fixes the permissions of a freshly exported line. */
  readonly clock: Clock;
}

export interface SysfsChip {
  readonly label: string;
  /** The global number of the chip's line 0 (512 on a Pi 4, 571 for the Pi 5 header on 6.6+). */
  readonly base: number;
  readonly ngpio: number;
}

/** Every gpiochipN directory under `root` with its label, base and ngpio. */
export async function sysfsChips(root = "/sys/class/gpio"): Promise<SysfsChip[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch (error) {
    throw new BusError("E_GPIO_NOT_AVAILABLE", {
      cause: error,
      details: { root },
      message: `${root} does not exist: this kernel has no legacy sysfs GPIO (CONFIG_GPIO_SYSFS); use the GPIO character device backend.`,
    });
  }
  const chips: SysfsChip[] = [];
  for (const name of names.filter((entry) => /^gpiochip\d+$/.test(entry))) {
    const read = async (file: string): Promise<string> =>
      (await readFile(`${root}/${name}/${file}`, "utf8")).trim();
    chips.push({
      label: await read("label"),
      base: Number(await read("base")),
      ngpio: Number(await read("ngpio")),
    });
  }
  return chips.sort((a, b) => a.base - b.base);
}

/**
 * The global sysfs number of line `offset` on the chip labelled with the first of `labels` present.
 * Kernels ≥ 6.6 number the Pi's chips from 512 up (GPIO17 is 529 on a Pi 4, 588 on a Pi 5), and
 * the order of chips changes between kernels, so the base is always read, never assumed.
 */
export async function resolveSysfsNumber(
  offset: number,
  labels: readonly string[] = HEADER_CHIP_LABELS,
  root = "/sys/class/gpio",
): Promise<number> {
  const chips = await sysfsChips(root);
  for (const label of labels) {
    const chip = chips.find((candidate) => candidate.label === label);
    if (chip === undefined) continue;
    if (!Number.isInteger(offset) || offset < 0 || offset >= chip.ngpio) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `${label} has lines 0 to ${chip.ngpio - 1}, not ${offset}: check the GPIO number (BCM numbering).`,
      });
    }
    return chip.base + offset;
  }
  const found = chips.map((chip) => `${chip.label} (base ${chip.base})`).join(", ") || "none";
  throw new BusError("E_GPIO_CHIP_NOT_FOUND", {
    details: { labels, root },
    message: `No GPIO chip labelled ${labels.join(" or ")} in ${root} (found ${found}): pass the label of the chip that carries the pin.`,
  });
}

/** How long to wait for udev to give group gpio the new line's files after an export. */
const PERMISSION_RETRIES = 20;
const PERMISSION_RETRY_MS = 10;

/**
 * An output line through legacy sysfs GPIO (/sys/class/gpio), for kernels where the character
 * device cannot be used. Outputs only: sysfs edge events need poll(2) on the value file, which
 * the character device backend does better. Unexports on close if it exported the line.
 */
export class SysfsGpioOutput implements GpioLine {
  readonly number: number;
  readonly #root: string;
  readonly #exported: boolean;
  #open = true;

  private constructor(root: string, number: number, exported: boolean) {
    this.#root = root;
    this.number = number;
    this.#exported = exported;
  }

  /** Exports line `offset` of the header chip (found by label) and makes it an output at `initial`. */
  static async open(
    offset: number,
    options: SysfsGpioOptions & { readonly labels?: readonly string[]; readonly initial?: 0 | 1 },
  ): Promise<SysfsGpioOutput> {
    const root = options.root ?? "/sys/class/gpio";
    const number = await resolveSysfsNumber(offset, options.labels, root);
    const line = `${root}/gpio${number}`;
    const exported = !(await exists(line));
    if (exported) await sysfsWrite(`${root}/export`, String(number), number);
    // "low"/"high" set the direction and the initial level at once, without a glitch.
    const direction = options.initial === 1 ? "high" : "low";
    for (let attempt = 0; ; attempt++) {
      try {
        await writeFile(`${line}/direction`, direction);
        break;
      } catch (error) {
        // udev chgrps the new gpioN files a few ms after the export (raspberrypi-sys-mods rules).
        const code = errnoCode(error);
        if ((code === "EACCES" || code === "ENOENT") && attempt < PERMISSION_RETRIES) {
          await options.clock.sleep(PERMISSION_RETRY_MS);
          continue;
        }
        if (exported) await writeFile(`${root}/unexport`, String(number)).catch(() => undefined);
        throw sysfsError(`${line}/direction`, number, error);
      }
    }
    return new SysfsGpioOutput(root, number, exported);
  }

  async set(value: 0 | 1): Promise<void> {
    this.#check();
    await sysfsWrite(`${this.#root}/gpio${this.number}/value`, String(value), this.number);
  }

  async get(): Promise<0 | 1> {
    this.#check();
    const path = `${this.#root}/gpio${this.number}/value`;
    try {
      return (await readFile(path, "utf8")).trim() === "1" ? 1 : 0;
    } catch (error) {
      throw sysfsError(path, this.number, error);
    }
  }

  watch(): () => void {
    throw new BusError("E_BUS_UNSUPPORTED", {
      message:
        "The sysfs GPIO backend drives outputs only: use the GPIO character device backend for buttons.",
    });
  }

  async close(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    if (this.#exported) await sysfsWrite(`${this.#root}/unexport`, String(this.number), this.number);
  }

  #check(): void {
    if (!this.#open) throw new BusError("E_BUS_CLOSED", { details: { gpio: this.number } });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function sysfsWrite(path: string, value: string, number: number): Promise<void> {
  try {
    await writeFile(path, value);
  } catch (error) {
    throw sysfsError(path, number, error);
  }
}

function sysfsError(path: string, number: number, error: unknown): BusError {
  const code = errnoCode(error);
  const details = { path, gpio: number };
  if (code === "EACCES" || code === "EPERM") {
    return new BusError("E_BUS_PERMISSION", {
      errno: code,
      cause: error,
      details,
      message: `Permission denied on ${path}: add the user to group gpio (sudo usermod -aG gpio $USER) and log in again.`,
    });
  }
  if (code === "EBUSY") {
    return new BusError("E_GPIO_LINE_BUSY", {
      errno: code,
      cause: error,
      details,
      message: `GPIO ${number} is already in use by a kernel driver or another program: choose another pin.`,
    });
  }
  return new BusError("E_BUS_IO", {
    errno: code,
    cause: error,
    details,
    message: `Cannot use ${path} (${code ?? String(error)}): check that no dtoverlay claims GPIO ${number} ('pinctrl get' shows its function).`,
  });
}
