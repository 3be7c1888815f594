# CPack: a Debian package of the tools (`cpack -G DEB` in a build tree, or the package_deb
# target). It holds what `cmake --install` installs -- rankfs in /usr/bin, mount.rankfs (and the
# mount.fuse.rankfs link) in /usr/sbin, where mount(8) finds helpers on merged-/usr Debian 12,
# and the man pages -- and declares the Debian packages it needs at run time.
#
# Depends: computed by dpkg-shlibdeps (from dpkg-dev) from the libraries the binaries link, when
# it is installed; otherwise the Debian 12 list below. fuse3 (fusermount3, for mounts by users
# other than root) is always added: no library dependency reveals it.
set(CPACK_PACKAGE_NAME "rankfs")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "rankfs")
set(CPACK_PACKAGE_CONTACT "rankfs maintainers <rankfs@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "deduplicating FUSE filesystem for per-rank training caches")
set(CPACK_PACKAGE_DESCRIPTION
    "rankfs stores the files of a directory (such as a training job's download cache) once per\n\
content chunk, compressed, so that the copies every rank of a job writes take the space of\n\
one. This package holds the rankfs tool (mount, stats, fsck, gc) and mount.rankfs, the helper\n\
that lets /etc/fstab mount rankfs stores.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_PACKAGE_NAME "rankfs")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # rankfs_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${CPACK_PACKAGE_CONTACT}")
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
find_program(RANKFS_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(RANKFS_DPKG_SHLIBDEPS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3 (>= 3.14)")
else()
  # The packages of the libraries rankfs links on Debian 12 (dpkg -S on each .so).
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
      "fuse3 (>= 3.14), libfuse3-3 (>= 3.14), librocksdb7.8, libzstd1 (>= 1.5), libssl3 (>= 3.0), libstdc++6 (>= 12), libgcc-s1, libc6 (>= 2.36)")
endif()

include(CPack)

# `cmake --build BUILD --target package_deb`: builds the tools and writes BUILD/rankfs_*.deb.
add_custom_target(package_deb
  COMMAND ${CMAKE_CPACK_COMMAND} -G DEB --config ${CMAKE_BINARY_DIR}/CPackConfig.cmake
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  COMMENT "Building the Debian package"
  VERBATIM)
add_dependencies(package_deb rankfs mount.rankfs)
