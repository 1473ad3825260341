/**
 * A linearizability checker for histories of operations.
 *
 * Not implemented yet: this entry point is reserved so that its import path is
 * stable, and it exports nothing until issue #4 lands. Everything available
 * today is in `@distkit/distkit/net`.
 *
 * @module
 */
export {};
