import { readdir } from "node:fs/promises";
import type { Clock } from "../../agent/core/clock.ts";
import { Errno, errnoName } from "../../agent/linux/errno.ts";
import { FdRecordWatcher, FdWatchError } from "../../agent/linux/fd-stream.ts";
import { F_DUPFD_CLOEXEC, type LazyLibc, type Libc, O_CLOEXEC, O_RDWR } from "../../agent/linux/libc.ts";
import { BusError, isUnsupportedErrno, openError } from "./errors.ts";
import {
  decodeChipInfo,
  decodeLineEvent,
  decodeLineInfo,
  decodeLineRequest,
  decodeLineValues,
  encodeLineInfoQuery,
  encodeLineRequest,
  encodeLineValues,
  GPIO_V2_LINE_EVENT_SIZE,
  GPIOCHIP_INFO_SIZE,
  type GpioChipInfo,
  GpioLineAttrId,
  type GpioLineConfigAttribute,
  GpioLineEventId,
  GpioLineFlag,
  type GpioLineInfo,
} from "./gpio-uapi.ts";
import {
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  GPIO_V2_LINE_GET_VALUES_IOCTL,
  GPIO_V2_LINE_SET_VALUES_IOCTL,
} from "./ioctl.ts";
import { busLibc } from "./libc.ts";
import type { Edge, GpioLine } from "./types.ts";

export interface GpioCdevOptions {
  /** Paces the short wait, when a watch ends, for the line to be released (see CdevGpioLine). */
  readonly clock: Clock;
  /** Where /dev/gpiochip* live; "/dev" unless a test points elsewhere. */
  readonly devDir?: string;
  /** Shown by `gpioinfo` as the holder of our lines; "entratool" by default. */
  readonly consumer?: string;
  readonly libc?: Libc;
  readonly libcPath?: string;
}

/** A line by name ("GPIO17", optionally only on the chip with that label), or by chip label and offset. */
export type GpioLineSelector =
  | { readonly name: string; readonly chipLabel?: string }
  | { readonly chipLabel: string; readonly offset: number };

export interface GpioLineRequestOptions {
  readonly direction: "output" | "input";
  /** The level an output starts at (set atomically with the request); 0 by default. */
  readonly initial?: 0 | 1;
  /** Values are logical: with activeLow, 1 drives the pin low (LEDs wired to 3V3, buttons to GND). */
  readonly activeLow?: boolean;
  readonly bias?: "pull-up" | "pull-down" | "disabled";
  /** Inputs only: which edges `watch` reports. */
  readonly edges?: "rising" | "falling" | "both";
  /** Inputs only: the kernel's debounce period in ms (GPIO_V2_LINE_ATTR_ID_DEBOUNCE). */
  readonly debounceMs?: number;
  /**
   * Told when reading edge events fails (a BusError; the watch then stops), when a listener throws
   * (its error; the watch goes on), and when a watch that ended could not be seen to release the
   * line (a BusError). Without it such errors are dropped.
   */
  readonly onError?: (error: unknown) => void;
}

export interface GpioChip extends GpioChipInfo {
  /** The device node it was found at, e.g. "/dev/gpiochip0". */
  readonly path: string;
}

export interface FoundGpioLine {
  readonly chip: GpioChip;
  readonly info: GpioLineInfo;
}

/**
 * The labels of the chip that drives the 40-pin header: BCM2711 (Pi 4, 400), BCM2835 and its
 * kin (Pi 1-3, Zero), RP1 (Pi 5). Its line N is GPIO N of the header.
 */
export const HEADER_CHIP_LABELS: readonly string[] = ["pinctrl-bcm2711", "pinctrl-bcm2835", "pinctrl-rp1"];

/**
 * Edge events the kernel buffers per line until we read them (event_buffer_size). The default, 16,
 * could overflow during switch bounce while the event loop is busy (an e-ink refresh, a sign-in
 * request); the kernel caps this at 1024.
 */
const EVENT_BUFFER_SIZE = 64;

