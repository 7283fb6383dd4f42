"""Reproduce the printed m and V''(q*) of Dent & Tanner 2026 (arXiv 2602.05779v2).

Numbers transcribed from /work/shared/papers/dent-tanner2026-controlling-variance.txt:
Tables 1 (DNN, CReLU) and 2 (CNN, CReLU) print the same m; Table 4 (CST). Each row is
(s, V'(q*)) -> [(m, V'') for q* = 1, 2, 3].
"""

import pytest

from kerasparse import eoc

# Table 2 (CNN on CIFAR10, CReLU_{tau,m}); the m columns are identical in Table 1.
# Row s=0.9, V'=0.7 is garbled in the text ("1.06 0.23 0.29 0.90 0.12 1.50 0.45 0.89 ..."):
# read as m=1.50, V''=0.12 for q*=2 (the m and V'' columns swapped in extraction).
TABLE_2 = {
    (0.8, 0.5): [(0.89, -0.24), (1.26, -0.12), (1.54, -0.08)],
    (0.8, 0.7): [(1.27, -0.12), (1.79, -0.06), (2.19, -0.04)],
    (0.8, 0.9): [(1.85, 0.21), (2.62, 0.11), (3.21, 0.07)],
    (0.85, 0.5): [(0.81, -0.14), (1.14, -0.07), (1.40, -0.05)],
    (0.85, 0.7): [(1.17, 0.02), (1.66, 0.01), (2.03, 0.01)],
    (0.85, 0.9): [(1.74, 0.41), (2.46, 0.20), (3.01, 0.13)],
    (0.9, 0.5): [(0.72, 0.00), (1.02, 0.00), (1.25, 0.00)],
    (0.9, 0.7): [(1.06, 0.23), (1.50, 0.12), (1.84, 0.08)],
    (0.9, 0.9): [(1.61, 0.69), (2.28, 0.34), (2.79, 0.32)],
}
# Table 1 (DNN on MNIST): same m; V'' of the s = 0.9 rows as printed (q* = 1, 2, 3).
# They are half of eq. (32) (and of Table 2); the q*=1, V'=0.5 entry prints "0.90" (garbled).
TABLE_1_V2_S09 = {0.5: [None, 0.00, 0.00], 0.7: [0.12, 0.06, 0.04], 0.9: [0.34, 0.17, 0.11]}

# Table 4 (DNN on MNIST, CST_{tau,m}): m for q* = 1, 2, 3.
TABLE_4 = {
    (0.6, 0.5): [0.89, 1.26, 1.54],
    (0.6, 0.7): [1.27, 1.79, 2.19],
    (0.6, 0.9): [1.85, 2.62, 3.21],
    (0.7, 0.5): [0.81, 1.14, 1.40],
    (0.7, 0.7): [1.17, 1.66, 2.03],
    (0.7, 0.9): [1.74, 2.46, 3.01],
    (0.8, 0.5): [0.72, 1.02, 1.25],
    (0.8, 0.7): [1.06, 1.50, 1.84],
    (0.8, 0.9): [1.61, 2.28, 2.79],
    (0.85, 0.5): [0.67, 0.95, 1.17],
    (0.85, 0.7): [1.00, 1.42, 1.73],
    (0.85, 0.9): [1.53, 2.17, 2.66],
}
Q_STARS = (1.0, 2.0, 3.0)


@pytest.mark.parametrize("method", ["closed", "numeric"])
@pytest.mark.parametrize("s,vp", sorted(TABLE_2))
def test_tables_1_and_2_m(s, vp, method):
    for q, (m, _) in zip(Q_STARS, TABLE_2[(s, vp)]):
        st = eoc.setup("crelu", sparsity=s, q_star=q, v_prime=vp, method=method)
        assert round(st.m, 2) == pytest.approx(m, abs=1e-9), (s, vp, q, st.m)


@pytest.mark.parametrize("method", ["closed", "numeric"])
@pytest.mark.parametrize("s,vp", sorted(TABLE_4))
def test_table_4_m(s, vp, method):
    for q, m in zip(Q_STARS, TABLE_4[(s, vp)]):
        st = eoc.setup("cst", sparsity=s, q_star=q, v_prime=vp, method=method)
        assert round(st.m, 2) == pytest.approx(m, abs=1e-9), (s, vp, q, st.m)


@pytest.mark.parametrize("s,vp", sorted(TABLE_2))
def test_table_2_v_second(s, vp):
    """V''(q*) evaluated at the printed (rounded) m reproduces every printed V'' of Table 2 to
    two decimals except s=0.9, V'=0.9, q*=3, printed 0.32 where eq. (32) gives 0.2296 (digits
    transposed; Table 1's halved value 0.11 agrees with 0.23). At the exactly solved m the
    values agree within 0.01 (the paper evaluated at its rounded m)."""
    for q, (m, v2) in zip(Q_STARS, TABLE_2[(s, vp)]):
        at_printed = eoc.setup("crelu", sparsity=s, q_star=q, m=m).v_second
        solved = eoc.setup("crelu", sparsity=s, q_star=q, v_prime=vp).v_second
        if (s, vp, q) == (0.9, 0.9, 3.0):
            assert round(at_printed, 2) == 0.23 and round(solved, 2) == 0.23
            continue
        assert round(at_printed, 2) == pytest.approx(v2, abs=1e-9), (s, vp, q, at_printed)
        assert abs(solved - v2) <= 0.01 + 1e-9, (s, vp, q, solved)


def test_table_1_s09_v_second_is_half_of_eq_32():
    """The README note: Table 1's V'' for s = 0.9 is eq. (32) / 2 (within print rounding)."""
    for vp, printed in TABLE_1_V2_S09.items():
        for q, v2 in zip(Q_STARS, printed):
            if v2 is None:
                continue
            st = eoc.setup("crelu", sparsity=0.9, q_star=q, v_prime=vp)
            assert abs(st.v_second / 2 - v2) <= 0.006, (vp, q, st.v_second)
            if v2 >= 0.06:  # large enough to tell a factor of 2 apart from rounding
                assert abs(st.v_second - v2) > 0.02
