#include "fs/mount_options.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <limits>

#include "store/chunker.h"

namespace rankfs {
namespace {

Status Malformed(std::string_view item, std::string_view why) {
  return Status(EINVAL, "mount option '" + std::string(item) + "': " + std::string(why));
}

// Unsigned decimal (base 10) or octal (base 8), the whole text, no sign.
Result<uint64_t> ParseUnsigned(std::string_view text, int base) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v, base);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Status(EINVAL, "not a " + std::string(base == 8 ? "octal" : "decimal") + " number");
  }
  return v;
}

Result<bool> ParseOnOff(std::string_view text) {
  if (text == "on" || text == "1" || text == "yes" || text == "true") return true;
  if (text == "off" || text == "0" || text == "no" || text == "false") return false;
  return Status(EINVAL, "expected on or off");
}

Result<double> ParseSeconds(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) ||
      v < 0) {
    return Status(EINVAL, "expected a non-negative number of seconds");
  }
  return v;
}

// Mount flags that libfuse 3.14 passes to mount(2) itself.
bool IsKernelFlag(std::string_view name) {
  for (std::string_view f :
       {"nosuid", "nodev", "noexec", "suid", "dev", "exec", "noatime", "atime", "auto_unmount"}) {
    if (name == f) return true;
  }
  return false;
}

// Words that fstab and mount(8) use for their own purposes; they mean nothing to rankfs.
bool IsIgnoredFstabWord(std::string_view name) {
  for (std::string_view f :
       {"defaults", "_netdev", "nofail", "noauto", "auto", "user", "nouser", "users"}) {
    if (name == f) return true;
  }
  return name.starts_with("x-");
}

// Accepted and ignored: default_permissions is always passed to the kernel (rankfs relies on
// its permission checks); relatime is the kernel's default for FUSE mounts (libfuse rejects
// the word); fstab words belong to mount(8).
bool IsAcceptedNoOp(std::string_view name) {
  return name == "default_permissions" || name == "relatime" || IsIgnoredFstabWord(name);
}

