"""`sora` command line. Heavy imports (torch, mlflow, prefect) happen inside commands, so `sora --help` is fast."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sora.errors import DataError
from sora.prediction_files import INPUT_HELP, OUTPUT_TYPES, read_texts, write_predictions

app = typer.Typer(
    help="Sora: bilingual (zh/en) text classifiers — validate data, run the pipeline, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def validate(
    files: list[Path] = typer.Argument(
        ..., help="Labeled CSV/TSV/JSONL/Parquet files: a text column, one or more task label columns, [lang]."
    ),
    params_file: Path = typer.Option(
        Path("params.yaml"), "--params", help="Where the tasks and preprocess.max_chars are read."
    ),
) -> None:
    """Check user files against the data contract without running the pipeline (exit 1 on any problem)."""
    from sora.config import ConfigError, load_params
    from sora.data.tasks import MISSING
    from sora.data.user_files import read_labeled_file

    try:
        params = load_params(params_file)
    except ConfigError as err:
        _fail(str(err))
    max_chars = params.preprocess.max_chars
    failed = False
    for path in files:
        try:
            read = read_labeled_file(path, params.tasks, max_chars=max_chars)
        except DataError as err:
            typer.echo(str(err))
            failed = True
            continue
        problems = list(read.problems)
        long_rows = read.rows[read.rows["text"].str.len() > max_chars]
        for ref, text in zip(long_rows["ref"], long_rows["text"]):
            problems.append(
                f"{path}:{ref.rsplit(':', 1)[1]}: text has {len(text):,} characters, over "
                f"preprocess.max_chars={max_chars:,} (the row would be rejected)"
            )
        for problem in problems:
            typer.echo(str(problem))
        for warning in read.warnings:  # worth knowing, but the file is usable
            typer.echo(f"warning: {warning}")
        failed |= bool(problems)
        if not problems:
            per_task = []
            for name, task in params.tasks.items():
                if task.column in read.rows:
                    labels = read.rows[task.column][read.rows[task.column] != MISSING]
                    per_task.append(f"{name}: {len(labels)} labeled, classes {sorted(labels.unique().tolist())}")
            typer.echo(f"{path}: ok ({len(read.rows)} rows; {'; '.join(per_task)})")
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
    targets: list[str] | None = typer.Argument(
        None, help="Stages of dvc.yaml to run, with those before them (default: all; `dvc stage list` names them)."
    ),
    force: bool = typer.Option(False, "--force", "-f", help="Rerun stages even if DVC finds them up to date."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        "-S",
        help="Params override key=value, repeatable. The run becomes a DVC experiment (`dvc exp run --temp -S`): "
        "params.yaml is not changed and the variant is listed by `dvc exp show`.",
    ),
    refresh_data: bool = typer.Option(False, "--refresh-data", help="Re-ingest sources even if unchanged."),
) -> None:
    """Run the pipeline through the Prefect retrain flow (DVC skips what is up to date)."""
    if not Path("dvc.yaml").is_file():
        _fail(f"no dvc.yaml in {Path.cwd()}: run `sora run` from the Sora repository root")
    from flows.local_api import start_local_prefect_api
    from sora.config import load_params
    from sora.pipeline.spec import pipeline_stages

    stages = list(pipeline_stages())
    unknown = [t for t in targets or [] if t not in stages]
    if unknown:
        _fail(f"unknown stage(s) {', '.join(unknown)}; dvc.yaml defines: {', '.join(stages)}")
    overrides = _parse_sets(set_) or None
    load_params(overrides=overrides)  # a bad key or value stops here, before the flow starts
    start_local_prefect_api()  # before Prefect is imported (it reads its API URL once, at import)
    from flows.retrain import StageFailed, retrain

    try:
        result = retrain(targets=targets or None, force=force, overrides=overrides, refresh_data=refresh_data)
    except (StageFailed, ValueError) as err:
        _fail(str(err))
    typer.echo(result.get("summary", "done") if isinstance(result, dict) else "done")


@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * *", "--cron", help="Cron expression for scheduled retrain runs."),
    name: str = typer.Option("sora-retrain", "--name", help="Prefect deployment name."),
    timezone: str | None = typer.Option(None, "--timezone", help="IANA timezone of the cron (default UTC)."),
) -> None:
    """Serve the retrain flow on a cron schedule in this process (one run at a time; an overlapping run is
    skipped). To run it on workers instead, deploy to a process work pool (README, "Bigger infrastructure")."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    from flows.schedule import serve_schedule, server_configured

    try:
        CronSchedule(cron=cron, timezone=timezone)
    except ValidationError as err:
        _fail(
            f"--cron '{cron}'"
            + (f" --timezone '{timezone}'" if timezone else "")
            + ": "
            + "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
        )

    if not server_configured():
        typer.echo(
            "warning: PREFECT_API_URL is not set: Prefect's ephemeral mode has no scheduler, so no runs "
            "will be created. Start a server (`make prefect-ui`) and export "
            "PREFECT_API_URL=http://127.0.0.1:4200/api.",
            err=True,
        )
    serve_schedule(name, cron, timezone)


