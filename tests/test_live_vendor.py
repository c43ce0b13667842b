"""The API serves onnxruntime-web for the live page from the npm package scripts/setup.sh
installs, and only its runtime files; where setup never ran, the API still starts and the
files answer 404 with what to run (tests/e2e/test_live.py shows the page saying so)."""

from __future__ import annotations

from service.api import main


def test_a_missing_npm_install_is_a_404_that_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setattr(main, "ORT_DIST", tmp_path / "node_modules" / "onnxruntime-web" / "dist")
    r = main.vendor_ort("ort.wasm.min.js")
    assert r.status_code == 404
    assert b"onnxruntime-web is not installed" in r.body and b"scripts/setup.sh" in r.body


def test_only_the_runtime_files_are_served(tmp_path, monkeypatch):
    monkeypatch.setattr(main, "ORT_DIST", tmp_path)
    for name in main.ORT_FILES:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "ort.node.min.js").write_bytes(b"x")
    assert main.vendor_ort("ort.wasm.min.js").status_code == 200
    assert main.vendor_ort("ort-wasm-simd-threaded.wasm").media_type == "application/wasm"
    assert main.vendor_ort("ort.node.min.js").status_code == 404
    assert main.vendor_ort("../package.json").status_code == 404
