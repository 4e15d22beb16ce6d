#!/usr/bin/env python3
"""Check the package recipes in packaging/ offline (CI has no PyPI: Conan and vcpkg can't be
installed).

Conan: minimal stand-ins for the few conan.* names the recipe imports let us run its methods
(set_version, export_sources, validate, package, package_info) against this checkout and check
what they produce. This catches typos, wrong paths and a wrong version; it cannot prove the
recipe right for a real Conan, whose behaviour the stubs only imitate.

vcpkg: the manifest is valid JSON with the fields vcpkg needs and the version of
CMakeLists.txt; the portfile passes options that CMakeLists.txt has.
"""
import json
import fnmatch
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "packaging" / "conan" / "conanfile.py"
PORT = ROOT / "packaging" / "vcpkg" / "ports" / "corio"
sys.dont_write_bytecode = True  # leave no __pycache__ beside the recipe


class ConanInvalidConfiguration(Exception):
    pass


def copy(conanfile, pattern, src, dst):
    # Like conan.tools.files.copy: the pattern is matched against paths relative to src, and
    # `*` crosses directories.
    copied = []
    for dirpath, _, files in os.walk(src):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            if fnmatch.fnmatch(rel, pattern):
                os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(os.path.join(src, rel), os.path.join(dst, rel))
                copied.append(rel)
    return copied


def load(conanfile, path):
    return Path(path).read_text(encoding="utf-8")


def check_min_cppstd(conanfile, cppstd):
    current = str(conanfile.settings.compiler.cppstd).replace("gnu", "")
    if int(current) < int(cppstd):
        raise ConanInvalidConfiguration(f"cppstd {current} < {cppstd}")


class Version:
    def __init__(self, v):
        self.parts = tuple(int(p) for p in str(v).split("."))

    def __lt__(self, other):
        return self.parts < Version(other).parts


class Setting(str):
    """A settings value: compares as a string and has sub-settings as attributes."""
    def __new__(cls, value, **sub):
        s = super().__new__(cls, value)
        s.__dict__.update(sub)
        return s


class CppInfo:
    def __init__(self):
        self.props, self.system_libs, self.bindirs, self.libdirs = {}, [], ["bin"], ["lib"]

    def set_property(self, name, value):
        self.props[name] = value


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def install_stubs():
    mods = {name: types.ModuleType(name) for name in (
        "conan", "conan.errors", "conan.tools", "conan.tools.build", "conan.tools.files",
        "conan.tools.layout", "conan.tools.scm")}
    mods["conan"].ConanFile = type("ConanFile", (), {"version": None})
    mods["conan.errors"].ConanInvalidConfiguration = ConanInvalidConfiguration
    mods["conan.tools.build"].check_min_cppstd = check_min_cppstd
    mods["conan.tools.files"].copy = copy
    mods["conan.tools.files"].load = load
    mods["conan.tools.layout"].basic_layout = lambda conanfile, src_folder=".": None
    mods["conan.tools.scm"].Version = Version
    sys.modules.update(mods)


def recipe(os_name="Linux", compiler="gcc", version="12", cppstd="20"):
    spec = importlib.util.spec_from_file_location("corio_conanfile", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    r = module.CorioConan()
    r.recipe_folder = str(RECIPE.parent)
    r.ref = "corio/test"
    r.settings = types.SimpleNamespace(
        os=Setting(os_name), compiler=Setting(compiler, version=version, cppstd=cppstd))
    return r


def check_conan(want):
    install_stubs()
    r = recipe()
    r.set_version()
    assert r.version == want, f"set_version gave {r.version}, CMakeLists.txt says {want}"
    r.validate()
    for bad in (dict(cppstd="17"), dict(version="10"), dict(compiler="clang", version="14"),
                dict(os_name="Windows")):
        try:
            recipe(**bad).validate()
        except ConanInvalidConfiguration:
            continue
        raise AssertionError(f"validate() accepted {bad}")

    with tempfile.TemporaryDirectory() as tmp:
        r.export_sources_folder = r.source_folder = os.path.join(tmp, "src")
        r.package_folder = os.path.join(tmp, "pkg")
        r.export_sources()
        for f in ("LICENSE", "CMakeLists.txt", "cmake/corioConfig.cmake.in",
                  "include/corio/corio.hpp"):
            assert os.path.isfile(os.path.join(r.source_folder, f)), f"not exported: {f}"
        r.layout()
        r.package()
        headers = files_under(ROOT / "include")
        packaged = files_under(Path(r.package_folder) / "include")
        assert packaged == headers, f"packaged {packaged}, expected {headers}"
        assert os.path.isfile(os.path.join(r.package_folder, "licenses", "LICENSE"))

    r.cpp_info = CppInfo()
    r.package_info()
    assert r.cpp_info.props == {"cmake_file_name": "corio", "cmake_target_name": "corio::corio",
                                "pkg_config_name": "corio"}, r.cpp_info.props
    assert r.cpp_info.bindirs == [] and r.cpp_info.libdirs == []
    assert r.cpp_info.system_libs == ["pthread"]
    print(f"conan recipe: ok (offline stubs; corio/{r.version}, {len(headers)} headers packaged)")


def check_vcpkg(want, cmake):
    manifest = json.loads((PORT / "vcpkg.json").read_text(encoding="utf-8"))
    assert manifest["name"] == "corio" and manifest["license"] == "MIT", manifest
    assert manifest["version"] == want, f"vcpkg.json has {manifest['version']}, CMake {want}"
    host_deps = {d["name"] for d in manifest["dependencies"] if d.get("host")}
    assert host_deps == {"vcpkg-cmake", "vcpkg-cmake-config"}, host_deps
    portfile = (PORT / "portfile.cmake").read_text(encoding="utf-8")
    for option in re.findall(r"-D(CORIO_[A-Z_]+)=", portfile):
        assert f"option({option} " in cmake, f"portfile.cmake sets {option}, unknown to CMake"
    assert (PORT / "usage").is_file()
    print(f"vcpkg port: ok (corio {manifest['version']}, supports {manifest['supports']})")


def main():
    cmake = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    want = re.search(r"project\s*\(\s*corio\b[^)]*?\bVERSION\s+([0-9.]+)", cmake).group(1)
    check_conan(want)
    check_vcpkg(want, cmake)


if __name__ == "__main__":
    main()
