#!/usr/bin/env python3
"""Derives Winograd F(4x4,3x3)'s matrices for a set of interpolation points and
measures their float32 error, the evidence behind kernels/cpu/conv_winograd.cpp's
choice of points. Not run by the test suite (it needs sympy and numpy):

    python3 tests/winograd_points.py

Toom-Cook on the points p (plus infinity): A^T[i][j] = p_j^i, and
G[j][k] = p_j^k / prod_{l != j} (p_j - p_l). B^T is then the one matrix that
makes A^T [(G g) * (B^T d)] the 1-D correlation of g (3 taps) with d (6
inputs) for every g and d; it is solved for exactly (rationals). Each row of
B^T is scaled to coprime integers and G's row divided by the same factor, so
the input transform is exact in float32 and the fractions sit in the filter
transform, which runs once per weight update.

The error measure is conv_winograd's own computation in 2-D: 64 input
channels summed in the transform domain (the GEMM), float32 throughout,
against the direct sum in float64, as max |error| / max |result| over many
tiles. The printed matrices for the chosen points are the ones in the C++.
"""
import numpy as np
import sympy as sp

M, R = 4, 3  # output tile, filter taps
N = M + R - 1  # transform points


def derive(points):
    pts = [sp.Rational(p) for p in points]
    assert len(pts) == N - 1
    AT, G = sp.zeros(M, N), sp.zeros(N, R)
    for j, p in enumerate(pts):
        for i in range(M):
            AT[i, j] = p**i
        den = sp.prod([p - q for q in pts if q != p])
        for k in range(R):
            G[j, k] = p**k / den
    AT[M - 1, N - 1] = 1
    G[N - 1, R - 1] = 1
    B = sp.Matrix(N, N, lambda a, b: sp.Symbol(f"b{a}_{b}"))
    eqs = [
        sum(AT[i, j] * G[j, k] * B[j, l] for j in range(N)) - (1 if l == i + k else 0)
        for i in range(M)
        for k in range(R)
        for l in range(N)
    ]
    BT = B.subs(sp.solve(eqs, list(B), dict=True)[0])
    for j in range(N):
        row = [sp.nsimplify(x) for x in BT[j, :]]
        lcm = sp.ilcm(*[sp.fraction(x)[1] for x in row])
        scale = lcm / sp.igcd(*[int(x * lcm) for x in row if x != 0])
        BT[j, :] *= scale
        G[j, :] /= scale
    return AT, G, BT


def float32_error(AT, G, BT, channels=64, tiles=2000, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((tiles, channels, N, N))
    g = rng.standard_normal((channels, R, R)) / 24
    ref = np.zeros((tiles, M, M))
    for i in range(M):
        for j in range(M):
            ref[:, i, j] = np.einsum("tcxy,cxy->t", d[:, :, i : i + R, j : j + R], g)
    A32, G32, B32 = (np.array(x.tolist(), dtype=np.float64).astype(np.float32) for x in (AT, G, BT))
    U = np.einsum("ak,ckl,bl->cab", G32, g.astype(np.float32), G32).astype(np.float32)
    V = np.einsum("ak,tckl,bl->tcab", B32, d.astype(np.float32), B32).astype(np.float32)
    Mx = np.einsum("tcab,cab->tab", V, U).astype(np.float32)
    Y = np.einsum("ia,tab,jb->tij", A32, Mx, A32).astype(np.float32)
    return np.abs(Y - ref).max() / np.abs(ref).max()


def main():
    chosen = ["0", "1", "-1", "1/2", "-2"]
    for pts in (["0", "1", "-1", "2", "-2"], chosen, ["0", "1", "-1", "1/2", "-1/2"]):
        AT, G, BT = derive(pts)
        print(f"points {', '.join(pts)}, inf: float32 error {float32_error(AT, G, BT):.2e}")
        if pts == chosen:
            for name, mat in (("A^T", AT), ("G", G), ("B^T", BT)):
                print(f"  {name} =")
                for i in range(mat.rows):
                    print("    " + "  ".join(f"{str(x):>6}" for x in mat.row(i)))


if __name__ == "__main__":
    main()
