"""Typed configuration: RunConfig for one training run, LadderConfig for a ladder of rungs, a run config with a
ScaleSection for `ladder scale`.

YAML keys and `--set a.b=c` overrides map one-to-one to these fields. Every problem in a config is
reported at once, each naming the dotted field, the bad value and what is allowed.
"""

from __future__ import annotations

import codecs
import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, SerializeAsAny, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError, PydanticKnownError

from modelladder.errors import InputError, did_you_mean, unknown_name
from modelladder.registry import CORPORA, DATASETS, MODELS, PRETRAIN_TASKS, TASKS, load_object
from modelladder.schema import LoraSettings, Mode, Strict


# ---------------------------------------------------------------- data


class SplitConfig(Strict):
    test: float = Field(0.2, gt=0, lt=1)  # used only when the dataset has no official test split
    val: float = Field(0.1, ge=0, lt=1)  # fraction of the training split held out for validation
    stratify: bool = True  # keep class proportions in every split; classification only, ignored for regression
    # cross-validation: with folds set, fold `fold` (0-based) of a seeded k-fold split of the training
    # data is the run's test split; validation is `val` of the other folds, preprocessing is fitted on the rest
    folds: int | None = Field(None, ge=2)
    fold: int | None = Field(None, ge=0)
    repeat: int = Field(0, ge=0)  # which shuffling of the folds (repeated k-fold)

    @model_validator(mode="after")
    def _fold_in_range(self):
        if (self.folds is None) != (self.fold is None):
            raise ValueError("folds and fold are set together, or neither")
        if self.folds is not None and self.fold >= self.folds:
            raise ValueError(f"fold must be < folds ({self.folds}), got {self.fold}")
        return self


class AugmentConfig(Strict):
    shift: int = Field(0, ge=0)  # random shift by up to this many pixels
    rotate: float = Field(0.0, ge=0, le=180)  # random rotation by up to this many degrees


class TextCleanConfig(Strict):
    html: bool = True  # drop HTML tags such as IMDB's <br />
    unicode: Literal["NFC", "NFKC"] | None = "NFKC"  # unicode normalisation form
    lower: bool = False
    pii: bool = False  # replace e-mails, phones, URLs, card numbers and IPs by [EMAIL] ... (data/pii.py)


class DataConfig(Strict):
    dataset: str = "digits"
    path: Path | None = None  # the file or folder for csv / parquet / text
    label: str | None = None  # the label column for csv / parquet / text files
    text: str | None = None  # the text column for text files (CSV / JSONL)
    clean: TextCleanConfig = TextCleanConfig()  # text datasets only
    root: Path | None = None  # where dataset files live; default $MODELLADDER_DATA
    limit: int | None = Field(None, gt=0)  # keep at most this many training examples (stratified)
    normalize: bool = True
    split: SplitConfig = SplitConfig()
    augment: AugmentConfig = AugmentConfig()
    image_size: int | None = Field(None, gt=0)  # imagefolder: resize to this square size (default: the first image's)
    channels: Literal[1, 3] | None = None  # imagefolder: 1 grayscale or 3 RGB (default: the first image's)
    drop: list[str] = []  # table columns left out of the features (data.sensitive ones stay available to the audit)
    sensitive: list[str] = []  # table columns kept per split for `ladder audit`, whether features or not
    # tables: a column's role, overriding the one detected from the training rows (data/columns.py)
    columns: dict[str, Literal["numeric", "categorical", "id", "drop", "date", "text", "frequency"]] = {}
    # csv: the delimiter (one character; '\\t' or 'tab' for a tab) and the text encoding (a Python codec name);
    # None sniffs them from the file (data/sniff.py); the decision is saved in preprocess.json
    sep: str | None = None
    encoding: str | None = None
    stress: bool = False  # cmudict: keep the vowels' stress digits (AE1) in the target phonemes
    # parallel (data/parallel.py): a pair file's source and target columns (default 'source' and 'target'), or
    # data.path's lines aligned with data.target_path's; sources read as characters or words
    source_column: str | None = None
    target_column: str | None = None
    target_path: Path | None = None
    source_units: Literal["chars", "words"] = "chars"

    @field_validator("sep")
    @classmethod
    def _one_character(cls, sep):
        return None if sep is None else csv_sep(sep)

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, encoding):
        return None if encoding is None else csv_encoding(encoding)

    @model_validator(mode="after")
    def _csv_only(self):
        forced = [f"data.{k}" for k in ("sep", "encoding") if getattr(self, k) is not None]
        if forced and self.dataset not in ("csv", "text", "parallel"):  # text, parallel: their CSV / TSV files
            verb = "apply" if len(forced) > 1 else "applies"
            raise ValueError(f"{' and '.join(forced)} {verb} to datasets 'csv', 'text' and 'parallel' only, got "
                             f"dataset '{self.dataset}'")
        pairs = [f"data.{k}" for k in ("source_column", "target_column", "target_path") if getattr(self, k) is not None]
        if pairs and self.dataset != "parallel":
            raise ValueError(f"{', '.join(pairs)} {'apply' if len(pairs) > 1 else 'applies'} to dataset 'parallel' "
                             f"only, got dataset '{self.dataset}'")
        if self.columns and self.dataset not in TABLE_DATASETS:
            raise ValueError(f"data.columns applies to the table datasets {', '.join(TABLE_DATASETS)}, "
                             f"got dataset '{self.dataset}'")
        return self


