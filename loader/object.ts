/**
 * ELF objects. `ObjectSpec.open()` parses and configures (no kernel objects yet); `load()` creates
 * the maps and programs in the kernel and hands them to a `LoadedObject`.
 */
import { NotSupportedError, SysError, VerifierError, check } from "./errors.js";
import { Fd } from "./fd.js";
import {
  copyFromPointer,
  copyToPointer,
  lastErrno,
  libbpf,
  objectOpenOpts,
  sizeOf,
  type Pointer,
} from "./ffi.js";
import { withLibbpfLog } from "./log.js";
import { RawMap } from "./map.js";
import { checkPinnedMap } from "./pinned-map.js";
import { Program } from "./program.js";
import { Owned } from "./resource.js";
import { existsSync } from "node:fs";

export interface ObjectOptions {
  /**
   * Directory where maps declared with `pinning = LIBBPF_PIN_BY_NAME` are pinned, or reused when
   * something compatible is pinned there already. Without it, no map is pinned: the load is private.
   */
  pinRoot?: string;
}

export interface MapSpec {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* map flags. */
  flags: number;
  /** .rodata, .bss and friends, which libbpf makes from global variables. */
  internal: boolean;
}

interface Handles {
  obj: Pointer;
  maps: Map<string, Pointer>;
  programs: Map<string, Pointer>;
}

function collect(obj: Pointer): Handles {
  const lib = libbpf();
  const maps = new Map<string, Pointer>();
  const programs = new Map<string, Pointer>();
  for (
    let m = lib.bpf_object__next_map(obj, null) as Pointer | null;
    m;
    m = lib.bpf_object__next_map(obj, m) as Pointer | null
  )
    maps.set(lib.bpf_map__name(m) as string, m);
  for (
    let p = lib.bpf_object__next_program(obj, null) as Pointer | null;
    p;
    p = lib.bpf_object__next_program(obj, p) as Pointer | null
  )
    programs.set(lib.bpf_program__name(p) as string, p);
  return { obj, maps, programs };
}

/** A parsed, not yet loaded object. Owns the libbpf object until `load()` takes it; close it otherwise. */
export class ObjectSpec extends Owned {
  readonly path: string;
  #handles: Handles | undefined;

  private constructor(path: string, handles: Handles) {
    super(`object spec ${path}`);
    this.path = path;
    this.#handles = handles;
  }

  /** Parses the ELF file. Throws SysError (ENOENT, EINVAL for a bad object) or NotSupportedError. */
  static open(path: string, options: ObjectOptions = {}): ObjectSpec {
    if (!existsSync(path)) throw new SysError("open object", 2, path);
    const opts = {
      sz: sizeOf(objectOpenOpts),
      object_name: null,
      relaxed_maps: false,
      pin_root_path: options.pinRoot ?? null,
      _attach_prog_fd_stub: 0,
      kconfig: null,
      btf_custom_path: null,
      kernel_log_buf: null,
      kernel_log_size: 0,
      kernel_log_level: 0,
    };
    const out = withLibbpfLog(() => libbpf().bpf_object__open_file(path, opts) as Pointer | null);
    if ("error" in out) throw out.error;
    if (out.result === null) {
      const errno = lastErrno();
      throw new VerifierError("open object", errno === 0 ? 22 : errno, path, out.log);
    }
    const handles = collect(out.result);
    const spec = new ObjectSpec(path, handles);
    if (options.pinRoot === undefined) {
      // libbpf would otherwise pin under /sys/fs/bpf: a private load pins nothing.
      for (const [name, m] of handles.maps) {
        if (!(libbpf().bpf_map__is_internal(m) as boolean))
          check(libbpf().bpf_map__set_pin_path(m, null) as number, "clear pin path", name);
      }
    }
    return spec;
  }

  #live(): Handles {
    if (this.#handles === undefined) throw new Error(`object spec ${this.path}: already loaded or closed`);
    return this.#handles;
  }

