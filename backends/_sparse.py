"""Sparse input: a SciPy sparse matrix held for row access and products on a backend's device.

xpnet computes on dense arrays. A ``scipy.sparse`` matrix or array (any format; held as CSR)
stays sparse and :class:`SparseRows` gives training what it needs without densifying it whole:

* ``X[i:j, ...]`` and ``X.take(rows)`` (rows: a device integer array): those rows, dense, on the
  device (a mini-batch or an evaluation chunk);
* ``X.subset(rows)``: those rows, still sparse (e.g. a validation split);
* ``X @ W`` and ``X.T @ D``: the products a first Dense layer takes on a full batch; the
  library's own sparse-dense product where it has one (SciPy for NumPy, ``torch.sparse``,
  ``cupyx.scipy.sparse``), else (array-api-strict) dense blocks of at most ``BLOCK_ELEMENTS``
  values, densified and multiplied one after another.

Rows are densified where the arrays live (NumPy, PyTorch and CuPy on their device, from the CSR
arrays held there); array-api-strict, which has no sparse arrays, gets them densified by SciPy and
copied over. SciPy is imported only when a sparse matrix arrives (it is not a dependency of xpnet).
"""
from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

from ._base import dtype_key

__all__ = ["SparseRows", "is_sparse", "sparse_rows", "BLOCK_ELEMENTS"]

BLOCK_ELEMENTS = 1 << 22  # densified values per block of a blocked product (32 MiB in float64)


def is_sparse(x: Any) -> bool:
    """Whether ``x`` is a SciPy sparse matrix/array or a :class:`SparseRows`."""
    if isinstance(x, SparseRows):
        return True
    sparse = sys.modules.get("scipy.sparse")  # no SciPy imported: x cannot be one of its matrices
    return sparse is not None and sparse.issparse(x)


