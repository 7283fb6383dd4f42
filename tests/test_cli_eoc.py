"""``kerasparse eoc`` through typer's CliRunner (pure SciPy: backend independent)."""

import json

import pytest
from typer.testing import CliRunner

from kerasparse import eoc
from kerasparse.cli import app

runner = CliRunner()
KEYS = {"activation", "sparsity", "q_star", "v_prime", "tau", "m", "sigma_w2", "sigma_b2",
        "v_second", "chi1", "chi1_prime"}


def test_single_setting_table():
    res = runner.invoke(app, ["eoc", "--activation", "crelu", "--sparsity", "0.85",
                              "--q-star", "3", "--v-prime", "0.7"])
    assert res.exit_code == 0, res.output
    st = eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    for header in ("tau", "sigma_w2", "sigma_b2", "V''(q*)", "chi1'(q*)", "|q1| bound"):
        assert header in res.output
    for value in (st.tau, st.m, st.sigma_w2, st.sigma_b2, st.chi1_prime, st.q1_bound):
        assert f"{value:.4f}" in res.output


def test_single_setting_json():
    res = runner.invoke(app, ["eoc", "--sparsity", "0.85", "--q-star", "3", "--v-prime", "0.7",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert KEYS <= set(out)
    st = eoc.setup("crelu", sparsity=0.85, q_star=3, v_prime=0.7)
    assert out["m"] == pytest.approx(st.m, rel=1e-12) and round(out["m"], 2) == 2.03  # Table 1
    assert out["chi1"] == pytest.approx(1.0)


def test_grid_json_is_a_list_over_the_product():
    res = runner.invoke(app, ["eoc", "--activation", "cst", "--sparsity", "0.6,0.7,0.8",
                              "--q-star", "1,2,3", "--v-prime", "0.5,0.7,0.9", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert len(rows) == 27 and all(KEYS <= set(r) for r in rows)
    row = next(r for r in rows if (r["sparsity"], r["q_star"], r["v_prime"]) == (0.7, 2.0, 0.9))
    assert round(row["m"], 2) == 2.46  # Table 4


def test_unclipped_reports_marginal_and_inf_bound():
    res = runner.invoke(app, ["eoc", "--activation", "soft_threshold", "--sparsity", "0.7",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["v_prime"] == 1.0 and out["marginal"] is True and out["q1_bound"] == "inf"
    res = runner.invoke(app, ["eoc", "--activation", "shifted_relu", "--sparsity", "0.7"])
    assert "marginally stable" in res.output


def test_hard_shrink_options():
    res = runner.invoke(app, ["eoc", "--activation", "hard_shrink", "--sparsity", "0.85",
                              "--q-star", "3", "--alpha", "5", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    st = eoc.setup("hard_shrink", sparsity=0.85, q_star=3, alpha=5.0)
    assert out["alpha"] == 5.0 and out["eps"] == 0.01
    assert out["v_prime"] == pytest.approx(st.v_prime)


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--sparsity", "0.85", "--q-star", "3", "--v-prime", "1.2"],
         "no m gives V'(q*)=1.2"),
        (["--sparsity", "1.5", "--v-prime", "0.7"], "sparsity=1.5"),
        (["--sparsity", "0.8", "--q-star", "0", "--v-prime", "0.7"], "q_star=0"),
        (["--sparsity", "0.8", "--v-prime", "0.7,x"], "--v-prime takes a number"),
        (["--activation", "shifted_relu", "--sparsity", "0.8", "--v-prime", "0.7"],
         "shifted_relu is unclipped: at the edge of chaos V'(q*) = chi_1(q*) = 1"),
        (["--activation", "hard_shrink", "--sparsity", "0.8", "--v-prime", "0.7"],
         "hard_shrink has no clipping parameter m"),
        (["--activation", "crelu", "--sparsity", "0.8", "--v-prime", "0.7", "--alpha", "3"],
         "--alpha and --eps apply to hard_shrink"),
        (["--sparsity", "0.8", "--v-prime", "0.7", "--plot", "out.pdf"], "must end in .png"),
    ],
)
def test_errors_exit_2_with_one_line(args, pattern):
    res = runner.invoke(app, ["eoc", *args])
    assert res.exit_code == 2
    assert pattern in res.output
    assert "Traceback" not in res.output


def test_bad_activation_choice():
    res = runner.invoke(app, ["eoc", "--activation", "gelu"])
    assert res.exit_code == 2 and "gelu" in res.output


def test_plot_writes_png(tmp_path):
    path = tmp_path / "maps.png"
    res = runner.invoke(app, ["eoc", "--sparsity", "0.85", "--q-star", "1,3", "--v-prime", "0.7",
                              "--plot", str(path)])
    assert res.exit_code == 0, res.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    res = runner.invoke(app, ["eoc", "--sparsity", "0.85", "--v-prime", "0.7", "--plot",
                              str(tmp_path / "missing" / "x.png")])
    # Refused before solving: one line naming the missing folder, no table printed.
    assert res.exit_code == 2 and "cannot write" in res.output
    assert "missing' does not exist" in res.output and len(res.output.strip().splitlines()) == 1
