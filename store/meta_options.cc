#include "store/meta_options.h"

#include <rocksdb/convenience.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "store/logging.h"

namespace rankfs {
namespace {

// RocksDB's diagnostics go to rankfs's log (the daemon's stderr), warnings and errors only,
// instead of the info LOG file RocksDB would keep in the store: that file lives on the store's
// disk, and when the disk is full RocksDB 7.8's file logger hits an assertion (Debian keeps
// them) on the line after the first failed append -- i.e. on the very ENOSPC errors it is
// reporting -- and aborts the daemon (found by tests/integration/full_disk_test.cc).
class RocksLogger : public rocksdb::Logger {
 public:
  RocksLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    char buf[1024];
    va_list copy;
    va_copy(copy, ap);
    int n = std::vsnprintf(buf, sizeof buf, format, copy);
    va_end(copy);
    if (n < 0) return;
    Log(level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarning,
        "rocksdb", std::string_view(buf, std::min<size_t>(size_t(n), sizeof buf - 1)));
  }
};

}  // namespace

// Options of one column family. Point-lookup families (inodes, dirents, chunks: lookup,
// getattr, dedup probes) get whole-key bloom filters so that misses (new names, new chunks)
// rarely touch disk; range-scanned ones (extents, xattrs) and tiny ones do without.
rocksdb::ColumnFamilyOptions MetaCfOptions(Cf cf, const std::shared_ptr<rocksdb::Cache>& cache,
                                           const MetaStoreOptions& o) {
  rocksdb::ColumnFamilyOptions c;
  const bool hot =
      cf == Cf::kInodes || cf == Cf::kDirents || cf == Cf::kExtents || cf == Cf::kChunks;
  // Hot families may each fill half the budget; db_write_buffer_size caps the sum.
  c.write_buffer_size =
      hot ? std::max<size_t>(o.write_buffer_bytes / 2, 1 << 20)
          : std::min<size_t>(std::max<size_t>(o.write_buffer_bytes / 8, 1 << 20), 4 << 20);
  c.level_compaction_dynamic_level_bytes = true;
  const auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end()) {
    c.compression = rocksdb::kLZ4Compression;
  }
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  // Index and filter blocks count against the cache, so memory stays within the budget
  // however large the store grows; L0's stay pinned because every read consults them.
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  if (cf == Cf::kInodes || cf == Cf::kDirents || cf == Cf::kChunks) {
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    t.whole_key_filtering = true;
  }
  c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return c;
}

rocksdb::DBOptions MetaDbOptions(const MetaStoreOptions& o) {
  rocksdb::DBOptions d;
  d.info_log = std::make_shared<RocksLogger>();
  d.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  d.create_if_missing = o.create_if_missing;
  // A store written by an older rankfs may lack a family added since; it starts out empty.
  d.create_missing_column_families = true;
  if (o.rocks_env != nullptr) d.env = o.rocks_env;
  // After a crash, recover the longest consistent prefix of the WAL: a torn tail (writes not
  // synced) is dropped, never half-applied.
  d.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  d.db_write_buffer_size = o.write_buffer_bytes;
  // A rarely written family would otherwise pin old WAL files forever.
  d.max_total_wal_size = std::max<uint64_t>(4 * uint64_t(o.write_buffer_bytes), 64 << 20);
  d.max_background_jobs = 2;
  // No preallocation: RocksDB would fallocate 1.1 memtables ahead for every WAL file and 4 MiB
  // for the MANIFEST, ~22 MB of a store's disk use that holds nothing (a tenth of the whole
  // store of the N-ranks benchmark). Files grow in small appends instead.
  d.allow_fallocate = false;
  d.bytes_per_sync = 1 << 20;
  d.keep_log_file_num = 4;
  d.max_log_file_size = 8 << 20;
#if defined(__SANITIZE_THREAD__)
  // TSan builds only: a write group per write, so DBImpl's merge buffer, which successive
  // leaders refill through std::string code TSan sees while their handoff inside the
  // uninstrumented librocksdb stays invisible, is never used (tests/tsan.supp).
  d.max_write_batch_group_size_bytes = 0;
#endif
  return d;
}

}  // namespace rankfs
