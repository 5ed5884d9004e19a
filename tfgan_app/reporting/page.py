"""The results page's Markdown: one table per kind of measurement (MNIST, CIFAR-10, each toy
dataset), the page's hand-written sections, then the sample images. Pure formatting of the
records `reporting.results` measures.

Hand-written sections (measurements no single run of the results command makes, such as the
step at which a run first passes a bar) sit between HAND_WRITTEN_BEGIN and HAND_WRITTEN_END
lines; a rewrite of the page carries them over unchanged (`hand_written_sections`).

Records are dicts with name, title, kind, date (ISO), command (config and flags), step,
num_samples, image (optional, relative to the page) and the kind's numbers:
  MNIST, CIFAR10  fid, is, confident_fraction, min_class_fraction (and for CIFAR10
                  rarest_class, the class name, when the classifier records its class names)
  TOY             dataset, modes_covered, num_modes, high_quality_fraction, kl
"""

import os
import platform
from typing import Sequence

MNIST = "mnist"
CIFAR10 = "cifar10"
TOY = "toy"
KINDS = (MNIST, CIFAR10, TOY)

_COVERAGE = (
    "A mode is covered when at least 1% of the samples lie within 3 standard deviations of its "
    "centre; *high quality* is the fraction within 3 standard deviations of some centre; KL is "
    "between the samples' histogram and the true one (`python -m tfgan_app.toy_metrics`).")
# What each toy dataset is (tfgan_app/toy/distributions.py); others get only the coverage text.
TOY_DESCRIPTIONS = {
    "ring8": "Eight Gaussians (standard deviation 0.02) on a circle of radius 2.",
    "grid25": "Twenty-five Gaussians (standard deviation 0.05) centred on the grid "
              "{-4, -2, 0, 2, 4}², 2 apart: 40 standard deviations between neighbours.",
}
_CLASSIFIED_HEADER = "|---|---|---:|---:|---:|---:|---:|"
HAND_WRITTEN_BEGIN = "<!-- hand-written: kept when the results command rewrites this page -->"
HAND_WRITTEN_END = "<!-- end of hand-written -->"


def hand_written_sections(page: str) -> list:
  """The hand-written sections of `page`, each with its marker lines, in page order.

  Raises:
    ValueError: a section is opened and not closed (or closed and not opened), which would
      silently lose text on the next rewrite.
  """
  sections, current = [], None
  for line in page.splitlines():
    if line.strip() == HAND_WRITTEN_BEGIN:
      if current is not None:
        raise ValueError(f"a hand-written section opens inside another: {HAND_WRITTEN_BEGIN!r} "
                         f"twice without {HAND_WRITTEN_END!r} between")
      current = [line]
    elif line.strip() == HAND_WRITTEN_END:
      if current is None:
        raise ValueError(f"{HAND_WRITTEN_END!r} without {HAND_WRITTEN_BEGIN!r} before it")
      sections.append("\n".join(current + [line]))
      current = None
    elif current is not None:
      current.append(line)
  if current is not None:
    raise ValueError(f"a hand-written section is not closed by {HAND_WRITTEN_END!r}")
  return sections


def dates_text(records: Sequence[dict]) -> str:
  """'2026-11-23', or '2026-11-23 to 2026-12-07' when the records were made on several days."""
  dates = sorted({record["date"] for record in records if record.get("date")})
  if not dates:
    return "an unknown date"
  return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def _samples_text(records: Sequence[dict], num_samples: int) -> str:
  counts = sorted({record.get("num_samples", num_samples) for record in records} or
                  {num_samples})
  if len(counts) == 1:
    return f"{counts[0]:,} samples"
  return f"{counts[0]:,} to {counts[-1]:,} samples (each row's count is in `results.json`)"


def _classified_row(record: dict) -> str:
  rarest = f"{record['min_class_fraction']:.1%}"
  if record.get("rarest_class"):
    rarest += f" ({record['rarest_class']})"
  return (f"| {record['title']} | `{record['command']}` | {record['step']:,} | "
          f"{record['fid']:.1f} | {record['is']:.2f} | {record['confident_fraction']:.1%} | "
          f"{rarest} |")


