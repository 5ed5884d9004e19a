r"""The results page: trains the reference runs, measures them, writes a Markdown table and images.

  python -m tfgan_app.results --workdir=runs/results --out_dir=docs
  # about 35 minutes on the 2-core reference CPU; writes docs/results.md, docs/results.json and
  # docs/results/<run>.png

Runs (each `python -m tfgan_app.train --flagfile=configs/<config>.cfg` into <workdir>/<run>):
  MNIST, measured with FID and IS (`tfgan_app.evaluate`: the project's MNIST classifier,
  10,000 samples against the test split) and the confident fraction of `tfgan_app.sample_quality`:
    gmm         configs/gmm_mnist.cfg   the maximum-likelihood baseline (Gaussian mixture, EM)
    gan_mnist   configs/gan_mnist.cfg   the original GAN (MLPs)
    dcgan       configs/dcgan.cfg       DCGAN
  ring8, measured with `tfgan_app.toy_metrics` (modes covered, high-quality fraction, KL):
    ring8_minimax                    configs/ring8.cfg --loss=minimax
    ring8_non_saturating             configs/ring8.cfg
    ring8_minibatch_discrimination   configs/ring8.cfg --minibatch_discrimination

A finished run is reused (training says so and exits), so running the command again only
re-measures and rewrites the page; an interrupted one resumes. The MNIST classifier is
--classifier, or trained into <workdir>/classifier when that does not exist yet (about a minute).
`--runs` picks a subset; `--train_flag` (repeatable) is appended to every training command, e.g.
`--train_flag=--train_steps=200` for a quick look (the page then records those flags).

The last stdout line is one JSON object: {"page": ..., "runs": [...]} with every measurement.
Errors: one line on stderr naming what failed, exit status 1 (2 for a bad command line).
"""

import dataclasses
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Optional, Sequence

from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.exporting import loader


MNIST = "mnist"
TOY = "ring8"
DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # Holds tfgan_app/.
CONFIGS_DIR = os.path.join(_ROOT, "configs")
PAGE = "results.md"
RECORDS = "results.json"
IMAGES_DIR = "results"


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # Workdir and image name.
  title: str  # Row label on the page.
  config: str  # File name under configs/.
  kind: str  # MNIST or TOY: which measurements apply.
  flags: tuple = ()  # Added to the config's flags.


RUNS = (
    Run("gmm", "Gaussian mixture, maximum likelihood (50 components)", "gmm_mnist.cfg", MNIST),
    Run("gan_mnist", "GAN, MLPs (Goodfellow et al. 2014)", "gan_mnist.cfg", MNIST),
    Run("dcgan", "DCGAN (Radford et al. 2016)", "dcgan.cfg", MNIST),
    Run("ring8_minimax", "minimax G loss", "ring8.cfg", TOY, ("--loss=minimax",)),
    Run("ring8_non_saturating", "non-saturating G loss", "ring8.cfg", TOY),
    Run("ring8_minibatch_discrimination", "non-saturating + minibatch discrimination",
        "ring8.cfg", TOY, ("--minibatch_discrimination",)),
)
RUN_NAMES = tuple(run.name for run in RUNS)


class ResultsError(RuntimeError):
  """A run failed to train or to be measured; the message names it."""


def train_run(run: Run, workdir: str, data_dir: Optional[str], train_flags: Sequence[str],
              configs_dir: str = CONFIGS_DIR) -> str:
  """Trains (or resumes, or finds finished) one run with the real entry point.

  Returns:
    The newest export version directory of the run.

  Raises:
    ResultsError: training exited non-zero or left no export.
  """
  run_dir = os.path.join(workdir, run.name)
  command = [sys.executable, "-m", "tfgan_app.train",
             f"--flagfile={os.path.join(configs_dir, run.config)}", f"--workdir={run_dir}",
             *run.flags, *([f"--data_dir={data_dir}"] if data_dir else []), *train_flags]
  print(f"[{run.name}] {' '.join(command[1:])}", flush=True)
  # The training's own output (progress, its one-line errors) goes straight to ours.
  # tfgan_app importable from any working directory (relative paths stay the user's).
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      filter(None, [_ROOT, os.environ.get("PYTHONPATH")])))
  status = subprocess.run(command, check=False, env=env).returncode
  if status:
    raise ResultsError(f"training {run.name} ({run.config}) exited with status {status}; "
                       f"see its error above, its workdir is {run_dir}")
  return newest_export(run_dir, run.name)