TABLE_DATASETS = ("csv", "parquet", "adult")  # the datasets whose columns have roles (data/columns.py)


def csv_sep(sep: str) -> str:
    """data.sep as a character: one character other than a quote, a line break, a letter or a digit."""
    sep = "\t" if sep in ("\\t", "tab") else sep
    if len(sep) != 1 or sep in "\"\r\n" or sep.isalnum():
        raise ValueError(f"must be one character such as ',', ';', '|' or '\\t' (tab), got {sep!r}")
    return sep


def csv_encoding(encoding: str) -> str:
    """data.encoding when Python knows the codec (codecs.lookup) and it decodes bytes to text."""
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"must be a text encoding Python knows, such as 'utf-8', 'utf-16', 'cp1252' or "
                         f"'latin-1', got {encoding!r}") from None
    if not getattr(info, "_is_text_encoding", True):
        raise ValueError(f"must be a text encoding, but {encoding!r} is a bytes-to-bytes codec")
    return encoding


# ---------------------------------------------------------------- task, train, eval


class TaskConfig(Strict):
    name: str = "classification"
    loss: Literal["bce", "mse"] = "bce"  # reconstruction and vae: how a reconstruction is scored against the pixels
    beta: float = Field(1.0, ge=0)  # vae: the weight of the KL term (beta-VAE)
    sample_every: int = Field(500, gt=0)  # vae and gan: steps between fixed-noise sample grids in pictures/
    temperature: float = Field(0.5, gt=0)  # contrastive: NT-Xent's temperature
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # seq2seq: cross-entropy's label smoothing on target tokens


class OptimizerConfig(Strict):
    # muon: Muon on the hidden weight matrices, AdamW (lr, betas, eps) on the rest (train/muon.py)
    name: Literal["sgd", "adam", "adamw", "rmsprop", "muon"] = "adamw"
    # with the cosine default below, the tutorial MNIST MLP reaches 97.4-97.6% in 2 epochs (1e-3: ~96.9%)
    lr: float = Field(3e-3, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    muon_lr: float = Field(0.02, gt=0)  # 'muon': the hidden matrices' learning rate (lr is the AdamW part's)
    muon_momentum: float = Field(0.95, ge=0, lt=1)  # 'muon': its (Nesterov) momentum
    ns_steps: int = Field(5, ge=1, le=20)  # 'muon': Newton-Schulz iterations per step

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self):
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("optimizer.nesterov needs name 'sgd' and momentum > 0")
        return self


class ScheduleConfig(Strict):
    # wsd: warmup, stable at the peak, then a linear decay to min_lr_ratio over the last decay_fraction of the steps
    name: Literal["constant", "step", "cosine", "linear", "onecycle", "wsd"] = "cosine"
    warmup_steps: int = Field(0, ge=0)  # linear warmup before any schedule
    step_size: int = Field(1, gt=0)  # 'step': epochs between decays
    gamma: float = Field(0.1, gt=0, le=1)  # 'step': decay factor
    min_lr_ratio: float = Field(0.0, ge=0, le=1)  # 'cosine' / 'linear' / 'wsd': final lr as a fraction
    pct_start: float = Field(0.3, gt=0, lt=1)  # 'onecycle': fraction of steps spent rising
    decay_fraction: float = Field(0.3, gt=0, le=1)  # 'wsd': fraction of the steps after warmup spent decaying


