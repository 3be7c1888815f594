// fuse_null: the cost of FUSE itself, for the filesystem benchmark (bench/fsbench.py).
//
// A FUSE filesystem that keeps names and sizes in memory and throws file data away: writes
// are acknowledged without being stored, reads return zeros. Mounted with the kernel options
// rankfs uses (writeback cache, 1 MiB writes, max_background 64), it measures what the
// kernel, /dev/fuse and the writers cost on their own: no FUSE filesystem can write faster,
// so a target below it cannot be met by any FUSE filesystem on that machine. It answers
// getxattr with ENOSYS, which stops the kernel's per-write security.capability queries. It
// renames (os.replace) and accepts chmod, as the Python job of the benchmark needs.
//
//   fuse_null MOUNTPOINT          (foreground; unmount with fusermount3 -u)
//
// It runs libfuse's multi-threaded loop with 16 threads, as rankfs does. Thread-safety: one
// mutex guards the whole node table.
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

struct Node {
  fuse_ino_t parent = 0;
  std::string name;
  bool dir = false;
  uint64_t size = 0;
  uint64_t nlookup = 0;
};

std::mutex g_mu;  // guards g_nodes, g_names, g_next
std::unordered_map<fuse_ino_t, Node> g_nodes;
std::map<std::pair<fuse_ino_t, std::string>, fuse_ino_t> g_names;
fuse_ino_t g_next = 2;

struct stat StatOf(fuse_ino_t ino, const Node& n) {
  struct stat st {};
  st.st_ino = ino;
  st.st_mode = n.dir ? (S_IFDIR | 0755) : (S_IFREG | 0644);
  st.st_nlink = n.dir ? 2 : 1;
  st.st_size = off_t(n.size);
  st.st_blocks = 0;  // nothing is stored
  st.st_uid = getuid();
  st.st_gid = getgid();
  return st;
}

void ReplyEntry(fuse_req_t req, fuse_ino_t ino, const Node& n) {
  fuse_entry_param e{};
  e.ino = ino;
  e.attr = StatOf(ino, n);
  e.attr_timeout = e.entry_timeout = 1.0;
  fuse_reply_entry(req, &e);
}

void Init(void*, fuse_conn_info* conn) {
  conn->max_write = 1u << 20;
  conn->max_readahead = 16u << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_names.find({parent, name});
  if (it == g_names.end()) return (void)fuse_reply_err(req, ENOENT);
  Node& n = g_nodes[it->second];
  ++n.nlookup;
  ReplyEntry(req, it->second, n);
}

// Adds a node under `parent`; returns 0 if the name exists.
fuse_ino_t AddNode(fuse_ino_t parent, const char* name, bool dir) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_names.count({parent, name})) return 0;
  fuse_ino_t ino = g_next++;
  g_nodes[ino] = Node{parent, name, dir, 0, 1};
  g_names[{parent, name}] = ino;
  return ino;
}

void MkDir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t) {
  fuse_ino_t ino = AddNode(parent, name, true);
  if (ino == 0) return (void)fuse_reply_err(req, EEXIST);
  std::lock_guard<std::mutex> l(g_mu);
  ReplyEntry(req, ino, g_nodes[ino]);
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, fuse_file_info* fi) {
  fuse_ino_t ino = AddNode(parent, name, false);
  if (ino == 0) return (void)fuse_reply_err(req, EEXIST);
  fuse_entry_param e{};
  {
    std::lock_guard<std::mutex> l(g_mu);
    e.ino = ino;
    e.attr = StatOf(ino, g_nodes[ino]);
  }
  e.attr_timeout = e.entry_timeout = 1.0;
  fuse_reply_create(req, &e, fi);
}

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_nodes.find(ino);
  if (it == g_nodes.end()) return (void)fuse_reply_err(req, ENOENT);
  struct stat st = StatOf(ino, it->second);
  fuse_reply_attr(req, &st, 1.0);
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_nodes.find(ino);
  if (it == g_nodes.end()) return (void)fuse_reply_err(req, ENOENT);
  if (to_set & FUSE_SET_ATTR_SIZE) it->second.size = uint64_t(attr->st_size);
  struct stat st = StatOf(ino, it->second);
  fuse_reply_attr(req, &st, 1.0);
}