def newest_export(run_dir: str, name: str = "") -> str:
  """The export version directory with the highest step under <run_dir>/export/<model>/."""
  versions = [path for path in glob.glob(os.path.join(run_dir, "export", "*", "*"))
              if os.path.basename(path).isdigit()]
  if not versions:
    raise ResultsError(f"run {name or run_dir} left no export under {run_dir}/export "
                       "(was it trained with --noexport?)")
  return max(versions, key=lambda path: int(os.path.basename(path)))


def newest_sample_image(run_dir: str) -> Optional[str]:
  """The last `samples/step_*.png` the run wrote (a sample grid, or points over D for toys)."""
  images = sorted(glob.glob(os.path.join(run_dir, "samples", "step_*.png")))
  return images[-1] if images else None


def ensure_classifier(path: str, data_dir: Optional[str]) -> str:
  """`path` when it holds a classifier export; otherwise trains the MNIST classifier there."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  print(f"[classifier] training the MNIST classifier into {path}", flush=True)
  report = classifier_lib.train_classifier(MNIST, data_dir, path)
  print(f"[classifier] test accuracy {report.get('test_accuracy')}", flush=True)
  return path


def measure_mnist(export_path: str, classifier: str, num_samples: int,
                  data_dir: Optional[str]) -> dict:
  """FID and IS (tfgan_app.evaluate), confident fraction (tfgan_app.sample_quality)."""
  # pylint: disable=import-outside-toplevel
  from tfgan_app.evaluation import evaluator as evaluate
  from tfgan_app.evaluation import sample_quality
  record = evaluate.evaluate(evaluate.load_saved_model_generator(export_path),
                             classifier_spec=classifier, metrics=("fid", "is"),
                             num_samples=num_samples, dataset=MNIST, data_dir=data_dir)
  quality = sample_quality.measure_sample_quality(export_path, classifier,
                                                  num_samples=num_samples)
  return {"fid": record["fid"], "is": record["is"],
          "confident_fraction": quality["confident_fraction"],
          "min_class_fraction": quality["min_class_fraction"]}


def measure_toy(export_path: str, num_samples: int) -> dict:
  from tfgan_app.toy import metrics as toy_metrics  # pylint: disable=import-outside-toplevel
  record = toy_metrics.measure_export(export_path, num_samples)
  return {key: record[key] for key in ("modes_covered", "num_modes", "high_quality_fraction",
                                       "kl")}


def _step(export_path: str) -> int:
  return int(os.path.basename(export_path))


def render_page(records: Sequence[dict], command: str, num_samples: int) -> str:
  """The Markdown page: how it was made, the two tables, the images."""
  mnist = [record for record in records if record["kind"] == MNIST]
  toy = [record for record in records if record["kind"] == TOY]
  lines = [
      "# Results",
      "",
      "Produced by one command (its output replaces this page, `results.json` and the images "
      "under `results/`):",
      "",
      f"    {command}",
      "",
      f"Made on {records[0]['date'] if records else ''} on {platform.machine()} with "
      f"{os.cpu_count()} CPU cores; every number measured on {num_samples:,} samples of the "
      "exported generator (latents from numpy `default_rng(0)`).",
  ]
  if mnist:
    lines += [
        "",
        "## MNIST: maximum likelihood against GANs",
        "",
        "FID and IS use the project's MNIST classifier (`python -m tfgan_app.classifier`), not "
        "Inception, so they are comparable with each other, not with published Inception "
        "numbers: FID against the test split's features (lower is better), IS over its 10 "
        "classes (at most 10). *Confident* is the fraction of samples the classifier reads "
        "with probability above 0.9 (`python -m tfgan_app.sample_quality`), *rarest digit* the "
        "smallest share of any class among the samples.",
        "",
        "| Model | Config | Steps | FID ↓ | IS ↑ | Confident ↑ | Rarest digit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for record in mnist:
      lines.append(
          f"| {record['title']} | `{record['command']}` | {record['step']:,} | "
          f"{record['fid']:.1f} | {record['is']:.2f} | {record['confident_fraction']:.1%} | "
          f"{record['min_class_fraction']:.1%} |")
  if toy:
    lines += [
        "",
        "## ring8: mode coverage by generator loss",
        "",
        "Eight Gaussians (standard deviation 0.02) on a circle of radius 2. A mode is covered "
        "when at least 1% of the samples lie within 3 standard deviations of its centre; "
        "*high quality* is the fraction within 3 standard deviations of some centre; KL is "
        "between the samples' histogram and the true one (`python -m tfgan_app.toy_metrics`).",
        "",
        "| Generator objective | Config | Steps | Modes covered | High quality | KL (nats) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for record in toy:
      lines.append(
          f"| {record['title']} | `{record['command']}` | {record['step']:,} | "
          f"{record['modes_covered']} / {record['num_modes']} | "
          f"{record['high_quality_fraction']:.1%} | {record['kl']:.3f} |")
  lines += ["", "## Samples", ""]
  for record in records:
    if record.get("image"):
      caption = ("fixed latents at the last step" if record["kind"] == MNIST else
                 "generated (red) and real (green) points over D's decision surface")
      lines += [f"**{record['title']}** ({caption}):", "",
                f"![{record['name']}]({record['image']})", ""]
  return "\n".join(lines).rstrip() + "\n"


def make_results(workdir: str, out_dir: str, runs: Sequence[Run] = RUNS,
                 classifier: Optional[str] = None, data_dir: Optional[str] = None,
                 num_samples: int = DEFAULT_NUM_SAMPLES, train_flags: Sequence[str] = (),
                 configs_dir: str = CONFIGS_DIR, command: str = "") -> dict:
  """Trains or reuses every run, measures it, writes the page, its JSON and its images.

  Returns:
    {"page": path of the Markdown page, "runs": one record per run}.

  Raises:
    ResultsError: a run failed; nothing under `out_dir` is changed then.
  """
  os.makedirs(workdir, exist_ok=True)
  if any(run.kind == MNIST for run in runs):
    classifier = ensure_classifier(classifier or os.path.join(workdir, "classifier"), data_dir)
  records, images = [], {}
  date = datetime.date.today().isoformat()
  for run in runs:
    export_path = train_run(run, workdir, data_dir, train_flags, configs_dir)
    print(f"[{run.name}] measuring {export_path}", flush=True)
    try:
      if run.kind == MNIST:
        measured = measure_mnist(export_path, classifier, num_samples, data_dir)
      else:
        measured = measure_toy(export_path, num_samples)
    except Exception as error:  # The measuring modules' own errors, named with the run.
      raise ResultsError(f"measuring {run.name} ({export_path}) failed: {error}") from error
    flag_text = " ".join((*run.flags, *train_flags))
    record = {"name": run.name, "title": run.title, "kind": run.kind, "date": date,
              "command": f"configs/{run.config}" + (f" {flag_text}" if flag_text else ""),
              "export": export_path, "step": _step(export_path), **measured}
    image = newest_sample_image(os.path.join(workdir, run.name))
    if image:
      images[run.name] = image
      record["image"] = f"{IMAGES_DIR}/{run.name}.png"
    records.append(record)
    print(f"[{run.name}] {json.dumps(measured, sort_keys=True)}", flush=True)

  # Written only once every run is measured, so a failure leaves the previous page intact.
  os.makedirs(os.path.join(out_dir, IMAGES_DIR), exist_ok=True)
  for name, image in images.items():
    shutil.copyfile(image, os.path.join(out_dir, IMAGES_DIR, f"{name}.png"))
  page = os.path.join(out_dir, PAGE)
  with open(page, "w") as f:
    f.write(render_page(records, command or "python -m tfgan_app.results", num_samples))
  with open(os.path.join(out_dir, RECORDS), "w") as f:
    json.dump(records, f, indent=1, sort_keys=True)
    f.write("\n")
  return {"page": page, "runs": records}
