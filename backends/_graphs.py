"""CUDA graph capture of a training step: CuPy stream capture and ``torch.cuda.graphs``.

``capture(step)`` runs ``step`` once as a real step (compiling kernels and filling the libraries'
caches), then records a second call into a CUDA graph without running it, and returns a function that
replays the recording on the current stream. The step must read everything that changes between
steps from device memory (see :mod:`xpnet.train.graphed`): a replay runs the recorded kernels on
the recorded addresses with the recorded scalar arguments, and no Python.

Errors while recording (an operation capture does not allow) raise :class:`CaptureFailed`; the
recording had no effect on the device, so the caller carries on with eager launches. Errors in the
real step propagate. ``XPNET_CUDA_GRAPHS=0`` (or ``XPNET_FAST_PATHS=0``) turns capture off.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ._base import CaptureFailed, one_line

__all__ = ["CaptureFailed", "graphs_enabled", "capture_cupy", "capture_torch"]

ENV = "XPNET_CUDA_GRAPHS"
_OFF = ("0", "false", "no", "off")


def graphs_enabled() -> bool:
    """Whether CUDA graph capture is allowed ($XPNET_CUDA_GRAPHS and $XPNET_FAST_PATHS are not off)."""
    return not any(os.environ.get(name, "1").strip().lower() in _OFF for name in (ENV, "XPNET_FAST_PATHS"))


def capture_cupy(cupy: Any, step: Callable[[], Any]) -> Callable[[], None]:
    """Run ``step``, then record it on a side stream with a private memory pool (its temporaries keep
    their addresses for the graph's lifetime and are never handed to other code); replays launch on
    the stream that is current at replay time."""
    step()
    pool, side = cupy.cuda.MemoryPool(), cupy.cuda.Stream(non_blocking=True)
    side.wait_event(cupy.cuda.get_current_stream().record())
    with cupy.cuda.using_allocator(pool.malloc), side:
        side.begin_capture()  # relaxed mode: the private pool may grow (cudaMalloc) while recording
        try:
            step()
        except Exception as exc:
            _discard(side)
            raise CaptureFailed(one_line(exc)) from exc
        try:
            graph = side.end_capture()
        except Exception as exc:
            raise CaptureFailed(one_line(exc)) from exc

    def replay() -> None:
        graph.launch(cupy.cuda.get_current_stream())

    replay.keep_alive = (graph, pool, side)  # the recorded addresses live in ``pool``
    return replay


def _discard(stream: Any) -> None:
    """End a capture that failed half-way (its graph is invalid and dropped)."""
    try:
        if stream.is_capturing():
            stream.end_capture()
    except Exception:  # noqa: BLE001 - an invalidated capture reports its own error here
        pass


def capture_torch(torch: Any, device: Any, step: Callable[[], Any]) -> Callable[[], None]:
    """Run ``step`` on a side stream (the warm-up torch asks for), then record it with
    ``torch.cuda.graph`` (its own capture stream and private memory pool)."""
    with torch.cuda.device(device):
        current = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(current)
        with torch.cuda.stream(side):
            step()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                step()
        except Exception as exc:
            raise CaptureFailed(one_line(exc)) from exc
    return graph.replay
