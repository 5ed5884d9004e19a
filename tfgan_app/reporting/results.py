r"""The results page: trains the reference runs, measures them, writes a Markdown table and images.

  python -m tfgan_app.results --workdir=runs/results --out_dir=docs
  # about 35 minutes on the 2-core reference CPU for the MNIST and ring8 runs; writes
  # docs/results.md, docs/results.json and docs/results/<run>.png

Runs (each `python -m tfgan_app.train --flagfile=configs/<config>.cfg` into <workdir>/<run>):
  MNIST, measured with FID and IS (`tfgan_app.evaluate`: the project's MNIST classifier,
  10,000 samples against the test split) and the confident fraction of `tfgan_app.sample_quality`:
    gmm         configs/gmm_mnist.cfg   the maximum-likelihood baseline (Gaussian mixture, EM)
    gan_mnist   configs/gan_mnist.cfg   the original GAN (MLPs)
    dcgan       configs/dcgan.cfg       DCGAN
  CIFAR-10, measured the same way with the project's CIFAR-10 classifier (--cifar10_classifier,
  a `python -m tfgan_app.classifier --dataset=cifar10` export; never trained here, it takes long):
    cifar10     configs/cifar10.cfg     DCGAN, on --cifar10_dataset (TFDS cifar10 or folder:PATH)
    cifar10_resnet  configs/cifar10.cfg --architecture=resnet --g_filters=64 --d_filters=64
                    --loss=hinge --spectral_norm --beta1=0.0 --beta2=0.9 --train_steps=1330
                    (SNGAN's ResNet and objective for the cifar10 row's training compute)
  Toy datasets, measured with `tfgan_app.toy_metrics` (modes covered, high-quality fraction, KL),
  one table per dataset:
    ring8_minimax                    configs/ring8.cfg --loss=minimax
    ring8_non_saturating             configs/ring8.cfg
    ring8_minibatch_discrimination   configs/ring8.cfg --minibatch_discrimination
    ring8_hinge                      configs/ring8.cfg --loss=hinge
    ring8_least_squares              configs/ring8.cfg --loss=least_squares
    ring8_wasserstein_gp             configs/ring8.cfg --loss=wasserstein --gradient_penalty=10
                                     --d_steps=5 --g_lr=0.0001 --d_lr=0.0001 --beta2=0.9
                                     --train_steps=24000
    grid25                           configs/grid25.cfg

A finished run is reused (training says so and exits), so running the command again only
re-measures and rewrites the page; an interrupted one resumes. The MNIST classifier is
--classifier, or trained into <workdir>/classifier when that does not exist yet (about a minute).
`--runs` picks a subset: their records replace their old ones in <out_dir>/results.json, the
other runs' records are kept (each with its own date) and the page shows all of them.
`--train_flag` (repeatable) is appended to every training command, e.g.
`--train_flag=--train_steps=200` for a quick look (the page then records those flags).

The last stdout line is one JSON object: {"page": ..., "runs": [...]} with every record on the
page. Errors: one line on stderr naming what failed, exit status 1 (2 for a bad command line).
"""

import dataclasses
import datetime
import glob
import json
import os
import subprocess
import sys
from typing import Optional, Sequence

from tfgan_app.common import atomic
from tfgan_app.data import folder as folder_lib
from tfgan_app.evaluation import classifier as classifier_lib
from tfgan_app.exporting import loader
from tfgan_app.hardware import precision
# The kinds and the renderer, also reached here by the command and the tests.
from tfgan_app.reporting.page import (CIFAR10, HAND_WRITTEN_BEGIN, HAND_WRITTEN_END, MNIST, TOY,
                                      hand_written_sections, render_page)


DEFAULT_NUM_SAMPLES = loader.DEFAULT_NUM_SAMPLES
DEFAULT_CIFAR10_DATASET = "cifar10"
_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # Holds tfgan_app/.
CONFIGS_DIR = os.path.join(_ROOT, "configs")
PAGE = "results.md"
RECORDS = "results.json"
IMAGES_DIR = "results"
# Kinds that older pages' records used for toy runs: the kind was the dataset.
_LEGACY_TOY_KINDS = ("ring8",)


@dataclasses.dataclass(frozen=True)
class Run:
  name: str  # Workdir and image name.
  title: str  # Row label on the page.
  config: str  # File name under configs/.
  kind: str  # MNIST, CIFAR10 or TOY: which measurements apply.
  flags: tuple = ()  # Added to the config's flags.


