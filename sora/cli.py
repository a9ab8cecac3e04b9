"""`sora` command line. Heavy imports (torch, mlflow, prefect) happen inside commands, so `sora --help` is fast."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="Sora: bilingual (zh/en) text classifiers — validate data, run the pipeline, predict.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def validate(
    files: list[Path] = typer.Argument(..., help="Labeled CSV/TSV/JSONL/Parquet files (columns text, label[, lang])."),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="Where preprocess.max_chars is read."),
) -> None:
    """Check user files against the data contract without running the pipeline (exit 1 on any problem)."""
    from sora.config import ConfigError, load_params
    from sora.data.sources import DataError, read_labeled_file

    try:
        max_chars = load_params(params_file).preprocess.max_chars
    except ConfigError as err:
        _fail(str(err))
    failed = False
    for path in files:
        try:
            read = read_labeled_file(path, max_chars=max_chars)
        except DataError as err:
            typer.echo(str(err))
            failed = True
            continue
        problems = list(read.problems) + list(read.warnings)
        long_rows = read.rows[read.rows["text"].str.len() > max_chars]
        for ref, text in zip(long_rows["ref"], long_rows["text"]):
            problems.append(f"{path}:{ref.rsplit(':', 1)[1]}: text has {len(text):,} characters, over "
                            f"preprocess.max_chars={max_chars:,} (the row would be rejected)")
        for problem in problems:
            typer.echo(str(problem))
        failed |= bool(problems)
        if not problems:
            typer.echo(f"{path}: ok ({len(read.rows)} rows, labels {sorted(read.rows['label'].unique().tolist())})")
    raise typer.Exit(1 if failed else 0)


def _parse_sets(sets: list[str]) -> dict:
    import yaml

    from sora.config import dotted_to_nested

    pairs = {}
    for item in sets:
        if "=" not in item:
            _fail(f"--set expects key=value (e.g. finetune.lr=0.0005), got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = yaml.safe_load(value)
    return dotted_to_nested(pairs)


@app.command()
def run(
    targets: Optional[list[str]] = typer.Argument(None, help="Stages to run (default: the whole pipeline)."),
    force: bool = typer.Option(False, "--force", "-f", help="Rerun stages even if DVC finds them up to date."),
    set_: list[str] = typer.Option([], "--set", "-S", help="Params override key=value (dvc exp style), repeatable."),
    refresh_data: bool = typer.Option(False, "--refresh-data", help="Re-ingest sources even if unchanged."),
) -> None:
    """Run the pipeline through the Prefect retrain flow (DVC skips what is up to date)."""
    sys.path.insert(0, str(Path.cwd()))
    from flows.retrain import retrain

    result = retrain(targets=targets or None, force=force, overrides=_parse_sets(set_) or None,
                     refresh_data=refresh_data)
    typer.echo(result.get("summary", "done") if isinstance(result, dict) else "done")



@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * *", "--cron", help="Cron expression for scheduled retrain runs."),
    name: str = typer.Option("sora-retrain", "--name", help="Prefect deployment name."),
    timezone: Optional[str] = typer.Option(None, "--timezone", help="IANA timezone of the cron (default UTC)."),
    register_only: bool = typer.Option(False, "--register-only",
                                       help="Create/update the deployment and exit instead of serving it."),
) -> None:
    """Serve the retrain flow on a cron schedule (one run at a time; an overlapping run is skipped)."""
    sys.path.insert(0, str(Path.cwd()))
    from flows.schedule import register_deployment, serve_schedule, server_configured

    if not server_configured():
        typer.echo("warning: PREFECT_API_URL is not set: Prefect's ephemeral mode has no scheduler, so no runs "
                   "will be created. Start a server (`make prefect-ui`) and export "
                   "PREFECT_API_URL=http://127.0.0.1:4200/api.", err=True)
    if register_only:
        deployment_id = register_deployment(name, cron, timezone)
        typer.echo(f"deployment retrain/{name} ({deployment_id}) on cron '{cron}'")
        return
    serve_schedule(name, cron, timezone)


if __name__ == "__main__":
    app()
