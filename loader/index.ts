/**
 * libbpf-ts: Skein's binding of libbpf.so.1 (through koffi) and of the few system calls around it.
 * The only place in the repository that touches FFI.
 */
export {
  SysError,
  NotSupportedError,
  VerifierError,
  PinnedMapMismatchError,
  errnoName,
  check,
  type MapDifference,
  type MapProperty,
} from "./errors.js";
export { Owned, DisposalStack, takeLeakedResources } from "./resource.js";
export { Fd } from "./fd.js";
export { ObjectSpec, LoadedObject, type ObjectOptions, type MapSpec } from "./object.js";
export { checkPinnedMap, mapDifferences, type MapDefinition } from "./pinned-map.js";
export {
  RawMap,
  MapType,
  mapInfoFromFd,
  numPossibleCpus,
  type MapInfo,
  type PackedUpdateResult,
  type UpdateFlag,
} from "./map.js";
export {
  Program,
  programInfoFromFd,
  programMapIds,
  type ProgramInfo,
  type SkbContext,
  type TestRunInput,
  type TestRunResult,
} from "./program.js";
export {
  ensureClsact,
  destroyClsact,
  tcAttach,
  tcDetach,
  tcQuery,
  type TcDirection,
  type TcSlot,
  type TcFilter,
} from "./tc.js";
export { tcxAttach, tcxDetach, tcxQuery } from "./tcx.js";
export {
  hookAttach,
  hookDetach,
  hookQuery,
  tcxSupported,
  type HookSlot,
  type HookOwner,
  type HookKind,
  type Hooked,
} from "./hook.js";
export {
  BPF_FS_MAGIC,
  DEFAULT_BPFFS_MOUNT,
  ensureBpffsMounted,
  ensurePinRoot,
  isOnBpffs,
  unpin,
  movePin,
  removeEmptyDir,
} from "./bpffs.js";
export { RingBuffer } from "./ringbuf.js";
export { lockExclusive, unlock, interfaceIndex, filesystemType, childrenCpuMs } from "./sys.js";
export {
  ip,
  ipJson,
  ipBatch,
  ipBatchSync,
  ipComplaint,
  batchArg,
  listLinks,
  findLink,
  listRoutes,
  listRules,
  listAddresses,
  IpCommandError,
  type NetnsOption,
  type LinkInfo,
  type RouteInfo,
  type RuleInfo,
  type AddrInfo,
} from "./iproute.js";
export { RawSocket } from "./raw-socket.js";
export { Netns, inNetns } from "./netns.js";
export {
  Rtnetlink,
  NetlinkError,
  type NlAddress,
  type NlLink,
  type NlNeighbour,
  type NlRoute,
  type RouteSpec,
  type VethEnd,
} from "./netlink.js";
