/**
 * Byte helpers shared by the transports and Raft.
 *
 * @module
 */

/** Joins byte pieces of known total length into one array (the piece itself when there is one). */
export function concatBytes(pieces: readonly Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const piece of pieces) {
    out.set(piece, offset);
    offset += piece.length;
  }
  return out;
}