class EarlyStoppingConfig(Strict):
    metric: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, gt=0)
    min_delta: float = Field(0.0, ge=0)


class PrivacyConfig(Strict):
    """DP-SGD through opacus (train/privacy.py): noise calibrated so that the planned epochs spend target_epsilon."""

    target_epsilon: float = Field(gt=0)
    delta: float = Field(1e-5, gt=0, lt=1)  # should be below 1 / (training examples)
    max_grad_norm: float = Field(1.0, gt=0)  # each example's gradient is clipped to this norm
    # true for a model meant for release: noise from a cryptographically secure source (opacus secure_mode
    # with torchcsprng, else seeded from os.urandom and never stored), so a resumed run is not bitwise the same
    secure: bool = False


class DistributedConfig(Strict):
    """How a run on several processes (--nproc N, torchrun) splits the work (train/distributed.py, train/fsdp.py)."""

    strategy: Literal["ddp", "fsdp"] = "ddp"  # ddp: every rank holds the whole model; fsdp: each holds 1/N of it


class TrainConfig(Strict):
    epochs: int = Field(10, gt=0)
    max_steps: int | None = Field(None, gt=0)  # stop after this many optimizer steps in all
    # stop after the step in which this many seconds of training have passed (the best checkpoint is kept; the
    # result says stopped: time_limit); a ladder's time_limit_s sets it for each rung
    max_seconds: float | None = Field(None, gt=0)
    batch_size: int = Field(64, gt=0)  # the global batch: with --nproc N (or torchrun) each process takes 1/N of it
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    l1: float = Field(0.0, ge=0)  # penalty on the sum of |w| over weight matrices
    l2: float = Field(0.0, ge=0)  # penalty on the sum of w^2 (coupled; weight_decay is decoupled)
    grad_clip: float | None = Field(None, gt=0)  # max global gradient norm
    early_stopping: EarlyStoppingConfig | None = None
    threads: int | None = Field(None, gt=0)  # torch.set_num_threads; default: leave as is
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # mixed precision is for GPUs
    checkpoint_every: int | None = Field(None, gt=0)  # steps; a checkpoint ends every epoch too
    log_every: int = Field(50, gt=0)  # steps between train-loss lines in metrics.jsonl
    progress: bool = True
    loggers: list[Literal["tensorboard"]] = []  # extra experiment trackers fed by the loop
    privacy: PrivacyConfig | None = None  # differentially private training (neural rungs)
    distributed: DistributedConfig = DistributedConfig()  # with --nproc N / torchrun

    @model_validator(mode="after")
    def _muon_needs_whole_matrices(self):
        if self.optimizer.name == "muon" and self.distributed.strategy == "fsdp":
            raise ValueError("train.optimizer.name 'muon' orthogonalises whole weight matrices, which FSDP shards: "
                             "use train.distributed.strategy 'ddp' or another optimizer")
        return self

    @model_validator(mode="after")
    def _privacy_alone(self):
        """DP-SGD's guarantee holds only if nothing but the clipped, noised per-example gradients moves the weights."""
        if self.privacy is None:
            return self
        penalty = self.penalty_problems("train.privacy", "the penalty's gradient would skip the per-example clipping")
        if penalty:
            raise ValueError(penalty[0])
        if self.grad_clip is not None:
            raise ValueError("train.privacy clips each example's gradient to privacy.max_grad_norm: "
                             "leave train.grad_clip unset")
        if self.precision != "fp32":
            raise ValueError(f"train.privacy needs train.precision 'fp32', got '{self.precision}'")
        return self

    def penalty_problems(self, refuser: str, because: str, instead: str = "train.optimizer.weight_decay") -> list[str]:
        """The one rule for train.l1 / train.l2, a penalty on the whole weights added to the loss (train/optim.py):
        what cannot take it (`refuser`: privacy, FSDP, a GAN) says so through here, and why; weight decay works
        everywhere."""
        if not (self.l1 or self.l2):
            return []
        return [f"{refuser} cannot be combined with train.l1 / train.l2 ({because}); use {instead}"]


class ConformalConfig(Strict):
    """Split conformal prediction sets (mapie), fitted on the validation split, coverage reported on eval.split."""

    alpha: float = Field(0.1, gt=0, lt=1)  # the sets should miss the true class on about this fraction of rows