/**
 * The GPIO character device, uAPI v2 (<linux/gpio.h>, Linux 5.10+). Lines are found by name and
 * chips by label, never by number: the Pi 5 header chip moved from gpiochip4 to gpiochip0 in
 * kernel 6.6.45. A header name "GPIOnn" that no line carries is line nn of the header's chip
 * (HEADER_CHIP_LABELS): device trees name some header lines by function instead (the Pi 4's
 * SPI_CE0_N, TXD1, SDA1…, the Pi 5's ID_SDA/ID_SCL for GPIO0/1). Every chip is opened, queried
 * and closed per lookup; only requested lines keep an fd.
 */
export class GpioCdev {
  readonly #options: GpioCdevOptions;
  readonly #libc: LazyLibc;

  constructor(options: GpioCdevOptions) {
    this.#options = options;
    this.#libc = busLibc(options.libc, options.libcPath);
  }

  /**
   * Every GPIO chip, in gpiochipN order. A chip reachable under two nodes (the Pi 5's
   * compatibility symlink gpiochip4 → gpiochip0) is listed once, under its kernel name.
   */
  async chips(): Promise<GpioChip[]> {
    const libc = await this.#libc.get();
    const chips: GpioChip[] = [];
    for (const path of await this.#chipPaths()) {
      const fd = this.#openChip(libc, path);
      try {
        const info = chipInfo(libc, fd, path);
        if (!chips.some((chip) => chip.name === info.name)) chips.push({ ...info, path });
      } finally {
        libc.close(fd);
      }
    }
    return chips;
  }

  /** The chip labelled `label` ("pinctrl-bcm2711", "pinctrl-rp1"). */
  async chipByLabel(label: string): Promise<GpioChip> {
    const chips = await this.chips();
    const chip = chips.find((candidate) => candidate.label === label);
    if (chip === undefined) {
      throw new BusError("E_GPIO_CHIP_NOT_FOUND", {
        details: { label },
        message: `No GPIO chip is labelled ${label} (found ${describeChips(chips)}): check the label with 'gpiodetect'.`,
      });
    }
    return chip;
  }

  /**
   * Finds a line by name over every chip (or the one labelled `chipLabel`), or by chip and offset.
   * "GPIOnn" that no line is named is line nn of the header's chip, where there is one.
   */
  async findLine(selector: GpioLineSelector): Promise<FoundGpioLine> {
    const libc = await this.#libc.get();
    if ("offset" in selector) {
      const chip = await this.chipByLabel(selector.chipLabel);
      if (!Number.isInteger(selector.offset) || selector.offset < 0 || selector.offset >= chip.lines) {
        throw new BusError("E_BUS_ARGUMENT", {
          message: `${chip.name} [${chip.label}] has lines 0 to ${chip.lines - 1}, not ${selector.offset}: check the pin number.`,
        });
      }
      return { chip, info: this.#lineInfo(libc, chip, selector.offset) };
    }
    const chips =
      selector.chipLabel === undefined ? await this.chips() : [await this.chipByLabel(selector.chipLabel)];
    for (const chip of chips) {
      const fd = this.#openChip(libc, chip.path);
      try {
        for (let offset = 0; offset < chip.lines; offset++) {
          const info = lineInfo(libc, fd, chip.path, offset);
          if (info.name === selector.name) return { chip, info };
        }
      } finally {
        libc.close(fd);
      }
    }
    const bcm = /^GPIO(\d{1,2})$/.exec(selector.name);
    const header = chips.find((chip) => HEADER_CHIP_LABELS.includes(chip.label));
    if (bcm !== null && header !== undefined && selector.chipLabel === undefined) {
      const offset = Number(bcm[1]);
      if (offset < header.lines) return { chip: header, info: this.#lineInfo(libc, header, offset) };
    }
    throw new BusError("E_GPIO_LINE_NOT_FOUND", {
      details: { name: selector.name },
      message: `No GPIO line is named ${selector.name} on ${describeChips(chips)}${header === undefined ? ", and none of them is the header's chip (pinctrl-bcm2711, pinctrl-bcm2835 or pinctrl-rp1)" : ""}: list the line names with 'gpioinfo' (header pins are GPIO0 to GPIO27).`,
    });
  }

  /** Requests one line (GPIO_V2_GET_LINE_IOCTL) for this process; it stays ours until close(). */
  async requestLine(selector: GpioLineSelector, options: GpioLineRequestOptions): Promise<CdevGpioLine> {
    const flags = requestFlags(options);
    const libc = await this.#libc.get();
    const { chip, info } = await this.findLine(selector);
    const label = "name" in selector ? selector.name : info.name || `${chip.name} line ${info.offset}`;
    const request = encodeLineRequest({
      offsets: [info.offset],
      consumer: this.#options.consumer ?? "entratool",
      flags,
      attrs: requestAttrs(options),
      eventBufferSize: options.edges === undefined ? 0 : EVENT_BUFFER_SIZE,
      fd: 0,
    });
    const chipFd = this.#openChip(libc, chip.path);
    let lineFd: number;
    try {
      if (libc.ioctl(chipFd, GPIO_V2_GET_LINE_IOCTL, request) < 0) {
        const errno = libc.errno();
        if (errno === Errno.EBUSY) {
          // Asked again now: the holder may have changed since findLine.
          const holder = lineInfo(libc, chipFd, chip.path, info.offset).consumer;
          throw new BusError("E_GPIO_LINE_BUSY", {
            errno: errnoName(errno),
            details: { line: label, chip: chip.name, consumer: holder },
            message: `${label} is already in use by ${holder || "another program or a kernel driver"}: stop it (see 'gpioinfo') or choose another pin.`,
          });
        }
        throw ioctlError(chip.path, `request ${label}`, errno);
      }
      lineFd = decodeLineRequest(request).fd;
    } finally {
      libc.close(chipFd);
    }
    return new CdevGpioLine({
      libc,
      fd: lineFd,
      label,
      clock: this.#options.clock,
      watchable: options.edges !== undefined,
      onError: options.onError,
    });
  }

  async #chipPaths(): Promise<string[]> {
    const dir = this.#options.devDir ?? "/dev";
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      throw new BusError("E_GPIO_NOT_AVAILABLE", { cause: error, details: { dir } });
    }
    const chips = names
      .map((name) => /^gpiochip(\d+)$/.exec(name))
      .filter((match) => match !== null)
      .map((match) => ({ name: match[0], n: Number(match[1]) }))
      .sort((a, b) => a.n - b.n)
      .map(({ name }) => `${dir}/${name}`);
    if (chips.length === 0) throw new BusError("E_GPIO_NOT_AVAILABLE", { details: { dir } });
    return chips;
  }