// Applies one "name" or "name=value" item.
Status ApplyOption(std::string_view item, MountConfig* cfg, bool* chunker_changed) {
  const size_t eq = item.find('=');
  const std::string_view name = item.substr(0, eq);
  const bool has_value = eq != std::string_view::npos;
  const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view();

  // Options without a value.
  if (!has_value) {
    if (name == "allow_other") {
      cfg->allow_other = true;
    } else if (name == "debug") {
      cfg->debug = true;
    } else if (name == "ro" || name == "rw") {
      // A read-only mount changes nothing in the store either (no recovery, no writes).
      cfg->read_only = cfg->store.read_only = cfg->fs.read_only = name == "ro";
    } else if (IsKernelFlag(name)) {
      cfg->kernel_flags.emplace_back(name);
    } else if (!IsAcceptedNoOp(name)) {
      for (std::string_view needs_value :
           {"compress", "chunk_min", "chunk_avg", "chunk_max", "cache_size", "write_buffer",
            "entry_timeout", "attr_timeout", "xattr", "writeback_cache", "page_fill", "uid",
            "gid", "fuse_threads", "umask", "fsname", "dedup", "reserve", "lazy_close"}) {
        if (name == needs_value) {
          return Malformed(item, "needs a value (" + std::string(name) + "=...)");
        }
      }
      return Malformed(item, "unknown option");
    }
    return Status::Ok();
  }

  if (name == "compress") {
    auto v = ParseUnsigned(value, 10);
    if (!v.ok() || *v > 19) return Malformed(item, "expected a zstd level from 0 to 19");
    cfg->store.compression_level = int(*v);
  } else if (name == "chunk_min" || name == "chunk_avg" || name == "chunk_max") {
    auto v = ParseByteSize(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    if (*v > std::numeric_limits<uint32_t>::max()) return Malformed(item, "too large");
    uint32_t size = uint32_t(*v);
    if (name == "chunk_avg" && !std::has_single_bit(size)) {
      return Malformed(item, "the average chunk size must be a power of two");
    }
    ChunkerParams& p = cfg->store.chunker;
    (name == "chunk_min" ? p.min_size : name == "chunk_avg" ? p.avg_size : p.max_size) = size;
    *chunker_changed = true;
  } else if (name == "cache_size" || name == "write_buffer") {
    auto v = ParseByteSize(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    (name == "cache_size" ? cfg->fs.chunk_cache_bytes : cfg->fs.write_buffer_bytes) = *v;
  } else if (name == "reserve") {
    auto v = ParseByteSize(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    cfg->fs.reserve_bytes = *v;
  } else if (name == "entry_timeout" || name == "attr_timeout") {
    auto v = ParseSeconds(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    (name == "entry_timeout" ? cfg->fs.entry_timeout_s : cfg->fs.attr_timeout_s) = *v;
  } else if (name == "lazy_close") {
    auto v = ParseSeconds(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    if (*v > 3600) return Malformed(item, "at most 3600 seconds");
    cfg->fs.lazy_close_ms = int64_t(*v * 1000);
  } else if (name == "xattr" || name == "writeback_cache" || name == "page_fill") {
    auto v = ParseOnOff(value);
    if (!v.ok()) return Malformed(item, v.status().message());
    (name == "xattr" ? cfg->fs.xattrs : name == "writeback_cache" ? cfg->writeback_cache
                                                                  : cfg->page_fill) = *v;
  } else if (name == "fuse_threads") {
    auto v = ParseUnsigned(value, 10);
    if (!v.ok() || *v < 2 || *v > 64) return Malformed(item, "expected a number from 2 to 64");
    cfg->fuse_threads = unsigned(*v);
  } else if (name == "uid" || name == "gid") {
    auto v = ParseUnsigned(value, 10);
    if (!v.ok() || *v >= std::numeric_limits<uint32_t>::max()) {
      return Malformed(item, "expected a numeric id");
    }
    (name == "uid" ? cfg->fs.root_uid : cfg->fs.root_gid) = uint32_t(*v);
  } else if (name == "umask") {
    auto v = ParseUnsigned(value, 8);
    if (!v.ok() || *v > 0777) return Malformed(item, "expected an octal mask from 0 to 777");
    cfg->fs.root_mode = 0777 & ~uint32_t(*v);
  } else if (name == "dedup") {
    if (value == "global") cfg->store.dedup_scope = DedupScope::kGlobal;
    else if (value == "per-uid") cfg->store.dedup_scope = DedupScope::kPerUid;
    else return Malformed(item, "expected global or per-uid");
  } else if (name == "fsname") {
    if (value.empty()) return Malformed(item, "empty name");
    cfg->fsname = std::string(value);
  } else {
    return Malformed(item, "unknown option");
  }
  return Status::Ok();
}

// Escapes the characters that fuse_opt_parse treats specially inside one -o list.
std::string EscapeOptValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

Result<uint64_t> ParseByteSize(std::string_view text) {
  uint64_t mult = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k':
      case 'K':
        mult = 1ull << 10;
        break;
      case 'm':
      case 'M':
        mult = 1ull << 20;
        break;
      case 'g':
      case 'G':
        mult = 1ull << 30;
        break;
      default:
        break;
    }
    if (mult != 1) text.remove_suffix(1);
  }
  auto v = ParseUnsigned(text, 10);
  if (!v.ok()) return Status(EINVAL, "expected a size such as 4096, 64K, 16M or 1G");
  if (*v > std::numeric_limits<uint64_t>::max() / mult) return Status(EINVAL, "size too large");
  return *v * mult;
}

Status ParseMountOptions(std::string_view options, MountConfig* cfg) {
  bool chunker_changed = false;
  size_t pos = 0;
  while (pos <= options.size()) {
    size_t comma = options.find(',', pos);
    if (comma == std::string_view::npos) comma = options.size();
    std::string_view item = options.substr(pos, comma - pos);
    if (!item.empty()) RANKFS_RETURN_IF_ERROR(ApplyOption(item, cfg, &chunker_changed));
    pos = comma + 1;
  }
  if (chunker_changed) {
    Status s = FastCdc::ValidateParams(cfg->store.chunker);
    if (!s.ok()) {
      return Status(EINVAL, "mount options chunk_min/chunk_avg/chunk_max: " + s.message());
    }
  }
  return Status::Ok();
}

FstabOptionSplit StripFstabOptions(std::string_view options) {
  FstabOptionSplit split;
  size_t pos = 0;
  while (pos <= options.size()) {
    size_t comma = options.find(',', pos);
    if (comma == std::string_view::npos) comma = options.size();
    const std::string_view item = options.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    const std::string_view name = item.substr(0, item.find('='));
    bool fstab_only = name.starts_with("x-") || name == "comment" || name == "user";
    for (std::string_view w :
         {"defaults", "auto", "noauto", "nofail", "_netdev", "users", "nouser", "owner", "group"}) {
      fstab_only = fstab_only || item == w;
    }
    if (fstab_only) {
      split.fstab_only.emplace_back(item);
    } else {
      if (!split.mount_options.empty()) split.mount_options += ',';
      split.mount_options += item;
    }
  }
  return split;
}

std::vector<std::string> BuildFuseArgs(const MountConfig& cfg, const std::string& store_dir) {
  std::vector<std::string> args = {"rankfs"};
  if (cfg.debug) args.emplace_back("-d");
  std::string o = "fsname=" + EscapeOptValue(cfg.fsname.empty() ? store_dir : cfg.fsname);
  o += ",subtype=rankfs,default_permissions";
  if (cfg.allow_other) o += ",allow_other";
  o += cfg.read_only ? ",ro" : ",rw";
  for (const std::string& f : cfg.kernel_flags) o += "," + f;
  args.emplace_back("-o");
  args.push_back(std::move(o));
  return args;
}

}  // namespace rankfs
