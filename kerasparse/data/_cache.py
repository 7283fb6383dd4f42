"""A cache of decoded arrays for sources that are slow to read (Tiny ImageNet's 110,000 JPEGs).

Where: ``load(..., cache_dir=...)``, else ``$KERASPARSE_CACHE_DIR``, else
``$KERAS_HOME/kerasparse`` (``~/.keras/kerasparse``: next to Keras' own downloads, never
inside a folder the user owns). What: one ``<name>-<key>.npz`` per source folder, the key a
hash of the folder's path and of the name, size and modification time of every file read,
so a changed, added or removed file makes a new entry. Written to a temporary file and then
renamed (a crash leaves no half-written entry); a cache that cannot be written is skipped
with a warning, an unreadable entry is rebuilt.
"""

import hashlib
import os
import sys
import tempfile
import warnings

import numpy as np

_FORMAT = 1  # bump when the decoded arrays of a source change


def cache_root(cache_dir=None):
    if cache_dir is not None:
        return os.path.expanduser(os.fspath(cache_dir))
    if os.environ.get("KERASPARSE_CACHE_DIR"):
        return os.path.expanduser(os.environ["KERASPARSE_CACHE_DIR"])
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "kerasparse")


def source_key(folder, files):
    digest = hashlib.sha1(f"{_FORMAT}\0{os.path.abspath(folder)}".encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"\0{os.path.relpath(path, folder)}\0{stat.st_size}\0{stat.st_mtime_ns}"
                      .encode())
    return digest.hexdigest()[:20]


def cached_arrays(name, folder, files, build, cache_dir=None):
    """``build()``'s ``((x_train, y_train), (x_test, y_test))``, from the cache when the same
    ``files`` were decoded before."""
    root = cache_root(cache_dir)
    path = os.path.join(root, f"{name}-{source_key(folder, files)}.npz")
    if os.path.isfile(path):
        try:
            with np.load(path) as data:
                return ((data["x_train"], data["y_train"]), (data["x_test"], data["y_test"]))
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"ignoring the unreadable cache entry {path} ({exc}); decoding again",
                          stacklevel=2)
    print(f"kerasparse: decoding {len(files)} {name} files from {folder} once; caching the "
          f"arrays in {root}", file=sys.stderr, flush=True)
    arrays = build()
    (x_train, y_train), (x_test, y_test) = arrays
    try:
        os.makedirs(root, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".npz.tmp", dir=root)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"could not cache the decoded {name} arrays in {root} ({exc}); set "
                      "KERASPARSE_CACHE_DIR to a writable folder to avoid decoding every time",
                      stacklevel=2)
    return arrays
