"""Conan 2 recipe for corio (header-only).

From the repository's root:

    conan create packaging/conan --build=missing -s compiler.cppstd=20

The recipe packages the checkout it sits in: export_sources() copies the
repository's include/ tree (two levels up) into the recipe's sources, so no
download or SHA is involved. For a registry (e.g. ConanCenter), replace
export_sources() with a source() that fetches a release archive listed in
conandata.yml.
"""
import os
import re

from conan import ConanFile
from conan.errors import ConanInvalidConfiguration
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout
from conan.tools.scm import Version

required_conan_version = ">=2.0"


class CorioConan(ConanFile):
    name = "corio"
    description = "Python asyncio for C++: a header-only C++20 coroutine library"
    license = "MIT"
    url = "https://github.com/OWNER/corio"        # placeholder: the project's repository
    homepage = "https://github.com/OWNER/corio"   # placeholder
    topics = ("asyncio", "coroutines", "async", "event-loop", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    # Oldest compilers that build corio: GCC 11 (its tests all pass), and Clang 15 with
    # libstdc++ (Clang 14 lacks __builtin_source_location); under Clang 15 debug mode reports a
    # task's creation site inside corio instead of at the caller. Clang 16 is fully tested.
    _min_compilers = {"gcc": "11", "clang": "15"}

    @property
    def _repo_root(self):
        return os.path.join(self.recipe_folder, "..", "..")

    def set_version(self):
        # One version for CMake, Meson and Conan: read project(corio VERSION x.y.z). Only
        # called at export / local install, where the repository is beside the recipe.
        if self.version:
            return  # --version on the command line wins
        cmake = load(self, os.path.join(self._repo_root, "CMakeLists.txt"))
        match = re.search(r"project\s*\(\s*corio\b[^)]*?\bVERSION\s+([0-9][0-9.]*)", cmake)
        self.version = match.group(1) if match else "0.1.0"

    def export_sources(self):
        # The recipe lives in packaging/conan/, the sources two levels up: exports_sources
        # cannot reach there, so copy them ourselves.
        root = self._repo_root
        dst = self.export_sources_folder
        copy(self, "*", os.path.join(root, "include"), os.path.join(dst, "include"))
        copy(self, "*", os.path.join(root, "cmake"), os.path.join(dst, "cmake"))
        copy(self, "LICENSE", root, dst)
        copy(self, "CMakeLists.txt", root, dst)

    def layout(self):
        # Exported sources land in the root source folder, so no src_folder here.
        basic_layout(self)

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)
        minimum = self._min_compilers.get(str(self.settings.compiler))
        if minimum and Version(self.settings.compiler.version) < minimum:
            raise ConanInvalidConfiguration(
                f"{self.ref} needs {self.settings.compiler} >= {minimum} (C++20 coroutines and "
                "std::source_location)")
        # epoll today; kqueue (macOS, FreeBSD) is planned. Other systems stop at an #error.
        if self.settings.os not in ("Linux", "FreeBSD", "Macos"):
            raise ConanInvalidConfiguration(f"{self.ref} supports Linux, FreeBSD and macOS only")

    def build(self):
        pass  # header-only

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        # The same names corio's own install gives: find_package(corio) -> corio::corio, and
        # pkg-config's corio.
        self.cpp_info.set_property("cmake_file_name", "corio")
        self.cpp_info.set_property("cmake_target_name", "corio::corio")
        self.cpp_info.set_property("pkg_config_name", "corio")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
