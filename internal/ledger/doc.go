// Package ledger owns Trail's verifiable logs: one append-only RFC 6962 Merkle
// tree per organization over its canonical records in seq order, the signed
// checkpoints that commit to each tree, inclusion and consistency proofs, and
// the offline-verifiable bundle that exports carry (docs/DESIGN.md §3).
//
// All tree math is golang.org/x/mod/sumdb/tlog (leaf hash SHA-256(0x00‖record),
// stored hashes, tree hashes, proofs, tiles) and all signing is
// golang.org/x/mod/sumdb/note (Ed25519). Nothing here combines hashes by hand.
//
// # Storage
//
// Hashes are stored as tiles of height 8 in the C2SP tlog-tiles layout
// (https://c2sp.org/tlog-tiles): tile (L, N) holds up to 256 consecutive stored
// hashes of tree level 8·L, and the levels in between are recomputed from them
// (tlog.HashFromTile). Only the widest version of each tile is kept; a partial
// tile is rewritten wider as the tree grows, and a narrower version is a prefix
// of it, so tile endpoints can be served from the same rows. That is about one
// row per 256 leaves, which is what lets integration keep up with ingest.
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint): a
// signed note whose body is
//
//	<origin>\n<tree size>\n<base64 root hash>\n
//
// with origin "<origin prefix>/<organization id>". Every checkpoint signed is
// kept, so a consistency proof between any two can be served. The Integrator
// never signs two inconsistent checkpoints for one origin: it records the
// newest checkpoint signed per origin in the database (HeadStorage) and in
// the replica's <data dir>/signed-checkpoints file before the commit that
// stores it, and checks the stored tree against both records (the database's
// survives a lost data directory, the file survives a restored database) and
// against checkpoints outsiders hold (Options.Held).
//
// # Retention
//
// Tiles are computed once, from the record bodies, when records are
// integrated, and never derived from record bodies again. Retention may
// therefore delete record bodies (only below the integrated size), but never
// tiles or checkpoints: proofs for what remains keep working, the log's
// history stays provable, and a bundle whose range starts after pruned records
// still verifies, because the hashes left of its range come from tiles.
//
// # Bundle format
//
// A bundle is a text file that proves a range [from, to) of one organization's
// records against a signed checkpoint, offline, with only the verifier key.
// Lines end in "\n"; hashes are standard base64 (44 characters):
//
//	trail-bundle v1
//	checkpoint <n>
//	<the checkpoint note: exactly n bytes, signature lines included>
//	range <from> <to>
//	left [<hash> …]
//	<record line>                       one per seq, from … to-1, in seq order
//	…
//	leaves <first seq> <count> <base64 of count×32 bytes>
//	<record line>
//	…
//	proof [<hash> …]
//	[since <size> [<hash> …]]
//	end <number of record lines>
//
// Record lines are the canonical records exactly as stored (docs/DESIGN.md §2), so
// `grep '^{'` turns a bundle into plain NDJSON. The hash lines are:
//
//   - left: the hashes tlog.TreeHash(from) reads, in the order it reads them:
//     the complete subtrees left of from (one per 1 bit of from; none when
//     from = 0). They come from tiles, so they survive retention.
//   - leaves: after the records of each level-0 tile (seqs 256k … 256k+255,
//     clipped to the range), the leaf hashes of those seqs from the stored
//     tile. They let the verifier name exactly which record was altered, at
//     a cost of about 43 bytes per record (some 10% of a typical export).
//   - proof: tlog.ProveTree(checkpoint size, to): the consistency proof that
//     the tree of size `to` is a prefix of the checkpoint's tree. Empty when
//     to is 0 or the checkpoint size.
//   - since: optionally, tlog.ProveTree(checkpoint size, size) for an older
//     checkpoint the reader already trusts.
//
// Verify recomputes the tree of size `to` with tlog.StoredHashesForRecordHash
// from the left hashes and the leaf hashes, checks it against the checkpoint
// root with tlog.CheckTree (or equality when to is the checkpoint size), and
// compares tlog.RecordHash of every record line with the leaf hash of the seq
// it stands for. Once the root matches, every leaf hash is authentic, so a
// record whose hash differs is altered, a seq without a record is missing, and
// the seqs on the record lines must run from, from+1, … to-1 in file order.
//
// The checkpoint note is accepted when it carries a valid signature by a key
// of the verifier's key history (KeyHistory) that is active or retired; a
// deployment rotating its key signs with every active key (Signers), one
// signature line each. Lines of keys the verifier was not given, or of
// revoked keys, are ignored (docs/VERIFYING.md, "Key history").
package ledger
