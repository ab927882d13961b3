import { execFile } from "node:child_process";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Libc } from "../../linux/libc.ts";
import {
  type Accounts,
  type GroupEntry,
  type PasswdEntry,
  parseGroupFile,
  parsePasswdFile,
} from "../../linux/peer.ts";

/**
 * Everything `entratool doctor` reads of the machine, in one place and injected: the files under
 * `root` (/proc, /sys, /dev, /etc, /run, /lib: "/" on a board, a scratch tree laid out like a Pi in
 * the tests), the commands it runs (uname, systemctl, dpkg), who runs it and what it runs on.
 */

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
}

/** Runs a command; undefined when it does not exist (or cannot be started). */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult | undefined>;

/** A process's credentials, as the kernel checks them against a device node. */
export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups of this login session (those of /etc/group count only after a new login). */
  readonly groups: readonly number[];
}

export interface Machine {
  readonly root: string;
  readonly run: CommandRunner;
  readonly identity: Identity;
  /** The architecture this binary runs as (process.arch): the userland it needs. */
  readonly arch: string;
  readonly bunVersion: string;
  /** The libc the GPIO character device is queried through; the real one unless a test hands a fake. */
  readonly libc?: Libc | undefined;
}

/** A command gets this long: systemctl waits for a busy manager, and a report must still come. */
const COMMAND_TIMEOUT_MS = 5000;

/** Real commands, with the C locale so that their words are the ones compared with. */
export const runCommand: CommandRunner = (command, args) =>
  new Promise((resolve) => {
    execFile(
      command,
      [...args],
      { timeout: COMMAND_TIMEOUT_MS, encoding: "utf8", env: { ...process.env, LC_ALL: "C" } },
      (error, stdout) => {
        if (error === null) return resolve({ code: 0, stdout });
        if (typeof error.code === "number") return resolve({ code: error.code, stdout });
        // ENOENT (no such command), a timeout or a signal: the command gave no answer.
        resolve(undefined);
      },
    );
  });

/** This process on this machine. */
export function realMachine(): Machine {
  return {
    root: "/",
    run: runCommand,
    identity: {
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      groups: process.getgroups?.() ?? [],
    },
    arch: process.arch,
    bunVersion: process.versions.bun ?? "unknown",
  };
}

/** `path` (absolute, as on the machine) under the machine's root. */
export function at(machine: Machine, path: string): string {
  return join(machine.root, path);
}

/** A text file's content, or undefined when it is absent or unreadable. */
export async function readText(machine: Machine, path: string): Promise<string | undefined> {
  try {
    return await readFile(at(machine, path), "utf8");
  } catch {
    return undefined;
  }
}

/** A device-tree string property: NUL-terminated, sometimes several strings. */
export async function readDeviceTreeString(machine: Machine, path: string): Promise<string | undefined> {
  const text = await readText(machine, path);
  const value = text?.split("\0")[0]?.trim();
  return value ? value : undefined;
}

/** Names in a directory matching `pattern`, in natural order (i2c-2 before i2c-10); none when absent. */
export async function listDir(machine: Machine, path: string, pattern: RegExp): Promise<string[]> {
  const names = await readdir(at(machine, path)).catch(() => [] as string[]);
  return names
    .filter((name) => pattern.test(name))
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

export async function exists(machine: Machine, path: string): Promise<boolean> {
  return stat(at(machine, path)).then(
    () => true,
    () => false,
  );
}

/** A user of /etc/passwd, and a group of /etc/group, as the control socket's peer check reads them. */
export type Account = PasswdEntry;
export type Group = GroupEntry;
export type { Accounts };

/** The user and group databases (/etc/passwd, /etc/group) below the machine's root. */
export async function readAccounts(machine: Machine): Promise<Accounts> {
  return {
    users: parsePasswdFile((await readText(machine, "/etc/passwd")) ?? ""),
    groups: parseGroupFile((await readText(machine, "/etc/group")) ?? ""),
  };
}

/** The groups a named account belongs to by the databases: its primary group and those listing it. */
export function groupsOf(accounts: Accounts, account: Account): Group[] {
  return accounts.groups.filter((group) => group.gid === account.gid || group.members.includes(account.name));
}

export function groupName(accounts: Accounts, gid: number): string {
  return accounts.groups.find((group) => group.gid === gid)?.name ?? String(gid);
}

export function userName(accounts: Accounts, uid: number): string {
  return accounts.users.find((user) => user.uid === uid)?.name ?? String(uid);
}

/** A device node's owner and mode, as the kernel checks them. */
export interface NodeInfo {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly isCharacterDevice: boolean;
}

export async function nodeInfo(machine: Machine, path: string): Promise<NodeInfo | undefined> {
  try {
    const info = await stat(at(machine, path));
    return { mode: info.mode, uid: info.uid, gid: info.gid, isCharacterDevice: info.isCharacterDevice() };
  } catch {
    return undefined;
  }
}

/**
 * Whether `who` may open the node for reading and writing, as the kernel decides without ACLs:
 * root always; the owner by the owner bits alone; a member of the group by the group bits; else the
 * others' bits.
 */
export function canReadWrite(node: NodeInfo, who: Identity): boolean {
  if (who.uid === 0) return true;
  const bits =
    who.uid === node.uid
      ? (node.mode >> 6) & 7
      : who.gid === node.gid || who.groups.includes(node.gid)
        ? (node.mode >> 3) & 7
        : node.mode & 7;
  return (bits & 6) === 6;
}

/** `crw-rw----`, as ls shows it. */
export function modeString(node: NodeInfo): string {
  const kind = node.isCharacterDevice ? "c" : "-";
  const bits = [6, 3, 0]
    .map((shift) => {
      const b = (node.mode >> shift) & 7;
      return `${b & 4 ? "r" : "-"}${b & 2 ? "w" : "-"}${b & 1 ? "x" : "-"}`;
    })
    .join("");
  return `${kind}${bits}`;
}
