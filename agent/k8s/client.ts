/**
 * The parts of @kubernetes/client-node the agent uses at run time. The build (scripts/postbuild.mjs)
 * replaces the compiled form of this file with an esbuild bundle of just these: the package's index
 * loads every generated API (CoreV1Api to StorageV1Api, ~12 MiB of source kept in the heap), which
 * cost the agent ~50 MiB of RSS for code it never runs. Types come from the package as usual.
 */
export { KubeConfig, ListWatch, Watch } from "@kubernetes/client-node";
