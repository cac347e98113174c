"""Every shell block of docs/guides/your-model.md runs, as a reader would run it (see ``pages.py``).

The page needs a broker and says so: its blocks are given this session's broker in
``KAFKA_BOOTSTRAP_SERVERS``, and they run in a folder of their own (the page writes its model,
reference and registry where it runs).
"""

from __future__ import annotations

from pages import ROOT, UNTIL, blocks, environment, run_page

PAGE = ROOT / "docs/guides/your-model.md"


def test_the_page_trains_imports_serves_and_reads_back():
    checks = [b.check for b in blocks(PAGE.read_text())]
    assert checks.count("run") >= 3 and [
        UNTIL.fullmatch(c)["then"] for c in checks if UNTIL.fullmatch(c)
    ] == ["keep"]


def test_every_command_of_the_bring_your_own_model_page_runs(kafka_bootstrap, tmp_path):
    env = environment(tmp_path)
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    work = tmp_path / "work"
    work.mkdir()
    run_page(PAGE.read_text(), env, tmp_path, cwd=work)
    assert (work / "my-models/fraud/1/card.json").is_file()
    tail = (tmp_path / f"block-{len(blocks(PAGE.read_text())) - 1}.log").read_text()
    assert tail.count('"model_name": "fraud"') == 3 and '"event_id": "pay-2"' in tail, tail