def _mnist_table(records: Sequence[dict]) -> list:
  return [
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
      _CLASSIFIED_HEADER,
  ] + [_classified_row(record) for record in records]


def _cifar10_table(records: Sequence[dict]) -> list:
  accuracies = sorted({record["classifier_test_accuracy"] for record in records
                       if record.get("classifier_test_accuracy") is not None})
  accuracy = (f" (test accuracy {', '.join(f'{value:.1%}' for value in accuracies)})"
              if accuracies else "")
  return [
      "",
      "## CIFAR-10",
      "",
      "FID and IS use the project's CIFAR-10 classifier (`python -m tfgan_app.classifier` on "
      f"CIFAR-10{accuracy}), not Inception: they compare these runs with each other, not with "
      "published CIFAR-10 numbers, which use Inception. FID is against the test split's "
      "features (lower is better), IS over its 10 classes (at most 10). *Confident* is the "
      "fraction of samples the classifier reads with probability above 0.9, *rarest class* "
      "the smallest share of any class among the samples.",
      "",
      "| Model | Config | Steps | FID ↓ | IS ↑ | Confident ↑ | Rarest class |",
      _CLASSIFIED_HEADER,
  ] + [_classified_row(record) for record in records]


def _toy_table(dataset: str, records: Sequence[dict]) -> list:
  description = " ".join(filter(None, [TOY_DESCRIPTIONS.get(dataset), _COVERAGE]))
  lines = [
      "",
      f"## {dataset}: mode coverage by objective",
      "",
      description,
      "",
      "| Objective | Config | Steps | Modes covered | High quality | KL (nats) |",
      "|---|---|---:|---:|---:|---:|",
  ]
  for record in records:
    lines.append(
        f"| {record['title']} | `{record['command']}` | {record['step']:,} | "
        f"{record['modes_covered']} / {record['num_modes']} | "
        f"{record['high_quality_fraction']:.1%} | {record['kl']:.3f} |")
  return lines


def _hardware_text(records) -> str:
  """" (CPU: ...)": the machines the rows were measured on (each record's `hardware`)."""
  machines = sorted({record["hardware"] for record in records if record.get("hardware")})
  if not machines:
    return ""
  unrecorded = any(not record.get("hardware") for record in records)
  return (f" ({'; '.join(machines)}"
          f"{'; older rows did not record theirs' if unrecorded else ''})")


def render_page(records: Sequence[dict], command: str, num_samples: int,
                hand_written: Sequence[str] = ()) -> str:
  """The Markdown page: how it was made, one table per kind (per dataset for toys), the
  `hand_written` sections (`hand_written_sections` of the page it replaces), the images.

  Tables and rows follow the order of `records`; toy tables the order in which their datasets
  first appear.
  """
  lines = [
      "# Results",
      "",
      "Produced by one command (its output replaces this page, `results.json` and the images "
      "under `results/`; with `--runs` it remakes those rows and keeps the others, each with "
      "the date it was made):",
      "",
      f"    {command}",
      "",
      f"Made on {dates_text(records)} on {platform.machine()} with {os.cpu_count()} CPU cores"
      f"{_hardware_text(records)}; every number measured on "
      f"{_samples_text(records, num_samples)} of the exported generator (latents from numpy "
      "`default_rng(0)`).",
  ]
  mnist = [record for record in records if record["kind"] == MNIST]
  if mnist:
    lines += _mnist_table(mnist)
  cifar10 = [record for record in records if record["kind"] == CIFAR10]
  if cifar10:
    lines += _cifar10_table(cifar10)
  toy = [record for record in records if record["kind"] == TOY]
  for dataset in dict.fromkeys(record["dataset"] for record in toy):
    lines += _toy_table(dataset, [record for record in toy if record["dataset"] == dataset])
  for section in hand_written:
    lines += ["", section]
  lines += ["", "## Samples", ""]
  for record in records:
    if record.get("image"):
      caption = ("generated (red) and real (green) points over D's decision surface"
                 if record["kind"] == TOY else "fixed latents at the last step")
      lines += [f"**{record['title']}** ({caption}):", "",
                f"![{record['name']}]({record['image']})", ""]
  return "\n".join(lines).rstrip() + "\n"
