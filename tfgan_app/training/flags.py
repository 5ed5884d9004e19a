"""Command-line flags of the training entry point: the only module that defines flags.

Every flag has a default, so tests and `python -m tfgan_app.train` with no arguments work.
`config_from_flags()` turns the parsed flags into a frozen `TrainConfig`; nothing else reads
`FLAGS`. Entry points parse with `tfgan_app.common.cli.flags_parser`: a bad flag costs the user
one clear line on stderr and exit status 2, not a usage dump. Training parses with `flags_parser`
below, which also makes a run's own `--flagfile=<dir>/flags.cfg` resume `<dir>`.
"""

import os
from typing import Sequence

from absl import flags

from tfgan_app.common import cli
from tfgan_app.common import config as config_lib
from tfgan_app.data import preprocess
from tfgan_app.evaluation import metrics
from tfgan_app.gan import conditioning
from tfgan_app.gan import diffaugment
from tfgan_app.gan import model as gan
from tfgan_app.hardware import distribute
from tfgan_app.models import registry as models
from tfgan_app.runs import workdir as workdir_lib

FLAGS = flags.FLAGS
_DEFAULTS = config_lib.TrainConfig()
# The files that mark a run's workdir.
RUN_FLAGFILE = workdir_lib.FLAGFILE
RUN_SPEC = workdir_lib.RUN_SPEC

# Data.
flags.DEFINE_string("dataset", _DEFAULTS.dataset,
                    "TFDS image dataset name, e.g. mnist, fashion_mnist, cifar10, celeb_a; or "
                    "folder:PATH, a directory of JPEG/PNG/BMP/GIF files (README, Data: PATH/"
                    "<split>/ if it exists, else PATH is the train split; first-level "
                    "subdirectories are classes); or a toy distribution of points with a known "
                    "density (tfgan_app/toy/distributions.py): ring8, grid25, gaussian1d (fresh "
                    "samples every step; --split, --cache, --shuffle_buffer, --download and "
                    "--data_dir are ignored for them).")
flags.DEFINE_string("data_dir", None,
                    "TFDS data directory. Default: TFDS's own, which honours $TFDS_DATA_DIR.")
flags.DEFINE_string("split", _DEFAULTS.split,
                    "Split to train on: a TFDS split (train, test, train[:50%]) or a folder's "
                    "subdirectory.")
flags.DEFINE_integer("image_size", None,
                     "Side of the square training images in pixels (28, 32, 64, ...); images of "
                     "another size are brought to it as --resize says. Default: the dataset's "
                     "native size.")
flags.DEFINE_enum("resize", _DEFAULTS.resize, list(preprocess.RESIZE_MODES),
                  "How an image of another size becomes --image_size square: crop (centre "
                  "square crop), pad (centred on black bars) or stretch (aspect not kept); then "
                  "an antialiased area resize.")
flags.DEFINE_enum("channels", None, ["1", "3"],
                  "Channels of the training images: 1 (grey) or 3 (RGB); images are converted "
                  "(alpha dropped). Default: the dataset's; folders: 3 if any image has colour.")
flags.DEFINE_boolean("random_flip", _DEFAULTS.random_flip,
                     "Mirror each training image left-right with probability 1/2 (stateless in "
                     "(--seed, example index): resume stays exact).")
flags.DEFINE_integer("shuffle_buffer", _DEFAULTS.shuffle_buffer,
                     "Shuffle buffer in examples; at least the split's size gives a full shuffle.")


class _CacheParser(flags.EnumParser):
  """memory, disk or none; also true and false, as the boolean --cache/--nocache of older
  flags.cfg files give them (memory and none)."""

  def parse(self, argument):
    if isinstance(argument, bool):
      return CACHE_MODES[0] if argument else CACHE_MODES[-1]
    text = str(argument).lower()
    if text in ("true", "1"):
      return CACHE_MODES[0]
    if text in ("false", "0"):
      return CACHE_MODES[-1]
    return super().parse(text)


class _CacheFlag(flags.Flag):
  """An enum flag that also accepts the bare --cache and --nocache (absl: a boolean flag)."""

  def _serialize(self, value):
    return "" if value is None else f"--{self.name}={value}"