void Open(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) { fuse_reply_open(req, fi); }

void Write(fuse_req_t req, fuse_ino_t ino, const char*, size_t size, off_t off, fuse_file_info*) {
  {
    std::lock_guard<std::mutex> l(g_mu);
    Node& n = g_nodes[ino];
    n.size = std::max<uint64_t>(n.size, uint64_t(off) + size);
  }
  fuse_reply_write(req, size);
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  static thread_local std::string zeros;
  uint64_t file_size;
  {
    std::lock_guard<std::mutex> l(g_mu);
    file_size = g_nodes[ino].size;
  }
  size_t n = uint64_t(off) >= file_size ? 0 : std::min<uint64_t>(size, file_size - off);
  if (zeros.size() < n) zeros.resize(n);
  fuse_reply_buf(req, zeros.data(), n);
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_names.find({parent, name});
  if (it == g_names.end()) return (void)fuse_reply_err(req, ENOENT);
  g_names.erase(it);  // the node goes with its last forget
  fuse_reply_err(req, 0);
}

// Moves a name (flags 0 only: what os.replace asks); a node it replaces goes with its last
// forget.
void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) {
  if (flags != 0) return (void)fuse_reply_err(req, EINVAL);
  std::lock_guard<std::mutex> l(g_mu);
  auto it = g_names.find({parent, name});
  if (it == g_names.end()) return (void)fuse_reply_err(req, ENOENT);
  const fuse_ino_t ino = it->second;
  g_names.erase(it);
  g_names[{newparent, newname}] = ino;
  g_nodes[ino].parent = newparent;
  g_nodes[ino].name = newname;
  fuse_reply_err(req, 0);
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  {
    std::lock_guard<std::mutex> l(g_mu);
    auto it = g_nodes.find(ino);
    if (it != g_nodes.end() && (it->second.nlookup -= std::min(nlookup, it->second.nlookup)) == 0) {
      auto name = g_names.find({it->second.parent, it->second.name});
      if (name == g_names.end() || name->second != ino) g_nodes.erase(it);  // unlinked
    }
  }
  fuse_reply_none(req);
}

void Ok(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }
void FsyncOk(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }
void NoXattr(fuse_req_t req, fuse_ino_t, const char*, size_t) { fuse_reply_err(req, ENOSYS); }

void StatFs(fuse_req_t req, fuse_ino_t) {
  struct statvfs s {};
  s.f_bsize = s.f_frsize = 4096;
  s.f_blocks = s.f_bfree = s.f_bavail = 1ull << 30;
  s.f_files = s.f_ffree = 1ull << 20;
  s.f_namemax = 255;
  fuse_reply_statfs(req, &s);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuse_null MOUNTPOINT\n");
    return 2;
  }
  g_nodes[FUSE_ROOT_ID] = Node{0, "", true, 0, 1};
  fuse_lowlevel_ops ops{};
  ops.init = Init;
  ops.lookup = Lookup;
  ops.forget = Forget;
  ops.getattr = GetAttr;
  ops.setattr = SetAttr;
  ops.mkdir = MkDir;
  ops.unlink = Unlink;
  ops.rename = Rename;
  ops.create = Create;
  ops.open = Open;
  ops.read = Read;
  ops.write = Write;
  ops.flush = Ok;
  ops.release = Ok;
  ops.fsync = FsyncOk;
  ops.getxattr = NoXattr;
  ops.statfs = StatFs;
  char prog[] = "fuse_null";
  char* fargv[] = {prog};
  fuse_args args = FUSE_ARGS_INIT(1, fargv);
  fuse_session* se = fuse_session_new(&args, &ops, sizeof ops, nullptr);
  if (se == nullptr || fuse_session_mount(se, argv[1]) != 0) {
    std::fprintf(stderr, "fuse_null: cannot mount %s\n", argv[1]);
    return 1;
  }
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, 16);
  fuse_loop_cfg_set_idle_threads(cfg, 16);
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}
