"""Training-image augmentation (cilf.app.augment): what each option does to a batch, that it is seeded by the
epoch without changing the shuffle, and that a run which cannot augment is refused before it starts."""

import pytest
import torch

from cilf.app.augment import Augment, epoch_generator


def _images(b=32, h=12, w=10):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(1))


def test_flip_mirrors_about_half_the_images_and_leaves_the_rest():
    x = _images(b=200)
    y = Augment(flip=True)(x, torch.Generator().manual_seed(0))
    same = [bool(torch.equal(y[i], x[i])) for i in range(len(x))]
    mirrored = [bool(torch.equal(y[i], x[i].flip(-1))) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 70 < sum(mirrored) < 130  # Binomial(200, 1/2): outside this range with probability < 1e-4


def test_shift_translates_each_image_by_at_most_shift_pixels():
    x = _images(b=16, h=20, w=20)
    y = Augment(shift=3)(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    moved = 0
    for i in range(len(x)):
        # the inner 14 x 14 of the output is the input moved by some (dy, dx) in [-3, 3]^2
        hits = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.equal(y[i, :, 3:17, 3:17], x[i, :, 3 + dy : 17 + dy, 3 + dx : 17 + dx])
        ]
        assert hits, f"image {i} is not a shift of its input"
        moved += hits[0] != (0, 0)
    assert moved >= 12  # 1/49 of the draws are (0, 0)


def test_same_generator_seed_gives_the_same_batch_and_inactive_is_identity():
    x = _images()
    aug = Augment(flip=True, shift=2)
    a = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(6)))
    assert not Augment().active and Augment(shift=1).active


@pytest.mark.parametrize("shift", [-1, 1.5, True])
def test_a_shift_that_is_not_a_whole_number_of_pixels_is_refused(shift):
    with pytest.raises(ValueError, match="shift must be a whole number"):
        Augment(shift=shift)


def test_a_shift_as_large_as_the_image_or_a_single_image_is_refused():
    with pytest.raises(ValueError, match="not smaller than the 12x10"):
        Augment(shift=10)(_images(), torch.Generator())
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        Augment(flip=True)(_images()[0], torch.Generator())


def test_the_epoch_generator_leaves_the_shuffle_generator_untouched():
    g = torch.Generator().manual_seed(42)
    before = torch.randperm(50, generator=torch.Generator().manual_seed(42))
    a = torch.rand(4, generator=epoch_generator(g, rank=0))
    assert torch.equal(torch.randperm(50, generator=g), before)
    assert not torch.equal(a, torch.rand(4, generator=epoch_generator(torch.Generator().manual_seed(42), rank=1)))
    assert not torch.equal(a, torch.rand(4, generator=epoch_generator(torch.Generator().manual_seed(43), rank=0)))


def test_augmented_pixel_batches_keep_the_shuffle_and_are_seeded_by_the_epoch(model, data_env):
    from cilf.app.batches import Batches
    from cilf.data.datasets import SynthAge

    ds = SynthAge(split="val", n_images=1200, seed=0, transform=model.preprocess, progress=False)
    ds = ds.subset(range(40))
    plain = Batches(model, ds, 16, device="cpu", cached=False)
    flipped = Batches(model, ds, 16, device="cpu", cached=False, augment=Augment(flip=True))

    def run(b, seed):
        return list(b.epoch(torch.Generator().manual_seed(seed)))

    p, f, again = run(plain, 3), run(flipped, 3), run(flipped, 3)
    assert [torch.equal(a[2], b[2]) for a, b in zip(p, f)] == [True] * len(p)  # same images, same order
    assert all(torch.equal(a[1], b[1]) for a, b in zip(f, again))  # same epoch seed, same flips
    pi, fi = torch.cat([a[1] for a in p]), torch.cat([a[1] for a in f])
    mirrored = [bool(torch.equal(fi[i], pi[i].flip(-1))) and not torch.equal(fi[i], pi[i]) for i in range(len(pi))]
    assert all(torch.equal(fi[i], pi[i]) or mirrored[i] for i in range(len(pi)))
    assert 0 < sum(mirrored) < len(pi)
    other = torch.cat([a[1] for a in run(flipped, 4)])
    assert not torch.equal(other, fi)
    with pytest.raises(ValueError, match="freeze_image=false"):
        Batches(model, ds, 16, device="cpu", cached=True, augment=Augment(flip=True))


def test_training_from_cached_features_with_augmentation_is_refused_before_the_run_starts(
    small_cfg, train_cfg, tmp_path
):
    from cilf.app.train import train

    for cfg in (small_cfg, small_cfg.replace(unfreeze_last_blocks=1)):
        with pytest.raises(ValueError, match="--no-cache"):
            train(cfg, train_cfg(tmp_path / "run", flip=True))
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="shift must be at least 0"):
        train_cfg(tmp_path / "run", shift=-2)


def test_an_augmented_run_trains_on_other_images_and_resumes_exactly(small_cfg, train_cfg, tmp_path, data_env):
    """--no-cache --flip --shift 2: the images change (metrics differ from the plain run), the draws are seeded
    by the epoch (stop after 1 epoch + resume = the whole run), and resuming without the flip is refused."""
    from cilf.app.train import train

    kw = dict(epochs=2, cache_features=False)
    plain = train(small_cfg, train_cfg(tmp_path / "plain", **kw))
    full = train(small_cfg, train_cfg(tmp_path / "full", flip=True, shift=2, **kw))
    assert full["model"]["mae"] != plain["model"]["mae"]
    assert full["train_config"]["flip"] is True and full["train_config"]["shift"] == 2
    part = tmp_path / "part"
    assert train(small_cfg, train_cfg(part, flip=True, shift=2, stop_after_epochs=1, **kw))["stopped_after_epoch"] == 1
    with pytest.raises(ValueError, match="flip=True, not flip=False"):
        train(small_cfg, train_cfg(part, shift=2, **kw), resume=True)
    resumed = train(small_cfg, train_cfg(part, flip=True, shift=2, **kw), resume=True)
    assert resumed["model"]["mae"] == full["model"]["mae"]
    assert resumed["model"]["cs_curve"] == full["model"]["cs_curve"]