CACHE_MODES = ("memory", "disk", "none")
flags.DEFINE_flag(_CacheFlag(
    _CacheParser(CACHE_MODES), flags.ArgumentSerializer(), "cache", _DEFAULTS.cache,
    "Where the decoded, resized split is kept: memory (default), disk (a file under "
    "<workdir>/data_cache/, for splits larger than memory) or none (decode every epoch). "
    "--cache and --nocache mean memory and none.", boolean=True))
flags.DEFINE_boolean("download", _DEFAULTS.download,
                     "Download and prepare the dataset if it is not in --data_dir yet.")
# Run.
flags.DEFINE_string("workdir", None,
                    "Run directory for flags, checkpoints, TensorBoard events, samples and the "
                    "export. Default: runs/<model_name>.")
flags.DEFINE_integer("train_steps", _DEFAULTS.train_steps,
                     "Total generator updates; each one follows --d_steps discriminator updates.")
flags.DEFINE_integer("batch_size", _DEFAULTS.batch_size,
                     "Global batch size in images, split across replicas.")
flags.DEFINE_integer("seed", _DEFAULTS.seed,
                     "Seed of the data order, the latents and the initial weights.")
flags.DEFINE_boolean("deterministic", _DEFAULTS.deterministic,
                     "Enable TensorFlow op determinism: bit-exact reruns, somewhat slower.")
flags.DEFINE_integer("steps_per_execution", _DEFAULTS.steps_per_execution,
                     "Training steps per tf.function call (fewer host round trips). Callbacks "
                     "run between calls, so --train_steps, --log_every, --sample_every, "
                     "--checkpoint_every and --eval_every must be multiples of it.")
flags.DEFINE_enum("mixed_precision", _DEFAULTS.mixed_precision,
                  list(config_lib.MIXED_PRECISION_CHOICES),
                  "Keras dtype policy. auto (default): mixed_bfloat16 on CPUs with native "
                  "bfloat16 arithmetic (AVX512_BF16, AMX) and GPUs of compute capability >= 8.0, "
                  "mixed_float16 on 7.x GPUs, float32 elsewhere (the run prints what it chose "
                  "and why). mixed_bfloat16 computes in bfloat16 with float32 weights (emulated, "
                  "so about 11x slower, on CPUs without it); mixed_float16 computes in float16 "
                  "with dynamic loss scaling of both players' losses.")
flags.DEFINE_boolean("jit_compile", _DEFAULTS.jit_compile,
                     "Compile the training step with XLA. Measured slower on the 2-core "
                     "reference CPU (README, Performance); try it on GPUs.")
flags.DEFINE_integer("intra_op_threads", _DEFAULTS.intra_op_threads,
                     "Threads one TensorFlow op may use (tf.config.threading); 0: TensorFlow's "
                     "default, one per core.")
flags.DEFINE_integer("inter_op_threads", _DEFAULTS.inter_op_threads,
                     "Independent TensorFlow ops run at once (tf.config.threading); 0: "
                     "TensorFlow's default.")
# Distribution.
flags.DEFINE_enum("strategy", _DEFAULTS.strategy, distribute.STRATEGIES,
                  "tf.distribute strategy: auto (mirrored over all GPUs when there are several, "
                  "else default), default, one_device, mirrored, multi_worker (reads TF_CONFIG), "
                  "tpu (with --tpu).")
flags.DEFINE_integer("num_cpu_replicas", _DEFAULTS.num_cpu_replicas,
                     "Split the CPU into this many logical devices, so that --strategy=mirrored "
                     "runs several replicas without GPUs.")
flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu.")
# Model.
flags.DEFINE_enum("architecture", _DEFAULTS.architecture, models.ARCHITECTURES,
                  "Generator/discriminator family: dcgan (convolutional, images), resnet (SNGAN's "
                  "ResNets, Miyato et al. 2018: square images of side >= 32, e.g. CIFAR-10 "
                  "with --g_filters=256 --d_filters=128), tf_tutorial (TensorFlow's DCGAN "
                  "tutorial, 28x28) or mlp "
                  "(Goodfellow et al. 2014: MLPs, dropout in D; images or toy points); or gmm: "
                  "the maximum-likelihood baseline, a Gaussian mixture fitted by EM "
                  "(--train_steps EM steps over the whole split; see "
                  "tfgan_app/maximum_likelihood.py).")
