"""pytest setup: the client package, the example and the generated stubs on sys.path.

ctest (tests/python.cmake) generates the stubs and passes their folder as BG_PYTHON_STUBS;
run by hand without it, the stubs are generated into a temporary folder first.
"""

import os
import pathlib
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
CLIENT_ROOT = HERE.parent

_stubs = os.environ.get("BG_PYTHON_STUBS")
if not _stubs:
    sys.path.insert(0, str(CLIENT_ROOT))
    import generate_stubs  # noqa: E402

    _stubs = tempfile.mkdtemp(prefix="bg-pystubs-")
    if generate_stubs.main(["generate_stubs.py", _stubs]) != 0:
        raise RuntimeError("could not generate the stubs")

for path in (_stubs, str(CLIENT_ROOT), str(CLIENT_ROOT / "examples"), str(HERE)):
    if path not in sys.path:
        sys.path.insert(0, path)
