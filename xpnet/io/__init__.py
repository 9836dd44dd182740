"""Files: atomic writes (:mod:`xpnet.io.atomic`) and the checkpoint container (:mod:`xpnet.io.npzfile`)."""
from .atomic import atomic_write, json_safe, write_bytes, write_json, write_text
from .npzfile import CheckpointError, read_npz, write_npz

__all__ = ["atomic_write", "write_bytes", "write_text", "write_json", "json_safe", "CheckpointError", "read_npz",
           "write_npz"]
