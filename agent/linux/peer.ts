import { errnoName } from "./errno.ts";
import type { Libc } from "./libc.ts";

/**
 * Who is at the other end of a Unix socket, as the kernel says (SO_PEERCRED), and whether such a
 * peer may use the agent's socket. The decision is a pure function of the credentials and the
 * account files' contents, so that tests can hand in any peer and any /etc/group.
 */

/** The credentials of the process that connected (taken by the kernel at connect(2)). */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  /** The peer's effective group id at connect time (its supplementary groups are not included). */
  readonly gid: number;
}

// <asm-generic/socket.h>: the same on x86_64 and arm64.
export const SOL_SOCKET = 1;
export const SO_PEERCRED = 17;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit fields. */
const UCRED_BYTES = 12;

/**
 * The peer of the connected Unix socket `fd`. Throws an Error (with `code`, the errno's name) when
 * the kernel refuses, or when this libc has no getsockopt.
 */
export function peerCredentials(libc: Libc, fd: number): PeerCredentials {
  if (libc.getsockopt === undefined) {
    throw Object.assign(new Error("getsockopt is not available"), { code: "ENOSYS" });
  }
  const value = new Uint8Array(UCRED_BYTES);
  const length = new Uint8Array(4);
  const lengthView = new DataView(length.buffer);
  lengthView.setUint32(0, UCRED_BYTES, true);
  if (libc.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) {
    const code = errnoName(libc.errno());
    throw Object.assign(new Error(`getsockopt(SO_PEERCRED) failed: ${code}`), { code });
  }
  if (lengthView.getUint32(0, true) < UCRED_BYTES) {
    throw Object.assign(new Error("getsockopt(SO_PEERCRED) returned a short struct"), { code: "EINVAL" });
  }
  // Little-endian: the byte order of every Linux Bun runs on (x86_64, arm64).
  const view = new DataView(value.buffer);
  return { pid: view.getInt32(0, true), uid: view.getUint32(4, true), gid: view.getUint32(8, true) };
}

/** One line of /etc/group. */
export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  /** User names listed as members (supplementary members; primary members are in /etc/passwd). */
  readonly members: readonly string[];
}

/** What of one line of /etc/passwd the decision needs. */
export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  /** Primary group. */
  readonly gid: number;
}

/** More lines than any board has; the rest of a longer file is ignored (never a hang or a heap). */
export const MAX_ACCOUNT_LINES = 10_000;

function accountLines(text: string): string[][] {
  const rows: string[][] = [];
  for (const line of text.split("\n", MAX_ACCOUNT_LINES)) {
    // NIS "+" / "-" lines and comments name no local account.
    if (line === "" || line.startsWith("#") || line.startsWith("+") || line.startsWith("-")) continue;
    rows.push(line.split(":"));
  }
  return rows;
}

function id(field: string | undefined): number | undefined {
  if (field === undefined || !/^[0-9]{1,10}$/.test(field)) return undefined;
  const value = Number(field);
  return value <= 0xffffffff ? value : undefined;
}

/** The entries of an /etc/group text (`name:x:gid:user,user`); malformed lines are skipped. */
export function parseGroupFile(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const [name, , gidField, members] of accountLines(text)) {
    const gid = id(gidField);
    if (!name || gid === undefined) continue;
    entries.push({ name, gid, members: (members ?? "").split(",").filter((member) => member !== "") });
  }
  return entries;
}

/** The entries of an /etc/passwd text (`name:x:uid:gid:…`); malformed lines are skipped. */
export function parsePasswdFile(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const [name, , uidField, gidField] of accountLines(text)) {
    const uid = id(uidField);
    const gid = id(gidField);
    if (!name || uid === undefined || gid === undefined) continue;
    entries.push({ name, uid, gid });
  }
  return entries;
}

/** The local account files, parsed. */
export interface Accounts {
  readonly groups: readonly GroupEntry[];
  readonly users: readonly PasswdEntry[];
}

export interface PeerPolicy {
  /** The uid the agent runs as: its own processes are always allowed. */
  readonly selfUid: number;
  /** The socket file's group: its members are allowed (undefined: nobody by group). */
  readonly groupGid: number | undefined;
}

/**
 * Whether `peer` may use the socket: the agent's own user, root, and the members of the socket's
 * group, by the peer's current group id, by its account's primary group (/etc/passwd) or by being
 * listed in /etc/group. `accounts` is needed only for the last two; pass undefined when it could
 * not be read (then only the first three count).
 */
export function peerAllowed(peer: PeerCredentials, policy: PeerPolicy, accounts?: Accounts): boolean {
  if (peer.uid === policy.selfUid || peer.uid === 0) return true;
  const gid = policy.groupGid;
  if (gid === undefined) return false;
  if (peer.gid === gid) return true;
  if (accounts === undefined) return false;
  const user = accounts.users.find((entry) => entry.uid === peer.uid);
  if (user === undefined) return false;
  if (user.gid === gid) return true;
  return accounts.groups.some((group) => group.gid === gid && group.members.includes(user.name));
}

/** Whether the decision needs the account files (the cheap rules did not already allow the peer). */
export function peerNeedsAccounts(peer: PeerCredentials, policy: PeerPolicy): boolean {
  return !(peer.uid === policy.selfUid || peer.uid === 0 || peer.gid === policy.groupGid);
}

/** The account files are small; anything larger is cut (the lines after the cap are not read). */
export const MAX_ACCOUNT_FILE_BYTES = 1024 * 1024;

/**
 * Reads `<dir>/group` and `<dir>/passwd` (default /etc), at most MAX_ACCOUNT_FILE_BYTES of each.
 * Accounts only in LDAP or another NSS source are not seen: on a board, the local files are the
 * accounts. Rejects with the system's error when a file cannot be read.
 */
export async function readAccounts(dir = "/etc"): Promise<Accounts> {
  const read = async (name: string): Promise<string> =>
    Bun.file(`${dir}/${name}`).slice(0, MAX_ACCOUNT_FILE_BYTES).text();
  const [group, passwd] = await Promise.all([read("group"), read("passwd")]);
  return { groups: parseGroupFile(group), users: parsePasswdFile(passwd) };
}
