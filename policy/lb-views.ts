/**
 * Kubernetes Services and EndpointSlices as the Service builder (lb-builder.ts) reads them: the
 * agent's informers and the simulator share these conversions. Never throw: what cannot be used is
 * passed on in a shape the builder reports among its problems.
 */
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { EndpointSliceView, ServicePortView, ServiceProtocol, ServiceView } from "./lb-builder.js";

/** The label an EndpointSlice carries naming its Service (discovery.k8s.io/v1). */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

function protocolOf(p: string | undefined): ServiceProtocol | undefined {
  const v = p ?? "TCP";
  return v === "TCP" || v === "UDP" || v === "SCTP" ? v : undefined;
}

/**
 * What the Service builder reads of a v1 Service. Never throws: a port with an unknown protocol is
 * kept with the protocol unset so that the builder names it among its problems.
 */
export function serviceView(svc: V1Service): ServiceView {
  const spec = svc.spec ?? {};
  const clusterIPs = spec.clusterIPs ?? (spec.clusterIP === undefined ? [] : [spec.clusterIP]);
  const ports: ServicePortView[] = (spec.ports ?? []).map((p) => {
    const protocol = protocolOf(p.protocol);
    return {
      ...(p.name === undefined ? {} : { name: p.name }),
      // An unknown protocol: a port 0 makes the builder skip and report it.
      port: protocol === undefined ? 0 : p.port,
      ...(protocol === undefined ? {} : { protocol }),
      ...(p.nodePort === undefined ? {} : { nodePort: p.nodePort }),
      ...(p.targetPort === undefined ? {} : { targetPort: p.targetPort }),
    };
  });
  const type = spec.type;
  const lbIps = (svc.status?.loadBalancer?.ingress ?? [])
    .map((i) => i.ip)
    .filter((ip): ip is string => typeof ip === "string");
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  return {
    namespace: svc.metadata?.namespace ?? "default",
    name: svc.metadata?.name ?? "",
    ...(type === "ClusterIP" || type === "NodePort" || type === "LoadBalancer" || type === "ExternalName"
      ? { type }
      : {}),
    clusterIPs,
    ports,
    ...(spec.externalIPs === undefined ? {} : { externalIPs: spec.externalIPs }),
    ...(lbIps.length === 0 ? {} : { loadBalancerIPs: lbIps }),
    ...(spec.sessionAffinity === "ClientIP" ? { sessionAffinity: "ClientIP" as const } : {}),
    ...(timeout === undefined ? {} : { affinityTimeoutS: timeout }),
    ...(spec.externalTrafficPolicy === "Local" ? { externalTrafficPolicy: "Local" as const } : {}),
    ...(spec.internalTrafficPolicy === "Local" ? { internalTrafficPolicy: "Local" as const } : {}),
  };
}

/** What the Service builder reads of an EndpointSlice; undefined for a slice no Service owns. */
export function endpointSliceView(slice: V1EndpointSlice): EndpointSliceView | undefined {
  const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  if (serviceName === undefined || serviceName === "") return undefined;
  const at = slice.addressType;
  return {
    namespace: slice.metadata?.namespace ?? "default",
    serviceName,
    ...(at === "IPv4" || at === "IPv6" || at === "FQDN"
      ? { addressType: at }
      : { addressType: "FQDN" as const }),
    // Typed as required, but a malformed object may lack it.
    endpoints: ((slice.endpoints as V1EndpointSlice["endpoints"] | undefined) ?? []).map((e) => ({
      addresses: e.addresses,
      ...(e.conditions?.ready === undefined ? {} : { ready: e.conditions.ready }),
      ...(e.conditions?.serving === undefined ? {} : { serving: e.conditions.serving }),
      ...(e.conditions?.terminating === undefined ? {} : { terminating: e.conditions.terminating }),
      ...(e.nodeName === undefined ? {} : { nodeName: e.nodeName }),
    })),
    ports: (slice.ports ?? []).flatMap((p) => {
      const protocol = protocolOf(p.protocol);
      if (protocol === undefined) return [];
      return [
        {
          ...(p.name === undefined ? {} : { name: p.name }),
          ...(p.port === undefined ? {} : { port: p.port }),
          protocol,
        },
      ];
    }),
  };
}
