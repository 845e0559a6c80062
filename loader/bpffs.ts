/** bpffs: where pinned maps and programs live. Not mounted on a fresh machine. */
import { lstatSync, mkdirSync, readdirSync, renameSync, rmdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { SysError } from "./errors.js";
import { filesystemType, mount } from "./sys.js";

export const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_BPFFS_MOUNT = "/sys/fs/bpf";

/** True when `path` is on a bpf filesystem. */
export function isOnBpffs(path: string): boolean {
  try {
    return filesystemType(path) === BPF_FS_MAGIC;
  } catch (err) {
    if (err instanceof SysError && err.code === "ENOENT") return false;
    throw err;
  }
}

/**
 * Mounts bpffs at `mountPoint` unless one is there. Returns true when it mounted.
 * Throws SysError (EPERM without CAP_SYS_ADMIN).
 */
export function ensureBpffsMounted(mountPoint: string = DEFAULT_BPFFS_MOUNT): boolean {
  if (isOnBpffs(mountPoint)) return false;
  mkdirSync(mountPoint, { recursive: true });
  mount("bpf", mountPoint, "bpf", "mode=0700");
  return true;
}

/**
 * Makes sure `root` is a directory on bpffs, mounting bpffs at /sys/fs/bpf when `root` lies under
 * it and nothing is mounted yet. Throws when `root` would not be on bpffs.
 */
export function ensurePinRoot(root: string): void {
  if (root === DEFAULT_BPFFS_MOUNT || root.startsWith(`${DEFAULT_BPFFS_MOUNT}/`)) ensureBpffsMounted();
  let probe = root;
  while (!pathExists(probe)) probe = dirname(probe);
  if (!isOnBpffs(probe))
    throw new Error(`${root} is not on a bpf filesystem: mount one (mount -t bpf bpf DIR)`);
  mkdirSync(root, { recursive: true, mode: 0o700 });
}

function pathExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Removes a pin; returns false when nothing was pinned there. */
export function unpin(path: string): boolean {
  // bpffs answers unlink of a missing name with EPERM, not ENOENT: look first.
  if (!pathExists(path)) return false;
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

/** Atomically moves a pin (bpffs supports rename), replacing what was at `to`. */
export function movePin(from: string, to: string): void {
  renameSync(from, to);
}

/** Removes `dir` if it is empty; returns whether it is gone. */
export function removeEmptyDir(dir: string): boolean {
  try {
    if (readdirSync(dir).length > 0) return false;
    rmdirSync(dir);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw err;
  }
}
