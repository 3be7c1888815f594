// FlushPipeline: moves the chunks cut from files' streams into the store off the writers'
// threads, and commits their extents in group commits.
//
//   writer thread (FUSE WRITE, inode lock held): StreamChunker cuts -> Hash(chunk) for each
//       cut chunk, Submit(batch) for each batch of them
//   worker threads (one per core): first the hash queue (SHA-256 of each cut chunk, which
//       lets other streams' guesses confirm it: fs/successor_table.h), then ChunkStore::Put of
//       each batch's chunks (dedup probe, or zstd + append), chunk by chunk, so that one
//       file's batch is hashed and compressed on every core at once
//   committer thread: ChunkStore::Flush() (one fdatasync of the packs for everything stored
//       since the last round, then the chunk index), then each batch's extents
//       (CommitFn), then FinishFn.
//
// Ordering: batches of one inode commit in the order they were submitted (their ranges are
// disjoint, but an old extent may straddle two of them); batches of different inodes do not
// wait for each other. Durability rule (docs/design.md): extents are written only after the
// Flush() that made their chunks durable and indexed. A batch whose puts or commit fail drops
// the references its puts took (unless its commit's write may have happened after all:
// FlushBatch::outcome_unknown) and is finished with the error; its bytes stay in the batch so
// that the owner can buffer them again (nothing is lost, the next flush retries).
//
// Thread-safety: Submit may be called from any thread. The callbacks run on the committer
// thread with no pipeline lock held; they must not wait for the pipeline.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "fs/stream_chunker.h"
#include "store/chunk_store.h"
#include "store/status.h"

namespace rankfs {

struct Inode;  // fs_core_impl.h: the owner of a batch

// A run of chunks cut from one file's stream, replacing the file range [start, end).
struct FlushBatch {
  std::shared_ptr<Inode> inode;  // kept alive until the batch finishes
  Ino ino = 0;
  uint64_t start = 0, end = 0;
  // Contiguous, in file order, covering [start, end). Each is stored in its own scope (the
  // uid its address was computed with), which may differ from chunk to chunk: the file's owner
  // can change between the cuts of one batch.
  std::vector<ChunkRef> chunks;
  uint64_t bytes = 0;  // end - start

  // Owner's state, guarded by the owner (Inode::batch_mu): finished with an error.
  bool failed = false;
  Status error;
  // Set by the CommitFn when its metadata write failed with an unknown outcome: the extents
  // may hold the batch's references, so they are not dropped (committer thread only).
  bool outcome_unknown = false;

  // Pipeline state.
  std::atomic<size_t> next_chunk{0};   // next chunk a worker may claim
  std::atomic<size_t> chunks_left{0};  // chunks not yet put
  std::atomic<bool> put_failed{false};
  std::unique_ptr<std::atomic<bool>[]> referenced;  // chunk i's Put took a reference
  std::mutex error_mu;
  Status put_error;     // the first failed Put; guarded by error_mu
  bool stored = false;  // every chunk was put (or failed); guarded by the pipeline's mu_
};

struct FlushPipelineStats {
  uint64_t batches = 0;        // finished batches
  uint64_t commit_rounds = 0;  // chunk-store Flush() calls made by the committer
  uint64_t failed_batches = 0;
  uint64_t heap_trims = 0;  // malloc_trim calls made by the committer
};

class FlushPipeline {
 public:
  // Writes the batch's extents (after its chunks were flushed and indexed).
  using CommitFn = std::function<Status(FlushBatch&)>;
  // Called once per batch after its commit (status OK) or failure; no pipeline lock held.
  using FinishFn = std::function<void(const std::shared_ptr<FlushBatch>&, const Status&)>;
  // Asked before each chunk is stored (e.g. the free-space reserve); an error fails the batch.
  using PrecheckFn = std::function<Status()>;

  // `successors` and `cache` (either may be null) are what EnsureHashed feeds.
  FlushPipeline(ChunkStore* chunks, SuccessorTable* successors, ChunkCache* cache, int workers,
                CommitFn commit, FinishFn finish, PrecheckFn precheck);
  ~FlushPipeline();  // Stop()s
  FlushPipeline(const FlushPipeline&) = delete;
  FlushPipeline& operator=(const FlushPipeline&) = delete;

  // Queues a cut chunk for hashing ahead of all stores (EnsureHashed).
  void Hash(ChunkRef chunk);
  // Queues a batch (at least one chunk). The batch must not be touched by the caller until
  // FinishFn ran for it, except for the owner's fields.
  void Submit(std::shared_ptr<FlushBatch> batch);
  // Waits until every batch submitted so far has finished.
  void Drain();
  // Finishes every submitted batch, then stops the threads. Submit must not be called after.
  void Stop();

  FlushPipelineStats GetStats();

 private:
  void WorkerLoop();
  void CommitterLoop();
  void PutOne(FlushBatch& b, size_t i);
  // Drops the references a failed batch's puts took.
  void Undo(FlushBatch& b);

  ChunkStore* const chunks_;
  SuccessorTable* const successors_;
  ChunkCache* const cache_;
  const CommitFn commit_;
  const FinishFn finish_;
  const PrecheckFn precheck_;

  std::mutex mu_;                                  // guards everything below and FlushBatch::stored
  std::condition_variable work_cv_;                // hash_ or work_ got something, or stopping
  std::condition_variable commit_cv_;              // a batch was stored, or stopping
  std::condition_variable drained_cv_;             // order_ became empty
  std::deque<ChunkRef> hash_;                      // cut chunks to hash, before any put
  std::deque<std::shared_ptr<FlushBatch>> work_;   // batches with chunks left to claim
  std::deque<std::shared_ptr<FlushBatch>> order_;  // unfinished batches, in submission order
  bool stopping_ = false;
  bool committing_ = false;  // the committer is finishing batches taken off order_
  FlushPipelineStats stats_;
  std::chrono::steady_clock::time_point last_trim_;  // the committer's own
  std::vector<std::thread> workers_;
  std::thread committer_;
};

}  // namespace rankfs
