"""The results page: one command trains, measures and writes the table and images."""

import json
import os
import shutil

import pytest

from tfgan_app import results as results_command
from tfgan_app.reporting import results
from conftest import REPO_ROOT, tfds_data_dir


def _record(name, kind, **values):
  return {"name": name, "title": name.upper(), "kind": kind, "date": "2026-11-23",
          "command": f"configs/{name}.cfg", "export": f"/x/{name}/7", "step": 7,
          "image": f"results/{name}.png", **values}


def test_page_has_one_row_per_run_with_its_numbers():
  page = results.render_page(
      [_record("dcgan", results.MNIST, fid=12.345, **{"is": 9.1234},
               confident_fraction=0.8123, min_class_fraction=0.0712),
       _record("ring8_minimax", results.TOY, dataset="ring8", modes_covered=6, num_modes=8,
               high_quality_fraction=0.9051, kl=0.4321)],
      "python -m tfgan_app.results --workdir=w", 10_000)
  assert "    python -m tfgan_app.results --workdir=w" in page
  assert "| DCGAN | `configs/dcgan.cfg` | 7 | 12.3 | 9.12 | 81.2% | 7.1% |" in page
  assert "| RING8_MINIMAX | `configs/ring8_minimax.cfg` | 7 | 6 / 8 | 90.5% | 0.432 |" in page
  assert "![dcgan](results/dcgan.png)" in page
  assert "![ring8_minimax](results/ring8_minimax.png)" in page


def test_only_toy_runs_give_no_mnist_table():
  page = results.render_page([_record("ring8_minimax", results.TOY, dataset="ring8",
                                      modes_covered=8, num_modes=8, high_quality_fraction=1.0,
                                      kl=0.01)],
                             "cmd", 100)
  assert "FID" not in page and "Modes covered" in page
  assert "Made on 2026-11-23 on" in page and "grid25" not in page


def test_page_names_the_hardware_each_row_was_measured_on():
  measured = _record("ring8_hinge", results.TOY, dataset="ring8", modes_covered=8, num_modes=8,
                     high_quality_fraction=0.9, kl=0.5)
  measured["hardware"] = "CPU AMD EPYC (avx2 avx512f avx512_bf16)"
  older = _record("ring8_minimax", results.TOY, dataset="ring8", modes_covered=8, num_modes=8,
                  high_quality_fraction=0.9, kl=0.5)
  page = results.render_page([older, measured], "cmd", 100)
  assert ("CPU cores (CPU AMD EPYC (avx2 avx512f avx512_bf16); older rows did not record "
          "theirs)") in page
  assert "older rows" not in results.render_page([measured], "cmd", 100)


def test_hand_written_sections_are_carried_into_the_rewritten_page():
  section = "\n".join([results.HAND_WRITTEN_BEGIN, "## By hand", "", "| a | b |",
                        results.HAND_WRITTEN_END])
  record = _toy("ring8_minimax", "ring8")
  old_page = results.render_page([record], "cmd", 100) + "\n" + section + "\ntrailing text\n"
  kept = results.hand_written_sections(old_page)
  assert kept == [section]
  page = results.render_page([record], "cmd", 100, kept)
  # Before the images, after the tables; text outside the markers is not kept.
  assert page.index("| RING8_MINIMAX |") < page.index(section) < page.index("## Samples")
  assert "trailing text" not in page and results.hand_written_sections(page) == kept


@pytest.mark.parametrize("broken", [
    [results.HAND_WRITTEN_BEGIN, "text"],
    ["text", results.HAND_WRITTEN_END],
    [results.HAND_WRITTEN_BEGIN, results.HAND_WRITTEN_BEGIN, results.HAND_WRITTEN_END]])
def test_an_unbalanced_hand_written_marker_is_refused_before_anything_is_written(tmp_path,
                                                                                 broken):
  (tmp_path / results.PAGE).write_text("\n".join(["# Results", *broken]) + "\n")
  with pytest.raises(results.ResultsError, match="hand-written"):
    results.make_results(str(tmp_path / "runs"), str(tmp_path), runs=[])
  assert not (tmp_path / "runs").exists()
  assert (tmp_path / results.PAGE).read_text().startswith("# Results")


