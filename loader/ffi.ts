/**
 * The raw FFI surface: libbpf.so.1 and libc through koffi. Internal to loader/; everything else
 * goes through the typed wrappers. Libraries load on first use, so importing loader/ is free
 * on machines without libbpf until something touches the kernel.
 */
import * as koffi from "koffi";
import { NotSupportedError } from "./errors.js";

/** An opaque C pointer as koffi hands it out; null for NULL. */
export type Pointer = object;

export const objectOpenOpts = koffi.struct("skn_bpf_object_open_opts", {
  sz: "size_t",
  object_name: "const char *",
  relaxed_maps: "bool",
  pin_root_path: "const char *",
  _attach_prog_fd_stub: "uint32_t",
  kconfig: "const char *",
  btf_custom_path: "const char *",
  kernel_log_buf: "void *",
  kernel_log_size: "size_t",
  kernel_log_level: "uint32_t",
});

export const tcHook = koffi.struct("skn_bpf_tc_hook", {
  sz: "size_t",
  ifindex: "int",
  attach_point: "int",
  parent: "uint32_t",
});

export const tcOpts = koffi.struct("skn_bpf_tc_opts", {
  sz: "size_t",
  prog_fd: "int",
  flags: "uint32_t",
  prog_id: "uint32_t",
  handle: "uint32_t",
  priority: "uint32_t",
});

export const progAttachOpts = koffi.struct("skn_bpf_prog_attach_opts", {
  sz: "size_t",
  flags: "uint32_t",
  replace_prog_fd: "int",
});

export const testRunOpts = koffi.struct("skn_bpf_test_run_opts", {
  sz: "size_t",
  data_in: "void *",
  data_out: "void *",
  data_size_in: "uint32_t",
  data_size_out: "uint32_t",
  ctx_in: "void *",
  ctx_out: "void *",
  ctx_size_in: "uint32_t",
  ctx_size_out: "uint32_t",
  retval: "uint32_t",
  repeat: "int",
  duration: "uint32_t",
  flags: "uint32_t",
  cpu: "uint32_t",
  batch_size: "uint32_t",
});

export const batchOpts = koffi.struct("skn_bpf_map_batch_opts", {
  sz: "size_t",
  elem_flags: "uint64_t",
  flags: "uint64_t",
});

export const mapCreateOpts = koffi.struct("skn_bpf_map_create_opts", {
  sz: "size_t",
  btf_fd: "uint32_t",
  btf_key_type_id: "uint32_t",
  btf_value_type_id: "uint32_t",
  btf_vmlinux_value_type_id: "uint32_t",
  inner_map_fd: "uint32_t",
  map_flags: "uint32_t",
  map_extra: "uint64_t",
  numa_node: "uint32_t",
  map_ifindex: "uint32_t",
});

const printFn = koffi.proto("int skn_libbpf_print_fn(int level, void *fmt, void *ap)");
const ringBufferSampleFn = koffi.proto("int skn_ring_buffer_sample_fn(void *ctx, void *data, size_t size)");

function loadLibrary(soname: string, hint: string): koffi.LibraryHandle {
  try {
    return koffi.load(soname);
  } catch (err) {
    throw new NotSupportedError(`cannot load ${soname}: ${hint}`, { cause: err });
  }
}

type KoffiFunction = ReturnType<koffi.LibraryHandle["func"]>;

/**
 * Functions of `lib` by name, each bound (its prototype parsed by koffi) on first use: a short-lived
 * process such as the CNI plugin calls a handful of the ~50 it may need, and binding costs time.
 */
function lazily<T extends Record<string, string>>(
  lib: koffi.LibraryHandle,
  prototypes: T,
): { readonly [K in keyof T]: KoffiFunction } {
  const out: Record<string, KoffiFunction> = {};
  for (const [name, prototype] of Object.entries(prototypes))
    Object.defineProperty(out, name, {
      configurable: true,
      enumerable: true,
      get() {
        const fn = lib.func(prototype);
        Object.defineProperty(out, name, { value: fn, enumerable: true });
        return fn;
      },
    });
  return out as { readonly [K in keyof T]: KoffiFunction };
}

