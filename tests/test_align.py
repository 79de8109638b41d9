"""Face alignment (``cilf align``): similarity transform, dlib and OpenCV detectors, resumable runs."""

import hashlib

import numpy as np
import pytest

from cilf.cli import main


def test_similarity_transform_recovers_a_known_map():
    from cilf.data.align import TEMPLATE, similarity_transform

    th, s, t = 0.3, 1.7, np.array([12.0, -4.0])
    r = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    src = TEMPLATE * 100
    dst = src @ (s * r).T + t
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], s * r) and np.allclose(m[:, 2], t)


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def _raw_photo(sid: int, age: int = 40, face_size: int = 160, canvas=(320, 240)):
    """A SynthAge face pasted on a plain canvas, as an unaligned photo."""
    from PIL import Image

    from cilf.data.synthage import render_face, sample_subject

    rng = np.random.default_rng(sid)
    face, _ = render_face(sample_subject(rng, sid), age, rng, size=face_size)
    img = Image.new("RGB", canvas, (90, 120, 90))
    img.paste(face, ((canvas[0] - face_size) // 2 - 20, (canvas[1] - face_size) // 2))
    return img


def test_align_is_idempotent_resumable_and_leaves_the_source_alone(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "raw"
    (src / "sub").mkdir(parents=True)
    for sid in (0, 3, 4):  # subjects whose rendered faces the HOG detector finds on a plain canvas
        _raw_photo(sid).save(src / "sub" / f"photo{sid}.png")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(src / "blank.jpg")
    (src / "broken.jpg").write_bytes(b"")
    before = _tree(src)
    dst = tmp_path / "aligned"
    assert main(["align", str(src), str(dst), "--size", "112", "--detector", "dlib", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aligned 3 (3 by dlib)" in out and "no face 1" in out and "unreadable 1" in out
    aligned = sorted(dst.rglob("*.jpg"))
    assert len(aligned) == 3 and all(Image.open(p).size == (112, 112) for p in aligned)
    first = _tree(dst)
    assert main(["align", str(src), str(dst), "--size", "112", "--quiet"]) == 0
    assert "already done 3" in capsys.readouterr().out
    assert {k: v for k, v in _tree(dst).items() if k.endswith(".jpg")} == {
        k: v for k, v in first.items() if k.endswith(".jpg")
    }
    assert _tree(src) == before
    assert main(["align", str(src), str(src / "inside"), "--quiet"]) == 2


def test_opencv_cascade_eyes_agree_with_dlib_landmarks():
    pytest.importorskip("cv2")
    from cilf.data.align import CascadeEyes, DlibLandmarks

    cascade, dlib5 = CascadeEyes(), DlibLandmarks()
    for sid in (0, 3, 4):
        img = _raw_photo(sid)
        eyes, pts = cascade(img), dlib5(img)
        ref = np.array([pts[[2, 3]].mean(0), pts[[0, 1]].mean(0)])  # dlib eye centres, image left first
        ref = ref[np.argsort(ref[:, 0])]
        inter_ocular = np.linalg.norm(ref[1] - ref[0])
        assert np.abs(eyes - ref).max() < 0.25 * inter_ocular, (sid, eyes, ref)
    assert cascade(_raw_photo(0).convert("L").point(lambda v: 128)) is None  # a flat image has no face


def test_auto_falls_back_to_the_cascades_per_image_and_says_so(tmp_path, capsys):
    pytest.importorskip("cv2")
    from cilf.data.align import CascadeEyes, DlibLandmarks

    cascade, dlib5 = CascadeEyes(), DlibLandmarks()
    only_cascade = next(s for s in range(40) if dlib5(_raw_photo(s)) is None and cascade(_raw_photo(s)) is not None)
    src = tmp_path / "raw"
    src.mkdir()
    _raw_photo(3).save(src / "both.png")
    _raw_photo(only_cascade).save(src / "cascade_only.png")
    assert main(["align", str(src), str(tmp_path / "auto"), "--size", "96", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "aligned 2 (1 by dlib, 1 by opencv)" in out
    assert "cascade_only.png: dlib found no face; aligned by the opencv fallback" in out
    assert main(["align", str(src), str(tmp_path / "cv"), "--detector", "opencv", "--quiet"]) == 0
    assert "aligned 2 (2 by opencv)" in capsys.readouterr().out


def test_a_missing_detector_is_named_with_its_install(tmp_path, monkeypatch, capsys):
    import sys

    (tmp_path / "raw").mkdir()
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if opencv-python-headless were not installed
    assert main(["align", str(tmp_path / "raw"), str(tmp_path / "out"), "--detector", "opencv", "--quiet"]) == 2
    assert "pip install 'cilf[align]'" in capsys.readouterr().err
    from cilf.data.align import FaceAligner

    assert FaceAligner(detector="auto").names == ["dlib"]  # auto keeps working without the fallback