  #openChip(libc: Libc, path: string): number {
    // O_RDWR as libgpiod opens chips; line requests need a writable chip fd.
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) throw openError("gpio", path, libc.errno());
    return fd;
  }

  #lineInfo(libc: Libc, chip: GpioChip, offset: number): GpioLineInfo {
    const fd = this.#openChip(libc, chip.path);
    try {
      return lineInfo(libc, fd, chip.path, offset);
    } finally {
      libc.close(fd);
    }
  }
}

interface CdevGpioLineInit {
  readonly libc: Libc;
  readonly fd: number;
  readonly label: string;
  readonly clock: Clock;
  readonly watchable: boolean;
  readonly onError: ((error: unknown) => void) | undefined;
}

/**
 * One requested line. While anyone watches it, a copy of the line fd sits in Bun's own epoll set
 * (agent/linux/fd-stream.ts): no timer and no thread of ours, so an idle watch costs nothing, and
 * an edge reaches the listeners within a millisecond or so of the kernel queueing it. Its `at` is
 * the kernel's timestamp all the same, so press durations stay exact however late the event loop
 * gets to it.
 *
 * The kernel frees a line when the last fd on it is closed, and Bun closes its copy a moment
 * after the watch ends: close() waits for that, so that the line can be requested again at once.
 */
export class CdevGpioLine implements GpioLine {
  readonly label: string;
  readonly #init: CdevGpioLineInit;
  readonly #listeners = new Set<(edge: Edge, at: number) => void>();
  /** Watches that ended and are still releasing their copy of the line fd. */
  readonly #releasing = new Set<Promise<void>>();
  #fd: number | undefined;
  #watcher: FdRecordWatcher | undefined;

  constructor(init: CdevGpioLineInit) {
    this.#init = init;
    this.label = init.label;
    this.#fd = init.fd;
  }

  async set(value: 0 | 1): Promise<void> {
    const values = encodeLineValues({ bits: value === 1 ? 1n : 0n, mask: 1n });
    this.#ioctl(GPIO_V2_LINE_SET_VALUES_IOCTL, values, `set ${this.label}`);
  }

