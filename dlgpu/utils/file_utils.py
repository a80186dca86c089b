"""keras.utils.get_file: download a file into the cache once, check its hash, extract archives.

The download goes through the datasets' downloader (dlgpu/datasets/_files.py): the file is written beside
its destination and renamed into place only once complete and, with ``file_hash``, verified; so the cache
never holds a partial or corrupt file, even when the download is interrupted.

One difference from Keras: the default ``cache_dir`` is dlgpu's cache root (``$DLGPU_CACHE``, else
``$XDG_CACHE_HOME/dlgpu``, else ``~/.cache/dlgpu``; see dlgpu.datasets), not ``~/.keras``, so
``get_file("x.csv", url)`` lands in ``~/.cache/dlgpu/datasets/x.csv`` by default.
"""

from __future__ import annotations

import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import warnings
import zipfile
from pathlib import Path

from dlgpu.datasets import _files


def _inside(base, name):
    """Whether archive member ``name`` lands inside directory ``base`` once extracted."""
    target = os.path.realpath(os.path.join(base, name))
    return os.path.commonpath([target, base]) == base


def _safe_members(members, base, name_of, is_link=None):
    # As Keras: a member that would land outside the extraction directory (../x, /etc/x, a link pointing
    # out) is skipped with a warning rather than written.
    for member in members:
        name = name_of(member)
        ok = _inside(base, name)
        if ok and is_link is not None and is_link(member):
            link_base = base if member.islnk() else os.path.dirname(os.path.realpath(os.path.join(base, name)))
            ok = _inside(base, os.path.join(link_base, member.linkname))
        if ok:
            yield member
        else:
            warnings.warn(f"get_file: skipping the archive member {name!r}: it would be written outside the "
                          f"extraction directory.", stacklevel=4)


def extract_archive(file_path, path=".", archive_format="auto"):
    """Extract a tar (.tar, .tar.gz, .tar.bz2, .tar.xz) or zip archive into ``path``; returns whether
    ``file_path`` was an archive of one of the formats asked (``"auto"``: tar then zip; ``"tar"``, ``"zip"``,
    a list of them, or None for none)."""
    if archive_format is None:
        return False
    formats = ["tar", "zip"] if archive_format == "auto" else (
        [archive_format] if isinstance(archive_format, str) else list(archive_format))
    for kind in formats:
        if kind not in ("tar", "zip"):
            raise ValueError(f"get_file: `archive_format` must be 'auto', 'tar', 'zip', a list of those, or None. "
                             f"Received: archive_format={archive_format!r}")
    file_path, path = os.fspath(file_path), os.fspath(path)
    for kind in formats:
        if kind == "tar" and tarfile.is_tarfile(file_path):
            _extract_replacing(path, lambda tmp: _extract_tar(file_path, tmp))
            return True
        if kind == "zip" and zipfile.is_zipfile(file_path):
            _extract_replacing(path, lambda tmp: _extract_zip(file_path, tmp))
            return True
    return False


def _extract_tar(file_path, directory):
    base = os.path.realpath(directory)
    with tarfile.open(file_path) as archive:
        members = _safe_members(archive.getmembers(), base, lambda m: m.name, lambda m: m.issym() or m.islnk())
        # "data" refuses device files and absolute links besides; present from Python 3.11.4 / 3.12.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(directory, members=list(members), **kwargs)


def _extract_zip(file_path, directory):
    base = os.path.realpath(directory)
    with zipfile.ZipFile(file_path) as archive:
        archive.extractall(directory, members=list(_safe_members(archive.infolist(), base, lambda m: m.filename)))


def _extract_replacing(path, extract):
    """Extract into a fresh directory beside ``path``, then put it in place of ``path``: an extraction that
    fails leaves the previous one whole, and files of an older archive do not linger among the new ones."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".part")
    try:
        extract(tmp)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)


def _writable_base(cache_dir):
    base = os.path.expanduser(os.fspath(cache_dir))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    if os.access(base, os.W_OK):
        return base
    # As Keras: an unwritable cache falls back to one under the temporary directory.
    return os.path.join(tempfile.gettempdir(), ".dlgpu")


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None, cache_subdir="datasets",
             hash_algorithm="auto", extract=False, archive_format="auto", cache_dir=None, force_download=False):
    """Download ``origin`` into ``cache_dir/cache_subdir/fname`` unless it is there already; returns its path.

    ``file_hash`` (MD5 or SHA-256 hex digest; ``hash_algorithm`` "auto" tells them apart by length) is
    checked after a download, and on a cached file, which is downloaded again when it does not match.
    ``extract=True`` (or the legacy ``untar=True``) extracts a tar or zip archive and returns the directory
    it was extracted to, named as Keras names it (``fname`` up to its first dot, plus ``_extracted``).
    ``force_download=True`` downloads even when the file is cached.  ``md5_hash`` is the legacy spelling of
    ``file_hash`` with ``hash_algorithm="md5"``.
    """
    if origin is None:
        raise ValueError('get_file: please specify the "origin" argument (URL of the file to download).')
    if hash_algorithm not in ("auto", "md5", "sha256"):
        raise ValueError(f"get_file: `hash_algorithm` must be 'auto', 'md5' or 'sha256'. Received: "
                         f"hash_algorithm={hash_algorithm!r}")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    if file_hash is not None:
        file_hash = str(file_hash).lower()
        _files.new_hasher(file_hash, hash_algorithm)  # a malformed hash is refused before anything is fetched
    datadir = os.path.join(_writable_base(_files.cache_root() if cache_dir is None else cache_dir), cache_subdir)
    os.makedirs(datadir, exist_ok=True)

    provided = fname is not None and os.fspath(fname) != ""
    fname = os.fspath(fname) if provided else os.path.basename(urllib.parse.urlsplit(origin).path)
    if not fname:
        raise ValueError(f"get_file: can't parse the file name from the origin provided: {origin!r}. Please "
                         f"specify the `fname` argument.")
    if os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError(f"get_file: paths are no longer accepted as the `fname` argument; to choose the file's "
                         f"parent directory, use `cache_dir`. Received: fname={fname!r}")
    extracting = bool(extract or untar)
    if extracting:
        if provided and "." in fname:
            download_target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[:fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            download_target = os.path.join(datadir, f"{fname}_archive")
    else:
        download_target = os.path.join(datadir, fname)

    download = force_download or not os.path.exists(download_target)
    if not download and file_hash is not None:
        if _files.file_digest(download_target, file_hash, hash_algorithm) != file_hash:
            _files.logger.warning("get_file: %s does not match the %s hash %s (incomplete or outdated); "
                                  "downloading it again.", download_target, hash_algorithm, file_hash)
            download = True
    if download:
        try:
            _files.download_url(origin, Path(download_target), file_hash, hash_algorithm)
        except _files.ChecksumMismatch as e:
            raise ValueError(f"get_file: incomplete or corrupted file detected; it was not kept: {e}.") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise OSError(f"get_file: URL fetch failure on {origin}: {type(e).__name__}: {e}") from e
    if extracting:
        if not extract_archive(download_target, extraction_dir, "tar" if untar else archive_format):
            warnings.warn(f"get_file: could not extract {download_target}: not a "
                          f"{'tar' if untar else archive_format} archive.", stacklevel=2)
        return extraction_dir
    return download_target


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=65535):
    """Whether the file at ``fpath`` has hash ``file_hash`` (keras.utils.file_utils.validate_file)."""
    return _files.file_digest(fpath, str(file_hash).lower(), algorithm) == str(file_hash).lower()