class EvalConfig(Strict):
    split: Literal["test", "val"] = "test"
    limit: int | None = Field(None, gt=0)  # score a fixed sample (seeded by seed, stratified) of this many examples
    classifier: Path | None = None  # vae and gan: an image classifier's run folder that scores generated images
    # classifiers: probabilities calibrated on the validation split (evaluate/calibration.py); margin models
    # (tfidf_svm) are always calibrated, by 'platt' unless this says 'temperature'
    calibrate: Literal["temperature", "platt"] | None = None
    conformal: ConformalConfig | None = None  # classifiers: prediction sets with coverage about 1 - alpha
    beam: int = Field(1, ge=1, le=64)  # seq2seq: beam width when decoding (1: greedy)
    length_penalty: float = Field(1.0, ge=0)  # seq2seq beam search: score / length ** length_penalty (0: none)

    def problems(self, task: str) -> list[str]:
        """What calibration and conformal sets cannot work with: they are fitted on the validation split, so
        they need class probabilities and must not be scored on the rows they were fitted on."""
        out = []
        for field, value in (("eval.calibrate", self.calibrate), ("eval.conformal", self.conformal)):
            if value is None:
                continue
            if task != "classification":
                out.append(f"{field} needs task.name 'classification' (class probabilities), got '{task}'")
            if self.split == "val":
                out.append(f"{field} is fitted on the validation split: it cannot be scored there (eval.split "
                           "'val'); use eval.split 'test'")
        return out


def known_countries() -> frozenset[str]:
    """The ISO 3166 alpha-3 codes codecarbon has a grid carbon intensity for."""
    from codecarbon.input import DataSource

    return frozenset(DataSource().get_global_energy_mix_data())


class CostConfig(Strict):
    """How costs are turned into CO2 (evaluate/cost.py)."""

    country: str = "USA"  # ISO 3166 alpha-3 code of the electricity grid whose carbon intensity gives co2_kg

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str) -> str:
        if country not in known_countries():
            raise PydanticCustomError("country", "must be an ISO 3166 alpha-3 code that codecarbon knows (such as "
                                      "'USA', 'FRA', 'DEU')")
        return country


class CardConfig(Strict):
    """What the model card in report.html says about use; unset fields get a cautious default."""

    intended_use: str | None = None
    out_of_scope: str | None = None
    limitations: str | None = None
    contact: str | None = None


class AuditConfig(Strict):
    """A ladder's fairness audit (audit/): run on every rung's test split after training."""

    sensitive: list[str] = Field(min_length=1)  # table columns that define the groups
    mitigate: bool = False  # also fit fairlearn's ThresholdOptimizer on the validation split
    constraint: Literal["demographic_parity", "equalized_odds"] = "demographic_parity"


def _config_of(name: str) -> type[Strict]:
    """The Config of the model registered as `name`; imports that model's module, and no other."""
    try:
        return load_object(MODELS[name]).Config
    except ImportError as err:  # a broken install or a bug, not a bad config: keep the traceback, name the model
        raise ImportError(f"model.name '{name}': {MODELS[name]} failed to import: {err}") from err


def _validate_model(value: Any) -> Strict:
    """RunConfig.model through the Config that model.name names (a union of every model's would import them all)."""
    if not isinstance(value, dict | BaseModel):
        raise PydanticKnownError("model_attributes_type")
    name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
    if not isinstance(name, str) or name not in MODELS:
        raise PydanticCustomError("model_name", "model.name {name} is not a registered model", {"name": repr(name)})
    return _config_of(name).model_validate(value)  # its errors keep their path under model


# SerializeAsAny: dumped with the model's own fields, not the (empty) Strict base's
ModelConfig = Annotated[SerializeAsAny[Strict], PlainValidator(_validate_model)]


class FinetuneConfig(Strict):
    """Start from a `ladder pretrain` run (verbs/transfer.py): its architecture, tokenizer and backbone weights."""

    model_config = ConfigDict(**Strict.model_config, serialize_by_alias=True)
    # the pretrained run folder; in a ladder, also the name of one of its pretrain stages
    from_: str = Field(alias="from", min_length=1)
    mode: Mode = "full"  # full, frozen (a linear probe) or lora: models/modes.py
    lora: LoraSettings = LoraSettings()  # used when mode is 'lora'; default targets: the backbone's Linear layers
    # the backbone's peak learning rate (the head keeps train.optimizer.lr; both follow the schedule); null: the same
    backbone_lr: float | None = Field(None, ge=0)


