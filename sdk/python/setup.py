"""Builds the `sparecycles` wheel: setuptools runs CMake on the SpareCycles project for the one
extension module (sparecycles/_sparecycles*.so) and packages it with sparecycles/__init__.py.

Environment:
  SPARECYCLES_SOURCE_DIR   the project root (default: two directories above this file)
  SPARECYCLES_CMAKE_ARGS   extra CMake arguments, space-separated
  SPARECYCLES_BUILD_JOBS   parallel build jobs (default: 2)
"""
import glob
import os
import pathlib
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = pathlib.Path(__file__).resolve().parent
ROOT = pathlib.Path(os.environ.get("SPARECYCLES_SOURCE_DIR") or HERE.parent.parent).resolve()


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not (ROOT / "sdk" / "python" / "src" / "_sparecycles.cpp").exists():
            sys.exit(f"setup.py: {ROOT} is not the SpareCycles source tree; set SPARECYCLES_SOURCE_DIR")
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).resolve()
        build_dir = pathlib.Path(self.build_temp).resolve() / "cmake"
        configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
                     "-DSPARECYCLES_PYTHON=ON", "-DSPARECYCLES_BUILD_TESTS=OFF",
                     "-DSPARECYCLES_BUILD_BENCH=OFF", f"-DPython_EXECUTABLE={sys.executable}"]
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        configure += shlex.split(os.environ.get("SPARECYCLES_CMAKE_ARGS", ""))
        subprocess.check_call(configure)
        jobs = os.environ.get("SPARECYCLES_BUILD_JOBS", "2")
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_sparecycles", "-j", jobs])
        built = glob.glob(str(build_dir / "sdk" / "python" / "sparecycles" / "_sparecycles*.so"))
        if len(built) != 1:
            sys.exit(f"setup.py: expected one built module, found {built}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], target)


setup(ext_modules=[CMakeExtension("sparecycles._sparecycles")], cmdclass={"build_ext": CMakeBuild})
