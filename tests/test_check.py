"""``python -m cilf data check``: what a dataset root holds, with every file passed over and why."""
import json

from cilf.cli import main


def test_data_check_cli_lists_skips(trees, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["data", "check", str(trees["utkface"]), "--dataset", "utkface", "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "age histogram" in text and "protocol coral" in text
    rep = json.loads(out.read_text())
    why = dict(rep["skipped"])
    assert any("does not match" in w for w in why.values())  # the known mis-named UTKFace file
    assert any("empty file" in w for w in why.values())  # the zero-byte image
    assert rep["unreadable"] == 1