function bindLibbpf() {
  const lib = loadLibrary("libbpf.so.1", "install libbpf 1.x (Debian: apt-get install libbpf1)");
  koffi.opaque("skn_bpf_object");
  koffi.opaque("skn_bpf_program");
  koffi.opaque("skn_bpf_map");
  koffi.opaque("skn_ring_buffer");
  return lazily(lib, {
    libbpf_set_print: "void *libbpf_set_print(skn_libbpf_print_fn *fn)",
    libbpf_num_possible_cpus: "int libbpf_num_possible_cpus(void)",
    bpf_object__open_file:
      "skn_bpf_object *bpf_object__open_file(const char *path, const skn_bpf_object_open_opts *opts)",
    bpf_object__load: "int bpf_object__load(skn_bpf_object *obj)",
    bpf_object__close: "void bpf_object__close(skn_bpf_object *obj)",
    bpf_object__next_program:
      "skn_bpf_program *bpf_object__next_program(skn_bpf_object *obj, skn_bpf_program *prev)",
    bpf_object__next_map: "skn_bpf_map *bpf_object__next_map(skn_bpf_object *obj, skn_bpf_map *prev)",
    bpf_program__name: "const char *bpf_program__name(skn_bpf_program *prog)",
    bpf_program__fd: "int bpf_program__fd(skn_bpf_program *prog)",
    bpf_program__set_type: "int bpf_program__set_type(skn_bpf_program *prog, int type)",
    bpf_program__type: "int bpf_program__type(skn_bpf_program *prog)",
    bpf_map__name: "const char *bpf_map__name(skn_bpf_map *map)",
    bpf_map__fd: "int bpf_map__fd(skn_bpf_map *map)",
    bpf_map__type: "int bpf_map__type(skn_bpf_map *map)",
    bpf_map__key_size: "uint32_t bpf_map__key_size(skn_bpf_map *map)",
    bpf_map__value_size: "uint32_t bpf_map__value_size(skn_bpf_map *map)",
    bpf_map__max_entries: "uint32_t bpf_map__max_entries(skn_bpf_map *map)",
    bpf_map__map_flags: "uint32_t bpf_map__map_flags(skn_bpf_map *map)",
    bpf_map__set_max_entries: "int bpf_map__set_max_entries(skn_bpf_map *map, uint32_t n)",
    bpf_map__is_internal: "bool bpf_map__is_internal(skn_bpf_map *map)",
    bpf_map__initial_value: "void *bpf_map__initial_value(skn_bpf_map *map, _Out_ size_t *size)",
    bpf_map__set_initial_value:
      "int bpf_map__set_initial_value(skn_bpf_map *map, const void *data, size_t size)",
    bpf_map__set_pin_path: "int bpf_map__set_pin_path(skn_bpf_map *map, const char *path)",
    bpf_map__pin_path: "const char *bpf_map__pin_path(skn_bpf_map *map)",
    bpf_map_create:
      "int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const skn_bpf_map_create_opts *opts)",
    bpf_map_lookup_elem: "int bpf_map_lookup_elem(int fd, const void *key, void *value)",
    bpf_map_update_elem:
      "int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)",
    bpf_map_delete_elem: "int bpf_map_delete_elem(int fd, const void *key)",
    bpf_map_get_next_key: "int bpf_map_get_next_key(int fd, const void *key, void *next_key)",
    bpf_map_lookup_batch:
      "int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const skn_bpf_map_batch_opts *opts)",
    bpf_map_update_batch:
      "int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const skn_bpf_map_batch_opts *opts)",
    bpf_map_delete_batch:
      "int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const skn_bpf_map_batch_opts *opts)",
    bpf_obj_pin: "int bpf_obj_pin(int fd, const char *path)",
    bpf_obj_get: "int bpf_obj_get(const char *path)",
    bpf_obj_get_info_by_fd: "int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)",
    bpf_prog_get_fd_by_id: "int bpf_prog_get_fd_by_id(uint32_t id)",
    bpf_map_get_fd_by_id: "int bpf_map_get_fd_by_id(uint32_t id)",
    bpf_prog_test_run_opts: "int bpf_prog_test_run_opts(int fd, _Inout_ skn_bpf_test_run_opts *opts)",
    bpf_tc_hook_create: "int bpf_tc_hook_create(skn_bpf_tc_hook *hook)",
    bpf_tc_hook_destroy: "int bpf_tc_hook_destroy(skn_bpf_tc_hook *hook)",
    bpf_tc_attach: "int bpf_tc_attach(const skn_bpf_tc_hook *hook, _Inout_ skn_bpf_tc_opts *opts)",
    bpf_tc_detach: "int bpf_tc_detach(const skn_bpf_tc_hook *hook, const skn_bpf_tc_opts *opts)",
    bpf_tc_query: "int bpf_tc_query(const skn_bpf_tc_hook *hook, _Inout_ skn_bpf_tc_opts *opts)",
    bpf_prog_attach_opts:
      "int bpf_prog_attach_opts(int prog_fd, int target, int type, const skn_bpf_prog_attach_opts *opts)",
    bpf_prog_detach2: "int bpf_prog_detach2(int prog_fd, int target, int type)",
    bpf_prog_query:
      "int bpf_prog_query(int target, int type, uint32_t query_flags, _Out_ uint32_t *attach_flags, _Out_ uint8_t *prog_ids, _Inout_ uint32_t *prog_cnt)",
    ring_buffer__new:
      "skn_ring_buffer *ring_buffer__new(int map_fd, skn_ring_buffer_sample_fn *cb, void *ctx, void *opts)",
    ring_buffer__consume: "int ring_buffer__consume(skn_ring_buffer *rb)",
    ring_buffer__poll: "int ring_buffer__poll(skn_ring_buffer *rb, int timeout_ms)",
    ring_buffer__free: "void ring_buffer__free(skn_ring_buffer *rb)",
  });
}