def _toy(name, dataset, date="2026-11-23", modes=8):
  record = _record(name, results.TOY, dataset=dataset, modes_covered=modes, num_modes=modes,
                   high_quality_fraction=0.5, kl=0.25)
  record["date"] = date
  return record


def test_one_toy_table_per_dataset_in_order_and_the_dates_range():
  page = results.render_page(
      [_toy("ring8_minimax", "ring8"), _toy("grid25", "grid25", "2026-12-07", 25),
       _toy("ring8_hinge", "ring8", "2026-12-01")], "cmd", 1000)
  ring8 = page.index("## ring8: mode coverage by objective")
  grid25 = page.index("## grid25: mode coverage by objective")
  assert ring8 < page.index("| RING8_HINGE |") < grid25 < page.index("| GRID25 |")
  assert "Eight Gaussians (standard deviation 0.02) on a circle of radius 2." in page
  assert "Twenty-five Gaussians (standard deviation 0.05) centred on the grid" in page
  assert "| Objective | Config | Steps | Modes covered | High quality | KL (nats) |" in page
  assert "| GRID25 | `configs/grid25.cfg` | 7 | 25 / 25 | 50.0% | 0.250 |" in page
  assert "Made on 2026-11-23 to 2026-12-07 on" in page


def test_cifar10_table_names_its_classifier_and_the_rarest_class():
  page = results.render_page(
      [_record("cifar10", results.CIFAR10, fid=45.678, **{"is": 5.4321},
               confident_fraction=0.4567, min_class_fraction=0.0321, rarest_class="cat",
               classifier_test_accuracy=0.8123, num_samples=10_000),
       _toy("ring8_minimax", "ring8")], "cmd", 10_000)
  assert "## CIFAR-10" in page and "## MNIST" not in page
  assert "| Model | Config | Steps | FID ↓ | IS ↑ | Confident ↑ | Rarest class |" in page
  assert "| CIFAR10 | `configs/cifar10.cfg` | 7 | 45.7 | 5.43 | 45.7% | 3.2% (cat) |" in page
  assert "project's CIFAR-10 classifier" in page and "not Inception" in page
  assert "test accuracy 81.2%" in page
  assert "![cifar10](results/cifar10.png)" in page
  assert page.index("## CIFAR-10") < page.index("## ring8")


def test_every_run_names_an_existing_config():
  for run in results.RUNS:
    assert os.path.isfile(os.path.join(results.CONFIGS_DIR, run.config)), run.config
  assert {run.kind for run in results.RUNS} == {results.MNIST, results.CIFAR10, results.TOY}


def _run_config(run):
  from tfgan_app.training import flags as app_flags  # pylint: disable=import-outside-toplevel
  path = os.path.join(results.CONFIGS_DIR, run.config)
  if not os.path.isfile(path):
    pytest.skip(f"{run.config} is missing (test_every_run_names_an_existing_config fails)")
  app_flags.FLAGS.unparse_flags()
  try:
    app_flags.FLAGS(["train", f"--flagfile={path}",
                     *results.run_flags(run, "folder:/data/cifar10_jpeg")])
    return app_flags.config_from_flags()
  finally:
    app_flags.FLAGS.unparse_flags()


@pytest.mark.parametrize("run", results.RUNS, ids=lambda run: run.name)
def test_every_run_parses_into_a_valid_training_config(run):
  config = _run_config(run)
  assert config.train_steps > 0
  if run.kind == results.CIFAR10:
    assert config.dataset == "folder:/data/cifar10_jpeg"
  if run.name == "ring8_wasserstein_gp":
    assert (config.loss, config.gradient_penalty, config.d_steps) == ("wasserstein", 10.0, 5)
  if run.name == "cifar10_resnet":
    assert (config.architecture, config.loss, config.spectral_norm) == ("resnet", "hinge", True)


