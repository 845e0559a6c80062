/**
 * Kubernetes `Status` errors. Every failure the lab API server reports is an {@link ApiError}; the
 * HTTP layer turns it into a `Status` body with the same `code`, `reason` and `message` the real
 * kube-apiserver would send, so clients (client-node, kubectl) take the same code paths.
 */
import type { JsonObject } from "./json.js";

/** `Status.reason` values used here (a subset of metav1.StatusReason). */
export type StatusReason =
  | "BadRequest"
  | "NotFound"
  | "AlreadyExists"
  | "Conflict"
  | "Invalid"
  | "MethodNotAllowed"
  | "Forbidden"
  | "Expired"
  | "Gone"
  | "NotAcceptable"
  | "UnsupportedMediaType"
  | "RequestEntityTooLarge"
  | "InternalError";

/** One entry of `Status.details.causes`. */
export interface StatusCause {
  reason: string;
  message: string;
  field?: string;
}

/** `Status.details`: which object the error is about. */
export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: StatusCause[];
}

/**
 * An API error with its HTTP code. Thrown by the store and the request handlers; never escapes the
 * server (the HTTP layer converts it to a Status response or a watch ERROR event).
 */
export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: number;
  readonly reason: StatusReason;
  readonly details: StatusDetails | undefined;

  constructor(
    code: number,
    reason: StatusReason,
    message: string,
    details?: StatusDetails,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  /** The `Status` object (apiVersion v1) a real server would send for this error. */
  toStatus(): JsonObject {
    const status: JsonObject = {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details !== undefined) {
      const d: JsonObject = {};
      if (this.details.name !== undefined) d.name = this.details.name;
      if (this.details.group !== undefined && this.details.group !== "") d.group = this.details.group;
      if (this.details.kind !== undefined) d.kind = this.details.kind;
      if (this.details.causes !== undefined) {
        d.causes = this.details.causes.map((c) => {
          const cause: JsonObject = { reason: c.reason, message: c.message };
          if (c.field !== undefined) cause.field = c.field;
          return cause;
        });
      }
      status.details = d;
    }
    return status;
  }
}

/** What an error refers to: the resource (plural name) and group, for messages and details. */
export interface ResourceRef {
  name: string;
  group: string;
}

function qualified(ref: ResourceRef): string {
  return ref.group === "" ? ref.name : `${ref.name}.${ref.group}`;
}

/** 400 BadRequest. */
export function badRequest(message: string, options?: ErrorOptions): ApiError {
  return new ApiError(400, "BadRequest", message, undefined, options);
}

/** 404 for a named object: `pods "x" not found`. */
export function notFound(ref: ResourceRef, name: string): ApiError {
  return new ApiError(404, "NotFound", `${qualified(ref)} "${name}" not found`, {
    name,
    group: ref.group,
    kind: ref.name,
  });
}

/** 404 for a path the server does not serve. */
export function pathNotFound(): ApiError {
  return new ApiError(404, "NotFound", "the server could not find the requested resource", {});
}

/** 409 AlreadyExists. */
export function alreadyExists(ref: ResourceRef, name: string): ApiError {
  return new ApiError(409, "AlreadyExists", `${qualified(ref)} "${name}" already exists`, {
    name,
    group: ref.group,
    kind: ref.name,
  });
}

/** 409 Conflict: a stale resourceVersion or a failed precondition. */
export function conflict(ref: ResourceRef, name: string, why: string): ApiError {
  return new ApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualified(ref)} "${name}": ${why}`,
    {
      name,
      group: ref.group,
      kind: ref.name,
    },
  );
}

/** The message a stale resourceVersion gets. */
export const STALE_OBJECT_MESSAGE =
  "the object has been modified; please apply your changes to the latest version and try again";

/**
 * 422 Invalid: `Pod "x" is invalid: <field>: <message>` (`NetworkPolicy.networking.k8s.io "x"…`
 * for a named group) with one cause per problem.
 */
export function invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
  const summary = causes
    .map((c) => (c.field === undefined ? c.message : `${c.field}: ${c.message}`))
    .join(", ");
  const list = causes.length > 1 ? `[${summary}]` : summary;
  const qualifiedKind = group === "" ? kind : `${kind}.${group}`;
  return new ApiError(422, "Invalid", `${qualifiedKind} "${name}" is invalid: ${list}`, {
    name,
    group,
    kind,
    causes,
  });
}

/** 405 MethodNotAllowed. */
export function methodNotAllowed(): ApiError {
  return new ApiError(
    405,
    "MethodNotAllowed",
    "the server does not allow this method on the requested resource",
    {},
  );
}

/** 403 Forbidden. */
export function forbidden(ref: ResourceRef, name: string, why: string): ApiError {
  return new ApiError(403, "Forbidden", `${qualified(ref)} "${name}" is forbidden: ${why}`, {
    name,
    group: ref.group,
    kind: ref.name,
  });
}

/** 410 Expired: a watch or list asked for history the server no longer has. */
export function expired(message: string): ApiError {
  return new ApiError(410, "Expired", message);
}

/** 415 UnsupportedMediaType. */
export function unsupportedMediaType(contentType: string): ApiError {
  return new ApiError(
    415,
    "UnsupportedMediaType",
    `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml${contentType === "" ? "" : ` (got ${contentType})`}`,
  );
}

/** 413 RequestEntityTooLarge. */
export function tooLarge(limitBytes: number): ApiError {
  return new ApiError(
    413,
    "RequestEntityTooLarge",
    `the request body exceeds the limit of ${limitBytes} bytes`,
  );
}

/** 500 InternalError, for bugs: the cause is kept for the log. */
export function internalError(cause: unknown): ApiError {
  const msg = cause instanceof Error ? cause.message : String(cause);
  return new ApiError(500, "InternalError", `Internal error occurred: ${msg}`, {}, { cause });
}
