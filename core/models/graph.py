"""LightGCN-style propagation over the user–item graph of training interactions (He et al., 2020).

Users are nodes 0..U-1 and items U..U+I-1 of one bipartite graph, normalised D^-1/2 A D^-1/2. A node's
final vector is the mean of its vectors after 0..L propagation steps. Propagation is linear, so the
final vector of node n depends on its own layer-0 vector through one scalar, the diagonal of
(1/(L+1)) Σ_l Â^l: `self_coefficients` gives it, which lets a single item's content be changed without
propagating again.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def bipartite_adjacency(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """(U+I, U+I) symmetric D^-1/2 A D^-1/2 of the interaction pairs; isolated nodes keep empty rows."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    r = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items))
    r.data[:] = 1.0  # repeated pairs count once
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)  # (N, N)
    degree = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    d = sp.diags(inv_sqrt.astype(np.float32))
    return (d @ a @ d).tocsr().astype(np.float32)


def to_torch_sparse(m: sp.spmatrix) -> torch.Tensor:
    """A scipy matrix as a coalesced torch sparse COO tensor (float32); gradients flow to what it multiplies."""
    m = sp.coo_matrix(m, dtype=np.float32)
    index = torch.as_tensor(np.vstack([m.row, m.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.as_tensor(m.data), size=m.shape,
                                   check_invariants=True).coalesce()


def propagate(adjacency: torch.Tensor, e0: torch.Tensor, layers: int) -> torch.Tensor:
    """(N, D) mean of Â^l e0 over l = 0..layers; layers = 0 returns e0 unchanged."""
    if layers <= 0:
        return e0
    total, e = e0, e0
    for _ in range(layers):
        e = torch.sparse.mm(adjacency, e)  # (N, D)
        total = total + e
    return total / (layers + 1)


def self_coefficients(adjacency: sp.csr_matrix, layers: int) -> np.ndarray:
    """(N,) diagonal of (1/(L+1)) Σ_{l=0..L} Â^l: how much of its own layer-0 vector a node keeps."""
    n = adjacency.shape[0]
    total = np.ones(n, np.float64)
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    powers = {1: a}  # Â^p, computed only when needed
    # the graph is bipartite, so odd powers have a zero diagonal; Â is symmetric, so the diagonal of
    # Â^(2p) is the squared row norm of Â^p
    for length in range(2, layers + 1, 2):
        p = length // 2
        if p not in powers:
            powers[p] = (powers[p - 1] @ a).tocsr()
        total += np.asarray(powers[p].multiply(powers[p]).sum(axis=1)).ravel()
    return (total / (max(layers, 0) + 1)).astype(np.float32)


def row_mean_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """(U, I) rows of 1/|items of u| over each user's training items (rows of users without any are empty)."""
    r = sp.csr_matrix((np.ones(len(users), np.float32), (np.asarray(users), np.asarray(items))),
                      shape=(n_users, n_items))
    r.data[:] = 1.0
    counts = np.asarray(r.sum(axis=1)).ravel()
    scale = np.divide(1.0, counts, out=np.zeros_like(counts), where=counts > 0)
    return (sp.diags(scale.astype(np.float32)) @ r).tocsr().astype(np.float32)
