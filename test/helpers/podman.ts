/**
 * podman 4.3 with storage and configuration of its own under a work directory (what this machine's
 * podman needs: runc, cgroupfs, file events, the CNI network backend), and the release of that
 * storage so the directory can be deleted.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** containers.conf for podman with its storage under `work`; `cni` points the CNI backend at plugins and networks. */
export function containersConf(
  work: string,
  cni?: { pluginDirs: string[]; networkConfigDir: string },
): string {
  return [
    "[containers]",
    'default_ulimits = ["nofile=1024:1024","nproc=4096:4096"]',
    "[engine]",
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${join(work, "events.log")}"`,
    "[network]",
    'network_backend = "cni"',
    ...(cni === undefined
      ? []
      : [
          `cni_plugin_dirs = [${cni.pluginDirs.map((d) => JSON.stringify(d)).join(", ")}]`,
          `network_config_dir = "${cni.networkConfigDir}"`,
        ]),
    "",
  ].join("\n");
}

/** podman's global flags that keep its storage under `work`. */
export function storageFlags(work: string): string[] {
  return ["--root", join(work, "root"), "--runroot", join(work, "runroot"), "--tmpdir", join(work, "tmp")];
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Unmounts what podman left mounted under `work` (its overlay driver bind-mounts its own
 * directory), deepest first, so that `work` can be deleted. conmon runs `podman container cleanup`
 * after a container exits, and that mounts the storage again: so this waits until no process uses
 * the storage, and unmounts again until nothing is left. Throws when that takes over 30 s.
 */
export async function releaseStorage(work: string): Promise<void> {
  const root = join(work, "root");
  const deadline = Date.now() + 30_000;
  for (;;) {
    // Processes of this storage (podman cleanup, conmon) name it in their arguments.
    const users = spawnSync("pgrep", ["-f", "--", root], { encoding: "utf8" });
    const mounts = mountsUnder(work);
    if (users.status !== 0 && mounts.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(
        `podman storage under ${work} still in use: processes ${users.stdout.trim() || "none"}; mounts ${mounts.join(", ") || "none"}`,
      );
    for (const m of mounts) spawnSync("umount", [m]);
    if (users.status === 0) await new Promise((r) => setTimeout(r, 200));
  }
}
