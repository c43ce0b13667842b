"""`checkerless keys`: the operator's commands, run as a user would, against the local store."""

import json
import os
import subprocess
import sys
from pathlib import Path

from service.core.auth import KeyStore
from service.core.settings import Settings
from service.core.storage import open_store

ROOT = Path(__file__).resolve().parents[1]


def keys(*args, data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKERLESS_")} | {"CHECKERLESS_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-m", "service.cli", "keys", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_create_list_and_revoke_a_key(tmp_path):
    p = keys("create", "--name", "alice", "--json", data=tmp_path)
    assert p.returncode == 0, p.stderr
    made = json.loads(p.stdout)
    assert made["token"].startswith("ck_") and len(made["token"]) > 40
    store = KeyStore(open_store(Settings(data_dir=tmp_path)))
    assert store.lookup(made["token"]).owner == made["owner"]
    listed = json.loads(keys("list", "--json", data=tmp_path).stdout)
    assert [(k["id"], k["name"], k["admin"]) for k in listed] == [(made["id"], "alice", False)]
    assert made["token"] not in keys("list", data=tmp_path).stdout  # never shown again
    p = keys("create", "--name", "alice-laptop", "--owner", made["owner"], "--json", data=tmp_path)
    assert json.loads(p.stdout)["owner"] == made["owner"]  # a second key for the same owner
    assert keys("revoke", made["id"], data=tmp_path).returncode == 0
    assert store.lookup(made["token"]) is None
    p = keys("revoke", "0" * 32, data=tmp_path)
    assert p.returncode == 1 and p.stderr.startswith("error: no key") and "Traceback" not in p.stderr
