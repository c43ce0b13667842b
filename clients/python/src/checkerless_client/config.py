"""Where the API's address and key come from when the caller does not say: the environment,
then the key `checkerless serve` keeps in its data folder (as the `checkerless` CLI finds it:
CHECKERLESS_DATA_DIR, default ./checkerless-data, file local-key)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DATA_DIR = "checkerless-data"
LOCAL_KEY_FILE = "local-key"


def api_url(url: str | None = None) -> str:
    """`url`, else CHECKERLESS_API_URL, else the embedded server's default address."""
    return (url or os.environ.get("CHECKERLESS_API_URL") or DEFAULT_URL).rstrip("/")


def local_key_file() -> Path:
    """The file `checkerless serve` writes its local key to (readable by its user alone)."""
    return Path(os.environ.get("CHECKERLESS_DATA_DIR") or DEFAULT_DATA_DIR) / LOCAL_KEY_FILE


def read_key_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:  # no such file, or not ours to read: no key from here
        return None


def api_key(key: str | None = None) -> str | None:
    """`key`, else CHECKERLESS_API_KEY, else the local key file; None if there is none (the API
    then answers 401, saying it needs a key)."""
    return key or os.environ.get("CHECKERLESS_API_KEY") or read_key_file(local_key_file())
