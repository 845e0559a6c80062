/**
 * One `skeinctl monitor` per node. A BPF ring buffer has a single consumer position shared by every
 * reader: two monitors would each advance it and see only part of the records. The lock is a PID
 * file per bpffs root under /run/skein (tmpfs: gone after a reboot); a file whose process is gone
 * is taken over.
 */
import { mkdirSync, openSync, readFileSync, closeSync, writeSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { CtlError } from "./cli.js";

/** Where monitor locks live. */
export const MONITOR_LOCK_DIR = "/run/skein";

/** The lock file for monitors of `root`. */
export function monitorLockPath(root: string, dir = MONITOR_LOCK_DIR): string {
  return join(dir, `monitor${root.replace(/[^A-Za-z0-9]+/g, "_")}.pid`);
}

/** The live monitor whose PID `path` holds (this process included), or undefined when it is stale. */
function holder(path: string): number | undefined {
  const pid = readPid(path);
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return pid;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("monitor") ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** A held monitor lock; release() removes it (idempotent). */
export interface MonitorLock {
  path: string;
  release(): void;
}

/**
 * Takes the monitor lock of `root`. Throws CtlError naming the running monitor when another one
 * holds it. When the lock directory cannot be written, returns a no-op lock and says so via `warn`.
 */
export function acquireMonitorLock(
  root: string,
  warn: (text: string) => void,
  dir = MONITOR_LOCK_DIR,
): MonitorLock {
  const path = monitorLockPath(root, dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    warn(`cannot create ${dir} (${(err as Error).message}): not checking for other monitors`);
    return { path, release: () => undefined };
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx", 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        warn(`cannot create ${path} (${(err as Error).message}): not checking for other monitors`);
        return { path, release: () => undefined };
      }
      const pid = holder(path);
      if (pid !== undefined && pid !== process.pid)
        throw new CtlError(
          `another skeinctl monitor (pid ${pid}) is reading skn_events under ${root}: a ring buffer has one reader position, ` +
            `so two monitors would each miss the records the other took; stop it (kill -INT ${pid}), or pass --force to read anyway`,
        );
      if (pid === process.pid) throw new CtlError(`a monitor of ${root} is already running in this process`);
      // Left behind by a monitor that died: take it over.
      try {
        unlinkSync(path);
      } catch {
        // Someone else took it over first; the next attempt tells.
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      path,
      release() {
        if (released) return;
        released = true;
        if (readPid(path) === process.pid) {
          try {
            unlinkSync(path);
          } catch {
            // Already gone.
          }
        }
      },
    };
  }
  throw new CtlError(`cannot take ${path}: another monitor keeps recreating it`);
}

function readPid(path: string): number | undefined {
  try {
    return Number(readFileSync(path, "utf8").trim());
  } catch {
    return undefined;
  }
}
