// Fsck: the offline check (and optional repair) of a store directory.
//
// Checks, against the format in docs/format.md:
//   packs     every pack file is scanned (ScanPack): header readable and naming this store;
//             a pack that holds no indexed chunk is an orphan (space nobody can use);
//   chunks    every chunk of the index is read back and verified: record header against the
//             index, CRC32C of the stored bytes, decompression, SHA-256 of the content; a
//             damaged chunk is reported with the inodes and file offsets that use it;
//   refcounts recounted from the extents and compared with each chunk record (too low is
//             dangerous, too high leaks space); extents naming a chunk missing from the index;
//   inodes    orphan inodes (no name left; their data is normally released by the next mount)
//             and extents, xattrs and orphan entries of inodes that do not exist; a file whose
//             record's allocated bytes (st_blocks) differ from what its extents hold (a crash
//             between the record and the commit of the data it counts).
//
// Repair (FsckOptions::repair) rewrites metadata through MetaStore::Batch:
//   - drops the data of orphan inodes (extents, xattrs, inode, orphan entry) and the records of
//     inodes that do not exist;
//   - sets every chunk's refcount to the number of extents left naming it, and deletes the index
//     entry of a chunk nothing names any more;
//   - sets a file's allocated bytes to what its extents hold;
//   - deletes pack files that hold no indexed chunk (after the metadata is durable).
// It never invents data: damaged chunks and extents naming missing chunks are reported and
// left (reads of those ranges keep failing with EIO, rather than silently reading zeros);
// deleting or rewriting the files named in the report fixes them (a fresh write of the same
// content heals a damaged chunk). Refcount changes are ordered so that a crash during repair
// leaves counts too high, never too low; running fsck again finishes the job.
//
// Fsck takes STORE/LOCK itself and fails with EBUSY while a daemon has the store open. It opens
// the metadata but never the PackChunkStore, whose recovery at open would delete orphan packs
// and punch unindexed ranges before they could be reported.
//
// Memory: about 130 bytes per indexed chunk, plus ~50 bytes per inode (a store of 4 million
// chunks, ~256 GiB of unique data, needs ~0.5 GiB).
//
// Thread-safety: Fsck may run on any thread; the progress callback runs on that thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/offline_options.h"
#include "store/status.h"

namespace rankfs {

// OfflineOptions::progress reports the phases "scanning packs" (bytes of pack files read, of
// their total) and "checking extents" (extents so far, total unknown).
struct FsckOptions : OfflineOptions {
  bool repair = false;
  // How many referring extents a finding lists before it says "... and N more".
  size_t max_listed = 16;
};

enum class FsckIssue {
  kBadPack,            // pack header unreadable, or naming another pack id or store
  kOrphanPack,         // a pack file that holds no indexed chunk
  kDamagedChunk,       // header/CRC/SHA-256 mismatch, or its pack or record is missing
  kRefcountTooLow,     // fewer references recorded than extents: a delete could free live data
  kRefcountTooHigh,    // more references recorded than extents: space leak
  kUnreferencedChunk,  // indexed, but no extent names it: space leak
  kMissingChunk,       // an extent names a chunk the index does not have
  kExtentOutOfRange,   // an extent's slice runs past the end of its chunk
  kOrphanInode,        // on the orphan list: no name left, data not yet released
  kStaleOrphanEntry,   // on the orphan list but still linked (nlink > 0)
  kDanglingRecord,     // an extent, xattr or orphan entry of an inode that does not exist
  kAllocatedMismatch,  // a file's allocated bytes (st_blocks) differ from its extents' bytes
};

// A short name of an issue kind ("damaged chunk", ...).
std::string_view FsckIssueName(FsckIssue issue);

struct FsckFinding {
  FsckIssue issue;
  std::string message;               // what is wrong and where, one line
  std::vector<std::string> details;  // e.g. "inode 17, file offset 65536, 4096 bytes"
  bool repaired = false;
};

struct FsckReport {
  // What was examined.
  uint64_t packs = 0;
  uint64_t pack_bytes = 0;
  uint64_t chunks = 0;
  uint64_t chunk_bytes = 0;  // raw bytes of the chunks verified
  uint64_t extents = 0;
  uint64_t inodes = 0;
  uint64_t orphans = 0;
  // Records in packs that the index does not name: leftovers of released chunks (or of a
  // crash) that the next mount punches out. Not an error.
  uint64_t unindexed_records = 0;
  uint64_t unindexed_bytes = 0;

  std::vector<FsckFinding> findings;
  std::vector<std::string> changes;  // every change the repair made, in order

  size_t Repaired() const;
  size_t Unrepaired() const;
  // e2fsck's convention, a sum of: 1 errors were corrected, 4 errors were left uncorrected
  // (0: clean). 8 (operational error) is for a Fsck call that failed.
  int ExitCode() const;
};

inline constexpr int kFsckExitCorrected = 1;
inline constexpr int kFsckExitUncorrected = 4;
inline constexpr int kFsckExitOperational = 8;

// Checks (and with options.repair, repairs) the store in `store_dir`. Fails (an operational
// error) when the store cannot be opened or read: EBUSY while it is in use, ENOENT when
// `store_dir` holds no store.
Result<FsckReport> Fsck(const std::string& store_dir, const FsckOptions& options);

}  // namespace rankfs
