// The bodies of rankfs's libFuzzer targets, shared by the fuzzers (fuzz/fuzz_<name>.cc, clang
// build with RANKFS_FUZZ=ON) and by the replay unit test (tests/unit/fuzz_regression_test.cc,
// every build), which feeds them the seed corpora and the saved crash inputs.
//
// Contract of every target: it takes any bytes, returns 0, and aborts (with a message on stderr)
// only when rankfs's code breaks one of its own promises -- a decoder crashes, reads out of
// bounds, returns an unexpected error code, or a decoded value does not re-encode to the bytes
// it came from. Sanitizers catch the memory errors; FUZZ_CHECK catches the rest.
//
// Thread-safety: each target may be called from one thread at a time (libFuzzer's model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace rankfs::fuzz {

using TargetFn = int (*)(const uint8_t* data, size_t size);

struct Target {
  std::string_view name;  // fuzz/corpus/<name>, tests/fuzz_regressions/<name>, fuzz_<name>
  TargetFn fn;
};

// Pack file header: DecodePackFileHeader, and encode/decode round trips.
int FuzzPackHeader(const uint8_t* data, size_t size);
// Chunk record header: DecodeRecordHeader (optionally with its CRC repaired so the field checks
// are reached), and encode/decode round trips.
int FuzzRecordHeader(const uint8_t* data, size_t size);
// ScanPack over arbitrary pack bytes in a MemEnv, checking the scan's accounting.
int FuzzScanPack(const uint8_t* data, size_t size);
// Metadata values: inode, dirent, extent, chunk index entry, pack stats.
int FuzzMetaValue(const uint8_t* data, size_t size);
// Metadata keys of every column family (xattr and orphan records are key-only: an xattr value
// is the attribute's raw bytes and an orphan value is empty).
int FuzzMetaKey(const uint8_t* data, size_t size);
// The superblock value.
int FuzzSuperblock(const uint8_t* data, size_t size);
// The chunk read path: a stored record (and optionally its index entry) through
// PackChunkStore::Get/Verify on an in-memory store: header check, CRC32C, zstd, SHA-256.
int FuzzChunkRead(const uint8_t* data, size_t size);
// The GPU staging protocol's request decoder and slot check (gpu/protocol.h): a client's bytes.
int FuzzGpuRequest(const uint8_t* data, size_t size);

// The Arrow IPC cutter (store/arrow_ipc.h): FindArrowCuts and CutArrowOrFastCdc on a file's
// bytes after one flags byte (the cut options).
int FuzzArrowIpc(const uint8_t* data, size_t size);

// Every target, in a fixed order.
const std::vector<Target>& AllTargets();

}  // namespace rankfs::fuzz