def test_the_cifar10_resnet_row_trains_with_the_dcgan_rows_compute():
  from tfgan_app.performance import flops  # pylint: disable=import-outside-toplevel
  from tfgan_app.runs import restore  # pylint: disable=import-outside-toplevel
  totals = {}
  for name in ("cifar10", "cifar10_resnet"):
    config = _run_config(next(run for run in results.RUNS if run.name == name))
    model = restore.build_model(config, (32, 32, 3), "float32")
    step = flops.config_training_flops(model.generator, model.discriminator, config,
                                       (32, 32, 3))
    totals[name] = step.per_example_step * config.batch_size * config.train_steps
  assert totals["cifar10_resnet"] == pytest.approx(totals["cifar10"], rel=0.01), totals


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
          "--train_flag=--train_steps=20", "--train_flag=--batch_size=32",
          # dcgan.cfg's layers at a test's width (mlp runs ignore these).
          "--train_flag=--g_filters=8", "--train_flag=--d_filters=8"]
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
                              "--batch_size=32 --g_filters=8 --d_filters=8")
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

  # A subset: its record joins the kept ones, in RUNS order, each with its own date; the page's
  # hand-written section stays.
  hand_written = "\n".join([results.HAND_WRITTEN_BEGIN, "## A table by hand",
                             results.HAND_WRITTEN_END])
  (out_dir / "results.md").write_text(before + "\n" + hand_written + "\n")
  records_path = out_dir / "results.json"
  kept = json.loads(records_path.read_text())
  kept[0]["date"] = "2026-01-02"  # dcgan, as if made on another day.
  records_path.write_text(json.dumps(kept))
  argv_subset = [arg for arg in argv if not arg.startswith("--runs")] + ["--runs=ring8_minimax"]
  assert results_command.main(argv_subset) == 0
  last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert [record["name"] for record in last["runs"]] == [
      "dcgan", "ring8_minimax", "ring8_minibatch_discrimination"]
  assert last["runs"][0] == kept[0] and last["runs"][2] == kept[1]
  assert last["runs"][1]["dataset"] == "ring8" and last["runs"][1]["date"] > "2026-01-02"
  assert json.loads(records_path.read_text()) == last["runs"]
  page = (out_dir / "results.md").read_text()
  assert f"Made on 2026-01-02 to {last['runs'][1]['date']} on" in page
  assert "| DCGAN (Radford et al. 2016) |" in page and "| minimax G loss |" in page
  assert "| non-saturating + minibatch discrimination |" in page
  assert (out_dir / "results" / "ring8_minimax.png").is_file()
  assert hand_written in page


def test_remade_runs_replace_their_records_and_the_rest_stay_in_runs_order():
  old = [_toy("grid25", "grid25", "2026-11-01"), _toy("ring8_minimax", "ring8", "2026-11-01"),
         _toy("retired_run", "ring8", "2026-11-01")]
  new = _toy("ring8_minimax", "ring8", "2026-12-07", modes=7)
  merged = results.merge_records(old, [new])
  assert [record["name"] for record in merged] == ["ring8_minimax", "grid25"]
  assert merged[0] is new and merged[1] is old[0]


def test_older_pages_records_are_read_with_their_toy_dataset(tmp_path):
  path = tmp_path / "results.json"
  path.write_text(json.dumps([{"name": "ring8_minimax", "kind": "ring8", "date": "2026-11-23"},
                              {"name": "dcgan", "kind": "mnist", "date": "2026-11-23"}]))
  records = results.read_records(str(path))
  assert records[0]["kind"] == results.TOY and records[0]["dataset"] == "ring8"
  assert records[1]["kind"] == results.MNIST and "dataset" not in records[1]
  assert results.read_records(str(tmp_path / "none.json")) == []
  path.write_text("{}")
  with pytest.raises(results.ResultsError, match="is not a results file"):
    results.read_records(str(path))


def test_cifar10_run_trains_on_the_chosen_dataset():
  run = next(run for run in results.RUNS if run.name == "cifar10")
  assert results.run_flags(run) == ()
  assert results.run_flags(run, "folder:/data/cifar10_jpeg") == (
      "--dataset=folder:/data/cifar10_jpeg",)
  ring8 = next(run for run in results.RUNS if run.name == "ring8_minimax")
  assert results.run_flags(ring8, "folder:/x") == ("--loss=minimax",)


