// The RocksDB options of the metadata store (MetaStore opens its database with them), in a
// header of their own so that tools which measure what the store's records cost on disk
// (bench/space_levers --rocksdb-dir) open RocksDB exactly as the store does.
//
// Thread-safety: pure functions.
#pragma once

#include <rocksdb/cache.h>
#include <rocksdb/options.h>

#include <memory>

#include "store/meta_store.h"

namespace rankfs {

// The database-wide options for a store opened with `o`.
rocksdb::DBOptions MetaDbOptions(const MetaStoreOptions& o);

// The options of column family `cf`; `cache` is the block cache all families share.
rocksdb::ColumnFamilyOptions MetaCfOptions(Cf cf, const std::shared_ptr<rocksdb::Cache>& cache,
                                           const MetaStoreOptions& o);

}  // namespace rankfs
