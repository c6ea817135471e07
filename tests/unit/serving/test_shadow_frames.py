"""The shadow process's job frames (issue 12): float rows travel exactly as before; a
text travels as a length-prefixed UTF-8 frame whose length is bounded by its model's
``max_length`` (4 bytes per character), and a frame over the bound is a torn stream."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breedlab.serving import shadow_process
from breedlab.serving.shadow_process import (
    JOB,
    TEXT_JOB,
    frame_bound,
    job_frame,
    text_bound,
    text_frame,
)


def test_a_float_frame_is_the_fixed_binary_frame_of_before() -> None:
    frame = job_frame(7, 1, 0, [0.5, -2.0])
    assert frame == struct.pack("<QHHH", 7, 1, 0, 2) + struct.pack("<2d", 0.5, -2.0)
    assert frame.hex() == (
        "0700000000000000" "0100" "0000" "0200" "000000000000e03f" "00000000000000c0"
    )  # fmt: skip
    assert frame_bound(64, 0) == JOB.size + 8 * 64


@given(st.text(min_size=1, max_size=20), st.integers(0, 2**64 - 2))
def test_a_text_frame_round_trips_through_the_shadow_process_reader(text: str, job: int) -> None:
    try:
        frame = text_frame(job, 0, 1, text, max_length=20)
    except ValueError:  # a lone surrogate is no UTF-8: never written (the schema refuses it)
        with pytest.raises(UnicodeEncodeError):
            text.encode("utf-8")
        return
    assert len(frame) <= frame_bound(0, 20) == TEXT_JOB.size + text_bound(20)
    buf = bytearray(frame + job_frame(9, 1, 1, [1.0]))  # a text model, then a float model
    lengths = [20, 0]
    assert shadow_process._take(buf, lengths) == (job, 0, 1, text)
    assert shadow_process._take(buf, lengths) == (9, 1, 1, (1.0,))
    assert shadow_process._take(buf, lengths) is None and not buf


def test_a_part_of_a_frame_waits_for_the_rest() -> None:
    frame = text_frame(3, 0, 0, "a film", max_length=10)
    buf = bytearray(frame[:-1])
    assert shadow_process._take(buf, [10]) is None and len(buf) == len(frame) - 1
    buf += frame[-1:]
    assert shadow_process._take(buf, [10]) == (3, 0, 0, "a film")


def test_a_text_over_its_bound_is_never_written_and_never_read() -> None:
    with pytest.raises(ValueError, match="exceeds the frame bound"):
        text_frame(1, 0, 0, "好" * 5, max_length=3)  # 15 bytes > 4 x 3 bytes
    assert len(text_frame(1, 0, 0, "好" * 4, max_length=4)) == TEXT_JOB.size + 12
    torn = bytearray(TEXT_JOB.pack(1, 0, 0, text_bound(3) + 1) + b"x" * 13)
    with pytest.raises(ValueError, match="over 12"):
        shadow_process._take(torn, [3])
    with pytest.raises(ValueError, match="model 5 of 1"):
        shadow_process._take(bytearray(job_frame(1, 5, 0, [1.0])), [0])
    with pytest.raises(UnicodeDecodeError):  # not UTF-8: torn as well
        shadow_process._take(bytearray(TEXT_JOB.pack(1, 0, 0, 2) + b"\xff\xfe"), [3])


def test_a_pipe_for_long_text_frames_takes_the_largest_pipe_the_system_allows() -> None:
    import os

    from breedlab.serving import mirror

    frame = frame_bound(0, 2000)  # the template contract's max_length: 8 KiB a frame
    most = mirror._pipe_max_size()
    r, w = os.pipe()
    try:
        held = mirror._size_pipe(w, 256, frame)  # 2 MiB asked: over the default maximum
    finally:
        os.close(r)
        os.close(w)
    assert held == min(256, most // frame) if most else held >= 1
    assert held * frame <= max(most, 1 << 16)
