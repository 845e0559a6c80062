/**
 * The resident CNI server as a contract between the shim (what the runtime execs), the server
 * (cni/server-main.ts), the lab and the manifests: where the socket is, the variables that steer
 * the shim, and the installed file names.
 */

/** The server's socket on a node (root only, 0600). */
export const CNI_SERVER_SOCKET = "/run/skein/cni.sock";
/** Environment variable the shim reads the socket path from (the lab and tests set it per node). */
export const CNI_SOCKET_ENV = "SKEIN_CNI_SOCKET";
/** Environment variable that makes the shim skip the server and run the Node plugin ("1"). */
export const CNI_NO_SERVER_ENV = "SKEIN_CNI_NO_SERVER";
/** The server bundle inside skein-cni.d/ of an installed plugin. */
export const CNI_SERVER_BUNDLE = "skein-cni-server.cjs";
