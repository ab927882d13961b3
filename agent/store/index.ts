/** The storage layer's public surface. Everything is a class or function; nothing is global. */
export { createFileExclusive, ensurePrivateDir, fsyncDir, writeFileAtomic } from "./atomic.ts";
export { EncryptedFileAdapter, type EncryptedFileAdapterOptions, MAGIC } from "./encrypted-adapter.ts";
export { FileKeyProvider, type FileKeyProviderOptions, KEY_INFO, type KeyProvider } from "./key.ts";
export { FlockLockManager, type FlockLockManagerOptions } from "./lock.ts";
export {
  MachineIdentity,
  type MachineIdentityOptions,
  type MachineIdentitySource,
  UNKNOWN_MACHINE,
} from "./machine.ts";
export { assertValidName, isValidName, NAME_PATTERN, NAME_RULE } from "./names.ts";
export {
  JsonProfileStore,
  type JsonProfileStoreOptions,
  type ProfileValidation,
  validateProfile,
} from "./profiles.ts";
export { FileTokenStore, type FileTokenStoreOptions, type TokenCacheDocument } from "./token-store.ts";
export type { Lock, LockManager, LockOptions, Profile, ProfileStore, TokenStore } from "./types.ts";
