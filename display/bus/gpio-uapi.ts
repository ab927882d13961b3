/**
 * The structs of the GPIO character device uAPI v2 (<linux/gpio.h>, Linux 5.10+), laid out by hand
 * with explicit offsets. The offsets and sizes are those gcc gives for the header on x86_64 and
 * arm64 (checked in test/display/bus/gpio-uapi.test.ts); the header pads every struct explicitly
 * so that they are the same on 32- and 64-bit ABIs. Integers are little-endian: every target we
 * build for (x86_64, arm64 Raspberry Pi OS) is.
 */

/** GPIO_MAX_NAME_SIZE: every name/label/consumer is a NUL-terminated char[32]. */
export const GPIO_MAX_NAME_SIZE = 32;
/** GPIO_V2_LINES_MAX: offsets[] length and the width of the bits/mask bitmaps. */
export const GPIO_V2_LINES_MAX = 64;
/** GPIO_V2_LINE_NUM_ATTRS_MAX */
export const GPIO_V2_LINE_NUM_ATTRS_MAX = 10;

/** enum gpio_v2_line_flag (each _BITULL(n)). */
export const GpioLineFlag = {
  USED: 1 << 0,
  ACTIVE_LOW: 1 << 1,
  INPUT: 1 << 2,
  OUTPUT: 1 << 3,
  EDGE_RISING: 1 << 4,
  EDGE_FALLING: 1 << 5,
  OPEN_DRAIN: 1 << 6,
  OPEN_SOURCE: 1 << 7,
  BIAS_PULL_UP: 1 << 8,
  BIAS_PULL_DOWN: 1 << 9,
  BIAS_DISABLED: 1 << 10,
  EVENT_CLOCK_REALTIME: 1 << 11,
  EVENT_CLOCK_HTE: 1 << 12,
} as const;

/** enum gpio_v2_line_attr_id */
export const GpioLineAttrId = { FLAGS: 1, OUTPUT_VALUES: 2, DEBOUNCE: 3 } as const;

/** enum gpio_v2_line_event_id */
export const GpioLineEventId = { RISING_EDGE: 1, FALLING_EDGE: 2 } as const;

/** struct gpiochip_info: name[32] @0, label[32] @32, __u32 lines @64. */
export const GPIOCHIP_INFO_SIZE = 68;
/** struct gpio_v2_line_attribute: __u32 id @0, __u32 padding @4, union { flags, values, debounce_period_us } @8. */
export const GPIO_V2_LINE_ATTRIBUTE_SIZE = 16;
/** struct gpio_v2_line_config_attribute: attr @0, __aligned_u64 mask @16. */
export const GPIO_V2_LINE_CONFIG_ATTRIBUTE_SIZE = 24;
/** struct gpio_v2_line_config: __aligned_u64 flags @0, __u32 num_attrs @8, padding[5] @12, attrs[10] @32. */
export const GPIO_V2_LINE_CONFIG_SIZE = 272;
/**
 * struct gpio_v2_line_request: __u32 offsets[64] @0, consumer[32] @256, config @288,
 * __u32 num_lines @560, __u32 event_buffer_size @564, padding[5] @568, __s32 fd @588.
 */
export const GPIO_V2_LINE_REQUEST_SIZE = 592;
/**
 * struct gpio_v2_line_info: name[32] @0, consumer[32] @32, __u32 offset @64, __u32 num_attrs @68,
 * __aligned_u64 flags @72, attrs[10] @80, padding[4] @240.
 */
export const GPIO_V2_LINE_INFO_SIZE = 256;
/** struct gpio_v2_line_values: __aligned_u64 bits @0, __aligned_u64 mask @8. */
export const GPIO_V2_LINE_VALUES_SIZE = 16;
/**
 * struct gpio_v2_line_event: __aligned_u64 timestamp_ns @0, __u32 id @8, __u32 offset @12,
 * __u32 seqno @16, __u32 line_seqno @20, padding[6] @24.
 */
