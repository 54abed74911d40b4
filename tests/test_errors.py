"""The translation of operating-system and memory errors into asdcore errors with their exit codes, and the exit
code of a run whose units failed."""
import errno

import pytest
import torch

from asdcore import FAILED, Outcome
from asdcore.errors import (DISK_FULL_HINT, EXIT_CODES, AudioError, ConfigError, OutOfMemoryError,
                            SystemResourceError, UnitsFailedError, describe, exit_code, translate)


@pytest.mark.parametrize("error, text", [
    (OSError(errno.ENOSPC, "No space left on device", "/out/a.h5"), f"/out/a.h5: cannot write it, the disk (or quota) "
                                                                     f"is full; {DISK_FULL_HINT}"),
    (OSError(errno.EDQUOT, "Disk quota exceeded", "/out/b"), "/out/b: cannot write it, the disk (or quota) is full"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), "/ro/x: read-only file system: choose an `output`"),
    (PermissionError(errno.EACCES, "Permission denied", "/p"), "/p: permission denied: make it writable"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/f/x"), "/f/x: part of this path is a file, not a folder"),
    (FileNotFoundError(errno.ENOENT, "No such file", "/none"), "/none: no such file or folder"),
    (OSError("Can't write data (file write failed: errno = 28, error message = 'No space left on device')"),
     "writing a file failed, the disk (or quota) is full"),
    (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 25024 vs 24918"),
     "writing a file failed, the disk (or quota) is full"),
])
def test_operating_system_errors_name_the_path_cause_and_remedy(error, text):
    translated = translate(error)
    assert isinstance(translated, SystemResourceError) and str(translated).startswith(text)
    assert exit_code(error) == 6 and describe(error) == str(translated)


def test_running_out_of_memory_on_the_host_or_the_gpu():
    host = translate(MemoryError())
    assert isinstance(host, OutOfMemoryError) and str(host).startswith("out of memory on the host: lower")
    gpu = translate(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert str(gpu).startswith("out of memory on the GPU: lower `extraction.batch_size`")
    assert exit_code(MemoryError()) == exit_code(gpu) == 7


def test_other_errors_keep_their_type_and_asdcore_errors_their_kind():
    assert translate(ValueError("x")) is None and describe(ValueError("x")) == "ValueError: x"
    assert exit_code(ValueError("x")) == 1 and exit_code(KeyboardInterrupt()) == 130
    assert exit_code(ConfigError("k")) == 2 and exit_code(AudioError("a")) == 3
    assert set(EXIT_CODES) == {1, 2, 3, 4, 5, 6, 7, 130}


def test_failed_units_exit_with_their_shared_kind_else_1():
    same = {"a": Outcome(FAILED, exit_code=6), "b": Outcome(FAILED, exit_code=6), "c": Outcome("done")}
    assert UnitsFailedError("m", same).exit_code == 6
    mixed = {"a": Outcome(FAILED, exit_code=6), "b": Outcome(FAILED, exit_code=3)}
    assert UnitsFailedError("m", mixed).exit_code == 1
