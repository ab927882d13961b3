import { join } from "node:path";
import { Errno } from "../../../agent/linux/errno.ts";
import type { Libc } from "../../../agent/linux/libc.ts";
import {
  decodeLineInfo,
  decodeLineRequest,
  decodeLineValues,
  encodeChipInfo,
  encodeLineEvent,
  encodeLineInfo,
  encodeLineValues,
  type GpioLineEvent,
  GpioLineFlag,
  type GpioLineRequest,
} from "../../../display/bus/gpio-uapi.ts";
import {
  GPIO_GET_CHIPINFO_IOCTL,
  GPIO_V2_GET_LINE_IOCTL,
  GPIO_V2_GET_LINEINFO_IOCTL,
  GPIO_V2_LINE_GET_VALUES_IOCTL,
  GPIO_V2_LINE_SET_VALUES_IOCTL,
} from "../../../display/bus/ioctl.ts";
import { fdsOn, fdTarget, type KernelFds } from "../../linux/kernel-fds.ts";
import { type FakeDevice, FakeLibc } from "./fake-libc.ts";

export interface FakeChip {
  readonly node: string;
  readonly name: string;
  readonly label: string;
  readonly lineNames: readonly string[];
  /** offset → consumer of lines already held by someone else. */
  readonly held?: ReadonlyMap<number, string>;
}

/** The Raspberry Pi 4's firmware GPIO expander (gpiochip1), its lines as the device tree names them. */
export const PI4_EXPANDER: Omit<FakeChip, "node"> = {
  name: "gpiochip1",
  label: "raspberrypi-exp-gpio",
  lineNames: ["BT_ON", "WL_ON", "PWR_LED_OFF", "GLOBAL_RESET", "VDD_SD_IO_SEL", "CAM_GPIO", "SD_PWR_ON", ""],
};

/** A line we requested: a real pipe stands for it, its read end for the line fd. */
interface RequestedLine {
  /** What /proc/self/fd shows for the pipe ("pipe:[1234]"). */
  readonly target: string;
  readonly writeEnd: number;
}

/**
 * The GPIO character device, uAPI v2, played over FakeLibc. Chips and their lines are fakes, but a
 * requested line's fd is the read end of a real pipe: the kernel queues edge events there (`emit`
 * writes real encoded gpio_v2_line_event structs), so whatever waits on the fd meets a real kernel
 * object. As the real kernel does, a line stays requested until every fd on it is closed (dups
 * included): requesting it again before that fails with EBUSY.
 */
export class FakeGpioKernel {
  readonly libc: FakeLibc;
  readonly requests: GpioLineRequest[] = [];
  /** Last value set on each requested line fd. */
  readonly levels = new Map<number, bigint>();
  readonly #fds: KernelFds;
  readonly #lines = new Map<string, RequestedLine>();

  constructor(
    dir: string,
    chips: readonly FakeChip[],
    real: { readonly libc: Libc; readonly fds: KernelFds },
  ) {
    this.libc = new FakeLibc({ real: real.libc });
    this.#fds = real.fds;
    for (const chip of chips) this.libc.devices.set(join(dir, chip.node), this.#chip(chip));
  }

  /** Queues edge events on the line at `offset` of chip `name` (the last request of it). */
  emit(chip: string, offset: number, ...events: GpioLineEvent[]): void {
    const bytes = events.map(encodeLineEvent);
    const all = new Uint8Array(bytes.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of bytes) {
      all.set(b, at);
      at += b.length;
    }
    this.write(chip, offset, all);
  }

  /** Raw bytes into the line's event queue: whole events or any part of them. */
  write(chip: string, offset: number, bytes: Uint8Array): void {
    this.#fds.write(this.#line(chip, offset).writeEnd, bytes);
  }

  /** Ends the line's event queue, as a removed chip does: reads then see the end of the file. */
  endEvents(chip: string, offset: number): void {
    const line = this.#line(chip, offset);
    this.#fds.close(line.writeEnd);
    this.#lines.delete(`${chip}/${offset}`);
  }

  /** What /proc/self/fd shows for the fds of the line ("pipe:[1234]"). */
  target(chip: string, offset: number): string {
    return this.#line(chip, offset).target;
  }

  /** Whether any fd of this process still holds the line (the request's fd or a copy of it). */
  isHeld(chip: string, offset: number): boolean {
    const line = this.#lines.get(`${chip}/${offset}`);
    return line !== undefined && fdsOn(line.target, "read").length > 0;
  }

  /** Closes the write ends of every pipe (call when the test is done). */
  dispose(): void {
    for (const line of this.#lines.values()) this.#fds.close(line.writeEnd);
    this.#lines.clear();
  }

  #line(chip: string, offset: number): RequestedLine {
    const line = this.#lines.get(`${chip}/${offset}`);
    if (line === undefined) throw new Error(`${chip} line ${offset} was never requested`);
    return line;
  }

  #chip(chip: FakeChip): FakeDevice {
    return {
      ioctl: (request, arg) => {
        if (typeof arg === "number") return { errno: Errno.EINVAL };
        if (request === GPIO_GET_CHIPINFO_IOCTL) {
          arg.set(encodeChipInfo({ name: chip.name, label: chip.label, lines: chip.lineNames.length }));
          return 0;
        }
        if (request === GPIO_V2_GET_LINEINFO_IOCTL) {
          const { offset } = decodeLineInfo(arg);
          const consumer = chip.held?.get(offset) ?? (this.isHeld(chip.name, offset) ? "entratool" : "");
          const flags = consumer === "" ? GpioLineFlag.INPUT : GpioLineFlag.USED | GpioLineFlag.OUTPUT;
          arg.set(encodeLineInfo({ name: chip.lineNames[offset] ?? "", consumer, offset, flags, attrs: [] }));
          return 0;
        }
        if (request === GPIO_V2_GET_LINE_IOCTL) {
          const decoded = decodeLineRequest(arg);
          this.requests.push(decoded);
          if (decoded.offsets.some((o) => chip.held?.has(o) || this.isHeld(chip.name, o))) {
            return { errno: Errno.EBUSY };
          }
          const [readEnd, writeEnd] = this.#fds.pipe();
          for (const offset of decoded.offsets) {
            const key = `${chip.name}/${offset}`;
            const previous = this.#lines.get(key);
            if (previous !== undefined) this.#fds.close(previous.writeEnd);
            this.#lines.set(key, { target: fdTarget(readEnd) ?? "", writeEnd });
          }
          this.libc.attachReal(readEnd, this.#lineDevice());
          new DataView(arg.buffer, arg.byteOffset).setInt32(588, readEnd, true);
          return 0;
        }
        return { errno: Errno.ENOTTY };
      },
    };
  }

  #lineDevice(): FakeDevice {
    let level = 0n;
    return {
      ioctl: (request, arg) => {
        if (typeof arg === "number") return { errno: Errno.EINVAL };
        const { bits, mask } = decodeLineValues(arg);
        if (request === GPIO_V2_LINE_SET_VALUES_IOCTL) {
          level = (level & ~mask) | (bits & mask);
          this.levels.set(0, level);
          return 0;
        }
        if (request === GPIO_V2_LINE_GET_VALUES_IOCTL) {
          arg.set(encodeLineValues({ bits: level & mask, mask }));
          return 0;
        }
        return { errno: Errno.ENOTTY };
      },
    };
  }
}