class TuneConfig(Strict):
    """Hyperparameter tuning with Optuna (verbs/tune.py): `trials` trials or `timeout_s` seconds (at least one; both:
    whichever ends first), each trained on the train split and scored on the validation split only; the best is
    retrained once and scored like `ladder train`. A ladder's `tune:` gives every rung this same budget."""

    trials: int | None = Field(None, gt=0)
    timeout_s: float | None = Field(None, gt=0)  # seconds, or '90s', '10m', '1h'
    metric: str | None = None  # a validation metric the task reports (default: the task's monitor, e.g. accuracy)
    sampler: Literal["tpe", "random"] = "tpe"  # seeded by the run's seed
    pruner: Literal["median", "halving", "none"] = "median"  # from each epoch's validation metric (networks only)
    storage: str | None = None  # an Optuna RDB URL; default sqlite:///<run folder>/tune/study.db
    space: dict[str, Any] = {}  # overrides of the model's search space: dotted run-config path -> spec

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _a_budget(self):
        if self.trials is None and self.timeout_s is None:
            raise ValueError("tune needs a budget: tune.trials (a number of trials) or tune.timeout_s (seconds), "
                             "or both")
        return self

    @property
    def budget(self) -> str:
        """The budget in words, as the leaderboard states it: '20 trials', '600 s' or '20 trials or 600 s'."""
        parts = [f"{self.trials} trials" if self.trials is not None else None,
                 f"{self.timeout_s:g} s" if self.timeout_s is not None else None]
        return " or ".join(p for p in parts if p)


class RunConfig(Strict):
    name: str | None = None
    seed: int = 0
    data: DataConfig = DataConfig()
    model: ModelConfig
    task: TaskConfig = TaskConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    card: CardConfig = CardConfig()
    cost: CostConfig = CostConfig()
    finetune: FinetuneConfig | None = None  # start from a pretrained run instead of from scratch
    tune: TuneConfig | None = None  # `ladder tune`, or a ladder's tune: (verbs/tune.py)


class RungConfig(Strict):
    name: str
    model: dict[str, Any]
    train: dict[str, Any] = {}  # overrides merged onto the ladder's train section
    finetune: dict[str, Any] | None = None  # FinetuneConfig; finetune.from may name a pretrain stage


class PretrainStageConfig(Strict):
    """A `ladder pretrain` run that `ladder run` makes before the rungs, into <ladder>/<name>/."""

    name: str
    data: dict[str, Any] = {}  # a corpus (registry.CORPORA)
    model: dict[str, Any]
    task: dict[str, Any] = {"name": "causal_lm"}
    train: dict[str, Any] = {}


class ProtocolConfig(Strict):
    kind: Literal["holdout", "kfold"] = "holdout"
    folds: int = Field(5, ge=2)  # kfold only
    repeats: int = Field(1, ge=1)  # kfold only: reshufflings of the folds