flags.DEFINE_integer("latent_dim", _DEFAULTS.latent_dim,
                     "Dimension of the latent vector z. gmm: not used; its latent has H*W*C + 1 "
                     "coordinates (one picks the component, the others its Gaussian noise).")
flags.DEFINE_integer("g_filters", _DEFAULTS.g_filters,
                     "Channels of the generator's last hidden layer; doubles per layer inward. "
                     "resnet: channels of every generator block (SNGAN: 256).")
flags.DEFINE_integer("d_filters", _DEFAULTS.d_filters,
                     "Channels of the discriminator's first layer; doubles per layer. resnet: "
                     "channels of every discriminator block (SNGAN: 128).")
flags.DEFINE_integer("kernel_size", _DEFAULTS.kernel_size,
                     "Side of the (transposed) convolution kernels of G and D, in pixels. Not "
                     "used by resnet (SNGAN's 3x3 and 1x1 kernels).")
flags.DEFINE_integer("g_refine_blocks", _DEFAULTS.g_refine_blocks,
                     "Stride-1 transposed-convolution blocks (BatchNorm, ReLU) at the generator's "
                     "base resolution (7x7 for 28x28 images) before it upsamples, >= 0.")
flags.DEFINE_integer("g_refine_kernel_size", _DEFAULTS.g_refine_kernel_size,
                     "Side of the refine blocks' kernels, in pixels (3: a ninth of a 9x9 "
                     "kernel's compute, about half of a 5x5's). 0 (default): --kernel_size.")
flags.DEFINE_string("g_units", _DEFAULTS.g_units,
                    "--architecture=mlp: widths of the generator's hidden ReLU layers, "
                    "comma-separated, input side first.")
flags.DEFINE_string("d_units", _DEFAULTS.d_units,
                    "--architecture=mlp: widths of the discriminator's hidden LeakyReLU layers, "
                    "comma-separated, input side first.")
flags.DEFINE_float("d_dropout", _DEFAULTS.d_dropout,
                   "--architecture=mlp: dropout rate after each of the discriminator's hidden "
                   "layers during training, in [0, 1).")
flags.DEFINE_boolean("sync_batchnorm", _DEFAULTS.sync_batchnorm,
                     "BatchNorm statistics over the global batch instead of each replica's.")
flags.DEFINE_boolean("spectral_norm", _DEFAULTS.spectral_norm,
                     "Spectral normalisation of the discriminator's layers (Miyato et al. 2018): "
                     "each computes with W / sigma(W), sigma estimated by one power iteration "
                     "per training pass with its vector u checkpointed (models/spectral_norm.py). "
                     "dcgan's D then has no BatchNorm (as SNGAN's); minibatch discrimination's "
                     "layer is not normalised. GAN architectures only.")
flags.DEFINE_integer("gmm_components", _DEFAULTS.gmm_components,
                     "gmm: number of mixture components (diagonal Gaussians).")
flags.DEFINE_boolean("minibatch_discrimination", _DEFAULTS.minibatch_discrimination,
                     "Minibatch discrimination (Salimans et al. 2016 §3.2) before D's last "
                     "layer: D sees how close each image is to the others of its (per-replica) "
                     "batch, which penalises mode collapse.")
flags.DEFINE_integer("minibatch_kernels", _DEFAULTS.minibatch_kernels,
                     "Minibatch discrimination: number of kernels B, i.e. features appended "
                     "before D's last layer.")
flags.DEFINE_integer("minibatch_kernel_dim", _DEFAULTS.minibatch_kernel_dim,
                     "Minibatch discrimination: dimension C of the space in which each kernel "
                     "measures L1 distances between images.")
