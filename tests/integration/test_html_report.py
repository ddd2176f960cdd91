"""report/index.html of a small audit — an exact team, a diverged one (a published number edited in the
copy) and a failed one — opened in a real headless Chromium with the network cut: no console error, no
request leaves the file, one verdict row per team, every image and plot decodes, the table sorts."""

import json
import os
import re
import shutil
import textwrap

import pytest
import yaml

from conftest import copy_project, harness_cli

pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def audited(tmp_path_factory, niqe_cache, downloads):
    root = copy_project(tmp_path_factory.mktemp("html") / "repo", teams=["bicubic", "realesr-animevideov3"])
    manifest = root / "teams" / "bicubic" / "manifest.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["published"]["mini"]["values"]["psnr"] = 29.90  # diverged on purpose
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    anime = root / "teams" / "realesr-animevideov3" / "manifest.yaml"
    data = yaml.safe_load(anime.read_text())
    for key in ("values", "precision"):  # NIQE computed, never published
        data["published"]["mini"][key].pop("niqe", None)
    anime.write_text(yaml.safe_dump(data, sort_keys=False))
    broken = root / "teams" / "broken"
    broken.mkdir()
    (broken / "model.py").write_text(textwrap.dedent("""
        def main(model_dir, input_path, output_path, device):
            raise RuntimeError("this team's code fails")
    """))
    (broken / "manifest.yaml").write_text(yaml.safe_dump({
        "schema_version": 1, "id": "broken", "name": "A team whose code raises", "challenge": "mini",
        "published": {"mini": {"values": {"psnr": 28.0}, "precision": {"psnr": 2},
                               "source": {"kind": "reference-run", "citation": "test"}}},
        "entry": {"kind": "ntire-main", "module": "model.py"}, "runtime": {"scale": 4},
        "determinism": {"class": "deterministic"}, "status": {"runnable": True}}, sort_keys=False))
    env = {"HARNESS_METRIC_WEIGHTS": str(niqe_cache), "HARNESS_DOWNLOADS": str(downloads)}
    done = harness_cli("audit", "--teams", "bicubic,realesr-animevideov3,broken", cwd=root, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    return root, done


def test_the_console_ends_with_the_table_the_summary_and_the_page(audited):
    root, done = audited
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    # realesr-animevideov3: exact where its digests were taken, reproduced on a CPU whose ncnn kernels differ
    assert re.match(r"SUMMARY: 3 team\(s\): (1 exact, 0|0 exact, 1) reproduced, 1 diverged, 1 failed", lines[-2])
    assert lines[-1] == "report: report/index.html"
    report = json.loads((root / "report" / "report.json").read_text())
    bicubic = next(t for t in report["teams"] if t["team"] == "bicubic")
    # what the page shows is in report.json too
    assert set(bicubic["evidence"]["per_image"]) >= {"psnr", "ssim", "niqe", "lr_consistency"}
    assert bicubic["evidence"]["worst"][0]["crop"] and bicubic["evidence"]["provenance"]["runner"] == "local"
    [track1] = report["leaderboards"]  # the mini teams publish no perceptual score: no Track-2 board
    assert (track1["challenge"], track1["track"], track1["entries"][0]["team"]) == ("mini", "track1", "bicubic")
    assert "leaderboard mini track1 (restoration (PSNR)): no rank changes" in done.stdout


def test_the_page_opens_offline_in_chromium_and_everything_in_it_decodes(audited, tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("no Chromium (CI must run the browser test: `make browser`)")
        pytest.skip("no Chromium: run `make browser`")
    from playwright.sync_api import sync_playwright

    root, _ = audited
    page_path = root / "report" / "index.html"
    size = page_path.stat().st_size
    assert size < 2_000_000, size
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        problems, requests = [], []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri(), wait_until="load")
        assert problems == []
        assert [url for url in requests if not url.startswith(("file://", "data:"))] == []
        rows = page.locator("#verdicts tbody tr")
        assert rows.count() == 3
        verdicts = {rows.nth(i).locator("td").nth(0).inner_text(): rows.nth(i).locator("td").nth(1).inner_text()
                    for i in range(3)}
        assert verdicts.pop("realesr-animevideov3") in ("exact", "reproduced")
        assert verdicts == {"bicubic": "diverged", "broken": "failed (entry_error)"}
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert images and all(complete and width > 0 for complete, width in images)
        plots = page.evaluate("Array.from(document.querySelectorAll('figure svg'))"
                              ".map(s => s.getBoundingClientRect().width)")
        assert len(plots) >= 5 and all(width > 50 for width in plots)
        assert "this team's code fails" in page.locator("#team-broken").inner_text()
        headline = page.locator("#headline").inner_text()  # the verdict at a glance, naming who did not reproduce
        assert re.search(r"^1 of 3 teams reproduce; bicubic: PSNR \(dB, Y\) -0\.\d+, \d+x its tolerance; "
                         r"broken: failed \(entry_error\)\.$", headline), headline
        labels = page.locator("#team-bicubic .crop-label").all_inner_texts()
        assert labels[:3] == ["LR, bicubic x4", "output", "ground truth"] and labels[3].startswith("|output - ground")
        anime = page.locator("#team-realesr-animevideov3").inner_text()
        assert "computed, not published" in anime and "NIQE" in anime  # every computed metric is shown
        gaps = page.locator("#not-computed").inner_text()
        assert "LPIPS" in gaps and "harness fetch metric-weights lpips" in gaps  # and each one that is not
        assert page.locator("#team-bicubic .per-image").count() == 3  # one chart per published metric
        assert "SE" in page.locator("#team-bicubic table.metrics").inner_text()
        page.locator("#verdicts th", has_text="PSNR").click()  # sort by PSNR, ascending
        first = page.locator("#verdicts tbody tr").nth(0).locator("td").nth(0).inner_text()
        assert first == "realesr-animevideov3"  # the failed team has no reproduced value: it sorts last
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        page.set_viewport_size({"width": 420, "height": 900})  # a phone: wide tables scroll inside their box
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a 420 px screen"
        page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
        browser.close()
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_report_for_a_challenge_takes_its_teams_and_test_set(audited, tmp_path):
    root, _ = audited
    done = harness_cli("report", "--challenge", "mini", "--out", str(tmp_path / "out"), cwd=root)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["dataset"] == "mini"
    assert sorted(t["team"] for t in report["teams"]) == ["bicubic", "broken", "random-tta",
                                                          "realesr-animevideov3", "realesrgan-x4plus"]
    unevaluated = next(t for t in report["teams"] if t["team"] == "random-tta")
    assert unevaluated["failure"]["kind"] == "not_evaluated" and done.returncode == 0
    both = harness_cli("report", "--challenge", "mini", "--teams", "bicubic", cwd=root)
    assert both.returncode == 2 and "give --teams or --challenge, not both" in both.stderr