function bindLibc() {
  const lib = loadLibrary("libc.so.6", "glibc is required");
  return lazily(lib, {
    close: "int close(int fd)",
    fcntl: "int fcntl(int fd, int cmd, int arg)",
    flock: "int flock(int fd, int op)",
    vsnprintf: "int vsnprintf(_Out_ uint8_t *buf, size_t size, void *fmt, void *ap)",
    statfs: "int statfs(const char *path, _Out_ uint8_t *buf)",
    mount:
      "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)",
    setns: "int setns(int fd, int nstype)",
    if_nametoindex: "unsigned int if_nametoindex(const char *name)",
    socket: "int socket(int domain, int type, int protocol)",
    setsockopt: "int setsockopt(int fd, int level, int name, const void *value, uint32_t len)",
    sendto:
      "intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)",
    recv: "intptr_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)",
    send: "intptr_t send(int fd, const void *buf, size_t len, int flags)",
    getrusage: "int getrusage(int who, _Out_ uint8_t *usage)",
  });
}

let libbpfBinding: ReturnType<typeof bindLibbpf> | undefined;
let libcBinding: ReturnType<typeof bindLibc> | undefined;

/** libbpf's functions. Throws NotSupportedError when libbpf.so.1 is missing. */
export function libbpf(): ReturnType<typeof bindLibbpf> {
  libbpfBinding ??= bindLibbpf();
  return libbpfBinding;
}

/** The few libc functions the loader needs. */
export function libc(): ReturnType<typeof bindLibc> {
  libcBinding ??= bindLibc();
  return libcBinding;
}

/** errno of the last FFI call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

export function sizeOf(type: koffi.TypeObject): number {
  return koffi.sizeof(type);
}

export function registerCallback(fn: (...args: never[]) => number, kind: "print" | "ringbuf"): bigint {
  return koffi.register(fn, koffi.pointer(kind === "print" ? printFn : ringBufferSampleFn));
}

export function unregisterCallback(handle: bigint): void {
  koffi.unregister(handle);
}

/** Copies `length` bytes from a C pointer into a new Buffer. */
export function copyFromPointer(ptr: Pointer, length: number): Buffer {
  return Buffer.from(koffi.view(ptr, length).slice(0));
}

/** Writes bytes into C memory at `ptr`. */
export function copyToPointer(ptr: Pointer, bytes: Uint8Array): void {
  new Uint8Array(koffi.view(ptr, bytes.length)).set(bytes);
}

/** C memory for `count` u32 values, with its address; free it with freeMemory. */
export function allocU32(count: number): { ptr: Pointer; address: bigint } {
  const ptr = koffi.alloc("uint32_t", count) as Pointer;
  return { ptr, address: koffi.address(ptr) };
}

export function freeMemory(ptr: Pointer): void {
  koffi.free(ptr);
}

/** send(2) or recv(2) as koffi's `.async` form: the call runs on a worker thread, `cb` gets its result. */
export interface AsyncSocketCall {
  async: (
    fd: number,
    buf: Buffer,
    len: number,
    flags: number,
    cb: (err: unknown, n: number | bigint) => void,
  ) => void;
}

/**
 * send(2) run on one of koffi's worker threads, so the calling thread goes on meanwhile (an
 * rtnetlink request is carried out inside send: deleting a veth waits there for RCU). Resolves to
 * send's result; on failure errno stays on the worker thread, so only the failure is known.
 */
export function sendOnWorker(fd: number, data: Buffer): Promise<number> {
  const send = libc().send as unknown as AsyncSocketCall;
  return new Promise((resolve, reject) => {
    send.async(fd, data, data.length, 0, (err, n) => {
      if (err !== null && err !== undefined)
        reject(err instanceof Error ? err : new Error(`send failed: ${JSON.stringify(err)}`));
      else resolve(Number(n));
    });
  });
}