RUNS = (
    Run("gmm", "Gaussian mixture, maximum likelihood (50 components)", "gmm_mnist.cfg", MNIST),
    Run("gan_mnist", "GAN, MLPs (Goodfellow et al. 2014)", "gan_mnist.cfg", MNIST),
    Run("dcgan", "DCGAN (Radford et al. 2016)", "dcgan.cfg", MNIST),
    Run("cifar10", "DCGAN (Radford et al. 2016)", "cifar10.cfg", CIFAR10),
    # SNGAN's ResNet pair at a quarter of its width (64 channels), hinge loss and spectral norm
    # (Miyato et al. 2018) with its Adam betas, one D step per G step, for the analytic
    # training compute of the DCGAN row above (1.9017 against 0.4209 GFLOP per real image).
    Run("cifar10_resnet", "SNGAN ResNet (width 64), hinge + spectral norm (Miyato et al. 2018)",
        "cifar10.cfg", CIFAR10, ("--architecture=resnet", "--g_filters=64", "--d_filters=64",
                                 "--loss=hinge", "--spectral_norm", "--beta1=0.0",
                                 "--beta2=0.9", "--train_steps=1330")),
    Run("ring8_minimax", "minimax G loss", "ring8.cfg", TOY, ("--loss=minimax",)),
    Run("ring8_non_saturating", "non-saturating G loss", "ring8.cfg", TOY),
    Run("ring8_minibatch_discrimination", "non-saturating + minibatch discrimination",
        "ring8.cfg", TOY, ("--minibatch_discrimination",)),
    Run("ring8_hinge", "hinge loss (Lim & Ye 2017)", "ring8.cfg", TOY, ("--loss=hinge",)),
    Run("ring8_least_squares", "least-squares loss (Mao et al. 2017)", "ring8.cfg", TOY,
        ("--loss=least_squares",)),
    Run("ring8_wasserstein_gp", "Wasserstein + gradient penalty 10 (Gulrajani et al. 2017)",
        "ring8.cfg", TOY, ("--loss=wasserstein", "--gradient_penalty=10", "--d_steps=5",
                           "--g_lr=0.0001", "--d_lr=0.0001", "--beta2=0.9",
                           "--train_steps=24000")),
    Run("grid25", "non-saturating G loss", "grid25.cfg", TOY),
)
RUN_NAMES = tuple(run.name for run in RUNS)


class ResultsError(RuntimeError):
  """A run failed to train or to be measured; the message names it."""


def run_flags(run: Run, cifar10_dataset: str = DEFAULT_CIFAR10_DATASET) -> tuple:
  """The flags `run` adds to its config: its own, and --dataset for CIFAR-10 off the default."""
  if run.kind == CIFAR10 and cifar10_dataset != DEFAULT_CIFAR10_DATASET:
    return (*run.flags, f"--dataset={cifar10_dataset}")
  return run.flags


def train_run(run: Run, workdir: str, data_dir: Optional[str], train_flags: Sequence[str],
              configs_dir: str = CONFIGS_DIR, flags: Optional[Sequence[str]] = None) -> str:
  """Trains (or resumes, or finds finished) one run with the real entry point.

  Args:
    flags: the run's flags (`run_flags`); None: `run.flags`.

  Returns:
    The newest export version directory of the run.

  Raises:
    ResultsError: training exited non-zero or left no export.
  """
  run_dir = os.path.join(workdir, run.name)
  command = [sys.executable, "-m", "tfgan_app.train",
             f"--flagfile={os.path.join(configs_dir, run.config)}", f"--workdir={run_dir}",
             *(run.flags if flags is None else flags),
             *([f"--data_dir={data_dir}"] if data_dir else []), *train_flags]
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


def _dataset_key(dataset: str) -> str:
  """`dataset` with a folder's path resolved: the same folder named two ways is one dataset."""
  if dataset.startswith(folder_lib.PREFIX):
    return folder_lib.PREFIX + os.path.realpath(dataset[len(folder_lib.PREFIX):])
  return dataset