flags.DEFINE_enum("conditioning", _DEFAULTS.conditioning, list(conditioning.CONDITIONINGS),
                  "Class-conditional GAN trained on the dataset's labels (README, Conditional "
                  "GANs): none; projection (G with class-conditional BatchNorm, or [z, onehot(y)] "
                  "for mlp; D's logit adds <embed(y), features(x)>, Miyato & Koyama 2018); acgan "
                  "(the same G; D also predicts the class, Odena et al. 2017). dcgan and mlp; "
                  "needs labelled data (TFDS with a 'label' feature, or class subfolders).")
flags.DEFINE_float("acgan_weight", _DEFAULTS.acgan_weight,
                   "--conditioning=acgan: weight w of the classification cross-entropy added to "
                   "both players' losses (on real and generated images for D, generated for G).",
                   lower_bound=0.0)
flags.DEFINE_integer("num_classes", _DEFAULTS.num_classes,
                     "Classes of a conditional run. 0 (the default): the dataset's; another "
                     "value must equal it (recorded in flags.cfg so that a run rebuilds).",
                     lower_bound=0)
# Objective and optimisation.
flags.DEFINE_integer("d_steps", _DEFAULTS.d_steps,
                     "k: discriminator updates per generator update (Goodfellow et al. 2014).")
flags.DEFINE_enum("update", _DEFAULTS.update, list(gan.UPDATES),
                  "alternating: --d_steps discriminator updates, then a generator update on "
                  "fresh latents through the updated discriminator (Goodfellow et al. 2014, "
                  "Algorithm 1). simultaneous: both players' gradients from one generator pass, "
                  "applied together (TensorFlow's DCGAN tutorial; about 20% fewer FLOPs per "
                  "image); needs --d_steps=1.")
flags.DEFINE_float("label_smoothing", _DEFAULTS.label_smoothing,
                   "One-sided label smoothing (Salimans et al. 2016): D's target for real images "
                   "is 1 - label_smoothing, in [0, 1); fake targets stay 0.")
flags.DEFINE_float("gradient_penalty", _DEFAULTS.gradient_penalty,
                   "lambda of WGAN-GP (Gulrajani et al. 2017): D's loss adds lambda E(||grad "
                   "D(x_hat)|| - 1)^2 at x_hat = eps x + (1 - eps) G(z), eps ~ U(0, 1) per "
                   "example; 10 in the paper, with --loss=wasserstein. 0: off.", lower_bound=0.0)
flags.DEFINE_float("r1_gamma", _DEFAULTS.r1_gamma,
                   "gamma of R1 (Mescheder et al. 2018): D's loss adds gamma / 2 "
                   "E||grad D(x)||^2 on real images. 0: off.", lower_bound=0.0)
flags.DEFINE_integer("r1_every", _DEFAULTS.r1_every,
                     "Lazy R1 (Karras et al. 2020): compute it on every N-th discriminator "
                     "update only, weighted by N.", lower_bound=1)
flags.DEFINE_string("diffaugment", _DEFAULTS.diffaugment,
                    "DiffAugment (Zhao et al. 2020): comma-separated policies of color, "
                    "translation, cutout applied to every image D sees, real and generated, "
                    "differentiably (gan/diffaugment.py); empty: off. Images only.")
flags.DEFINE_enum("loss", _DEFAULTS.loss, config_lib.LOSSES,
                  "The adversarial objective, both players' losses (gan/objectives.py): "
                  "non_saturating (D: cross-entropy; G: -log D(G(z))), minimax (G: "
                  "log(1 - D(G(z)))), wasserstein (Arjovsky et al. 2017; its estimate is W1 only "
                  "for a 1-Lipschitz critic), hinge (Lim & Ye 2017; Miyato et al. "
                  "2018) or least_squares (Mao et al. 2017). Each logs the divergence its D "
                  "estimates: jsd, wasserstein, total_variation, triangular_discrimination.")
flags.DEFINE_enum("g_objective", _DEFAULTS.g_objective, config_lib.G_OBJECTIVES,
                  "What the generator minimises: standard (the --loss generator loss) or "
                  "feature_matching (||E f(x) - E f(G(z))||^2 over D's last hidden layer f, "
                  "Salimans et al. 2016 §3.1; global-batch means). D's loss is unchanged.")