  async get(): Promise<0 | 1> {
    const values = encodeLineValues({ bits: 0n, mask: 1n });
    this.#ioctl(GPIO_V2_LINE_GET_VALUES_IOCTL, values, `read ${this.label}`);
    return (decodeLineValues(values).bits & 1n) === 1n ? 1 : 0;
  }

  /** `at` is the kernel's timestamp of the edge, epoch ms (requested on CLOCK_REALTIME). */
  watch(listener: (edge: Edge, at: number) => void): () => void {
    const fd = this.#requireFd();
    if (!this.#init.watchable) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `${this.label} was requested without edge detection: request it as an input with 'edges'.`,
      });
    }
    this.#watcher ??= this.#startWatch(fd);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopWatch();
    };
  }

  /** Ends any watch and closes the line; resolves once the kernel has released it. */
  async close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    this.#listeners.clear();
    this.#stopWatch();
    const released = await Promise.allSettled(this.#releasing);
    this.#init.libc.close(fd);
    const failed = released.find((result) => result.status === "rejected");
    if (failed !== undefined) throw watchError(this.label, failed.reason);
  }

  #startWatch(fd: number): FdRecordWatcher {
    const { libc, clock } = this.#init;
    // The watcher owns (and closes) the fd it is given; the line keeps its own for get() and close().
    const copy = libc.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0) throw ioctlError(this.label, "watch the edges of", libc.errno());
    try {
      const watcher: FdRecordWatcher = new FdRecordWatcher({
        fd: copy,
        recordSize: GPIO_V2_LINE_EVENT_SIZE,
        libc,
        clock,
        onRecord: (record) => this.#edge(record),
        onError: (error) => this.#watchEnded(watcher, error),
      });
      return watcher;
    } catch (error) {
      throw watchError(this.label, error);
    }
  }

  #stopWatch(): void {
    const watcher = this.#watcher;
    if (watcher === undefined) return;
    this.#watcher = undefined;
    const releasing = watcher.close();
    this.#releasing.add(releasing);
    releasing
      .catch((error: unknown) => {
        // Once close() has begun, it reports this itself.
        if (this.#fd !== undefined) this.#init.onError?.(watchError(this.label, error));
      })
      .finally(() => this.#releasing.delete(releasing));
  }

  /** The watch ended by itself (a failed read, or the line fd's end): release it and tell. */
  #watchEnded(watcher: FdRecordWatcher, error: unknown): void {
    if (this.#watcher !== watcher) return;
    this.#stopWatch();
    this.#init.onError?.(watchError(this.label, error));
  }

  #edge(record: Uint8Array): void {
    const event = decodeLineEvent(record);
    const edge: Edge = event.id === GpioLineEventId.RISING_EDGE ? "rising" : "falling";
    const ms = Number(event.timestampNs / 1000n) / 1000;
    for (const listener of [...this.#listeners]) {
      // A throwing listener must not keep the others from the edge, nor end the watch.
      try {
        listener(edge, ms);
      } catch (error) {
        this.#init.onError?.(error);
      }
    }
  }

  #requireFd(): number {
    if (this.#fd === undefined) throw new BusError("E_BUS_CLOSED", { details: { line: this.label } });
    return this.#fd;
  }

  #ioctl(request: number, arg: Uint8Array, what: string): void {
    const fd = this.#requireFd();
    if (this.#init.libc.ioctl(fd, request, arg) < 0)
      throw ioctlError(this.label, what, this.#init.libc.errno());
  }
}

function chipInfo(libc: Libc, fd: number, path: string): GpioChipInfo {
  const buffer = new Uint8Array(GPIOCHIP_INFO_SIZE);
  if (libc.ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, buffer) < 0)
    throw ioctlError(path, "read chip info of", libc.errno());
  return decodeChipInfo(buffer);
}

function lineInfo(libc: Libc, fd: number, path: string, offset: number): GpioLineInfo {
  const buffer = encodeLineInfoQuery(offset);
  if (libc.ioctl(fd, GPIO_V2_GET_LINEINFO_IOCTL, buffer) < 0) {
    throw ioctlError(path, `read line ${offset} of`, libc.errno());
  }
  return decodeLineInfo(buffer);
}

