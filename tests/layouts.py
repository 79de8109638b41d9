"""Small fixture trees in each dataset's official layout: synthetic pixels, real names and formats.

Each builder writes under ``root`` and returns it. Every tree also holds one zero-byte image with a
valid name (an unreadable file training must skip and count) and one stray file with a wrong name.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from cilf.data.protocols import published, read_table


def write_image(path: Path, age: float, seed: int, size: int = 48) -> None:
    """A face-sized JPEG whose brightness follows the age (so a model has something to learn)."""
    rng = np.random.default_rng(seed)
    base = np.full((size, size, 3), 40 + 1.8 * float(age), dtype=np.float64)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=90)


def _extras(folder: Path, bad_name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / bad_name).write_bytes(b"")  # valid name, unreadable (zero bytes)
    write_image(folder / "not_a_valid_name.jpg", 30, 0)


def morph(root: Path, per_subset: int = 24) -> Path:
    """Files named in the published Setting A fold0 and Setting B lists (so A, B1, B2, C, D all match)."""
    names: list[tuple[str, float]] = []
    a = published("morph", "order-learning", "SettingA_fold0_train.txt")
    names += [(r["filename"], float(r["age"])) for _, r in read_table(a, ",")[:per_subset]]
    a = published("morph", "order-learning", "SettingA_fold0_test.txt")
    names += [(r["filename"], float(r["age"])) for _, r in read_table(a, ",")[:per_subset]]
    for j in range(3):
        b = published("morph", "order-learning", f"SettingB_fold{j}.txt")
        names += [(r["filename"], float(r["age"])) for _, r in read_table(b, " ")[:per_subset]]
    for i, (n, age) in enumerate(dict(names).items()):
        write_image(root / "Album2" / n, age, i)
    _extras(root / "Album2", "999999_00M30.JPG")
    return root


def morph_shared(root: Path, per_subject: int = 2) -> int:
    """Add to a ``morph`` tree up to ``per_subject`` S1/S3 images of each S2 subject on disk (setting B's lists share
    subjects); returns how many images were written."""
    lists = [read_table(published("morph", "order-learning", f"SettingB_fold{j}.txt"), " ") for j in range(3)]
    on_disk = {p.name.upper() for p in root.rglob("*.JPG")}
    s2 = {r["filename"].split("_")[0] for _, r in lists[1] if r["filename"].upper() in on_disk}
    added: dict[str, int] = {}
    for j in (0, 2):
        for _, r in lists[j]:
            subject = r["filename"].split("_")[0]
            if subject in s2 and added.get(subject, 0) < per_subject and r["filename"].upper() not in on_disk:
                write_image(root / "Album1" / r["filename"], float(r["age"]), 7000 + sum(added.values()))
                added[subject] = added.get(subject, 0) + 1
    return sum(added.values())


def morph_b2_shared(root: Path) -> int:
    """Subjects with images on disk both in S2 (B2's train list) and in S1 or S3 (its test lists), from the lists."""
    on_disk = {p.name.upper() for p in root.rglob("*.JPG")}
    subjects = [
        {
            r["filename"].split("_")[0]
            for _, r in read_table(published("morph", "order-learning", f"SettingB_fold{j}.txt"), " ")
            if r["filename"].upper() in on_disk
        }
        for j in range(3)
    ]
    return len(subjects[1] & (subjects[0] | subjects[2]))


def fgnet(root: Path, subjects: int = 6, per_subject: int = 4) -> Path:
    for s in range(1, subjects + 1):
        for j in range(per_subject):
            age = 3 + 12 * j + s
            write_image(root / "images" / f"{s:03d}A{age:02d}.JPG", age, s * 10 + j)
    write_image(root / "images" / "002A18a.JPG", 18, 99)
    _extras(root / "images", "007A20.JPG")
    return root


def cacd(root: Path, per_split: int = 16, with_mat: bool = True) -> Path:
    """Files named in CORAL's published CACD lists; ``celebrity2000.mat`` with their ages and identities."""
    rows = []
    for s in ("train", "valid", "test"):
        for _, r in read_table(published("cacd", "coral-cnn", f"cacd_{s}.csv"), ",")[:per_split]:
            rows.append((r["file"], float(r["file"].split("_")[0])))
    people = sorted({"_".join(n.split("_")[1:-1]) for n, _ in rows})
    for i, (name, age) in enumerate(rows):
        write_image(root / "CACD2000" / name, age, i)
    _extras(root / "CACD2000", "40_Broken_File_0001.jpg")
    if with_mat:
        from scipy.io import savemat

        savemat(
            root / "celebrity2000.mat",
            {
                "celebrityImageData": {
                    "name": np.array([n for n, _ in rows], dtype=object),
                    "age": np.array([a for _, a in rows]),
                    "identity": np.array([people.index("_".join(n.split("_")[1:-1])) + 1.0 for n, _ in rows]),
                    "year": np.full(len(rows), 2010.0),
                }
            },
        )
    return root


ADIENCE_GROUPS = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)"]
ADIENCE_HEADER = [
    "user_id",
    "original_image",
    "face_id",
    "age",
    "gender",
    "x",
    "y",
    "dx",
    "dy",
    "tilt_ang",
    "fiducial_yaw_angle",
    "fiducial_score",
]


