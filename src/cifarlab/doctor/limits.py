"""Every number the doctor decides with, each with the reason for its value.

A check reads `NAME.value`; docs/doctor.md lists them all (rendered by `cifarlab.doctor.docs`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    value: float
    unit: str
    reason: str


# ---------------------------------------------------------------- cost
# Budgets are CPU seconds of the thread running the checks (time.thread_time), so that a verdict does not
# depend on what else the machine runs; on an idle machine they equal the wall time the checks take.
TOTAL_BUDGET_S = Limit(45, "CPU s", "the whole diagnosis stays under 60 s wall on 2 cores; the step-based "
                       "checks share what is left after the cheap ones and stop early with an "
                       "'inconclusive' info")
FIT_BUDGET_S = Limit(6, "CPU s", "fitting one batch: several hundred small-model steps, a few dozen "
                     "ResNet-50 steps")
RUN_BUDGET_S = Limit(5, "CPU s", "the short run on real batches with the user's optimizer")
STEP_IMAGES = Limit(64, "images", "images per step-based check: the user's batch, cut to this size so that "
                    "one step of a large model stays well under a second on a CPU")
SLOW_STEP_S = Limit(0.25, "CPU s", "a measured step slower than this quarters the images of the step-based "
                    "checks and of the loop run (big models: a ResNet-50 step on 64 images takes seconds on a CPU)")

# ---------------------------------------------------------------- data
NORM_ERROR_MEAN = Limit(2, "", "|mean| of inputs beyond this is the 'exploding input' of wrong constants")
NORM_ERROR_STD_HIGH = Limit(5, "", "std beyond this: raw 0-255 pixels or dividing by a tiny std")
NORM_ERROR_STD_LOW = Limit(0.05, "", "std below this: inputs squashed (e.g. dividing by 255 twice)")
NORM_ERROR_PEAK = Limit(50, "", "max |x| beyond this: raw 0-255 pixels")
NORM_WARN_MEAN = Limit(0.75, "", "|mean| beyond this: un-normalized [0, 1] inputs have mean ~0.47 and pass; "
                       "a shifted normalization does not")
NORM_WARN_STD = Limit(3, "", "std outside (1/NORM_WARN_STD, NORM_WARN_STD) warns; [-1, 1] scaling (std ~0.5) passes")
EVAL_REREAD_ITEMS = Limit(64, "items", "eval items read twice to detect random transforms: a flip-only "
                          "transform leaves an item unchanged with p = 1/2, so 64 items miss it with p = 2^-64")
EVAL_ON_TRAIN_FRACTION = Limit(0.5, "", "more than this share of evaluation images found among training "
                               "images is the wrong split; less is reported as duplicates (info)")
OUTPUT_OVERLAP_FRACTION = Limit(0.05, "", "without raw arrays, share of evaluation batch images also "
                                "yielded by the (un-augmented) training loader")
TRAIN_HASH_BATCHES = Limit(20, "batches", "training batches hashed when only loader outputs can be compared")

# ---------------------------------------------------------------- model
LOSS_KIND_TOL = Limit(1e-4, "relative", "user loss equal to nll_loss / cross_entropy on the same outputs")
CE_SMOOTHING_TOL = Limit(0.15, "relative", "label smoothing moves cross-entropy by at most this much at init")
PROB_TOL = Limit(1e-3, "", "rows summing to 1 (probabilities) or with logsumexp 0 (log-probabilities)")
RELU_ZEROS = Limit(0.05, "", "share of exact zeros in non-negative outputs that names a final ReLU")
COLLAPSE_R2 = Limit(0.9999, "R²", "per-feature affine fit of one Linear's input on the previous Linear's "
                    "output; a ReLU between them on data that crosses zero gives R² well below this")
COLLAPSE_MIN_SIGN_CHANGE = Limit(0.1, "", "share of units whose pre-activation takes both signs over the batch; "
                                 "below it a ReLU acts linearly on the data seen and nothing can be judged")
INIT_LOSS_TOL = Limit(0.5, "× ln C", "initial loss this far from ln(num_classes) warns")

# ---------------------------------------------------------------- loop
ZERO_GRAD_RATIO = Limit(1.5, "", "grad norm after two calls / after one call on the same batch at lr 0; "
                        "2.0 when gradients accumulate, 1.0 when they are cleared")
EVAL_GRAPH_RATIO = Limit(1, "× training input", "an evaluation input forwarded with gradients on that is more "
                         "than this multiple of the largest training input keeps a larger graph than any "
                         "training step (a step's peak is its saved activations, freed as backward runs): "
                         "evaluation needs more memory than training (error); at or below it, a cost (warning)")
LOOP_EPOCHS = Limit(2, "epochs", "the user's loop is run this many epochs so that a training step follows "
                    "an evaluation")
LOOP_TRAIN_BATCHES = Limit(2, "batches", "training batches per epoch in the loop run")

# ---------------------------------------------------------------- `doctor run`: the bounded audit of a script
AUDIT_BATCHES = Limit(3, "batches", "batches each DataLoader yields per pass while the script runs: enough for "
                      "a step to follow a step (gradients left over) and a training batch to follow an evaluation")
AUDIT_PASSES = Limit(2, "passes", "passes of the training loop observed: the second shows the mode training "
                     "resumes in after an evaluation; later training passes run empty")
AUDIT_EVAL_PASSES = Limit(2, "passes", "loader passes allowed after training was cut (the evaluation after "
                          "training, a final test) before the script is stopped")
AUDIT_MAX_STEPS = Limit(200, "steps", "optimizer steps after which a script that loops without a DataLoader is "
                        "stopped")
AUDIT_BUDGET_S = Limit(20, "CPU s", "the script's own run (imports, data loading, its capped loop); the checks "
                       "get TOTAL_BUDGET_S after it")
MIRROR_COPY_BYTES = Limit(8e6, "bytes", "files up to this size in the working directory are copied into the "
                          "temporary run directory (writes land in the copy); larger ones (data sets) are "
                          "linked, read-only by intent")
MIRROR_MAX_FILES = Limit(2000, "files", "a sub-directory holding more files than this (an image folder) is "
                         "linked as a whole instead of mirrored file by file")


# ---------------------------------------------------------------- fitting and divergence
FIT_IMAGES = Limit(32, "images", "size of the batch the pipeline must be able to memorise")
FIT_ACCURACY = Limit(0.9, "", "accuracy on the memorised batch that counts as fit")
FIT_MAX_STEPS = Limit(600, "steps", "a correct pipeline at batch 4 and lr 1e-3 (the PyTorch tutorial) fits "
                      "one batch in 300-600 steps")
FIT_CHECK_EVERY = Limit(25, "steps", "how often the fit accuracy is measured (stop as soon as fit)")
FIT_MIN_STEPS = Limit(100, "steps", "fewest steps after which 'the loss did not fall' is an error; fewer (big models, "
                      "high learning rates that start with a spike) make it a warning, unless the weights never changed")
FIT_NO_PROGRESS = Limit(0.9, "", "final / initial loss above this after the budget: the model does not learn "
                        "(error); below it but not fit: inconclusive (info)")
RUN_STEPS = Limit(250, "steps", "steps of the short run on real batches: too-high learning rates blow up "
                  "within the first few hundred steps")
RUN_BLOWUP = Limit(3, "× initial", "running-mean loss over RUN_WINDOW steps above this multiple of the "
                   "initial loss is divergence")
RUN_WINDOW = Limit(20, "steps", "window of the running-mean loss")
RUN_HEALTHY = Limit(0.5, "× initial", "after RUN_MIN_STEPS, a running-mean loss below this multiple of the "
                    "initial loss ends the run early as healthy (saves time on correct pipelines)")
RUN_MIN_STEPS = Limit(100, "steps", "steps before a run may end early as healthy")
DEAD_OUTPUT_STD = Limit(1e-6, "", "std of outputs across images below this after the run: every image gets "
                        "the same prediction (dead ReLUs after a blow-up)")


def all_limits() -> dict[str, Limit]:
    return {k: v for k, v in globals().items() if isinstance(v, Limit)}
