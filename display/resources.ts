import { formatI2CAddress } from "./bus/errors.ts";
import type { Claim, DriverLike, Opened } from "./types.ts";

/**
 * What a driver's opening has opened so far (a bus, then GPIO lines…), closed newest first: when a
 * later step fails, and when the display is released.
 */
export class Resources {
  readonly #closers: Array<() => Promise<void>> = [];

  add<T extends { close(): Promise<void> }>(resource: T): T {
    this.#closers.push(() => resource.close());
    return resource;
  }

  async release(): Promise<void> {
    for (const close of this.#closers.splice(0).reverse()) await close().catch(() => undefined);
  }

  /** `driver`, released by closing everything added. */
  opened(driver: DriverLike): Opened {
    return { driver, release: () => this.release() };
  }
}

/** Runs `build` with fresh Resources; when it fails, everything it added is closed before the error goes on. */
export async function openWith(build: (resources: Resources) => Promise<Opened>): Promise<Opened> {
  const resources = new Resources();
  try {
    return await build(resources);
  } catch (error) {
    await resources.release();
    throw error;
  }
}

/** An I2C display: where it is attached, for logs, and the address it takes on its bus. */
export const onI2C = {
  where: (config: { readonly bus: number; readonly address: number }): string =>
    ` on I2C bus ${config.bus} at ${formatI2CAddress(config.address)}`,
  claims: (config: { readonly bus: number; readonly address: number }): readonly Claim[] => [
    { resource: `I2C bus ${config.bus} address ${formatI2CAddress(config.address)}`, field: ["address"] },
  ],
};
