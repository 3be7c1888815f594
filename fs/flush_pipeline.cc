#include "fs/flush_pipeline.h"

#include <malloc.h>

#include <unordered_set>

#include "store/logging.h"

namespace rankfs {

FlushPipeline::FlushPipeline(ChunkStore* chunks, SuccessorTable* successors, ChunkCache* cache,
                             int workers, CommitFn commit, FinishFn finish, PrecheckFn precheck)
    : chunks_(chunks),
      successors_(successors),
      cache_(cache),
      commit_(std::move(commit)),
      finish_(std::move(finish)),
      precheck_(std::move(precheck)) {
  for (int i = 0; i < std::max(1, workers); ++i) {
    workers_.emplace_back([this] { WorkerLoop(); });
  }
  committer_ = std::thread([this] { CommitterLoop(); });
}

FlushPipeline::~FlushPipeline() { Stop(); }

void FlushPipeline::Hash(ChunkRef chunk) {
  std::lock_guard<std::mutex> l(mu_);
  hash_.push_back(std::move(chunk));
  work_cv_.notify_one();
}

void FlushPipeline::Submit(std::shared_ptr<FlushBatch> batch) {
  batch->chunks_left = batch->chunks.size();
  batch->referenced = std::make_unique<std::atomic<bool>[]>(batch->chunks.size());
  std::lock_guard<std::mutex> l(mu_);
  order_.push_back(batch);
  work_.push_back(std::move(batch));
  work_cv_.notify_one();
}

void FlushPipeline::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ && workers_.empty() && !committer_.joinable()) return;
    stopping_ = true;
    work_cv_.notify_all();
    commit_cv_.notify_all();
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  if (committer_.joinable()) committer_.join();
}

void FlushPipeline::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  drained_cv_.wait(l, [&] { return order_.empty() && !committing_; });
}

FlushPipelineStats FlushPipeline::GetStats() {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

void FlushPipeline::PutOne(FlushBatch& b, size_t i) {
  StreamChunk& c = *b.chunks[i];
  Status st;
  if (b.put_failed.load()) return;  // the batch fails anyway: spare the work
  EnsureHashed(c, successors_, cache_);
  if (precheck_) st = precheck_();
  if (st.ok()) {
    st = c.scope ? chunks_->PutScoped(c.hash, *c.bytes, *c.scope) : chunks_->Put(c.hash, *c.bytes);
  }
  if (st.ok()) {
    b.referenced[i] = true;
    return;
  }
  std::lock_guard<std::mutex> l(b.error_mu);
  if (b.put_error.ok()) {
    b.put_error = st.Annotate("storing inode " + std::to_string(b.ino) + " at offset " +
                              std::to_string(c.offset));
  }
  b.put_failed = true;
}

void FlushPipeline::WorkerLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    work_cv_.wait(l, [&] { return stopping_ || !work_.empty() || !hash_.empty(); });
    if (!hash_.empty()) {  // hashes first: other streams may be waiting to confirm them
      ChunkRef c = std::move(hash_.front());
      hash_.pop_front();
      if (!hash_.empty() || !work_.empty()) work_cv_.notify_one();
      l.unlock();
      EnsureHashed(*c, successors_, cache_);
      l.lock();
      continue;
    }
    if (work_.empty()) return;  // stopping, and nothing left to put
    std::shared_ptr<FlushBatch> b = work_.front();
    const size_t i = b->next_chunk++;
    if (i + 1 >= b->chunks.size()) work_.pop_front();  // its last chunk is claimed
    if (!work_.empty()) work_cv_.notify_one();         // more to claim: wake a helper
    l.unlock();
    PutOne(*b, i);
    const bool last = --b->chunks_left == 0;
    l.lock();
    if (last) {
      b->stored = true;
      commit_cv_.notify_one();
    }
  }
}

void FlushPipeline::Undo(FlushBatch& b) {
  for (size_t i = 0; i < b.chunks.size(); ++i) {
    if (!b.referenced[i]) continue;
    Status s = chunks_->Unref(b.chunks[i]->hash, 1);
    if (!s.ok())
      Log(LogLevel::kError, "fs", "dropping a failed batch's reference: " + s.ToString());
    b.referenced[i] = false;
  }
}

void FlushPipeline::CommitterLoop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    // Ready: stored batches not preceded by an unstored batch of the same inode.
    std::vector<std::shared_ptr<FlushBatch>> ready;
    for (;;) {
      std::unordered_set<Ino> blocked;
      for (auto it = order_.begin(); it != order_.end();) {
        if ((*it)->stored && blocked.count((*it)->ino) == 0) {
          ready.push_back(*it);
          it = order_.erase(it);
        } else {
          blocked.insert((*it)->ino);
          ++it;
        }
      }
      if (!ready.empty()) break;
      if (stopping_ && order_.empty()) return;
      commit_cv_.wait(l);  // notified when a batch is stored, or on Stop
    }
    ++stats_.commit_rounds;
    committing_ = true;
    l.unlock();
    // One sync of the packs and one index write for all of them (the group commit).
    Status flushed = chunks_->Flush();
    std::vector<Status> results;
    results.reserve(ready.size());
    uint64_t failed = 0;
    for (const auto& b : ready) {
      Status st = b->put_failed ? b->put_error : flushed;
      if (st.ok()) st = commit_(*b);
      if (!st.ok()) {
        if (!b->outcome_unknown) Undo(*b);  // else the extents may hold the references
        ++failed;
      }
      results.push_back(std::move(st));
    }
    {
      // Counted before the owners hear of it: whoever waited for a batch sees it in the stats.
      std::lock_guard<std::mutex> sl(mu_);
      stats_.batches += ready.size();
      stats_.failed_batches += failed;
    }
    for (size_t i = 0; i < ready.size(); ++i) finish_(ready[i], results[i]);
    // Freed chunk buffers go back to the OS at most once a second while batches flow: without
    // it the heap keeps the high-water mark of every arena (fs/daemon.cc, LimitHeapArenas).
    const auto now = std::chrono::steady_clock::now();
    const bool trim = now - last_trim_ >= std::chrono::seconds(1);
    if (trim) {
      last_trim_ = now;
      malloc_trim(0);
    }
    l.lock();
    if (trim) ++stats_.heap_trims;
    committing_ = false;
    if (order_.empty()) drained_cv_.notify_all();
  }
}

}  // namespace rankfs
