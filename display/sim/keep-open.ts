/**
 * A bus onto a simulated chip whose close() leaves the chip alone: closing an fd does not unplug
 * the module, and the chip's state must outlive a driver's re-initialisation.
 */
export function keepOpen<T extends { close(): Promise<void> }>(bus: T): T {
  return new Proxy(bus, {
    get: (target, property) => {
      if (property === "close") return async () => undefined;
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
