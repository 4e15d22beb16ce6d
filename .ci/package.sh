#!/usr/bin/env bash
# CI stage "package": install corio (CMake, meson) and build and run a consumer
# for each way of using it (find_package, add_subdirectory, FetchContent,
# pkg-config, meson, single header). All of it lives in tests/package/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
exec tests/package/run.sh
