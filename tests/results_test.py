"""The results page: one command trains, measures and writes the table and images."""

import json
import os

import pytest

from tfgan_app import results as results_command
from tfgan_app.reporting import results
from conftest import tfds_data_dir


def _record(name, kind, **values):
  return {"name": name, "title": name.upper(), "kind": kind, "date": "2026-11-23",
          "command": f"configs/{name}.cfg", "export": f"/x/{name}/7", "step": 7,
          "image": f"results/{name}.png", **values}


def test_page_has_one_row_per_run_with_its_numbers():
  page = results.render_page(
      [_record("dcgan", results.MNIST, fid=12.345, **{"is": 9.1234},
               confident_fraction=0.8123, min_class_fraction=0.0712),
       _record("ring8_minimax", results.TOY, modes_covered=6, num_modes=8,
               high_quality_fraction=0.9051, kl=0.4321)],
      "python -m tfgan_app.results --workdir=w", 10_000)
  assert "    python -m tfgan_app.results --workdir=w" in page
  assert "| DCGAN | `configs/dcgan.cfg` | 7 | 12.3 | 9.12 | 81.2% | 7.1% |" in page
  assert "| RING8_MINIMAX | `configs/ring8_minimax.cfg` | 7 | 6 / 8 | 90.5% | 0.432 |" in page
  assert "![dcgan](results/dcgan.png)" in page
  assert "![ring8_minimax](results/ring8_minimax.png)" in page


def test_only_toy_runs_give_no_mnist_table():
  page = results.render_page([_record("ring8_minimax", results.TOY, modes_covered=8,
                                      num_modes=8, high_quality_fraction=1.0, kl=0.01)],
                             "cmd", 100)
  assert "FID" not in page and "Modes covered" in page


def test_every_run_names_an_existing_config():
  for run in results.RUNS:
    assert os.path.isfile(os.path.join(results.CONFIGS_DIR, run.config)), run.config
  assert {run.kind for run in results.RUNS} == {results.MNIST, results.TOY}


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
  from tfgan_app.evaluation import classifier  # pylint: disable=import-outside-toplevel
  out = str(tmp_path_factory.mktemp("classifier") / "mnist")
  classifier.train_classifier("mnist", tfds_data_dir(), out, epochs=1, train_examples=2000,
                              compute_dtype="float32", download=False)
  return out


def test_command_trains_measures_and_writes_the_page(tmp_path, tiny_classifier, capsys,
                                                     monkeypatch):
  monkeypatch.setenv("TFGAN_APP_CACHE_DIR", str(tmp_path / "cache"))
  out_dir, workdir = tmp_path / "docs", tmp_path / "runs"
  argv = ["results", f"--workdir={workdir}", f"--out_dir={out_dir}",
          f"--classifier={tiny_classifier}", f"--data_dir={tfds_data_dir()}",
          "--runs=dcgan,ring8_minibatch_discrimination", "--num_samples=200",
          "--train_flag=--train_steps=20", "--train_flag=--batch_size=32"]
  assert results_command.main(argv) == 0
  last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  by_name = {record["name"]: record for record in last["runs"]}
  assert set(by_name) == {"dcgan", "ring8_minibatch_discrimination"}
  dcgan, ring8 = by_name["dcgan"], by_name["ring8_minibatch_discrimination"]
  assert dcgan["step"] == 20 and ring8["step"] == 20
  assert dcgan["fid"] > 0 and 1.0 <= dcgan["is"] <= 10.0
  assert 0.0 <= dcgan["confident_fraction"] <= 1.0
  assert 0 <= ring8["modes_covered"] <= 8 and ring8["num_modes"] == 8
  assert ring8["command"] == ("configs/ring8.cfg --minibatch_discrimination --train_steps=20 "
                              "--batch_size=32")
  # The run really used the extra flags.
  flags_text = (workdir / "ring8_minibatch_discrimination" / "flags.cfg").read_text()
  assert "--minibatch_discrimination" in flags_text and "--train_steps=20" in flags_text
  assert "--batch_size=32" in flags_text

  page = (out_dir / "results.md").read_text()
  assert f"{dcgan['fid']:.1f}" in page and f"{ring8['modes_covered']} / 8" in page
  for name in by_name:
    with open(out_dir / "results" / f"{name}.png", "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  assert json.loads((out_dir / "results.json").read_text()) == last["runs"]

  # A failing run: one error line naming it, exit 1, and the page from before stays.
  before = page
  argv_bad = [arg for arg in argv if not arg.startswith("--runs")] + [
      "--runs=ring8_minimax", "--train_flag=--batch_size=0"]
  assert results_command.main(argv_bad) == 1
  error = capsys.readouterr().err.strip().splitlines()[-1]
  assert error.startswith("python -m tfgan_app.results: error: training ring8_minimax")
  assert (out_dir / "results.md").read_text() == before


def test_unknown_run_is_refused(capsys):
  assert results_command.main(["results", "--runs=dcgan,wgan"]) == 2
  error = capsys.readouterr().err
  assert "unknown run(s) ['wgan']" in error and "ring8_minimax" in error