def adience(root: Path, per_fold: int = 8, malformed: bool = False) -> Path:
    for k in range(5):
        lines = ["\t".join(ADIENCE_HEADER)]
        for j in range(per_fold):
            user, face, img = f"user{k}x{j // 2}", str(100 * k + j), f"{1000 + j}.jpg"
            group = ADIENCE_GROUPS[(k + j) % 8]
            lo, hi = (int(x) for x in group.strip("()").split(","))
            write_image(root / "faces" / user / f"coarse_tilt_aligned_face.{face}.{img}", (lo + hi) / 2, 50 * k + j)
            lines.append("\t".join([user, img, face, group, "f", "0", "0", "10", "10", "0", "0", "50"]))
        lines.append("\t".join([f"user{k}x9", "9.jpg", "9", "None", "u", "0", "0", "1", "1", "0", "0", "0"]))
        if malformed and k == 2:
            lines.append("\t".join([f"user{k}x8", "8.jpg", "8", "(abc", "m", "0", "0", "1", "1", "0", "0", "0"]))
        (root / f"fold_{k}_data.txt").write_text("\n".join(lines) + "\n")
    (root / "faces" / "user0x0" / "coarse_tilt_aligned_face.0.1000.jpg").write_bytes(b"")  # unreadable
    return root