flags.DEFINE_float("g_lr", _DEFAULTS.g_lr, "Generator Adam learning rate.")
flags.DEFINE_float("d_lr", _DEFAULTS.d_lr, "Discriminator Adam learning rate.")
flags.DEFINE_float("beta1", _DEFAULTS.beta1, "Adam beta_1 of both optimizers, in [0, 1).")
flags.DEFINE_float("beta2", _DEFAULTS.beta2, "Adam beta_2 of both optimizers, in [0, 1).")
flags.DEFINE_float("lr_decay_start", _DEFAULTS.lr_decay_start,
                   "Fraction of --train_steps after which both learning rates decay linearly to "
                   "0 at the last step, in [0, 1]; 1 keeps them constant.")
flags.DEFINE_float("ema_decay", _DEFAULTS.ema_decay,
                   "Decay per step of an exponential moving average of the generator's weights, "
                   "in [0, 1); the average is what is sampled and exported. 0: no average. With "
                   "BatchNorm generators the averaged weights do not match the averaged "
                   "statistics, which cost sample quality in our DCGAN runs; hence off.")
# Outputs.
flags.DEFINE_integer("log_every", _DEFAULTS.log_every, "Steps between TensorBoard scalars.")
flags.DEFINE_integer("sample_every", _DEFAULTS.sample_every,
                     "Steps between sample grids (PNG and TensorBoard) of a fixed latent batch.")
flags.DEFINE_integer("num_sample_images", _DEFAULTS.num_sample_images,
                     "Images in each sample grid.")
flags.DEFINE_integer("checkpoint_every", _DEFAULTS.checkpoint_every,
                     "Steps between checkpoints (one is also written at the end).")
flags.DEFINE_integer("keep_checkpoints", _DEFAULTS.keep_checkpoints,
                     "Most recent checkpoints kept on disk.")
flags.DEFINE_string("model_name", _DEFAULTS.model_name,
                    "Name of the exported model: <export_dir>/<model_name>/<version>/.")
flags.DEFINE_boolean("export", _DEFAULTS.export,
                     "Export the generator as a SavedModel when training ends.")
flags.DEFINE_integer("eval_every", _DEFAULTS.eval_every,
                     "Steps between evaluations of the generator with --eval_metrics, logged to "
                     "TensorBoard (eval/*) and <workdir>/metrics.jsonl. 0: no evaluation.")
flags.DEFINE_string("eval_metrics", _DEFAULTS.eval_metrics,
                    "Comma-separated metrics for --eval_every: fid, is, kid, precision_recall.")
flags.DEFINE_integer("eval_num_samples", _DEFAULTS.eval_num_samples,
                     "Generated (and real) images per evaluation.")
flags.DEFINE_string("eval_classifier", None,
                    "Classifier for --eval_every: a directory written by "
                    "`python -m tfgan_app.classifier`, or `inception`. Default: the dataset's "
                    "(see README, Measuring generators).")
flags.DEFINE_string("export_dir", None,
                    "Base directory of exports. Default: <workdir>/export.")

_POSITIVE_INTS = ("train_steps", "batch_size", "latent_dim", "g_filters", "d_filters",
                  "d_steps", "log_every", "sample_every", "num_sample_images",
                  "checkpoint_every", "keep_checkpoints", "steps_per_execution", "shuffle_buffer",
                  "num_cpu_replicas", "kernel_size", "minibatch_kernels",
                  "minibatch_kernel_dim", "gmm_components")
_POSITIVE_FLOATS = ("g_lr", "d_lr")

for _name in _POSITIVE_INTS + _POSITIVE_FLOATS:
  flags.register_validator(_name, lambda value: value > 0,
                           message="must be a positive number")
flags.register_validator("image_size", lambda value: value is None or value > 0,
                         message="must be a positive number of pixels (e.g. 28, 32, 64)")
flags.register_validator("seed", lambda value: value >= 0, message="must be >= 0")
flags.register_validator("g_refine_blocks", lambda value: value >= 0, message="must be >= 0")
flags.register_validator("g_refine_kernel_size", lambda value: value >= 0,
                         message="must be >= 0 (0: --kernel_size)")
