// Helpers shared by meta_store.cc (open, writes, point reads) and meta_store_scan.cc (range
// scans). Not part of the store's interface: include it from those two files only.
//
// Thread-safety: pure functions.
#pragma once

#include <rocksdb/slice.h>
#include <rocksdb/status.h>

#include <iterator>
#include <string>
#include <string_view>

#include "store/meta_store.h"
#include "store/status.h"

namespace rankfs {
namespace meta_internal {

// Column family names, indexed by Cf. kSuper lives in RocksDB's default family.
inline constexpr const char* kCfNames[] = {"default", "inodes", "dirents", "extents",
                                           "chunks",  "xattrs", "orphans", "packs"};
static_assert(std::size(kCfNames) == size_t(Cf::kCount));

inline rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
inline std::string_view ToView(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

// A rankfs Status for a failed RocksDB call: the errno it means (NoSpace -> ENOSPC,
// Corruption -> EUCLEAN, IOError -> EIO, ...) and "metadata store: <what>: <rocksdb message>".
// REQUIRES: !s.ok().
Status FromRocks(const rocksdb::Status& s, std::string_view what);

// A human-readable name of a key for messages: "inode 42", "dirent 1/\"a\"", "extent 7@4096",
// "chunk <hex>", ...; "<kind> key of N bytes" when the key is malformed.
std::string DescribeKey(Cf cf, std::string_view key);

// EUCLEAN naming a key that does not have its column family's layout.
Status BadKey(Cf cf, std::string_view key);

// For scan callbacks that meet a malformed key or value: record why in *st and return false,
// which stops the scan.
bool StopBadKey(Status* st, Cf cf, std::string_view key);
bool StopBadValue(Status* st, Cf cf, std::string_view key, const Status& why);

}  // namespace meta_internal
}  // namespace rankfs
