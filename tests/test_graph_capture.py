"""The CUDA graph capture protocol of backends/_graphs.py, against stand-ins for CuPy and torch.

No GPU needed: the fakes record which stream, allocator and capture state each call of the step sees.
They pin the protocol: the step runs once for real (on the current stream and default pool for CuPy,
on a side stream for torch), then is recorded (CuPy: on a non-blocking side stream with a private
memory pool kept alive with the replay; torch: inside ``torch.cuda.graph``); a replay launches on the
stream current at replay time; a failure while recording ends the capture and raises a one-line
``CaptureFailed``, while an error in the real step propagates as it is. The real libraries are
exercised by tests/test_graphed.py on a GPU.
"""
from __future__ import annotations

import pytest

import backends


class _FakeCupy:
    """The parts of CuPy that backends/_graphs.capture_cupy uses, recording what happens where."""

    def __init__(self):
        fake = self
        self.log, self.allocator, self.null = [], "default", None

        class Stream:
            def __init__(self, non_blocking=False, name="side"):
                self.name, self.capturing, self.waited = name, False, []

            def __enter__(self):
                self.saved, fake.current = fake.current, self
                return self

            def __exit__(self, *exc):
                fake.current = self.saved

            def record(self):
                return ("event on", self.name)

            def wait_event(self, event):
                self.waited.append(event)

            def begin_capture(self):
                self.capturing = True

            def is_capturing(self):
                return self.capturing

            def end_capture(self):
                self.capturing = False
                fake.log.append(("end_capture", self.name))
                if fake.invalid:
                    raise RuntimeError("cudaErrorStreamCaptureInvalidated")
                return Graph()

        class Graph:
            def launch(self, stream=None):
                fake.log.append(("launch", stream.name))

        class MemoryPool:
            def malloc(self, size):
                raise AssertionError("not called by the fakes")

        class _Using:
            def __init__(self, allocator):
                self.allocator = allocator

            def __enter__(self):
                self.saved, fake.allocator = fake.allocator, "private"
                return self

            def __exit__(self, *exc):
                fake.allocator = self.saved

        self.invalid = False
        self.current = Stream(name="null")
        self.cuda = type("cuda", (), {"Stream": Stream, "MemoryPool": MemoryPool,
                                      "using_allocator": staticmethod(lambda a: _Using(a)),
                                      "get_current_stream": staticmethod(lambda: fake.current)})

    def step(self, fail_when_capturing=False, fail_always=False):
        def step():
            capturing = self.current.capturing
            self.log.append(("step", self.current.name, self.allocator, capturing))
            if fail_always or (fail_when_capturing and capturing):
                raise RuntimeError("operation not permitted when stream is capturing")
        return step


def test_cupy_capture_runs_the_step_then_records_it_on_a_side_stream_with_a_private_pool() -> None:
    from backends import _graphs

    cp = _FakeCupy()
    replay = _graphs.capture_cupy(cp, cp.step())
    assert cp.log == [("step", "null", "default", False), ("step", "side", "private", True), ("end_capture", "side")]
    assert cp.current.name == "null" and cp.allocator == "default"
    replay()
    assert cp.log[-1] == ("launch", "null")  # on the stream current at replay time
    pool = replay.keep_alive[1]
    assert isinstance(pool, cp.cuda.MemoryPool)  # the recorded addresses' pool lives as long as the replay


@pytest.mark.parametrize("where", ["recording", "end"])
def test_cupy_capture_failures_end_the_capture_and_say_why(where) -> None:
    from backends import _graphs

    cp = _FakeCupy()
    cp.invalid = where == "end"
    with pytest.raises(backends.CaptureFailed, match="not permitted|Invalidated") as info:
        _graphs.capture_cupy(cp, cp.step(fail_when_capturing=where == "recording"))
    assert "\n" not in str(info.value)
    assert ("end_capture", "side") in cp.log and cp.current.name == "null" and cp.allocator == "default"
    assert cp.log[0] == ("step", "null", "default", False)  # the real step ran before


def test_an_error_in_the_real_step_is_not_a_capture_failure() -> None:
    from backends import _graphs

    cp = _FakeCupy()
    with pytest.raises(RuntimeError) as info:
        _graphs.capture_cupy(cp, cp.step(fail_always=True))
    assert not isinstance(info.value, backends.CaptureFailed) and cp.log == [("step", "null", "default", False)]


class _FakeTorch:
    """The parts of torch that backends/_graphs.capture_torch uses."""

    def __init__(self, fail=False):
        fake = self
        self.log, self.where, self.fail = [], "default", fail

        class _Ctx:
            def __init__(self, name):
                self.name = name

            def __enter__(self):
                self.saved, fake.where = fake.where, self.name
                return self

            def __exit__(self, *exc):
                fake.where = self.saved

        class Stream:
            def wait_stream(self, other):
                fake.log.append("wait")

        class CUDAGraph:
            def replay(self):
                fake.log.append("replay")

        self.cuda = type("cuda", (), {
            "device": staticmethod(lambda d: _Ctx(fake.where)),
            "current_stream": staticmethod(lambda: Stream()), "Stream": Stream,
            "stream": staticmethod(lambda s: _Ctx("side")), "CUDAGraph": CUDAGraph,
            "graph": staticmethod(lambda g: _Ctx("recording"))})

    def step(self):
        self.log.append(("step", self.where))
        if self.fail and self.where == "recording":
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


def test_torch_capture_warms_up_on_a_side_stream_then_records() -> None:
    from backends import _graphs

    torch = _FakeTorch()
    replay = _graphs.capture_torch(torch, "cuda:0", torch.step)
    assert torch.log == ["wait", ("step", "side"), "wait", ("step", "recording")]
    replay()
    assert torch.log[-1] == "replay"
    torch = _FakeTorch(fail=True)
    with pytest.raises(backends.CaptureFailed, match="not permitted"):
        _graphs.capture_torch(torch, "cuda:0", torch.step)
