// Gc: offline compaction of a store's pack files.
//
// The daemon frees a released chunk by punching its record out of the pack (docs/design.md,
// "Space reclamation"), which gives the blocks back but leaves the file as long as before, with
// partly used blocks at the edges of every hole and one file per pack forever. Gc rewrites the
// packs whose dead share passes a threshold: their live records are copied, byte for byte, into
// fresh packs, the chunk index is pointed at the copies, and the old files are deleted.
//
// What counts: a pack's live bytes are the record bytes (header + stored bytes) of the chunks the
// index places in it; dead bytes are the rest of the file after its 32-byte header, holes
// included. Its dead share is dead / (file size - 32); a pack that holds no indexed chunk is
// 100 % dead and is deleted without a copy (such packs are what a crash of gc or of the daemon
// leaves behind, so running gc again finishes an interrupted run).
//
// Every record is checked before it is copied (header against the index entry, CRC32C of the
// stored bytes). A pack with a damaged or unreadable live record is left alone and named in the
// report (run fsck); gc never spreads or drops damage.
//
// Durability, per group of old packs rewritten into one new pack:
//   1. the new pack is written, fdatasync'd, and the packs directory synced;
//   2. one RocksDB batch moves the chunk entries (and the `packs` accounting) to the new pack and
//      is synced;
//   3. only then are the old packs deleted and the directory synced again.
// A crash before 2 leaves an unindexed new pack; a crash after 2 leaves old packs that hold no
// indexed chunk. Both are orphan packs: the next mount deletes them (PackChunkStore recovery),
// as do `fsck --repair` and the next gc. No index entry ever names bytes that are not durable.
// If the batch write itself fails, its outcome is unknown, so nothing is deleted.
//
// Gc takes STORE/LOCK (EBUSY while a daemon has the store mounted) and opens the metadata but
// not the PackChunkStore, whose recovery would change the store even in a dry run.
//
// Memory: about 100 bytes per indexed chunk, plus one pack's records in flight (up to 8 MiB).
//
// Thread-safety: Gc may run on any thread; the progress callback runs on that thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/offline_options.h"
#include "store/status.h"

namespace rankfs {

// OfflineOptions::progress reports the phase "compacting packs" (live bytes copied so far, of
// the total to copy).
struct GcOptions : OfflineOptions {
  // Compact packs whose dead share is at least this many percent (0..100). At 0 every pack
  // with any dead byte is compacted; at 100 only packs that hold no live chunk are deleted.
  double threshold_percent = 50;
  // Plan and report, but change no pack and no index entry. (Opening the metadata still lets
  // RocksDB start a new log and manifest, as fsck's does; the store's contents stay the same.)
  bool dry_run = false;
  // New packs are filled up to about this size (the daemon's default); a pack whose live bytes
  // alone are larger gets a new pack of its own.
  uint64_t max_pack_bytes = 256ull << 20;
};

// One pack that passed the threshold.
struct GcPack {
  uint32_t pack_id = 0;
  uint64_t file_bytes = 0;       // its size
  uint64_t allocated_bytes = 0;  // disk space it used (holes excluded)
  uint64_t live_bytes = 0;       // record bytes of its indexed chunks
  uint64_t live_chunks = 0;
  double dead_percent = 0;
  uint32_t new_pack_id = 0;  // where its live chunks went (0: it had none, it was deleted)
  bool compacted = false;    // done (in a dry run: would be done)
  std::string skipped;       // why it was left alone, when !compacted
};

// A pack gc wrote.
struct GcNewPack {
  uint32_t pack_id = 0;
  uint64_t file_bytes = 0;
  uint64_t chunks = 0;
};

struct GcReport {
  bool dry_run = false;
  // Every pack examined.
  uint64_t packs = 0;
  uint64_t pack_bytes = 0;       // sum of file sizes
  uint64_t allocated_bytes = 0;  // sum of disk space used
  uint64_t live_bytes = 0;       // sum of live record bytes

  std::vector<GcPack> candidates;  // the packs that passed the threshold, by id
  std::vector<GcNewPack> new_packs;

  // Of the packs compacted (or, in a dry run, to be compacted):
  uint64_t bytes_before = 0;      // their file sizes
  uint64_t allocated_before = 0;  // their disk space
  uint64_t bytes_after = 0;       // the new packs' sizes (in a dry run: what they would be)
  uint64_t chunks_moved = 0;

  size_t Compacted() const;
  size_t Skipped() const;  // candidates left alone (damage): a reason to run fsck
};

// Compacts the packs of the store in `store_dir` whose dead share passes the threshold. Fails
// when the store cannot be opened (EBUSY while mounted, ENOENT when `store_dir` holds no store)
// or when an I/O error stops the run; what finished before stays done, and the store is
// consistent at every step (see above).
Result<GcReport> Gc(const std::string& store_dir, const GcOptions& options);

}  // namespace rankfs