export const GPIO_V2_LINE_EVENT_SIZE = 48;

const REQUEST_CONSUMER = 256;
const REQUEST_CONFIG = 288;
const REQUEST_NUM_LINES = 560;
const REQUEST_EVENT_BUFFER_SIZE = 564;
const REQUEST_FD = 588;
const CONFIG_NUM_ATTRS = 8;
const CONFIG_ATTRS = 32;
const CONFIG_ATTRIBUTE_MASK = 16;
const ATTRIBUTE_VALUE = 8;
const INFO_CONSUMER = 32;
const INFO_OFFSET = 64;
const INFO_NUM_ATTRS = 68;
const INFO_FLAGS = 72;
const INFO_ATTRS = 80;
const LE = true;

function view(buffer: Uint8Array): DataView {
  return new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function expectSize(buffer: Uint8Array, size: number, struct: string): void {
  if (buffer.byteLength !== size) {
    throw new RangeError(`struct ${struct} is ${size} bytes, got ${buffer.byteLength}`);
  }
}

/** A char[32] up to its first NUL (the kernel always terminates them). */
function readName(buffer: Uint8Array, offset: number): string {
  const field = buffer.subarray(offset, offset + GPIO_MAX_NAME_SIZE);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end === -1 ? field : field.subarray(0, end));
}

/** Writes `value` as a NUL-terminated char[32], truncated to 31 bytes as the kernel would. */
function writeName(buffer: Uint8Array, offset: number, value: string): void {
  const bytes = new TextEncoder().encode(value).subarray(0, GPIO_MAX_NAME_SIZE - 1);
  buffer.fill(0, offset, offset + GPIO_MAX_NAME_SIZE);
  buffer.set(bytes, offset);
}

export interface GpioChipInfo {
  /** The kernel's name for the chip, e.g. "gpiochip0". */
  readonly name: string;
  /** What the driver calls it, e.g. "pinctrl-bcm2711" (Pi 4) or "pinctrl-rp1" (Pi 5). */
  readonly label: string;
  readonly lines: number;
}

export function encodeChipInfo(info: GpioChipInfo): Uint8Array {
  const buffer = new Uint8Array(GPIOCHIP_INFO_SIZE);
  writeName(buffer, 0, info.name);
  writeName(buffer, GPIO_MAX_NAME_SIZE, info.label);
  view(buffer).setUint32(64, info.lines, LE);
  return buffer;
}

export function decodeChipInfo(buffer: Uint8Array): GpioChipInfo {
  expectSize(buffer, GPIOCHIP_INFO_SIZE, "gpiochip_info");
  return {
    name: readName(buffer, 0),
    label: readName(buffer, GPIO_MAX_NAME_SIZE),
    lines: view(buffer).getUint32(64, LE),
  };
}

/** struct gpio_v2_line_attribute with its mask; `value` is flags, values or debounce_period_us per `id`. */
export interface GpioLineConfigAttribute {
  readonly id: number;
  readonly value: bigint;
  /** Which requested lines (bits index offsets[]) the attribute applies to. */
  readonly mask: bigint;
}

export interface GpioLineRequest {
  readonly offsets: readonly number[];
  readonly consumer: string;
  /** gpio_v2_line_config.flags: the default for every requested line. */
  readonly flags: number;
  readonly attrs: readonly GpioLineConfigAttribute[];
  /** 0 lets the kernel choose (num_lines * 16). */
  readonly eventBufferSize: number;
  /** Filled in by the kernel on success; 0 when encoding. */
  readonly fd: number;
}

