/**
 * Raft consensus: a pure core, a driver, memory and Deno KV storage.
 *
 * Not implemented yet: this entry point is reserved so that its import path is
 * stable, and it exports nothing until issue #3 lands. Everything available
 * today is in `@distkit/distkit/net`.
 *
 * @module
 */
export {};