class LadderConfig(Strict):
    name: str = "ladder"
    seed: int = 0
    protocol: ProtocolConfig = ProtocolConfig()
    data: dict[str, Any] = {}
    task: dict[str, Any] = {}
    train: dict[str, Any] = {}
    eval: dict[str, Any] = {}
    card: dict[str, Any] = {}  # the model card's intended use etc., the same for every rung
    cost: dict[str, Any] = {}  # CostConfig (the CO2 grid's country), the same for every rung
    audit: AuditConfig | None = None  # fairness audit of every rung; its gaps become leaderboard columns
    pretrain: list[PretrainStageConfig] = []  # language models pretrained first; rungs fine-tune them
    rungs: list[RungConfig] = Field(min_length=1)  # a bare model name `logreg` is the rung {name: logreg, model: ...}
    # a wall-clock budget shared by the rungs (seconds, or '90s', '10m', '1h'): each rung, as it starts, gets
    # train.max_seconds = what is left / rungs left; rungs that find nothing left fail with 'time limit reached'
    time_limit_s: float | None = Field(None, gt=0)
    tune: TuneConfig | None = None  # every rung tuned with this same budget (verbs/tune.py)

    @field_validator("time_limit_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("rungs", mode="before")
    @classmethod
    def _shorthand_rungs(cls, rungs: Any) -> Any:
        """`rungs: [logreg, mlp]`: a string item is the rung of that model with its defaults; a model name it
        does not know is reported by rung_configs (rungs[i].model.name, did-you-mean)."""
        if not isinstance(rungs, list):
            return rungs
        return [{"name": r, "model": {"name": r}} if isinstance(r, str) else r for r in rungs]


class ScaleSize(Strict):
    """One model size of `ladder scale`: model.dim and model.depth (model.heads = dim / scale.head_dim)."""

    dim: int = Field(gt=0)
    depth: int = Field(gt=0)


class ScaleSection(Strict):
    """`ladder scale`'s IsoFLOP grid (verbs/scale.py): every size trained at every compute budget."""

    sizes: list[ScaleSize] = []  # width/depth pairs; or give params
    params: list[Annotated[int, Field(gt=0)]] = []  # non-embedding parameter counts, each the nearest width/depth
    head_dim: int = Field(16, gt=0)  # model.heads = dim / head_dim, so every width keeps the same head size
    budgets: list[Annotated[float, Field(gt=0)]] = Field(min_length=2)  # training FLOPs of each run (6N + 12 L d T)
    windows: int | None = Field(None, gt=0)  # score every run on the first this many held-out windows (default all)
    bootstrap: int = Field(200, ge=0)  # resamplings of the runs for the 95% intervals (0: none)

    @model_validator(mode="after")
    def _one_grid(self):
        if bool(self.sizes) == bool(self.params):
            raise ValueError("give the sizes as scale.sizes (width/depth pairs) or as scale.params (parameter "
                             "counts), one of the two")
        odd = [s.dim for s in self.sizes if s.dim % self.head_dim]
        if odd:
            raise ValueError(f"scale.sizes dims {odd} are not multiples of scale.head_dim {self.head_dim}")
        pairs = [(s.dim, s.depth) for s in self.sizes]
        for name, items in (("sizes", pairs), ("params", self.params), ("budgets", self.budgets)):
            if len(set(items)) < len(items):
                raise ValueError(f"scale.{name} lists the same value twice: {items}")
        return self


def parse_duration(text: str | float) -> float:
    """Seconds from '600', '90s', '10m', '1.5h' (or a number); a ValueError naming the allowed forms."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text).lower())
    if match is None:
        raise ValueError(f"must be a duration such as 600, 90s, 10m or 1h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


# ---------------------------------------------------------------- loading and errors


def _dotted(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _fields_at(model_cls, loc: tuple, raw: dict) -> list[str]:
    """The allowed keys at `loc` (for did-you-mean on an unknown key); `raw` is the input that was validated."""
    cls = model_cls
    for p in loc[:-1]:
        if isinstance(p, int) or cls is None:
            continue
        if cls is RunConfig and p == "model":  # no annotation says which Config: model.name does (valid, to get here)
            cls = _config_of(raw["model"]["name"])
            continue
        field = getattr(cls, "model_fields", {}).get(p)
        if field is None:
            return []
        ann = field.annotation
        cls = next((a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")), None)
    return [f.alias or name for name, f in getattr(cls, "model_fields", {}).items()] if cls is not None else []


def format_errors(err: ValidationError, model_cls, raw: dict, prefix: str = "") -> list[str]:
    problems = []
    for e in err.errors():
        field = (prefix + _dotted(e["loc"])).rstrip(".")  # a model-level error: the prefix itself
        kind, value = e["type"], e.get("input")
        if kind == "extra_forbidden":
            hint = did_you_mean(str(e["loc"][-1]), _fields_at(model_cls, e["loc"], raw))
            problems.append(f"unknown key {field}{hint}")
        elif kind == "model_name":
            name = value.get("name") if isinstance(value, dict) else getattr(value, "name", None)
            problems.append(unknown_name(f"{field}.name", name, MODELS))
        elif kind == "literal_error":
            allowed = e["ctx"]["expected"]
            hint = did_you_mean(str(value), [a.strip("'") for a in allowed.replace(" or ", ", ").split(", ")])
            problems.append(f"{field} must be {allowed}, got {value!r}{hint}")
        elif kind == "missing":
            problems.append(f"{field} is required")
        elif kind == "value_error":
            problems.append(f"{field or 'config'}: {e['msg'].removeprefix('Value error, ')}")
        elif kind in _BOUNDS:
            limit = e["ctx"][_BOUNDS[kind][0]]
            limit = int(limit) if isinstance(limit, float) and limit.is_integer() else limit
            problems.append(f"{field} must be {_BOUNDS[kind][1]} {limit}, got {value!r}")
        else:
            problems.append(f"{field} {_lower_first(e['msg'])}, got {value!r}")
    return problems


_BOUNDS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _lower_first(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _check_names(raw: dict, prefix: str = "") -> list[str]:
    problems = []
    # a section that is not a mapping (task: 1) is reported by pydantic below; here it means the default
    task = raw["task"].get("name", "classification") if isinstance(raw.get("task"), dict) else "classification"
    datasets = CORPORA if task in PRETRAIN_TASKS else DATASETS  # language models pretrain on corpora
    dataset = raw["data"].get("dataset", "digits") if isinstance(raw.get("data"), dict) else "digits"
    if isinstance(dataset, str) and dataset not in datasets:
        problems.append(unknown_name(f"{prefix}data.dataset", dataset, datasets))
    if isinstance(task, str) and task not in TASKS:
        problems.append(unknown_name(f"{prefix}task.name", task, TASKS))
    return problems


def validate_run(raw: dict, prefix: str = "") -> RunConfig:
    problems = _check_names(raw, prefix)
    cfg = None
    try:
        cfg = RunConfig.model_validate(raw)
        problems += [prefix + p for p in cfg.eval.problems(cfg.task.name)]
    except ValidationError as err:
        problems += format_errors(err, RunConfig, raw, prefix)
    if problems:
        raise InputError(problems)
    return cfg


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def rung_configs(ladder: LadderConfig) -> list[RunConfig]:
    """One RunConfig per rung: the ladder's data, task, seed and train, the rung's model and overrides."""
    problems, runs = [], []
    names = [r.name for r in ladder.rungs]
    for i, rung in enumerate(ladder.rungs):
        if names.count(rung.name) > 1:
            problems.append(f"rungs[{i}].name '{rung.name}' is used by more than one rung")
        raw = {
            "name": rung.name,
            "seed": ladder.seed,
            "data": ladder.data,
            "task": ladder.task,
            "train": deep_merge(ladder.train, rung.train),
            "eval": ladder.eval,
            "card": ladder.card,
            "cost": ladder.cost,
            "model": rung.model,
        }
        if rung.finetune is not None:
            raw["finetune"] = rung.finetune
        if ladder.tune is not None:  # the same budget for every rung
            raw["tune"] = ladder.tune.model_dump()
        try:
            runs.append(validate_run(raw, prefix=f"rungs[{i}]."))
        except InputError as err:
            problems += err.problems
    if problems:
        raise InputError(sorted(set(problems), key=problems.index))
    return runs


def validate_ladder(raw: dict) -> LadderConfig:
    try:
        ladder = LadderConfig.model_validate(raw)
    except ValidationError as err:
        raise InputError(format_errors(err, LadderConfig, raw)) from None
    rung_configs(ladder)  # every rung must validate too
    stage_configs(ladder)
    return ladder


def stage_configs(ladder: LadderConfig) -> list[RunConfig]:
    """One RunConfig per pretrain stage (the ladder's seed, the stage's sections); every rung's finetune.from
    must name a stage or an existing folder."""
    problems, runs = [], []
    names = [stage.name for stage in ladder.pretrain]
    for i, stage in enumerate(ladder.pretrain):
        if stage.name in names[:i] or stage.name in [r.name for r in ladder.rungs]:
            problems.append(f"pretrain[{i}].name '{stage.name}' is used by another stage or rung")
        raw = {"name": stage.name, "seed": ladder.seed, **stage.model_dump(exclude={"name"})}
        try:
            runs.append(validate_run(raw, prefix=f"pretrain[{i}]."))
        except InputError as err:
            problems += err.problems
    for i, rung in enumerate(ladder.rungs):
        source = (rung.finetune or {}).get("from")
        if isinstance(source, str) and source not in names and not Path(source).expanduser().is_dir():
            problems.append(f"rungs[{i}].finetune.from '{source}' is neither a pretrain stage of this ladder "
                            f"{names} nor an existing run folder")
    if problems:
        raise InputError(problems)
    return runs


def validate_scale(raw: dict) -> tuple[RunConfig, ScaleSection]:
    """A `ladder scale` config: a pretrain run config (the family's base run) plus its `scale:` section; every
    problem of both reported at once."""
    section = raw.get("scale")
    problems, scale, base = [], None, None
    if not isinstance(section, dict):
        problems.append("scale: a `ladder scale` config needs a scale section (sizes or params, budgets), got "
                        f"{section!r}")
    else:
        try:
            scale = ScaleSection.model_validate(section)
        except ValidationError as err:
            problems += format_errors(err, ScaleSection, section, prefix="scale.")
    try:
        base = validate_run({k: v for k, v in raw.items() if k != "scale"})
    except InputError as err:
        problems += err.problems
    if problems:
        raise InputError(problems)
    return base, scale


def load_scale_config(path: str | Path, overrides: list[str] = ()) -> tuple[RunConfig, ScaleSection]:
    return validate_scale(load_raw(path, overrides))


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise InputError(f"config file {path}{where} is not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise InputError(f"config file {path} must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`--set a.b=c`: the value is parsed as YAML (numbers, booleans, lists)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or any(not p for p in key.split(".")):
            raise InputError(f"--set expects KEY=VALUE with a dotted key such as train.lr=0.01, got '{item}'")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        set_dotted(raw, key, parsed)
    return raw


def set_dotted(raw: dict, path: str, value: Any) -> None:
    """raw[a][b][c] = value for path 'a.b.c', making (or replacing non-dict) parents as dicts: --set and tuning's
    params (models/space.py) write a raw config the same way."""
    node = raw
    *parents, last = path.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _absolute(value: Any, base: Path, *, must_exist: bool) -> Any:
    """`value` (a path string from a config) made absolute from `base`; with must_exist only when that path
    exists (a run or model folder that may instead be a hub id or a stage name is left as it is)."""
    if not isinstance(value, str) or not value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    if must_exist and not (base / path).exists():
        return value
    return str((base / path).resolve())


def _resolve_run_paths(section: dict, base: Path, stages: list = ()) -> None:
    """The path-like fields of one run's sections (a run config, a ladder's top level, a pretrain stage or a rung),
    in place: data.path / data.root always; eval.classifier, finetune.from (unless it names one of `stages`) and
    a model's local folder (model.model, model.path, at any depth: hf, hf_causal, clip) when they exist there."""
    data = section.get("data")
    if isinstance(data, dict):
        for key in ("path", "root"):
            if key in data:
                data[key] = _absolute(data[key], base, must_exist=False)
    evaluation = section.get("eval")
    if isinstance(evaluation, dict) and "classifier" in evaluation:
        evaluation["classifier"] = _absolute(evaluation["classifier"], base, must_exist=True)
    finetune = section.get("finetune")
    if isinstance(finetune, dict) and "from" in finetune and finetune["from"] not in stages:
        finetune["from"] = _absolute(finetune["from"], base, must_exist=True)

    def model_folders(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("model", "path") and isinstance(value, str):
                    node[key] = _absolute(value, base, must_exist=True)
                else:
                    model_folders(value)

    model_folders(section.get("model"))


def resolve_paths(raw: dict, base: str | Path) -> dict:
    """A copy of `raw` (a run or ladder config) with its relative paths made absolute from `base`: the config file's
    folder for what the file says, the current directory for --set overrides (load_raw), so a run's config.yaml
    holds absolute paths that work from any folder."""
    raw, base = copy.deepcopy(raw), Path(base).expanduser().resolve()
    if not is_ladder(raw):
        _resolve_run_paths(raw, base)
        return raw
    pretrain, rungs = (raw.get(key) if isinstance(raw.get(key), list) else [] for key in ("pretrain", "rungs"))
    stages = [s.get("name") for s in pretrain if isinstance(s, dict)]
    _resolve_run_paths(raw, base)
    for item in pretrain + rungs:  # what is not a list is left for validation to name
        if isinstance(item, dict):
            _resolve_run_paths(item, base, stages)
    return raw


def load_raw(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """A config file's mapping (empty without one) with --set overrides applied: paths in the file resolved from
    the file's folder, paths given with --set from the current directory, both stored absolute."""
    raw = resolve_paths(read_yaml(path), Path(path).parent) if path else {}
    return resolve_paths(apply_overrides(raw, list(overrides)), Path.cwd())


def is_ladder(raw: dict) -> bool:
    return "rungs" in raw


def load_run_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    return validate_run(load_raw(path, overrides))


def load_ladder_config(path: str | Path, overrides: list[str] = ()) -> LadderConfig:
    return validate_ladder(load_raw(path, overrides))


def to_yaml(cfg: Strict) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
