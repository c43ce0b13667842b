"""The supervisor <-> child messages (service/core/protocol.py): each written by one side and
read by the other as the same typed value, through the same files the processes use."""

from __future__ import annotations

import json

import pytest

from models.probe_row import ProbeRow
from service.core import protocol
from service.core.protocol import PanelImage, Skipped, TrainProgress, TrainResult, TrainSpec

ROW = ProbeRow(step=5, artifact_p2=-1.5, artifact_p4=0.25, artifact_p8=0.0, eq_t1=48.5, eq_t2=50.0, eq_t3=49.0,
               eq_t4=52.0, style_distance=0.4, content_distance=0.2)
PANEL = PanelImage(name="astronaut", path="/w/panel/astronaut.png", width=128, height=128, period2_db=-3.0,
                   period4_db=1.0)
MESSAGES = [
    TrainSpec(config={"steps": 3, "decoder": "resize-lowpass"}, style=["ihc", "/w/style-1.png"], max_pixels=1000,
              device="cpu", devices=2, exports=["onnx"], probe_size=48, preview_size=64,
              content={"label": "content-set:x", "images": "/w/images.json"}, resume="/w/resume.ckpt"),
    TrainSpec(config={"steps": 3}, style="ihc", max_pixels=40_000_000),
    TrainProgress(step=5, steps=30, start_step=0, losses={"loss": 2.0, "style": 1.0}, probe=ROW,
                  seconds_per_step=0.5, precision="bf16-mixed"),
    TrainProgress(step=0, steps=30, start_step=None, losses={}, probe=None, seconds_per_step=None,
                  precision="32-true"),
    TrainResult(step=30, steps=30, stopped=False, seconds=12.5, checkpoint="/w/run/last.ckpt",
                losses=[{"step": 30, "loss": 1.0}], probe=[ProbeRow(step=0, artifact_p2=3.0), ROW],
                skipped=[Skipped(name="notes.txt", reason="not an image")], preview="/w/preview.png",
                panel=[PANEL], style_panels=[[PANEL], [PANEL]], exports={"onnx": "/w/net.onnx"},
                timing={"steps": 28, "loop_s": 14.0, "step_s": 12.0, "probe_s": 1.5, "checkpoint_s": 0.2,
                        "other_s": 0.3}),
    TrainResult(step=7, steps=30, stopped=True, seconds=1.0, checkpoint="/w/run/last.ckpt"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_each_message_reads_back_as_what_was_written(tmp_path, message):
    path = tmp_path / "message.json"
    protocol.write(path, message)
    assert protocol.read(path, type(message)) == message
    assert not list(tmp_path.glob("*.tmp"))  # written whole, then renamed


def test_a_probe_row_is_stored_with_the_measures_it_has(tmp_path):
    # As the record keeps it and the pages read it: a row of an older run lacks the measures
    # probed since, rather than carrying nulls.
    old = ProbeRow(step=0, artifact_p2=3.0, artifact_p4=1.0)
    assert old.to_dict() == {"step": 0, "artifact_p2": 3.0, "artifact_p4": 1.0}
    assert ProbeRow.from_dict(old.to_dict()) == old and old.measures() == {"artifact_p2": 3.0, "artifact_p4": 1.0}
    protocol.write(tmp_path / protocol.RESULT, TrainResult(step=1, steps=1, stopped=False, seconds=0.1,
                                                           checkpoint="c", probe=[old]))
    written = json.loads((tmp_path / protocol.RESULT).read_text())
    assert written["probe"] == [{"step": 0, "artifact_p2": 3.0, "artifact_p4": 1.0}]


def test_no_message_yet_reads_as_none_and_a_wrong_field_fails_loudly(tmp_path):
    assert protocol.read(tmp_path / protocol.PROGRESS, TrainProgress) is None
    (tmp_path / protocol.SPEC).write_text(json.dumps({"config": {}, "style": "ihc", "max_pixels": 1,
                                                      "probe_every": 25}))
    with pytest.raises(TypeError, match="probe_every"):  # a field one side writes and the other does not know
        protocol.read(tmp_path / protocol.SPEC, TrainSpec)