class SparseRows:
    """A sparse (n, m) matrix on ``backend`` whose dense rows have dtype ``dtype`` (see the module
    docstring). ``host``: the CSR matrix (NumPy dtype, duplicates summed) it was made from."""

    ndim = 2

    def __init__(self, backend: Any, host: Any, dtype: Any):
        self.backend, self.host, self.dtype = backend, host, dtype
        self.shape = tuple(host.shape)

    # ---- rows
    def __getitem__(self, key: Any) -> Any:
        rows = key[0] if isinstance(key, tuple) else key
        if not isinstance(rows, slice) or (key[1:] if isinstance(key, tuple) else ()) not in ((), (Ellipsis,)):
            raise TypeError("a sparse input is indexed by a slice of rows (X[i:j, ...])")
        start, stop, step = rows.indices(self.shape[0])
        if step != 1:
            raise TypeError("a sparse input's row slices must have step 1")
        return self._block(start, stop)

    def _block(self, start: int, stop: int) -> Any:
        return self.backend.asarray(self.host[start:stop].toarray(), dtype=self.dtype)

    def take(self, rows: Any) -> Any:
        """Rows ``rows`` (device integer array), dense, on the device."""
        return self.backend.asarray(self.host[self.backend.to_numpy(rows)].toarray(), dtype=self.dtype)

    def subset(self, rows: Any) -> "SparseRows":
        """Rows ``rows`` (integers, on the host or the device), still sparse."""
        return sparse_rows(self.backend, self.host[self.backend.to_numpy(rows)], self.dtype)

    def all_finite(self) -> bool:
        return bool(np.isfinite(self.host.data).all())

    def row_blocks(self) -> list[tuple[int, int]]:
        """(start, stop) of consecutive row blocks of at most ``BLOCK_ELEMENTS`` dense values."""
        n, step = self.shape[0], max(1, BLOCK_ELEMENTS // max(1, self.shape[1]))
        return [(i, min(i + step, n)) for i in range(0, n, step)]

    # ---- products
    def __matmul__(self, W: Any) -> Any:
        """X @ W (dense result on the device), here block by block."""
        return self.backend.xp.concat([self._block(i, j) @ W for i, j in self.row_blocks()], axis=0)

    @property
    def T(self) -> "_Transposed":
        return _Transposed(self)

    def _t_matmul(self, D: Any) -> Any:
        """Xᵀ @ D (dense), here as the sum over row blocks of blockᵀ @ D[block]."""
        out = None
        for i, j in self.row_blocks():
            part = self._block(i, j).T @ D[i:j, ...]
            out = part if out is None else out + part
        return out

    def __repr__(self) -> str:
        return f"SparseRows({self.shape[0]}x{self.shape[1]}, nnz={self.host.nnz}, {self.backend.spec})"


class _Transposed:
    """Xᵀ of a :class:`SparseRows`, for ``X.T @ D``."""

    def __init__(self, rows: SparseRows):
        self.rows = rows

    def __matmul__(self, D: Any) -> Any:
        return self.rows._t_matmul(D)


class _NumPyRows(SparseRows):
    """NumPy: the CSR matrix is already where NumPy computes; SciPy's products."""

    def take(self, rows: Any) -> Any:
        return self.host[rows].toarray()

    def _block(self, start: int, stop: int) -> Any:
        return self.host[start:stop].toarray()

    def __matmul__(self, W: Any) -> Any:
        return np.asarray(self.host @ W)

    def _t_matmul(self, D: Any) -> Any:
        return np.asarray(self.host.T @ D)


class _TorchRows(SparseRows):
    """PyTorch: the CSR arrays on the device; torch.sparse products (Xᵀ kept as a CSR tensor too);
    rows gathered from the CSR arrays with device operations."""

    def __init__(self, backend: Any, host: Any, dtype: Any):
        super().__init__(backend, host, dtype)
        torch, dev = backend._torch, backend.device
        self._crow = torch.as_tensor(host.indptr.astype(np.int64), device=dev)
        self._col = torch.as_tensor(host.indices.astype(np.int64), device=dev)
        self._val = torch.as_tensor(host.data, device=dev)
        t = host.T.tocsr()
        with warnings.catch_warnings():  # torch calls its sparse CSR support "beta"
            warnings.simplefilter("ignore", UserWarning)
            self._csr = torch.sparse_csr_tensor(self._crow, self._col, self._val, size=self.shape)
            self._csr_t = torch.sparse_csr_tensor(torch.as_tensor(t.indptr.astype(np.int64), device=dev),
                                                  torch.as_tensor(t.indices.astype(np.int64), device=dev),
                                                  torch.as_tensor(t.data, device=dev), size=t.shape)

    def take(self, rows: Any) -> Any:
        # The k-th selected non-zero belongs to selected row r = row_of[k]; it sits at CSR position
        # start[r] + (k - first[r]), first[r] being the number of selected non-zeros before row r.
        torch = self.backend._torch
        rows = rows.to(torch.int64)
        start = self._crow[rows]
        counts = self._crow[rows + 1] - start
        row_of = torch.repeat_interleave(torch.arange(rows.shape[0], device=rows.device), counts)
        offset = torch.repeat_interleave(start - (torch.cumsum(counts, 0) - counts), counts)
        pos = torch.arange(row_of.shape[0], device=rows.device) + offset
        out = torch.zeros((rows.shape[0], self.shape[1]), dtype=self.dtype, device=rows.device)
        out[row_of, self._col[pos]] = self._val[pos]
        return out

    def _block(self, start: int, stop: int) -> Any:
        torch = self.backend._torch
        return self.take(torch.arange(start, stop, device=self.backend.device))

    def __matmul__(self, W: Any) -> Any:
        return self._csr @ W

    def _t_matmul(self, D: Any) -> Any:
        return self._csr_t @ D


class _CuPyRows(SparseRows):
    """CuPy: a cupyx.scipy.sparse CSR matrix on the device, with its row indexing and products."""

    def __init__(self, backend: Any, host: Any, dtype: Any):
        super().__init__(backend, host, dtype)
        import cupyx.scipy.sparse as cusparse

        with backend.device:  # a cupy.cuda.Device: allocate there
            self._dev = cusparse.csr_matrix(host)

    def take(self, rows: Any) -> Any:
        return self._dev[rows].toarray()

    def _block(self, start: int, stop: int) -> Any:
        return self._dev[start:stop].toarray()

    def __matmul__(self, W: Any) -> Any:
        return self._dev @ W

    def _t_matmul(self, D: Any) -> Any:
        return self._dev.T @ D


_BY_LIBRARY = {"numpy": _NumPyRows, "torch": _TorchRows, "cupy": _CuPyRows}


def sparse_rows(backend: Any, matrix: Any, dtype: Any) -> SparseRows:
    """``matrix`` (a SciPy sparse matrix or array, any format, or a :class:`SparseRows`) on
    ``backend`` with dense rows of ``dtype`` (a name or the backend's dtype)."""
    dt = backend.dtype(dtype)
    if isinstance(matrix, SparseRows):
        if matrix.backend == backend and matrix.dtype == dt:
            return matrix
        matrix = matrix.host
    host = matrix.tocsr().astype(dtype_key(dt))  # a copy (astype copies): ours to tidy
    host.sum_duplicates()  # in place: one entry per position, as a dense copy would add them
    return _BY_LIBRARY.get(backend.name, SparseRows)(backend, host, dt)