@app.command()
def predict(
    texts: list[str] | None = typer.Argument(None, help="Texts to classify."),
    input_file: Path | None = typer.Option(None, "--input", "-i", help=INPUT_HELP),
    output_file: Path | None = typer.Option(
        None, "--output", "-o", help="Write predictions here (.csv/.jsonl/.parquet)."
    ),
    model: str = typer.Option(
        "models:/sora@champion",
        "--model",
        "-m",
        help="A Sora model: MLflow model URI, MLflow model folder, or bundle folder (e.g. models/prune). Only its "
        "bundle is read; a model folder that is not Sora's is refused.",
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        help="Torch intra-op threads (default: $SORA_THREADS, else 1, fastest for a few texts on a busy "
        "machine; more can help a large --input).",
    ),
) -> None:
    """Classify texts with the champion model (label and probability per text, for every task it answers).

    Sora reads only the weights, vocabulary and config of a Sora model, so no code from the model folder runs.
    Loading someone else's MLflow model with MLflow (mlflow.pyfunc.load_model, mlflow models serve) executes
    its code: do that only for models you trust.
    """
    from sora.inference import empty_text_rows, inference_threads

    if threads is not None and threads < 1:
        _fail(f"--threads {threads}: give a whole number >= 1")
    try:
        inference_threads(threads)
    except ValueError as err:
        _fail(str(err))
    if not texts and input_file is None:
        _fail("give texts as arguments or --input FILE")
    if output_file is not None:
        if output_file.is_dir():
            _fail(f"--output {output_file} is a folder; give a file name ending in {', '.join(OUTPUT_TYPES)}")
        if output_file.suffix.lower() not in OUTPUT_TYPES:
            _fail(f"--output {output_file}: unsupported type '{output_file.suffix}'; use {', '.join(OUTPUT_TYPES)}")
    arguments = list(texts or [])
    try:
        from_file = read_texts(input_file) if input_file else []
    except DataError as err:
        _fail(str(err))
    if input_file and not from_file:
        _fail(f"{input_file}: no texts to classify")
    empty_arguments = [i + 1 for i in empty_text_rows(arguments)]
    empty_rows = [i + 1 for i in empty_text_rows(from_file)]
    if empty_arguments or empty_rows:
        where = (
            f"argument {empty_arguments[0]}"
            if empty_arguments
            else f"{input_file}, data row {empty_rows[0]} (header not counted)"
        )
        _fail(f"{len(empty_arguments) + len(empty_rows)} empty text(s), first at {where}: nothing to classify")
    items = arguments + from_file
    from sora.model_source import ModelSourceError, load_predictor

    try:
        predictor = load_predictor(model)
    except ModelSourceError as err:
        _fail(str(err))
    result = predictor.predict_frame(items)
    result.insert(0, "text", items)
    unknown = result.index[result["lang"] == "unknown"].tolist() if "lang" in result else []
    if unknown:
        typer.echo(
            f"warning: {len(unknown)} text(s) are neither Chinese nor English (first: row {unknown[0] + 1}); "
            "their predictions are unreliable",
            err=True,
        )
    cut = result.index[result["truncated"]].tolist() if "truncated" in result else []
    if cut:
        typer.echo(
            f"warning: {len(cut)} text(s) are longer than the model reads (first: row {cut[0] + 1}); "
            "only their beginning was classified",
            err=True,
        )
    if output_file is None:
        # the other tasks' answers between the primary task's and the text: topic=sports 0.912
        others = [c.removesuffix("_label_name") for c in result.columns if c.endswith("_label_name")]
        for _, row in result.iterrows():
            preview = row.text if len(row.text) <= 60 else row.text[:57] + "..."
            tasks = "".join(f"{t}={row[f'{t}_label_name']} {row[f'{t}_probability']:.3f}\t" for t in others)
            typer.echo(f"{row.label_name}\t{row.probability:.3f}\t{tasks}{preview}")
        return
    try:
        write_predictions(result, output_file)
    except DataError as err:
        _fail(str(err))
    typer.echo(f"wrote {len(result)} predictions to {output_file}")