def faces(root: Path, subjects: int = 10, with_ages: bool = True) -> Path:
    groups = "ymo"
    ages = {}
    for s in range(1, subjects + 1):
        g = groups[s % 3]
        ages[s] = {"y": 24, "m": 47, "o": 72}[g] + s % 5
        for expr in "ahn":
            write_image(root / "faces" / f"{s:03d}_{g}_{'mf'[s % 2]}_{expr}_A.jpg", ages[s], s * 7 + ord(expr))
    _extras(root / "faces", f"{subjects + 1:03d}_y_m_n_B.jpg")
    if with_ages:
        with (root / "ages.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["subject", "age"])
            w.writerows([(f"{s:03d}", a) for s, a in ages.items()] + [(f"{subjects + 1:03d}", 25)])
    return root


def scface(root: Path, subjects: int = 10) -> Path:
    for s in range(1, subjects + 1):
        age = 20 + 4 * s
        for cam in (1, 2):
            for dist in (1, 3):
                write_image(root / "surveillance_cameras_all" / f"{s:03d}_cam{cam}_{dist}.jpg", age, s * 9 + cam + dist)
        write_image(root / "mugshot_frontal_cropped_all" / f"{s:03d}_frontal.JPG", age, s)
    _extras(root / "surveillance_cameras_all", f"{subjects:03d}_cam5_2.jpg")
    with (root / "ages.csv").open("w", newline="") as f:
        f.write("subject,age\n" + "".join(f"{s:03d},{20 + 4 * s}\n" for s in range(1, subjects + 1)))
    return root


def utkface(root: Path, n_listed: int = 30) -> Path:
    """Files named in the published CORAL split (as aligned .chip.jpg crops) plus a few others."""
    for s in ("train", "test"):
        table = read_table(published("utkface", "coral-split", f"UTK_{s}_coral.csv"), ",")[:n_listed]
        for i, (_, r) in enumerate(table):
            write_image(root / "UTKFace" / f"{r['filename']}.chip.jpg", float(r["age"]), i)
    write_image(root / "UTKFace" / "39_1_20170116174525125.jpg.chip.jpg", 39, 1)  # known mis-named file
    _extras(root / "UTKFace", "30_0_1_20170117000000000.jpg.chip.jpg")
    return root


def appa_real(root: Path, per_split: int = 12, malformed: bool = False) -> Path:
    k = 0
    for split in ("train", "valid", "test"):
        lines = ["file_name,num_ratings,apparent_age_avg,apparent_age_std,real_age"]
        for j in range(per_split):
            age = 10 + 5 * j + (split == "test")
            name = f"{k:06d}.jpg"
            write_image(root / split / f"{name}_face.jpg", age, k)
            lines.append(f"{name},30,{age + 1.5},{3.0 + j % 3},{age}")
            k += 1
        if malformed and split == "valid":
            lines.append("bad.jpg,30,abc,2.0,40")
        (root / f"gt_avg_{split}.csv").write_text("\n".join(lines) + "\n")
    (root / "train" / "000000.jpg_face.jpg").write_bytes(b"")
    return root


def agedb(root: Path, people: int = 8, per_person: int = 4) -> Path:
    k = 0
    for p in range(people):
        for j in range(per_person):
            age = 18 + 6 * p + 3 * j
            write_image(root / "AgeDB" / f"{k}_Person{p}_{age}_{'mf'[p % 2]}.jpg", age, k)
            k += 1
    _extras(root / "AgeDB", f"{k}_Person0_40_m.jpg")
    return root


def imdb_wiki(root: Path, n: int = 40) -> Path:
    from scipy.io import savemat

    paths, dob, taken, score, second, ids = [], [], [], [], [], []
    for i in range(n):
        year_born = 1950 + i
        rel = f"{i % 10:02d}/nm{i:07d}_rm{i}_{year_born}-05-01_2010.jpg"
        age = 2010 - year_born
        write_image(root / "imdb_crop" / rel, age, i)
        paths.append(rel)
        dob.append(float(np.datetime64(f"{year_born}-05-01").astype(int)) + 719529.0)  # MATLAB datenum
        taken.append(2010.0)
        score.append(3.0 if i % 10 else -np.inf)  # every 10th has no face
        second.append(np.nan if i % 7 else 2.5)  # every 7th has a second face
        ids.append(float(i // 2))
    savemat(
        root / "imdb_crop" / "imdb.mat",
        {
            "imdb": {
                "full_path": np.array(paths, dtype=object),
                "dob": np.array(dob),
                "photo_taken": np.array(taken),
                "face_score": np.array(score),
                "second_face_score": np.array(second),
                "celeb_id": np.array(ids),
                "gender": np.ones(n),
                "name": np.array([f"p{i}" for i in range(n)], dtype=object),
            }
        },
    )
    return root


BUILDERS = {
    "morph2": morph,
    "fgnet": fgnet,
    "cacd": cacd,
    "adience": adience,
    "faces": faces,
    "scface": scface,
    "utkface": utkface,
    "appa-real": appa_real,
    "agedb": agedb,
    "imdb-wiki": imdb_wiki,
}