for _name in ("intra_op_threads", "inter_op_threads"):
  flags.register_validator(_name, lambda value: value >= 0,
                           message="must be >= 0 (0: TensorFlow's default)")
flags.register_multi_flags_validator(
    ["update", "d_steps"],
    lambda values: values["update"] != "simultaneous" or values["d_steps"] == 1,
    message="--update=simultaneous needs --d_steps=1 (use --update=alternating for several "
            "discriminator steps)")
flags.register_validator("lr_decay_start", lambda value: 0.0 <= value <= 1.0,
                         message="must be in [0, 1]")
flags.register_validator("eval_every", lambda value: value >= 0,
                         message="must be >= 0 (0 turns evaluation off)")


def _parses(parse):
  """A flag validator: `parse(text)` must not raise ValueError; its message becomes the error."""
  def valid(text):
    try:
      parse(text)
    except ValueError as error:
      raise flags.ValidationError(str(error)) from None
    return True
  return valid


flags.register_validator("eval_metrics", _parses(metrics.parse_metric_names))
flags.register_validator("eval_num_samples", lambda value: value >= 4, message="must be >= 4")
flags.register_validator("diffaugment", _parses(diffaugment.parse_policy))
for _name in ("g_units", "d_units"):
  flags.register_validator(_name, _parses(config_lib.parse_units))
for _name in ("beta1", "beta2", "ema_decay", "label_smoothing", "d_dropout"):
  flags.register_validator(_name, lambda value: 0.0 <= value < 1.0, message="must be in [0, 1)")
flags.register_validator("model_name",
                         lambda value: bool(value) and value.replace("_", "").replace("-", "")
                         .isalnum(),
                         message="must be a non-empty name of letters, digits, '_' or '-'")


def config_from_flags() -> config_lib.TrainConfig:
  """Builds the frozen `TrainConfig` from the parsed flags, resolving derived defaults."""
  values = {name: FLAGS[name].value for name in _config_field_names()}
  if values["channels"] is not None:
    values["channels"] = int(values["channels"])
  if values["workdir"] is None:
    values["workdir"] = f"runs/{values['model_name']}"
  return config_lib.TrainConfig(**values)


def _config_field_names():
  return [field.name for field in config_lib.dataclasses.fields(config_lib.TrainConfig)]


def _run_flagfile_dir(path: str):
  """The directory of `path` if it is a run's own flags.cfg (beside its run_spec.json)."""
  directory = os.path.dirname(os.path.abspath(path))
  if (os.path.basename(path) == RUN_FLAGFILE
      and os.path.isfile(os.path.join(directory, RUN_SPEC))):
    return directory
  return None


def workdir_follows_run_flagfile(argv: Sequence[str]) -> list:
  """Makes a run's own flags.cfg on the command line resume the directory that holds it.

  flags.cfg records --workdir as the run was started, often as an absolute path, so resuming a
  copied or moved workdir through its flags.cfg would write into the original. After each
  `--flagfile=<dir>/flags.cfg` of a run (`<dir>` also holds run_spec.json) this inserts
  `--workdir=<dir>`; a --workdir after the flagfile on the command line still wins.

  Returns:
    The command line to parse.
  """
  result = list(argv[:1])
  arguments = iter(argv[1:])
  for argument in arguments:
    result.append(argument)
    if argument == "--":
      result.extend(arguments)  # Positional arguments from here on: not flags.
      break
    name, has_value, path = argument.lstrip("-").partition("=")
    if name != "flagfile" or not argument.startswith("-"):
      continue
    if not has_value:  # `--flagfile PATH`
      path = next(arguments, None)
      if path is None:
        break
      result.append(path)
    directory = _run_flagfile_dir(path)
    if directory is not None:
      result.append(f"--workdir={directory}")
  return result


def flags_parser(program: str):
  """`cli.flags_parser` for the training flags, with `workdir_follows_run_flagfile`."""
  return cli.flags_parser(program, argv_transform=workdir_follows_run_flagfile)
