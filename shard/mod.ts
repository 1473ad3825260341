/**
 * The shard controller and the sharded key/value service with live migration.
 *
 * Not implemented yet: this entry point is reserved so that its import path is
 * stable, and it exports nothing until issue #7 lands. Everything available
 * today is in `@distkit/distkit/net`.
 *
 * @module
 */
export {};
