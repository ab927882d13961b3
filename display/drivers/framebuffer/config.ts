import * as v from "valibot";
import { must, strict } from "../../../agent/core/schema.ts";
import { rotate } from "../../schema.ts";

const DEVICE_RULE = 'a framebuffer device such as "/dev/fb0"';

/** `{ "type": "framebuffer" }`: HDMI through the kernel's framebuffer device. */
export const FramebufferSchema = strict({
  type: v.pipe(v.literal("framebuffer"), v.description("An HDMI screen through /dev/fbN.")),
  device: v.optional(
    v.pipe(v.string(must(DEVICE_RULE)), v.regex(/^\/dev\/fb[0-9]{1,2}$/, must(DEVICE_RULE))),
    "/dev/fb0",
  ),
  rotate,
});

export type FramebufferConfig = v.InferOutput<typeof FramebufferSchema>;

/** N of "/dev/fbN" (sysfs names the device fbN). */
export function framebufferNumber(config: FramebufferConfig): number {
  return Number(config.device.slice("/dev/fb".length));
}