@app.command()
def results(
    output: Path = typer.Option(Path("docs/results.md"), "--output", "-o", help="Where to write the markdown."),
    check: bool = typer.Option(False, "--check", help="Only check that the file matches metrics/ (exit 1 if not)."),
) -> None:
    """Write the results page from metrics/*.json, so the figures in docs/ always match the committed run."""
    from sora.io import write_text
    from sora.results import render

    text = render(Path("metrics"))
    if check:
        if not output.is_file() or output.read_text(encoding="utf-8") != text:
            _fail(f"{output} is out of date with metrics/: run `sora results`")
        typer.echo(f"{output} matches metrics/")
        return
    write_text(output, text)
    typer.echo(f"wrote {output}")


@app.command()
def plots(
    out: Path = typer.Option(Path("dvc_plots"), "--out", "-o", help="Folder for the page (index.html)."),
) -> None:
    """`dvc plots show` as a page that renders offline: vega, vega-lite and vega-embed are inlined (fetched once
    from the npm registry into .sora/vega/) instead of loaded from a CDN."""
    import subprocess

    from sora.plots_page import offline_template

    try:
        template = offline_template()
    except DataError as err:
        _fail(str(err))
    cmd = [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template), "-o", str(out)]
    code = subprocess.call(cmd)
    if code:
        _fail(f"`dvc plots show` exited with {code}")
    typer.echo(f"wrote {out / 'index.html'} (opens offline)")


@app.command()
def ui(
    which: str = typer.Argument(..., help="mlflow or prefect"),
    port: int | None = typer.Option(None, help="Port (default 5000 for MLflow, 4200 for Prefect)."),
) -> None:
    """Start the MLflow or Prefect UI on 127.0.0.1 against this repo's stores."""
    import os
    import subprocess

    from sora.config import load_params
    from sora.tracking.runs import tracking_uri

    bin_dir = Path(sys.executable).parent
    if which == "mlflow":
        uri = tracking_uri(load_params())
        cmd = [
            str(bin_dir / "mlflow"),
            "server",
            "--backend-store-uri",
            uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port or 5000),
            "--workers",
            "1",
        ]
    elif which == "prefect":
        cmd = [str(bin_dir / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port or 4200)]
    else:
        _fail(f"unknown UI '{which}': use mlflow or prefect")
    typer.echo(" ".join(cmd))
    raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))


def main() -> None:
    """Console entry point: a params.yaml problem is one line naming the key, not a traceback."""
    import os

    from sora.config import ConfigError

    # Prefect gives its ephemeral server 20 s to answer; the first start on a new database migrates it, which
    # takes longer than that on a busy 2-core machine. A value the user sets wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline machines log a failure otherwise
    # One Prefect history per project, the one `make` uses: `sora run`, `sora ui prefect` and `sora schedule`
    # all read and write ./.prefect, not the user's ~/.prefect.
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
    try:
        app()
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
