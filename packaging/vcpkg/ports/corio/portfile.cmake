# vcpkg port for corio (header-only).
#
# This is an OVERLAY port that builds the corio checkout it sits in:
#     vcpkg install corio --overlay-ports=<corio>/packaging/vcpkg/ports
# SOURCE_PATH is the repository's root, four levels up from this file. vcpkg does not hash
# files outside the port directory, so after changing corio's sources pass
# --no-binarycaching (or bump "port-version" in vcpkg.json) to get them rebuilt.
#
# For a registry port, replace the set() below with a download of a release:
#     vcpkg_from_github(
#         OUT_SOURCE_PATH SOURCE_PATH
#         REPO OWNER/corio                  # placeholder: the project's GitHub repository
#         REF "v${VERSION}"
#         SHA512 0                          # placeholder: vcpkg prints the real hash on first try
#         HEAD_REF main
#     )
set(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../..")

# Header-only: one (release) configuration is enough.
set(VCPKG_BUILD_TYPE release)

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DCORIO_BUILD_TESTS=OFF
        -DCORIO_BUILD_EXAMPLES=OFF
        -DCORIO_BUILD_BENCHMARKS=OFF
        -DCORIO_INSTALL=ON
)
vcpkg_cmake_install()

# corio installs its package config to share/cmake/corio (CMAKE_INSTALL_DATADIR); vcpkg wants it
# in share/corio. The fixup moves it there and removes the emptied share/cmake.
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/corio)
# corio.pc (in share/pkgconfig) has the absolute install prefix; make it relocatable.
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