export function encodeLineRequest(request: GpioLineRequest): Uint8Array {
  const { offsets, attrs } = request;
  if (offsets.length === 0 || offsets.length > GPIO_V2_LINES_MAX) {
    throw new RangeError(`a line request takes 1 to ${GPIO_V2_LINES_MAX} lines, got ${offsets.length}`);
  }
  if (attrs.length > GPIO_V2_LINE_NUM_ATTRS_MAX) {
    throw new RangeError(`a line request takes at most ${GPIO_V2_LINE_NUM_ATTRS_MAX} attributes`);
  }
  // Zero-filled, which the header requires of every padding field.
  const buffer = new Uint8Array(GPIO_V2_LINE_REQUEST_SIZE);
  const data = view(buffer);
  for (const [index, offset] of offsets.entries()) data.setUint32(index * 4, offset, LE);
  writeName(buffer, REQUEST_CONSUMER, request.consumer);
  data.setBigUint64(REQUEST_CONFIG, BigInt(request.flags), LE);
  data.setUint32(REQUEST_CONFIG + CONFIG_NUM_ATTRS, attrs.length, LE);
  attrs.forEach((attr, index) => {
    const at = REQUEST_CONFIG + CONFIG_ATTRS + index * GPIO_V2_LINE_CONFIG_ATTRIBUTE_SIZE;
    data.setUint32(at, attr.id, LE);
    data.setBigUint64(at + ATTRIBUTE_VALUE, attr.value, LE);
    data.setBigUint64(at + CONFIG_ATTRIBUTE_MASK, attr.mask, LE);
  });
  data.setUint32(REQUEST_NUM_LINES, offsets.length, LE);
  data.setUint32(REQUEST_EVENT_BUFFER_SIZE, request.eventBufferSize, LE);
  data.setInt32(REQUEST_FD, request.fd, LE);
  return buffer;
}

export function decodeLineRequest(buffer: Uint8Array): GpioLineRequest {
  expectSize(buffer, GPIO_V2_LINE_REQUEST_SIZE, "gpio_v2_line_request");
  const data = view(buffer);
  const numLines = data.getUint32(REQUEST_NUM_LINES, LE);
  const numAttrs = data.getUint32(REQUEST_CONFIG + CONFIG_NUM_ATTRS, LE);
  const offsets: number[] = [];
  for (let i = 0; i < Math.min(numLines, GPIO_V2_LINES_MAX); i++) offsets.push(data.getUint32(i * 4, LE));
  const attrs: GpioLineConfigAttribute[] = [];
  for (let i = 0; i < Math.min(numAttrs, GPIO_V2_LINE_NUM_ATTRS_MAX); i++) {
    const at = REQUEST_CONFIG + CONFIG_ATTRS + i * GPIO_V2_LINE_CONFIG_ATTRIBUTE_SIZE;
    attrs.push({
      id: data.getUint32(at, LE),
      value: data.getBigUint64(at + ATTRIBUTE_VALUE, LE),
      mask: data.getBigUint64(at + CONFIG_ATTRIBUTE_MASK, LE),
    });
  }
  return {
    offsets,
    consumer: readName(buffer, REQUEST_CONSUMER),
    flags: Number(data.getBigUint64(REQUEST_CONFIG, LE)),
    attrs,
    eventBufferSize: data.getUint32(REQUEST_EVENT_BUFFER_SIZE, LE),
    fd: data.getInt32(REQUEST_FD, LE),
  };
}

export interface GpioLineAttribute {
  readonly id: number;
  readonly value: bigint;
}

export interface GpioLineInfo {
  /** e.g. "GPIO17" on the Pi header chips; may be empty. */
  readonly name: string;
  /** Who holds the line ("spi0 CS0", "entratool"); empty when free or unnamed. */
  readonly consumer: string;
  readonly offset: number;
  readonly flags: number;
  readonly attrs: readonly GpioLineAttribute[];
}

/** The GPIO_V2_GET_LINEINFO_IOCTL argument: zeroed, with the offset to ask about. */
export function encodeLineInfoQuery(offset: number): Uint8Array {
  const buffer = new Uint8Array(GPIO_V2_LINE_INFO_SIZE);
  view(buffer).setUint32(INFO_OFFSET, offset, LE);
  return buffer;
}

