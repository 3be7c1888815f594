# Imported targets for every external dependency, all from Debian packages:
#   libfuse3-dev, librocksdb-dev, libzstd-dev, libssl-dev, libgtest-dev, libbenchmark-dev.
find_package(PkgConfig REQUIRED)
pkg_check_modules(FUSE3 REQUIRED IMPORTED_TARGET fuse3>=3.14)
add_library(rankfs::fuse3 ALIAS PkgConfig::FUSE3)

find_package(RocksDB REQUIRED CONFIG)
if(TARGET RocksDB::rocksdb-shared)
  add_library(rankfs::rocksdb ALIAS RocksDB::rocksdb-shared)
else()
  add_library(rankfs::rocksdb ALIAS RocksDB::rocksdb)
endif()

find_package(zstd CONFIG)
if(TARGET zstd::libzstd_shared)
  add_library(rankfs::zstd ALIAS zstd::libzstd_shared)
else()
  pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)
  add_library(rankfs::zstd ALIAS PkgConfig::ZSTD)
endif()

find_package(OpenSSL REQUIRED)  # OpenSSL::Crypto for SHA-256
find_package(Threads REQUIRED)

if(RANKFS_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(RANKFS_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()

# The CUDA toolkit (not a Debian package: NVIDIA's, at /usr/local/cuda on these machines), for
# gpu/'s CUDA backend and its tests; found unless RANKFS_CUDA=OFF. gpu/CMakeLists.txt decides
# what to build from it. Found here, at the top, so that its imported targets
# (CUDA::cudart_static) are visible to gpu/, tests/ and bench/ alike.
if(NOT RANKFS_CUDA STREQUAL "OFF")
  if(NOT CUDAToolkit_ROOT AND NOT DEFINED ENV{CUDAToolkit_ROOT} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CUDAToolkit_ROOT /usr/local/cuda)
  endif()
  find_package(CUDAToolkit QUIET)
endif()
