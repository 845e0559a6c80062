/**
 * The comparison libbpf makes before it reuses a pinned map (type, key size, value size, max
 * entries, flags), made first: a mismatch becomes a PinnedMapMismatchError naming every difference,
 * and nothing is loaded. (libbpf also compares map_extra, which only bloom filters use; Skein has
 * none, and a difference there would still fail the load, as a VerifierError.)
 */
import { PinnedMapMismatchError, SysError, type MapDifference, type MapProperty } from "./errors.js";
import { RawMap } from "./map.js";

/** What a map is, as far as reusing a pinned one goes. A MapInfo is one. */
export interface MapDefinition {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
}

const COMPARED: readonly MapProperty[] = ["type", "keySize", "valueSize", "maxEntries", "flags"];

/** Every compared property in which `found` differs from `expected`, in a fixed order. */
export function mapDifferences(expected: MapDefinition, found: MapDefinition): MapDifference[] {
  return COMPARED.filter((p) => expected[p] !== found[p]).map((property) => ({
    property,
    expected: expected[property],
    found: found[property],
  }));
}

/**
 * Compares the map pinned at `pinPath` with `expected`. Returns false when nothing is pinned there
 * (a load creates and pins the map), true when the pinned map matches (a load reuses it).
 * Throws PinnedMapMismatchError when it differs, SysError when the pin cannot be read.
 */
export function checkPinnedMap(mapName: string, pinPath: string, expected: MapDefinition): boolean {
  let pinned: RawMap;
  try {
    pinned = RawMap.openPinned(pinPath);
  } catch (err) {
    if (err instanceof SysError && err.code === "ENOENT") return false;
    throw err;
  }
  let differences: MapDifference[];
  try {
    differences = mapDifferences(expected, pinned.info);
  } finally {
    pinned.close();
  }
  if (differences.length > 0) throw new PinnedMapMismatchError(mapName, pinPath, differences);
  return true;
}