@pytest.mark.parametrize("classifier_flag", [None, "missing"])
def test_cifar10_without_its_classifier_fails_before_training(tmp_path, capsys,
                                                              classifier_flag):
  argv = ["results", f"--workdir={tmp_path / 'runs'}", f"--out_dir={tmp_path / 'docs'}",
          "--runs=cifar10,ring8_minimax", "--cifar10_dataset=folder:/data/cifar10_jpeg"]
  if classifier_flag:
    argv.append(f"--cifar10_classifier={tmp_path / classifier_flag}")
  assert results_command.main(argv) == 1
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and "--cifar10_classifier" in error[0]
  assert ("python -m tfgan_app.classifier --dataset=folder:/data/cifar10_jpeg --out=DIR"
          in error[0])
  assert not (tmp_path / "runs").exists() and not (tmp_path / "docs").exists()


def test_cifar10_classifier_of_another_dataset_is_refused(tmp_path):
  classifier = tmp_path / "classifier"
  classifier.mkdir()
  (classifier / "saved_model.pb").write_bytes(b"")
  (classifier / "classifier.json").write_text(json.dumps({"dataset": "mnist"}))
  with pytest.raises(results.ResultsError, match="trained on mnist, not on --cifar10_dataset"):
    results.check_cifar10_classifier(str(classifier), "cifar10")
  (classifier / "classifier.json").write_text(json.dumps(
      {"dataset": f"folder:{tmp_path}/../{tmp_path.name}/images"}))
  assert results.check_cifar10_classifier(str(classifier), f"folder:{tmp_path}/images")


def test_cifar10_run_on_a_folder_is_measured_with_its_classifier(tmp_path, capsys,
                                                                 monkeypatch):
  # A three-class folder of CIFAR-10 JPEGs, a classifier of one epoch on it, two GAN steps.
  from tfgan_app.evaluation import classifier  # pylint: disable=import-outside-toplevel
  source = os.path.join(REPO_ROOT, "..", "shared", "images", "cifar10_jpeg")
  if not os.path.isdir(source):
    pytest.fail(f"the offline CIFAR-10 JPEGs are not under {source}")
  folder = tmp_path / "images"
  for split, count in (("train", 32), ("test", 8)):
    for name in ("airplane", "cat", "ship"):
      os.makedirs(folder / split / name)
      for file in sorted(os.listdir(os.path.join(source, split, name)))[:count]:
        shutil.copy(os.path.join(source, split, name, file), folder / split / name / file)
  dataset = f"folder:{folder}"
  # A small learning rate: the colour recipe's 0.2 is for 50,000 images, not three steps.
  report = classifier.train_classifier(dataset, None, str(tmp_path / "classifier"), epochs=1,
                                       batch_size=32, learning_rate=0.01,
                                       compute_dtype="float32", download=False,
                                       # The small network: what is tested is the path.
                                       architecture="small_cnn")
  monkeypatch.setenv("TFGAN_APP_CACHE_DIR", str(tmp_path / "cache"))
  tiny = ["--train_steps=2", "--batch_size=8", "--latent_dim=8", "--g_filters=8",
          "--d_filters=8", "--mixed_precision=float32", "--num_sample_images=4"]
  argv = ["results", f"--workdir={tmp_path / 'runs'}", f"--out_dir={tmp_path / 'docs'}",
          "--runs=cifar10", f"--cifar10_classifier={tmp_path / 'classifier'}",
          f"--cifar10_dataset={dataset}", "--num_samples=100",
          *(f"--train_flag={flag}" for flag in tiny)]
  assert results_command.main(argv) == 0
  [record] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs"]
  assert record["kind"] == results.CIFAR10 and record["step"] == 2
  assert record["command"] == f"configs/cifar10.cfg --dataset={dataset} {' '.join(tiny)}"
  assert record["fid"] > 0 and 1.0 <= record["is"] <= 3.0
  assert 0.0 <= record["confident_fraction"] <= 1.0
  assert record["rarest_class"] in ("airplane", "cat", "ship")
  assert record["classifier_test_accuracy"] == report["test_accuracy"]
  page = (tmp_path / "docs" / "results.md").read_text()
  assert "## CIFAR-10" in page and f"| {record['fid']:.1f} | {record['is']:.2f} |" in page
  with open(tmp_path / "docs" / "results" / "cifar10.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_unknown_run_is_refused(capsys):
  assert results_command.main(["results", "--runs=dcgan,wgan"]) == 2
  error = capsys.readouterr().err
  assert "unknown run(s) ['wgan']" in error and "ring8_minimax" in error
