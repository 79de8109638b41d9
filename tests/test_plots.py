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
    spectrum = rng.random((8, 5))
    from cilf.app.correction_report import calibration_bins

    calib = calibration_bins(rng.normal(0, 3, n), corr["y0"], y)
    calls = {
        "faces": lambda p: plots.show_faces(faces, ["a", "b"], path=p),
        "text": lambda p: plots.plot_text_similarity(text, ages_k, path=p),
        "scores": lambda p: plots.plot_global_scores(scores, [20, 60], ages_k, path=p),
        "maps": lambda p: plots.plot_dense_maps(faces, maps, ages_k, path=p),
        "fpe": lambda p: plots.plot_fpe_steps(steps, path=p),
        "spectra": lambda p: plots.plot_filter_spectra([spectrum] * 2, path=p),
        "pca": lambda p: plots.plot_embedding_pca({"a": emb, "b": emb * 2}, y, path=p),
        "sim": lambda p: plots.plot_similarity_matrices({"a": (emb, emb)}, y, path=p),
        "corr": lambda p: plots.plot_correction(corr, y, path=p),
        "calibration": lambda p: plots.plot_calibration(calib, path=p, spearman=0.4),
    }
    for name, draw in calls.items():
        draw(tmp_path / f"{name}.png")
        first = (tmp_path / f"{name}.png").read_bytes()
        draw(tmp_path / f"{name}.png")
        assert first[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / f"{name}.png").read_bytes() == first, name
    import matplotlib.pyplot as plt

    plt.close("all")


def test_contact_sheet_shows_subjects_by_age(tmp_path):
    fig = synthage_contact_sheet(tmp_path / "sheet.png", n_subjects=2, ages=(5, 50, 85))
    assert len(fig.axes) == 6 and (tmp_path / "sheet.png").stat().st_size > 10_000
