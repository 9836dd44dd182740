"""Files: atomic writes (:mod:`xpnet.io.atomic`), the checkpoint container (:mod:`xpnet.io.npzfile`) and
what a checkpoint's metadata may hold (:mod:`xpnet.io.schema`)."""
from .atomic import atomic_write, json_safe, write_bytes, write_json, write_text
from .npzfile import CheckpointError, read_npz, write_npz

__all__ = ["atomic_write", "write_bytes", "write_text", "write_json", "json_safe", "CheckpointError", "read_npz",
           "write_npz"]