def check_cifar10_classifier(path: Optional[str], dataset: str) -> dict:
  """The metadata (`classifier.json`) of the CIFAR-10 classifier export at `path`.

  Checked before any training, since the CIFAR-10 run itself takes half an hour or more; the
  classifier is never trained here (hours on a CPU).

  Raises:
    ResultsError: no path, no classifier export there, or one trained on another dataset; the
      message names --cifar10_classifier and the command that trains one.
  """
  hint = (f"train one with python -m tfgan_app.classifier --dataset={dataset} --out=DIR (it "
          "takes long) and pass --cifar10_classifier=DIR")
  if not path:
    raise ResultsError(f"the cifar10 run needs --cifar10_classifier (a CIFAR-10 classifier "
                       f"export); {hint}")
  metadata_path = os.path.join(path, classifier_lib.METADATA_FILE)
  if not (os.path.isfile(os.path.join(path, "saved_model.pb")) and
          os.path.isfile(metadata_path)):
    raise ResultsError(f"--cifar10_classifier={path} holds no classifier export "
                       f"(saved_model.pb and {classifier_lib.METADATA_FILE}); {hint}")
  try:
    with open(metadata_path) as f:
      metadata = json.load(f)
  except (OSError, ValueError) as error:
    raise ResultsError(f"--cifar10_classifier={path}: unreadable "
                       f"{classifier_lib.METADATA_FILE} ({error}); {hint}") from error
  trained_on = metadata.get("dataset")
  if trained_on and _dataset_key(trained_on) != _dataset_key(dataset):
    raise ResultsError(f"--cifar10_classifier={path} was trained on {trained_on}, not on "
                       f"--cifar10_dataset={dataset}; {hint}")
  return metadata


def measure_classified(export_path: str, classifier: str, num_samples: int, dataset: str,
                       data_dir: Optional[str], class_names: Sequence[str] = ()) -> dict:
  """FID and IS (tfgan_app.evaluate, against `dataset`'s test split), confident fraction and
  rarest class (tfgan_app.sample_quality), all through the domain classifier `classifier`."""
  # pylint: disable=import-outside-toplevel
  from tfgan_app.evaluation import evaluator as evaluate
  from tfgan_app.evaluation import sample_quality
  record = evaluate.evaluate(evaluate.load_saved_model_generator(export_path),
                             classifier_spec=classifier, metrics=("fid", "is"),
                             num_samples=num_samples, dataset=dataset, data_dir=data_dir)
  quality = sample_quality.measure_sample_quality(export_path, classifier,
                                                  num_samples=num_samples)
  measured = {"fid": record["fid"], "is": record["is"],
              "confident_fraction": quality["confident_fraction"],
              "min_class_fraction": quality["min_class_fraction"]}
  fractions = quality["class_fractions"]
  if len(class_names) == len(fractions):
    measured["rarest_class"] = class_names[fractions.index(min(fractions))]
  return measured


def measure_mnist(export_path: str, classifier: str, num_samples: int,
                  data_dir: Optional[str]) -> dict:
  """`measure_classified` on MNIST."""
  return measure_classified(export_path, classifier, num_samples, MNIST, data_dir)


def measure_toy(export_path: str, num_samples: int) -> dict:
  """Modes covered, high-quality fraction and KL against the dataset the export records."""
  from tfgan_app.toy import metrics as toy_metrics  # pylint: disable=import-outside-toplevel
  record = toy_metrics.measure_export(export_path, num_samples)
  return {key: record[key] for key in ("dataset", "modes_covered", "num_modes",
                                       "high_quality_fraction", "kl")}


def _step(export_path: str) -> int:
  return int(os.path.basename(export_path))


def read_records(path: str) -> list:
  """The records of an earlier page (`results.json`); [] when there is none.

  Records of older pages are brought up to date: a toy run's kind was its dataset.

  Raises:
    ResultsError: the file exists but is not a JSON list of records.
  """
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      records = json.load(f)
    if not (isinstance(records, list) and
            all(isinstance(record, dict) and "name" in record for record in records)):
      raise ValueError("not a list of records with names")
  except (OSError, ValueError) as error:
    raise ResultsError(f"{path} is not a results file ({error}); move it away to start a "
                       "new page") from error
  for record in records:
    if record.get("kind") in _LEGACY_TOY_KINDS:
      record["dataset"] = record.get("dataset", record["kind"])
      record["kind"] = TOY
  return records


def read_hand_written(path: str) -> list:
  """The hand-written sections of the page at `path` (none if there is no page yet)."""
  try:
    with open(path, encoding="utf-8") as f:
      return hand_written_sections(f.read())
  except FileNotFoundError:
    return []
  except (OSError, UnicodeDecodeError, ValueError) as error:
    raise ResultsError(f"{path}: cannot keep its hand-written sections ({error}); mend or move "
                       "the page away first") from error


