"""Build the optional C hashing extension (ledger/storage/_hashing.c); everything else is in pyproject.toml.

If it cannot be built (no compiler or no OpenSSL headers), the install goes on without it and the
log uses its pure-Python hashing, which computes the same bytes.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # noqa: BLE001
            print(f"warning: the C hashing extension was not built ({e}); using pure Python")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:  # noqa: BLE001
            print(f"warning: {ext.name} was not built ({e}); using pure Python")


setup(
    ext_modules=[Extension("ledger.storage._hashing", ["ledger/storage/_hashing.c"], libraries=["crypto"],
                           extra_compile_args=["-O2"])],
    cmdclass={"build_ext": OptionalBuildExt},
)
