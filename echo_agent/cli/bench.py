"""`echo-agent bench …`: benchmarks that run in homes of their own (never the user's store or adapters)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from echo_agent.agent import Verify
from echo_agent.bench.run import ARMS, BenchPolicy
from echo_agent.cli.common import fail, json_safe, print_json

bench_app = typer.Typer(help="Benchmarks (each runs in a temporary home of its own).", no_args_is_help=True)


def parse_train_options(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs for TrainConfig fields, each value converted to the field's type."""
    from echo_agent.errors import EchoAgentError
    from echo_agent.updater.train import TrainConfig

    defaults = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"target_modules"}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise EchoAgentError(f"--train {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        default = getattr(defaults, key)
        kind = float if default is None else type(default)
        try:
            out[key] = kind(value)
        except ValueError:
            raise EchoAgentError(f"--train {item!r}: {value!r} is not a valid {kind.__name__}") from None
    return out


@bench_app.command("retrieval")
def retrieval_command(
    rounds: Annotated[int | None, typer.Option("--rounds", min=1, help="Rounds of every task per arm "
                                               "(default 4; 3 with --policy model).")] = None,
    tasks: Annotated[int | None, typer.Option("--tasks", min=1, help="Tasks in the generated world "
                                              "(default 12; 10 with --policy model).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the world, its tasks and verification.")] = 0,
    minutes: Annotated[float | None, typer.Option("--minutes", min=0.0, help="Overall time budget: stop cleanly "
                                                  "when spent and report what ran.")] = None,
    arms: Annotated[str, typer.Option("--arms", help="Comma-separated: frozen, learning.")] = "frozen,learning",
    policy: Annotated[BenchPolicy, typer.Option("--policy", help="scripted (look-ups from the task definitions; "
                                                "the model only predicts) or model (the model chooses and "
                                                "answers).")] = BenchPolicy.SCRIPTED,
    verify: Annotated[Verify, typer.Option("--verify", help="sample (a fraction of confident recalls is run "
                                           "anyway), all (every retrieval predicted and run) or none.")]
    = Verify.SAMPLE,
    model: Annotated[str, typer.Option("--model", help="'embedded', a transformers directory or a GGUF file.")]
    = "embedded",
    suite_file: Annotated[Path | None, typer.Option("--suite", help="A YAML/JSON suite of your own tasks "
                                                    "(see README).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training passes per update cycle.")] = 5,
    train: Annotated[list[str] | None, typer.Option("--train", help="More TrainConfig settings as KEY=VALUE "
                                                    "(lr=5e-4, lora_r=8, …); repeatable.")] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", max=0.0, help="Recall threshold (min token "
                                                    "log-prob, so at most 0; default: the setting).")] = None,
    verify_fraction: Annotated[float | None, typer.Option("--verify-fraction", min=0.0, max=1.0, help="Fraction "
                                                          "of confident recalls run anyway with --verify sample "
                                                          "(default: the setting).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda (cuda serves the arms with "
                                        "transformers).")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="What serves the arms: auto (llama.cpp for a "
                                                 "GGUF model where it runs), llamacpp or local; training always "
                                                 "uses transformers.")] = "auto",
    out: Annotated[Path | None, typer.Option("--out", help="Directory for the arms' homes, the workspace and "
                                             "the plot (default: a new temporary directory).")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", help="PNG plot path (default: <out>/bench.png).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of the table.")] = False,
) -> None:
    """Measure how recall reduces look-ups on repeated tasks: frozen model vs learning model.

    Builds a fresh workspace of facts no model can know (from --seed) or your --suite, runs every task for
    --rounds rounds in two arms, each in its own temporary home: frozen (no updates) and learning (one update
    cycle between rounds). Reports per round and arm: executed retrievals per task, recalls, verified recall
    precision, answer accuracy (and how many right answers say it in the model's own words), where the answers
    came from (memory, recall, executed look-ups) and held-out env-token CE; ends with a RESULT line.

    Example: echo-agent bench retrieval --minutes 30
    """
    from rich.console import Console

    from echo_agent.bench.report import calibration_table, plot, result_line, rounds_table
    from echo_agent.bench.run import Bench, BenchConfig
    from echo_agent.bench.suite import load_suite
    from echo_agent.config import Settings
    from echo_agent.ui import literal

    if backend not in ("auto", "llamacpp", "local"):
        raise fail(f"--backend {backend!r}: choose auto, llamacpp or local", 2)
    chosen = tuple(a.strip() for a in arms.split(",") if a.strip())
    if not chosen or set(chosen) - set(ARMS):
        raise fail(f"--arms {arms!r}: choose from {', '.join(ARMS)} (comma-separated)", 2)
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        why = "is not a directory" if not out.is_dir() else \
            "is not empty (an earlier run's stores and adapters there would carry over into this one)"
        raise fail(f"--out {out} {why}; give a new or empty directory", 2)
    err = Console(stderr=True, highlight=False)
    suite = load_suite(suite_file) if suite_file else None
    cfg = BenchConfig(rounds=rounds, tasks=tasks, seed=seed, minutes=minutes, arms=chosen, policy=policy,
                      verify=verify, model=model, epochs=epochs, train=parse_train_options(train or []),
                      recall_threshold=threshold, verify_fraction=verify_fraction, device=device, backend=backend,
                      out_dir=out)
    bench = Bench(cfg, suite, settings=Settings.load(), on_progress=lambda m: err.print(literal(m, "dim")))
    report = bench.run()
    png = plot(report, plot_path or Path(report["root"]) / "bench.png")
    report["plot"] = str(png)
    (Path(report["root"]) / "report.json").write_text(json.dumps(json_safe(report), indent=2))
    if as_json:
        print_json(report)
        return
    console = Console() if Console().is_terminal else Console(width=150)  # a log keeps the whole table
    console.print(rounds_table(report))
    if (calib := calibration_table(report)) is not None:
        console.print(calib)
    if report["stopped_early"]:
        console.print(f"[yellow]stopped early: the {minutes:g}-minute budget was spent[/yellow]")
    console.print(literal(f"plot: {png}\nreport, homes and workspace: {report['root']}"))
    typer.echo(result_line(report))
