/**
 * The QR encoder as the CLI loads it: an entrypoint of its own in the compiled binary, required
 * only when a device code is shown (agent/main.ts). It lives in agent/ because every lazily loaded
 * entrypoint must share one directory with main.ts for the relative specifiers to resolve there.
 */
export { qrMatrix } from "../display/render/qr.ts";