def merge_records(previous: Sequence[dict], made: Sequence[dict]) -> list:
  """The page's records: `made` replacing `previous` ones of the same run, in RUNS order.

  Records of runs that RUNS no longer has are dropped.
  """
  by_name = {record["name"]: record for record in previous}
  by_name.update((record["name"], record) for record in made)
  return [by_name[name] for name in RUN_NAMES if name in by_name]


def make_results(workdir: str, out_dir: str, runs: Sequence[Run] = RUNS,
                 classifier: Optional[str] = None, data_dir: Optional[str] = None,
                 num_samples: int = DEFAULT_NUM_SAMPLES, train_flags: Sequence[str] = (),
                 configs_dir: str = CONFIGS_DIR, command: str = "",
                 cifar10_classifier: Optional[str] = None,
                 cifar10_dataset: str = DEFAULT_CIFAR10_DATASET) -> dict:
  """Trains or reuses every run, measures it, writes the page, its JSON and its images.

  The records already in `<out_dir>/results.json` of runs not in `runs` stay on the page.

  Args:
    cifar10_classifier: CIFAR-10 classifier export, required when `runs` has the cifar10 run.
    cifar10_dataset: the cifar10 run's training data (`--dataset`) and the evaluation's real
      data (its test split): a TFDS name or folder:PATH.
    Others: as the command's flags.

  Returns:
    {"page": path of the Markdown page, "runs": every record on the page}.

  Raises:
    ResultsError: a run failed; nothing under `out_dir` is changed then.
  """
  previous = read_records(os.path.join(out_dir, RECORDS))
  hand_written = read_hand_written(os.path.join(out_dir, PAGE))
  cifar10_metadata = (check_cifar10_classifier(cifar10_classifier, cifar10_dataset)
                      if any(run.kind == CIFAR10 for run in runs) else {})
  os.makedirs(workdir, exist_ok=True)
  if any(run.kind == MNIST for run in runs):
    classifier = ensure_classifier(classifier or os.path.join(workdir, "classifier"), data_dir)
  records, images = [], {}
  date = datetime.date.today().isoformat()
  # The CPU (model and the flags that decide its speed) or GPUs the numbers were measured on.
  hardware = precision.detect_hardware().describe()
  for run in runs:
    flags = run_flags(run, cifar10_dataset)
    export_path = train_run(run, workdir, data_dir, train_flags, configs_dir, flags)
    print(f"[{run.name}] measuring {export_path}", flush=True)
    try:
      if run.kind == MNIST:
        measured = measure_mnist(export_path, classifier, num_samples, data_dir)
      elif run.kind == CIFAR10:
        # The classifier's own spelling of the dataset (checked to be the same one), which the
        # evaluator compares with its own record.
        measured = measure_classified(
            export_path, cifar10_classifier, num_samples,
            cifar10_metadata.get("dataset") or cifar10_dataset, data_dir,
            cifar10_metadata.get("class_names") or ())
        measured["classifier_test_accuracy"] = cifar10_metadata.get("test_accuracy")
      else:
        measured = measure_toy(export_path, num_samples)
    except Exception as error:  # The measuring modules' own errors, named with the run.
      raise ResultsError(f"measuring {run.name} ({export_path}) failed: {error}") from error
    flag_text = " ".join((*flags, *train_flags))
    record = {"name": run.name, "title": run.title, "kind": run.kind, "date": date,
              "command": f"configs/{run.config}" + (f" {flag_text}" if flag_text else ""),
              "export": export_path, "step": _step(export_path), "num_samples": num_samples,
              "hardware": hardware, **measured}
    image = newest_sample_image(os.path.join(workdir, run.name))
    if image:
      images[run.name] = image
      record["image"] = f"{IMAGES_DIR}/{run.name}.png"
    records.append(record)
    print(f"[{run.name}] {json.dumps(measured, sort_keys=True)}", flush=True)

  # Written only once every run is measured, so a failure leaves the previous page intact.
  records = merge_records(previous, records)
  os.makedirs(os.path.join(out_dir, IMAGES_DIR), exist_ok=True)
  for name, image in images.items():
    with open(image, "rb") as f:
      atomic.write_bytes(os.path.join(out_dir, IMAGES_DIR, f"{name}.png"), f.read())
  page = os.path.join(out_dir, PAGE)
  atomic.write_text(os.path.join(out_dir, RECORDS),
                    json.dumps(records, indent=1, sort_keys=True) + "\n")
  atomic.write_text(page, render_page(records, command or "python -m tfgan_app.results",
                                      num_samples, hand_written))
  return {"page": page, "runs": records}
