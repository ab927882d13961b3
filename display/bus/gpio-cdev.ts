import { readdir } from "node:fs/promises";
import type { Clock } from "../../agent/core/clock.ts";
import { isAbortError } from "../../agent/core/errors.ts";
import { Errno, errnoName } from "../../agent/linux/errno.ts";
import {
  F_GETFL,
  F_SETFL,
  type LazyLibc,
  type Libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
} from "../../agent/linux/libc.ts";
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
  /** Paces the edge-event polling (see CdevGpioLine.watch). */
  readonly clock: Clock;
  /** Where /dev/gpiochip* live; "/dev" unless a test points elsewhere. */
  readonly devDir?: string;
  /** Shown by `gpioinfo` as the holder of our lines; "entratool" by default. */
  readonly consumer?: string;
  /** How often a watched line's fd is read for edge events, in ms; 10 by default. */
  readonly pollMs?: number;
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
   * Told when polling for edge events fails (a BusError; the watch then stops) or a listener
   * throws (its error; polling goes on). Without it such errors are dropped.
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
 * Edge events the kernel buffers per line between two polls (event_buffer_size). The default,
 * 16, could overflow during switch bounce at a 10 ms poll; the kernel caps this at 1024.
 */
const EVENT_BUFFER_SIZE = 64;

/**
 * The GPIO character device, uAPI v2 (<linux/gpio.h>, Linux 5.10+). Lines are found by name and
 * chips by label, never by number: the Pi 5 header chip moved from gpiochip4 to gpiochip0 in
 * kernel 6.6.45. Every chip is opened, queried and closed per lookup; only requested
 * lines keep an fd.
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

  /** Finds a line by name over every chip (or the one labelled `chipLabel`), or by chip and offset. */
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
    throw new BusError("E_GPIO_LINE_NOT_FOUND", {
      details: { name: selector.name },
      message: `No GPIO line is named ${selector.name} on ${describeChips(chips)}: list the line names with 'gpioinfo' (header pins are GPIO0 to GPIO27).`,
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
    if (options.edges !== undefined) {
      // Reads of a line fd block until an event arrives; O_NONBLOCK makes an empty queue EAGAIN.
      const status = libc.fcntl(lineFd, F_GETFL, 0);
      if (status < 0 || libc.fcntl(lineFd, F_SETFL, status | O_NONBLOCK) < 0) {
        const errno = libc.errno();
        libc.close(lineFd);
        throw ioctlError(chip.path, `make ${label} non-blocking`, errno);
      }
    }
    return new CdevGpioLine({
      libc,
      fd: lineFd,
      label,
      clock: this.#options.clock,
      pollMs: this.#options.pollMs ?? 10,
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
  readonly pollMs: number;
  readonly watchable: boolean;
  readonly onError: ((error: unknown) => void) | undefined;
}

/**
 * One requested line. Edge events are read from the line fd, non-blocking, every `pollMs` on the
 * injected clock: Bun has no epoll for arbitrary fds and a blocking read would stall
 * the event loop. An edge is thus seen up to `pollMs` (10 ms by default) plus timer jitter late,
 * at the cost of one read(2) per poll; its `at` is the kernel's timestamp, so press durations
 * stay exact whatever the poll latency.
 */
export class CdevGpioLine implements GpioLine {
  readonly label: string;
  readonly #init: CdevGpioLineInit;
  readonly #listeners = new Set<(edge: Edge, at: number) => void>();
  #fd: number | undefined;
  #polling: AbortController | undefined;

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
    this.#requireFd();
    if (!this.#init.watchable) {
      throw new BusError("E_BUS_ARGUMENT", {
        message: `${this.label} was requested without edge detection: request it as an input with 'edges'.`,
      });
    }
    this.#listeners.add(listener);
    if (this.#polling === undefined) {
      this.#polling = new AbortController();
      void this.#poll(this.#polling.signal);
    }
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopPolling();
    };
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    this.#listeners.clear();
    this.#stopPolling();
    this.#init.libc.close(fd);
  }

  #stopPolling(): void {
    this.#polling?.abort();
    this.#polling = undefined;
  }

  async #poll(signal: AbortSignal): Promise<void> {
    const { libc, clock, pollMs } = this.#init;
    // Room for 16 events per read(2); the kernel only returns whole events.
    const buffer = new Uint8Array(GPIO_V2_LINE_EVENT_SIZE * 16);
    for (;;) {
      try {
        await clock.sleep(pollMs, signal);
      } catch (error) {
        if (signal.aborted || isAbortError(error)) return;
        throw error;
      }
      const fd = this.#fd;
      if (fd === undefined || signal.aborted) return;
      for (;;) {
        const count = libc.read(fd, buffer);
        if (count < 0) {
          const errno = libc.errno();
          if (errno === Errno.EINTR) continue;
          if (errno === Errno.EAGAIN) break;
          this.#stopPolling();
          this.#init.onError?.(ioctlError(this.label, "read edge events of", errno));
          return;
        }
        for (let at = 0; at + GPIO_V2_LINE_EVENT_SIZE <= count; at += GPIO_V2_LINE_EVENT_SIZE) {
          const event = decodeLineEvent(buffer.subarray(at, at + GPIO_V2_LINE_EVENT_SIZE));
          const edge: Edge = event.id === GpioLineEventId.RISING_EDGE ? "rising" : "falling";
          const ms = Number(event.timestampNs / 1000n) / 1000;
          for (const listener of [...this.#listeners]) {
            // A throwing listener must not end the polling (or become an unhandled rejection).
            try {
              listener(edge, ms);
            } catch (error) {
              this.#init.onError?.(error);
            }
          }
        }
        if (count < buffer.length) break;
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
