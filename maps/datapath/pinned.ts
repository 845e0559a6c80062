/**
 * The node's datapath in bpffs: load (or adopt) and pin, unload. Maps are pinned by libbpf by name
 * and reused across loads; programs are pinned by us and kept when the pinned one is identical.
 */
import { join } from "node:path";
import { existsSync } from "node:fs";
import {
  PinnedMapMismatchError,
  Program,
  RawMap,
  SysError,
  ensurePinRoot,
  movePin,
  removeEmptyDir,
  unpin,
} from "../../loader/index.js";
import { PINNED_MAPS, PROGRAM_NAMES, RETIRED_PINS, pinPath, type ProgramName } from "../pins.js";
import { SETTINGS_SIZE } from "../settings.js";
import { openDatapathSpec, type DatapathOptions } from "./spec.js";

export interface PinnedProgramReport {
  name: ProgramName;
  /** pinned: nothing was there; adopted: the pinned one is identical and stays; replaced: swapped in. */
  action: "pinned" | "adopted" | "replaced";
  id: number;
  /** Id of the program that was pinned before, when replaced. */
  previousId?: number;
}

export interface PinnedLoadReport {
  root: string;
  programs: PinnedProgramReport[];
  maps: { name: string; action: "created" | "reused" }[];
}

/** Settings a loaded program runs with, read from its .rodata map; undefined when it has none. */
function programSettings(program: Program): Buffer | undefined {
  for (const id of program.mapIds()) {
    let map: RawMap;
    try {
      map = RawMap.fromId(id);
    } catch {
      continue;
    }
    try {
      if (!map.info.name.endsWith(".rodata")) continue;
      const value = map.lookup(Buffer.alloc(4));
      return value?.subarray(0, SETTINGS_SIZE);
    } finally {
      map.close();
    }
  }
  return undefined;
}

function identical(a: Program, b: Program): boolean {
  if (a.info().tag !== b.info().tag) return false;
  const sa = programSettings(a);
  const sb = programSettings(b);
  return sa !== undefined && sb !== undefined && sa.equals(sb);
}

/**
 * Mounts bpffs if needed, loads the object with its maps pinned under `root` (reusing compatible
 * pinned maps), and pins each program, keeping an identical pinned one. A replaced pin is swapped
 * atomically (rename), so CNI ADDs never see it missing; re-attaching interfaces to the new
 * programs is the caller's job (see attach.ts). Throws PinnedMapMismatchError, before loading
 * anything, when a pinned map differs from this build's (layout or size changed: the message says
 * what to do), VerifierError, SysError.
 */
export function loadPinnedDatapath(root: string, options: DatapathOptions = {}): PinnedLoadReport {
  ensurePinRoot(root);
  const hadMap = new Map(PINNED_MAPS.map((m) => [m, existsSync(pinPath(root, m))] as const));
  let loaded;
  {
    using spec = openDatapathSpec(options, root);
    try {
      loaded = spec.load();
    } catch (err) {
      if (err instanceof PinnedMapMismatchError)
        throw new PinnedMapMismatchError(err.mapName, err.pinPath, err.differences, {
          hint:
            `its layout or size changed (a new build or new settings); run 'skeinctl datapath unload ` +
            `--bpffs-root ${root}' on a drained node, or keep the old settings`,
          cause: err,
        });
      throw err;
    }
  }
  const report: PinnedLoadReport = {
    root,
    programs: [],
    maps: PINNED_MAPS.map((name) => ({ name, action: hadMap.get(name) === true ? "reused" : "created" })),
  };
  try {
    for (const name of PROGRAM_NAMES) {
      using fresh = loaded.program(name);
      const path = pinPath(root, name);
      let old: Program | undefined;
      try {
        old = Program.openPinned(path);
      } catch (err) {
        if (!(err instanceof SysError && err.code === "ENOENT")) throw err;
      }
      if (old === undefined) {
        fresh.pin(path);
        report.programs.push({ name, action: "pinned", id: fresh.info().id });
        continue;
      }
      try {
        if (identical(old, fresh)) {
          report.programs.push({ name, action: "adopted", id: old.info().id });
          continue;
        }
        // bpffs refuses names with dots.
        const tmp = `${path}_next`;
        unpin(tmp);
        fresh.pin(tmp);
        movePin(tmp, path);
        report.programs.push({ name, action: "replaced", id: fresh.info().id, previousId: old.info().id });
      } finally {
        old.close();
      }
    }
  } finally {
    loaded.close();
  }
  // Programs attached to interfaces keep an unpinned retired map alive until they are replaced.
  for (const name of RETIRED_PINS) unpin(join(root, name));
  return report;
}

/** True when every program and map of the datapath is pinned under `root`. */
export function isDatapathPinned(root: string): boolean {
  return [...PROGRAM_NAMES, ...PINNED_MAPS].every((n) => existsSync(pinPath(root, n)));
}

/**
 * Removes exactly the pins loadPinnedDatapath makes, then `root` if it is left empty. Programs still
 * attached to interfaces keep running until those interfaces go. Returns the pins removed.
 */
export function unloadPinnedDatapath(root: string): string[] {
  const removed: string[] = [];
  for (const name of [...PROGRAM_NAMES, ...PINNED_MAPS]) {
    if (unpin(pinPath(root, name))) removed.push(name);
    unpin(`${pinPath(root, name)}_next`);
  }
  for (const name of RETIRED_PINS) if (unpin(join(root, name))) removed.push(name);
  removeEmptyDir(root);
  return removed;
}
