/**
 * The real network transport: RPC over TCP with length-prefixed MessagePack
 * frames.
 *
 * Every connection opens with a handshake before any call: the client names
 * the cluster it belongs to (`cluster`), and when the server has a shared
 * secret (`secret`), each end proves to the other that it knows it
 * (HMAC-SHA256 over both ends' fresh nonces; the secret never travels). A
 * connection that fails the handshake is refused with a reason and closed;
 * calls on it reject with {@linkcode RefusedError}.
 *
 * - {@linkcode serveTcp} serves an {@linkcode RpcServer} on a TCP port. Each
 *   connection carries any number of concurrent calls; bad input gets a
 *   failure answer or a closed connection, never a crash.
 * - {@linkcode TcpClient} calls one server over one lazily opened connection,
 *   multiplexing concurrent calls by id, with deadlines, abort signals and
 *   reconnection with exponential backoff.
 * - {@linkcode TcpTransport} hands out one cached {@linkcode TcpClient} per
 *   named peer.
 *
 * @module
 */
export {
  type BackoffOptions,
  type ClusterOptions,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_TCP_TIMEOUT_MS,
  type MemberHello,
  type MemberOptions,
  type TcpAddr,
} from "./tcp_options.ts";
export {
  DEFAULT_FRAME_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  HandshakeThrottle,
  type HandshakeThrottleOptions,
  type TcpServerStats,
} from "./tcp_limits.ts";
export { serveTcp, type ServeTcpOptions, type TcpServer } from "./tcp_server.ts";
export { TcpClient, type TcpClientOptions } from "./tcp_client.ts";
export { AddressTransport, TcpTransport, type TcpTransportOptions } from "./tcp_transport.ts";
