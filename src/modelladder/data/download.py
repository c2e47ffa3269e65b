"""Where dataset files live, and fetching a missing one from its canonical URLs, checked by sha256."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from modelladder.errors import InputError

DEFAULT_ROOT = Path.home() / ".cache" / "modelladder" / "data"
CHUNK = 1 << 20


def data_root(root: Path | None = None) -> Path:
    """`data.root` if set, else $MODELLADDER_DATA, else ~/.cache/modelladder/data."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MODELLADDER_DATA")
    return Path(env).expanduser() if env else DEFAULT_ROOT


def content_sha256(path: Path, *, gzipped: bool) -> str:
    """sha256 of a file's content, gunzipped first when `gzipped`.

    Hashing the uncompressed bytes accepts any gzip of the same data: the canonical download and a
    copy re-compressed with another gzip alike.
    """
    digest = hashlib.sha256()
    with (gzip.open if gzipped else open)(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def writable_folder(folder: Path) -> bool:
    """Whether `folder` exists or can be created, and files can be written into it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def download(urls: list[str], dest: Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Fetch `dest` from the first of `urls` that answers with the right content.

    Each attempt streams into a temporary file beside `dest`, which is renamed to `dest` only once
    its content_sha256 matches, so an interrupted or bad download never leaves a file behind.
    """
    failures = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urlopen(url, timeout=timeout) as response:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
            got = content_sha256(tmp, gzipped=dest.name.endswith(".gz"))
            if got != sha256:
                failures.append(f"{url}: sha256 of the content is {got}, expected {sha256}")
                continue
            os.replace(tmp, dest)
            return dest
        except (URLError, OSError, EOFError, zlib.error) as err:
            failures.append(f"{url}: {getattr(err, 'reason', err)}")
        finally:
            tmp.unlink(missing_ok=True)
    raise InputError(
        f"could not download {dest.name} into {dest.parent}: " + "; ".join(failures)
        + f". Download it by hand into {dest.parent}"
    )


def ensure_files(folder: Path, files: dict[str, tuple[str, str]], dataset: str) -> Path:
    """`folder`, after downloading any of `files` (name -> (url, sha256)) it lacks."""
    missing = [name for name in files if not (folder / name).is_file()]
    if missing and not writable_folder(folder):
        raise InputError(
            f"{dataset} files {missing} are missing from {folder}, and that folder is not writable so they "
            f"cannot be downloaded there. Put them into {folder} (from "
            f"{', '.join(files[name][0] for name in missing)}), or set data.root / $MODELLADDER_DATA "
            "to a writable folder"
        )
    for name in missing:
        url, sha256 = files[name]
        download([url], folder / name, sha256)
    return folder