function ioctlError(subject: string, what: string, errno: number | undefined): BusError {
  const name = errnoName(errno);
  if (isUnsupportedErrno(errno)) {
    return new BusError("E_BUS_UNSUPPORTED", {
      errno: name,
      details: { subject },
      message: `The kernel cannot ${what} ${subject} (${name}): GPIO character device v2 needs Linux 5.10 or later on the board itself (qemu-user lacks it).`,
    });
  }
  return new BusError("E_BUS_IO", {
    errno: name,
    details: { subject },
    message: `Cannot ${what} ${subject} (${name}): check the pin configuration and that no other program reconfigured it.`,
  });
}

/** The BusError for a watch that could not start, ended by itself, or was not seen to release its line. */
function watchError(label: string, error: unknown): BusError {
  const details = { line: label };
  if (!(error instanceof FdWatchError)) {
    return new BusError("E_BUS_IO", {
      cause: error,
      details,
      message: `Cannot watch ${label} for edges: restart entratool, and report the log if it happens again.`,
    });
  }
  const errno = error.errno;
  const options = { cause: error, details, ...(errno === undefined ? {} : { errno }) };
  switch (error.reason) {
    case "start":
      return new BusError("E_BUS_IO", {
        ...options,
        message: `Cannot watch ${label} for edges (${errno ?? error.message}): check that no other program reconfigured the pin.`,
      });
    case "read":
      return new BusError("E_BUS_IO", {
        ...options,
        message: `Reading the edges of ${label} failed (${errno ?? "unknown error"}): check that its GPIO chip is still there, then restart entratool.`,
      });
    case "end":
      return new BusError("E_BUS_IO", {
        ...options,
        message: `The kernel ended the edges of ${label} (its GPIO chip went away): restart entratool once the chip is back.`,
      });
    case "release":
      return new BusError("E_BUS_IO", {
        ...options,
        message: `${label} was not seen to be released (${error.message}): restart entratool if the pin is then reported busy.`,
      });
  }
}

/** gpio_v2_line_config.flags for a request; rejects what the kernel would refuse with EINVAL. */
export function requestFlags(options: GpioLineRequestOptions): number {
  const output = options.direction === "output";
  if (output && (options.edges !== undefined || options.debounceMs !== undefined)) {
    throw new BusError("E_BUS_ARGUMENT", {
      message: "Edge detection and debounce apply to inputs only: request the line as an input.",
    });
  }
  let flags = output ? GpioLineFlag.OUTPUT : GpioLineFlag.INPUT;
  if (options.activeLow === true) flags |= GpioLineFlag.ACTIVE_LOW;
  if (options.bias === "pull-up") flags |= GpioLineFlag.BIAS_PULL_UP;
  if (options.bias === "pull-down") flags |= GpioLineFlag.BIAS_PULL_DOWN;
  if (options.bias === "disabled") flags |= GpioLineFlag.BIAS_DISABLED;
  if (options.edges === "rising" || options.edges === "both") flags |= GpioLineFlag.EDGE_RISING;
  if (options.edges === "falling" || options.edges === "both") flags |= GpioLineFlag.EDGE_FALLING;
  // Edge timestamps on the realtime clock (Linux ≥ 5.11), so that they compare with Clock.now():
  // the button's debounce waits until `at + debounceMs` on the injected clock.
  if (options.edges !== undefined) flags |= GpioLineFlag.EVENT_CLOCK_REALTIME;
  return flags;
}

/** The output's initial level and the input's debounce, as config attributes for line 0 (mask 1). */
export function requestAttrs(options: GpioLineRequestOptions): GpioLineConfigAttribute[] {
  const attrs: GpioLineConfigAttribute[] = [];
  if (options.direction === "output") {
    attrs.push({ id: GpioLineAttrId.OUTPUT_VALUES, value: options.initial === 1 ? 1n : 0n, mask: 1n });
  }
  if (options.debounceMs !== undefined) {
    if (!(options.debounceMs >= 0)) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `Invalid debounce ${options.debounceMs} ms: use 0 or more.`,
      });
    }
    attrs.push({
      id: GpioLineAttrId.DEBOUNCE,
      value: BigInt(Math.round(options.debounceMs * 1000)),
      mask: 1n,
    });
  }
  return attrs;
}

function describeChips(chips: readonly GpioChipInfo[]): string {
  if (chips.length === 0) return "no chips";
  return chips.map((chip) => `${chip.name} [${chip.label}]`).join(", ");
}