  #map(name: string): Pointer {
    const m = this.#live().maps.get(name);
    if (m === undefined) throw new Error(`object ${this.path} has no map ${name}`);
    return m;
  }

  get programNames(): string[] {
    return [...this.#live().programs.keys()];
  }

  get maps(): MapSpec[] {
    const lib = libbpf();
    return [...this.#live().maps].map(([name, m]) => ({
      name,
      type: lib.bpf_map__type(m) as number,
      keySize: lib.bpf_map__key_size(m) as number,
      valueSize: lib.bpf_map__value_size(m) as number,
      maxEntries: lib.bpf_map__max_entries(m) as number,
      flags: lib.bpf_map__map_flags(m) as number,
      internal: lib.bpf_map__is_internal(m) as boolean,
    }));
  }

  /** Changes a map's capacity before load. Throws SysError. */
  setMaxEntries(mapName: string, maxEntries: number): void {
    check(
      libbpf().bpf_map__set_max_entries(this.#map(mapName), maxEntries) as number,
      "set max entries",
      mapName,
    );
  }

  /** The initial contents of an internal map such as `.rodata` (a copy). */
  readInitialValue(mapName: string): Buffer {
    const size = [0];
    const ptr = libbpf().bpf_map__initial_value(this.#map(mapName), size) as Pointer | null;
    if (ptr === null) throw new NotSupportedError(`map ${mapName} has no initial value`);
    return copyFromPointer(ptr, Number(size[0]));
  }

  /** Overwrites bytes of an internal map's initial contents (`const volatile` settings). */
  writeInitialValue(mapName: string, offset: number, bytes: Uint8Array): void {
    const size = [0];
    const ptr = libbpf().bpf_map__initial_value(this.#map(mapName), size) as Pointer | null;
    if (ptr === null) throw new NotSupportedError(`map ${mapName} has no initial value`);
    const total = Number(size[0]);
    if (offset < 0 || offset + bytes.length > total)
      throw new RangeError(
        `map ${mapName}: write of ${bytes.length} bytes at ${offset} exceeds its ${total} bytes`,
      );
    const current = copyFromPointer(ptr, total);
    current.set(bytes, offset);
    copyToPointer(ptr, current);
  }

  /** Name of the internal map holding `const volatile` globals, if the object has one. */
  get rodataMapName(): string | undefined {
    return [...this.#live().maps.keys()].find((n) => n.endsWith(".rodata"));
  }

  /**
   * The maps this object pins (LIBBPF_PIN_BY_NAME under `pinRoot`), each compared with what is
   * pinned at its path already: `pinned` when a load will reuse it, false when a load will create
   * it. Reads bpffs, changes nothing. Throws PinnedMapMismatchError for the first map whose pin
   * differs from its definition here (after setMaxEntries), SysError when a pin cannot be read.
   */
  checkPinnedMaps(): { name: string; pinPath: string; pinned: boolean }[] {
    const lib = libbpf();
    const out: { name: string; pinPath: string; pinned: boolean }[] = [];
    for (const [name, m] of this.#live().maps) {
      const pinPath = lib.bpf_map__pin_path(m) as string | null;
      if (pinPath === null) continue;
      const expected = {
        type: lib.bpf_map__type(m) as number,
        keySize: lib.bpf_map__key_size(m) as number,
        valueSize: lib.bpf_map__value_size(m) as number,
        maxEntries: lib.bpf_map__max_entries(m) as number,
        flags: lib.bpf_map__map_flags(m) as number,
      };
      out.push({ name, pinPath, pinned: checkPinnedMap(name, pinPath, expected) });
    }
    return out;
  }

  /**
   * Creates maps (or reuses pinned ones) and loads every program. Consumes the spec on success;
   * on failure the caller still closes it. Throws PinnedMapMismatchError before loading anything
   * when a pinned map it would reuse differs from its definition (see checkPinnedMaps), and
   * VerifierError with the full log when the kernel refuses a program or map.
   */
  load(): LoadedObject {
    const handles = this.#live();
    this.checkPinnedMaps();
    const out = withLibbpfLog(() => libbpf().bpf_object__load(handles.obj) as number);
    if ("error" in out) throw out.error;
    if (out.result < 0) throw new VerifierError("load object", -out.result, this.path, out.log);
    this.#handles = undefined;
    this.close();
    return new LoadedObject(this.path, handles, out.log);
  }

  protected release(): void {
    if (this.#handles !== undefined) libbpf().bpf_object__close(this.#handles.obj);
    this.#handles = undefined;
  }
}

/** An object whose maps and programs exist in the kernel. Owns the libbpf object: close it. */
export class LoadedObject extends Owned {
  readonly path: string;
  /** What libbpf printed while loading. */
  readonly log: string;
  readonly #handles: Handles;

  constructor(path: string, handles: Handles, log: string) {
    super(`loaded object ${path}`);
    this.path = path;
    this.#handles = handles;
    this.log = log;
  }

  get programNames(): string[] {
    return [...this.#handles.programs.keys()];
  }

  get mapNames(): string[] {
    return [...this.#handles.maps.keys()];
  }

  /** A new owner of the program's fd (the caller closes it; the object stays independent). */
  program(name: string): Program {
    this.assertOpen(`program ${name}`);
    const p = this.#handles.programs.get(name);
    if (p === undefined) throw new Error(`object ${this.path} has no program ${name}`);
    const fd = check(libbpf().bpf_program__fd(p) as number, "program fd", name);
    return Program.fromFd(Fd.dup(fd, `program ${name}`), name);
  }

  /** A new owner of the map's fd (the caller closes it). */
  map(name: string): RawMap {
    this.assertOpen(`map ${name}`);
    const m = this.#handles.maps.get(name);
    if (m === undefined) throw new Error(`object ${this.path} has no map ${name}`);
    const fd = check(libbpf().bpf_map__fd(m) as number, "map fd", name);
    return RawMap.fromFd(Fd.dup(fd, `map ${name}`), name);
  }

  /** Where libbpf pinned (or found) the map, if it is pinned. */
  pinPath(name: string): string | undefined {
    const m = this.#handles.maps.get(name);
    if (m === undefined) return undefined;
    return (libbpf().bpf_map__pin_path(m) as string | null) ?? undefined;
  }

  protected release(): void {
    libbpf().bpf_object__close(this.#handles.obj);
  }
}
