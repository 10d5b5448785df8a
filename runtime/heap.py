"""Give memory back to the operating system: freed model-sized buffers at once (glibc), and a
running sum's pages as a round's close consumes them.

glibc serves a large allocation with mmap and unmaps it when freed, but only above a threshold
that it raises, up to 32 MiB, after each large free. A long-lived aggregator allocates and frees
model-sized buffers every round (announcements, decoded updates), so after the first round they
come from the heap and a freed one stays in the process's resident memory. Fixing the threshold
at 1 MiB keeps the aggregator's resident memory what it holds (see bench/aggregator_memory.py).

The running sum (``fold``) lives on anonymous mappings: the close reads it block by block into
the new model and gives each consumed range back (``madvise(MADV_DONTNEED)``), so the sum and
the new model are never both whole in memory.

Python 3.6, ctypes; a no-op where the C library has no ``mallopt`` / ``madvise``.
"""

import ctypes

import numpy as np

__all__ = ["anonymous_array", "release", "return_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MADV_DONTNEED = 4  # Linux
_LIBC = {}  # name -> C library function (or None)


def _libc_function(name, argtypes):
    """``name`` from the C library with its argument types, or None where it has none."""
    if name not in _LIBC:
        try:
            fn = getattr(ctypes.CDLL(None), name)
            fn.argtypes, fn.restype = argtypes, ctypes.c_int
        except (OSError, AttributeError):
            fn = None
        _LIBC[name] = fn  # looked up once: release() runs a few times at every close
    return _LIBC[name]


def return_freed_memory(threshold=1 << 20):
    """Allocations of ``threshold`` bytes or more are mmapped (and unmapped when freed), and
    the heap is trimmed past ``threshold`` of free space. True when the C library took it."""
    mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold))) and \
        bool(mallopt(_M_TRIM_THRESHOLD, int(threshold)))


def anonymous_array(count, dtype):
    """A zeroed 1-D array on a mapping of its own, whose pages :func:`release` can give back
    one range at a time (a malloc'd array's pages cannot be)."""
    import mmap

    count = int(count)
    size = max(count * np.dtype(dtype).itemsize, 1)
    # private: a released page is freed (a shared anonymous mapping would keep it in shmem)
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(mapping, dtype, count=count)


def release(array, start, end):
    """Give back the pages wholly inside entries [start, end) of ``array`` (an
    :func:`anonymous_array`); they read as zeros afterwards. False where nothing was released
    (a range under a page, another kind of array, no ``madvise``)."""
    import mmap

    owner = getattr(array, "base", None)
    while owner is not None and not isinstance(owner, mmap.mmap):  # numpy 2 adds a memoryview
        owner = owner.obj if isinstance(owner, memoryview) else getattr(owner, "base", None)
    if owner is None:
        return False
    page = mmap.PAGESIZE
    first = array.ctypes.data + int(start) * array.itemsize
    last = array.ctypes.data + int(end) * array.itemsize
    lo, hi = -(-first // page) * page, last // page * page
    if hi <= lo:
        return False
    madvise = _libc_function("madvise", [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int])
    if madvise is None:
        return False
    return madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), _MADV_DONTNEED) == 0
