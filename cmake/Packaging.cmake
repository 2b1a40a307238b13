# Debian packages built with CPack (`cpack -G DEB`, or scripts/package-deb.sh): one package per
# install component.
#   sparecycles-coordinator  the coordinator and its systemd unit
#   sparecycles-worker       the worker, its systemd unit (run as the system user `sparecycles`,
#                            which the package creates), /etc/sparecycles/worker.conf
#   sparecycles-cli          the `sparecycles` CLI and the SDK: libsparecycles.so, the headers and
#                            the CMake package SpareCycles
# Dependencies come from dpkg-shlibdeps (package dpkg-dev), so they name the Debian packages of the
# libraries the binaries were linked against. The files that only packages carry (units, /etc,
# documentation) are EXCLUDE_FROM_ALL: a plain `cmake --install` installs what it always did.

set(SC_DEBIAN_DIR ${PROJECT_SOURCE_DIR}/deploy/debian)

# Packaging-only files. /etc is absolute on purpose: CPack installs into a staging DESTDIR, and a
# worker's configuration belongs in /etc whatever the package's prefix.
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/sparecycles-coordinator.service
  DESTINATION lib/systemd/system COMPONENT coordinator EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/sparecycles-worker.service
  DESTINATION lib/systemd/system COMPONENT worker EXCLUDE_FROM_ALL)
install(FILES ${SC_DEBIAN_DIR}/worker/user.conf
  DESTINATION lib/systemd/system/sparecycles-worker.service.d
  COMPONENT worker EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/sparecycles-worker.service.d/cluster.conf
  DESTINATION ${CMAKE_INSTALL_DATADIR}/sparecycles/systemd COMPONENT worker EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/worker.conf
  DESTINATION /etc/sparecycles COMPONENT worker EXCLUDE_FROM_ALL)
install(FILES ${PROJECT_SOURCE_DIR}/docs/deploy.md
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/sparecycles COMPONENT worker EXCLUDE_FROM_ALL)
foreach(comp coordinator worker cli)
  install(FILES ${SC_DEBIAN_DIR}/copyright
    DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/sparecycles-${comp} COMPONENT ${comp} EXCLUDE_FROM_ALL)
endforeach()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sparecycles)
set(CPACK_PACKAGE_VENDOR "SpareCycles")
set(CPACK_PACKAGE_CONTACT "SpareCycles maintainers <sparecycles@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "volunteer collaborative computing")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL coordinator worker cli)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION misc)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://sparecycles.invalid/")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_COORDINATOR_PACKAGE_NAME sparecycles-coordinator)
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_SECTION net)
set(CPACK_COMPONENT_COORDINATOR_DESCRIPTION "SpareCycles coordinator
 Owns the jobs of a SpareCycles pool: splits them into work units, leases units to workers,
 checks and merges their results, and keeps jobs, results and checkpoints in SQLite.
 Ships a hardened systemd unit (not enabled on install).")
set(CPACK_DEBIAN_COORDINATOR_PACKAGE_CONTROL_EXTRA
  ${SC_DEBIAN_DIR}/coordinator/postinst ${SC_DEBIAN_DIR}/coordinator/prerm
  ${SC_DEBIAN_DIR}/coordinator/postrm)

set(CPACK_DEBIAN_WORKER_PACKAGE_NAME sparecycles-worker)
set(CPACK_DEBIAN_WORKER_PACKAGE_SECTION net)
# The maintainer scripts create the system user with useradd (passwd is Priority: required).
set(CPACK_DEBIAN_WORKER_PACKAGE_DEPENDS "passwd")
set(CPACK_COMPONENT_WORKER_DESCRIPTION "SpareCycles worker (donates this machine's idle CPU)
 Runs work units for a SpareCycles coordinator with the CPU nobody else wants: it pauses when
 the machine is busy, runs at the lowest priority and hands its work back when stopped.
 Ships a hardened systemd unit running as the system user sparecycles (not enabled on install)
 and the owner's preferences in /etc/sparecycles/worker.conf.")
set(CPACK_DEBIAN_WORKER_PACKAGE_CONTROL_EXTRA
  ${SC_DEBIAN_DIR}/worker/conffiles ${SC_DEBIAN_DIR}/worker/postinst
  ${SC_DEBIAN_DIR}/worker/prerm ${SC_DEBIAN_DIR}/worker/postrm)

set(CPACK_DEBIAN_CLI_PACKAGE_NAME sparecycles-cli)
set(CPACK_DEBIAN_CLI_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_CLI_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_COMPONENT_CLI_DESCRIPTION "SpareCycles command line and SDK
 The sparecycles command (submit, status, wait, jobs, peers, cancel, package), the client library
 libsparecycles.so, its C++ headers and the task API headers, and the CMake package SpareCycles
 (find_package(SpareCycles): SpareCycles::sdk and SpareCycles::tasks).")

include(CPack)