export function encodeLineInfo(info: GpioLineInfo): Uint8Array {
  const buffer = encodeLineInfoQuery(info.offset);
  const data = view(buffer);
  writeName(buffer, 0, info.name);
  writeName(buffer, INFO_CONSUMER, info.consumer);
  data.setUint32(INFO_NUM_ATTRS, info.attrs.length, LE);
  data.setBigUint64(INFO_FLAGS, BigInt(info.flags), LE);
  info.attrs.forEach((attr, index) => {
    const at = INFO_ATTRS + index * GPIO_V2_LINE_ATTRIBUTE_SIZE;
    data.setUint32(at, attr.id, LE);
    data.setBigUint64(at + ATTRIBUTE_VALUE, attr.value, LE);
  });
  return buffer;
}

export function decodeLineInfo(buffer: Uint8Array): GpioLineInfo {
  expectSize(buffer, GPIO_V2_LINE_INFO_SIZE, "gpio_v2_line_info");
  const data = view(buffer);
  const numAttrs = Math.min(data.getUint32(INFO_NUM_ATTRS, LE), GPIO_V2_LINE_NUM_ATTRS_MAX);
  const attrs: GpioLineAttribute[] = [];
  for (let i = 0; i < numAttrs; i++) {
    const at = INFO_ATTRS + i * GPIO_V2_LINE_ATTRIBUTE_SIZE;
    attrs.push({ id: data.getUint32(at, LE), value: data.getBigUint64(at + ATTRIBUTE_VALUE, LE) });
  }
  return {
    name: readName(buffer, 0),
    consumer: readName(buffer, INFO_CONSUMER),
    offset: data.getUint32(INFO_OFFSET, LE),
    flags: Number(data.getBigUint64(INFO_FLAGS, LE)),
    attrs,
  };
}

/** struct gpio_v2_line_values: bit i is the line at offsets[i] of the request. */
export interface GpioLineValues {
  readonly bits: bigint;
  readonly mask: bigint;
}

export function encodeLineValues(values: GpioLineValues): Uint8Array {
  const buffer = new Uint8Array(GPIO_V2_LINE_VALUES_SIZE);
  const data = view(buffer);
  data.setBigUint64(0, values.bits, LE);
  data.setBigUint64(8, values.mask, LE);
  return buffer;
}

export function decodeLineValues(buffer: Uint8Array): GpioLineValues {
  expectSize(buffer, GPIO_V2_LINE_VALUES_SIZE, "gpio_v2_line_values");
  const data = view(buffer);
  return { bits: data.getBigUint64(0, LE), mask: data.getBigUint64(8, LE) };
}

export interface GpioLineEvent {
  /** CLOCK_MONOTONIC unless the line was requested with EVENT_CLOCK_REALTIME. */
  readonly timestampNs: bigint;
  /** GpioLineEventId */
  readonly id: number;
  readonly offset: number;
  readonly seqno: number;
  readonly lineSeqno: number;
}

export function encodeLineEvent(event: GpioLineEvent): Uint8Array {
  const buffer = new Uint8Array(GPIO_V2_LINE_EVENT_SIZE);
  const data = view(buffer);
  data.setBigUint64(0, event.timestampNs, LE);
  data.setUint32(8, event.id, LE);
  data.setUint32(12, event.offset, LE);
  data.setUint32(16, event.seqno, LE);
  data.setUint32(20, event.lineSeqno, LE);
  return buffer;
}

export function decodeLineEvent(buffer: Uint8Array): GpioLineEvent {
  expectSize(buffer, GPIO_V2_LINE_EVENT_SIZE, "gpio_v2_line_event");
  const data = view(buffer);
  return {
    timestampNs: data.getBigUint64(0, LE),
    id: data.getUint32(8, LE),
    offset: data.getUint32(12, LE),
    seqno: data.getUint32(16, LE),
    lineSeqno: data.getUint32(20, LE),
  };
}
