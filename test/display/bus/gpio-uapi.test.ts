import { describe, expect, test } from "vitest";
import {
  decodeChipInfo,
  decodeLineEvent,
  decodeLineInfo,
  decodeLineRequest,
  decodeLineValues,
  encodeChipInfo,
  encodeLineEvent,
  encodeLineInfo,
  encodeLineInfoQuery,
  encodeLineRequest,
  encodeLineValues,
  GPIO_V2_LINE_EVENT_SIZE,
  GPIO_V2_LINE_INFO_SIZE,
  GPIO_V2_LINE_REQUEST_SIZE,
  GPIO_V2_LINE_VALUES_SIZE,
  GPIOCHIP_INFO_SIZE,
  GpioLineAttrId,
  GpioLineFlag,
} from "../../../display/bus/gpio-uapi.ts";

const view = (bytes: Uint8Array): DataView => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const ascii = (bytes: Uint8Array, at: number, length: number): string =>
  new TextDecoder().decode(bytes.subarray(at, at + length));

// Sizes and offsets are sizeof/offsetof from gcc on <linux/gpio.h>.
describe("GPIO uAPI v2 structs", () => {
  test("the sizes are those of the kernel header", () => {
    expect(GPIOCHIP_INFO_SIZE).toBe(68);
    expect(GPIO_V2_LINE_INFO_SIZE).toBe(256);
    expect(GPIO_V2_LINE_REQUEST_SIZE).toBe(592);
    expect(GPIO_V2_LINE_EVENT_SIZE).toBe(48);
    expect(GPIO_V2_LINE_VALUES_SIZE).toBe(16);
  });

  test("enum gpio_v2_line_flag bits", () => {
    expect(GpioLineFlag.ACTIVE_LOW).toBe(2);
    expect(GpioLineFlag.OUTPUT).toBe(8);
    expect(GpioLineFlag.EDGE_FALLING).toBe(32);
    expect(GpioLineFlag.BIAS_PULL_UP).toBe(256);
  });

  test("gpiochip_info: label at 32, lines at 64", () => {
    const info = { name: "gpiochip0", label: "pinctrl-bcm2711", lines: 58 };
    const bytes = encodeChipInfo(info);
    expect(bytes.length).toBe(68);
    expect(ascii(bytes, 32, 15)).toBe("pinctrl-bcm2711");
    expect(bytes[47]).toBe(0);
    expect(view(bytes).getUint32(64, true)).toBe(58);
    expect(decodeChipInfo(bytes)).toEqual(info);
    expect(() => decodeChipInfo(new Uint8Array(64))).toThrow(RangeError);
  });

  test("gpio_v2_line_request: consumer 256, config 288, attrs 320, num_lines 560, fd 588", () => {
    const request = {
      offsets: [17],
      consumer: "entratool",
      flags: GpioLineFlag.OUTPUT | GpioLineFlag.ACTIVE_LOW,
      attrs: [{ id: GpioLineAttrId.OUTPUT_VALUES, value: 1n, mask: 1n }],
      eventBufferSize: 64,
      fd: 0,
    };
    const bytes = encodeLineRequest(request);
    const data = view(bytes);
    expect(bytes.length).toBe(592);
    expect(data.getUint32(0, true)).toBe(17);
    expect(ascii(bytes, 256, 9)).toBe("entratool");
    expect(data.getBigUint64(288, true)).toBe(10n);
    expect(data.getUint32(296, true)).toBe(1); // config.num_attrs
    expect(data.getUint32(320, true)).toBe(2); // attrs[0].attr.id
    expect(data.getBigUint64(328, true)).toBe(1n); // attrs[0].attr.values
    expect(data.getBigUint64(336, true)).toBe(1n); // attrs[0].mask
    expect(data.getUint32(560, true)).toBe(1);
    expect(data.getUint32(564, true)).toBe(64);
    expect(decodeLineRequest(bytes)).toEqual(request);
    data.setInt32(588, 7, true); // the kernel's answer
    expect(decodeLineRequest(bytes).fd).toBe(7);
  });

  test("a consumer longer than 31 bytes is truncated and stays NUL-terminated", () => {
    const bytes = encodeLineRequest({
      offsets: [1],
      consumer: "x".repeat(40),
      flags: GpioLineFlag.INPUT,
      attrs: [],
      eventBufferSize: 0,
      fd: 0,
    });
    expect(bytes[256 + 31]).toBe(0);
    expect(decodeLineRequest(bytes).consumer).toBe("x".repeat(31));
  });

  test("a request outside 1–64 lines or over 10 attributes is refused", () => {
    const base = { consumer: "c", flags: 0, attrs: [], eventBufferSize: 0, fd: 0 };
    expect(() => encodeLineRequest({ ...base, offsets: [] })).toThrow(RangeError);
    expect(() => encodeLineRequest({ ...base, offsets: new Array(65).fill(0) })).toThrow(RangeError);
    const attrs = new Array(11).fill({ id: 1, value: 0n, mask: 1n });
    expect(() => encodeLineRequest({ ...base, offsets: [0], attrs })).toThrow(RangeError);
  });

  test("gpio_v2_line_info: consumer 32, offset 64, num_attrs 68, flags 72, attrs 80", () => {
    const info = {
      name: "GPIO17",
      consumer: "spi0 CS0",
      offset: 17,
      flags: GpioLineFlag.USED | GpioLineFlag.OUTPUT,
      attrs: [{ id: GpioLineAttrId.DEBOUNCE, value: 5000n }],
    };
    const bytes = encodeLineInfo(info);
    const data = view(bytes);
    expect(ascii(bytes, 0, 6)).toBe("GPIO17");
    expect(ascii(bytes, 32, 8)).toBe("spi0 CS0");
    expect(data.getUint32(64, true)).toBe(17);
    expect(data.getUint32(68, true)).toBe(1);
    expect(data.getBigUint64(72, true)).toBe(9n);
    expect(data.getUint32(80, true)).toBe(3);
    expect(data.getBigUint64(88, true)).toBe(5000n);
    expect(decodeLineInfo(bytes)).toEqual(info);
    const query = encodeLineInfoQuery(40);
    expect(query.length).toBe(256);
    expect(view(query).getUint32(64, true)).toBe(40);
  });

  test("gpio_v2_line_values and gpio_v2_line_event round-trip at their offsets", () => {
    const values = encodeLineValues({ bits: 1n, mask: 3n });
    expect(view(values).getBigUint64(8, true)).toBe(3n);
    expect(decodeLineValues(values)).toEqual({ bits: 1n, mask: 3n });
    const event = { timestampNs: 123_456_789_012n, id: 2, offset: 17, seqno: 5, lineSeqno: 4 };
    const bytes = encodeLineEvent(event);
    expect(bytes.length).toBe(48);
    expect(view(bytes).getUint32(8, true)).toBe(2);
    expect(view(bytes).getUint32(20, true)).toBe(4);
    expect(decodeLineEvent(bytes)).toEqual(event);
  });
});
