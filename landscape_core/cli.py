"""Command line: ``python -m landscape_core COMMAND``.

Bad input exits with status 2 and a message that says what to fix; Ctrl-C exits with
130 after the weights are restored, keeping every finished point.

The recipes (finetune, paper, train-classifier) import torch at their top, so their
commands import them when they run; every other command reaches torch only through
``sweep.run``, and only when a point is to be computed.

Each command is two functions side by side: ``add_X`` builds its arguments and
``cmd_X`` runs it; ``COMMANDS`` lists them in ``--help``'s order. Reports are worded
by the readers (``format_landscape``, ``format_defence``, ``format_edge``, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from landscape_core import sweep
from landscape_core.defence import defend
from landscape_core.defence.report import format_defence
from landscape_core.errors import UserError
from landscape_core.judging.agreement import (
    evaluate,
    kappa_difference,
    load_labelled,
    report,
)
from landscape_core.plan.identity import judge_label, plan
from landscape_core.plan.preflight import CONFIRM_HOURS, preflight
from landscape_core.readers import capability
from landscape_core.readers.breakage import breakage, breakage_dict, format_breakage
from landscape_core.readers.export import answers_export, to_csv
from landscape_core.readers.inspect_log import inspect_log
from landscape_core.readers.labelling import store_labelled
from landscape_core.readers.report import html_report
from landscape_core.readers.results import format_landscape, landscape
from landscape_core.rescore import Judging, rescore
from landscape_core.risk import preflight as risk
from landscape_core.risk import validation
from landscape_core.risk.report import format_edge, format_lookahead, format_ranking
from landscape_core.risk.spec import (
    BASIN,
    GRADIENT_BASIN,
    PROMPTS,
    Probes,
    RiskSettings,
    data_spec,
    model_spec,
)
from landscape_core.spec.config import (
    FINETUNE_RECIPES,
    SHOT_RECIPES,
    BasinSpec,
    JudgeSpec,
    SweepSpec,
    load_yaml,
)
from landscape_core.spec.jailbreak import templates
from landscape_core.spec.judges import names as judge_names
from landscape_core.spec.judges import resolve_label
from landscape_core.store.database import DB_NAME
from landscape_core.store.runs import Store
from landscape_core.submit import submit, submit_rescore
from landscape_core.worker import serve

if TYPE_CHECKING:  # what add_subparsers returns (argparse names it privately)
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

log = logging.getLogger("landscape_core")
DEFAULT_STORE = "cache"
JUDGE_HELP = "a judge's name or stored label (default: the run's first judge, keyword first)"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `export RUN | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file write (an export, a finetune's checkpoint) on a full disk
        if exc.errno != errno.ENOSPC:
            raise
        print(
            f"error: the disk is full: {exc.filename or 'a file'} could not be written; "
            "free space there, or write to a disk with room (--store, --out)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: finished points are kept; run the same command to resume",
            file=sys.stderr,
        )
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m landscape_core",
        description="Measure the safety landscape of a chat model (Peng et al., NeurIPS'24).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _common() -> argparse.ArgumentParser:
    """``--store`` and ``-v``, which every command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", default=DEFAULT_STORE, help="data directory (default: cache)")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    return common


def _ray() -> argparse.ArgumentParser:
    """``--ray [ADDRESS]``, for the commands that compute points."""
    ray = argparse.ArgumentParser(add_help=False)
    ray.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="compute points on Ray actors: the cluster at HOST:PORT, or without an address "
        "the running local cluster (a new one if none runs); same run id and results",
    )
    return ray


def _on_new_versions() -> argparse.ArgumentParser:
    """``--recompute`` / ``--accept-versions``: a resume under other torch/transformers."""
    parent = argparse.ArgumentParser(add_help=False)
    choice = parent.add_mutually_exclusive_group()
    choice.add_argument(
        "--recompute",
        dest="on_new_versions",
        action="store_const",
        const="recompute",
        help="stored points of other torch/transformers versions are computed again",
    )
    choice.add_argument(
        "--accept-versions",
        dest="on_new_versions",
        action="store_const",
        const="accept",
        help="keep them; the run's provenance records the mixed versions",
    )
    return parent


def _long_run() -> argparse.ArgumentParser:
    """``--yes``, for the commands that start a sweep."""
    long_run = argparse.ArgumentParser(add_help=False)
    long_run.add_argument(
        "--yes",
        action="store_true",
        help=f"start a run estimated past {CONFIRM_HOURS:g} h without asking (the app asks too)",
    )
    return long_run


def _store(args: argparse.Namespace) -> Store:
    """The store at ``--store``; a new one is said on stderr (a mistyped path made one)."""
    if not (Path(args.store).expanduser() / DB_NAME).exists():
        print(
            f"note: no store in {args.store}; creating a new, empty one there "
            "(check --store if you meant an existing one)",
            file=sys.stderr,
        )
    return Store.open(args.store)


def _config(args: argparse.Namespace) -> SweepSpec:
    """The config file's spec, on Ray if ``--ray`` says so (runtime only: same run id)."""
    spec = SweepSpec.from_yaml(args.config)
    choice = getattr(args, "on_new_versions", None)
    if choice is not None:  # runtime only, like --ray: same run id
        spec = dataclasses.replace(
            spec, runtime=dataclasses.replace(spec.runtime, on_new_versions=choice)
        )
    if args.ray is None:
        return spec
    runtime = dataclasses.replace(spec.runtime, executor="ray", ray_address=args.ray)
    return dataclasses.replace(spec, runtime=runtime)


def _confirm(spec: SweepSpec, store: Store, yes: bool) -> None:
    """The Launch page's guard: a new run that may pass ``CONFIRM_HOURS`` needs a yes.

    It reads the estimate's high end (``Preflight.upper``), as the app does: a first
    guess with no measured history asks when its range reaches past the threshold.

    Asked on a terminal (y/N); without one, only ``--yes`` starts it. A run already in
    the store was started once and resumes without asking. Preflight runs either way,
    so its checks (the model's files, the chat template's limits) come first.
    """
    check = preflight(  # device as the app
        spec,
        store.root,
        measured=store.measured_pace(spec),
        to_compute=store.points_to_compute(spec),
    )
    if not check.needs_confirmation() or store.grid(plan(spec, store.file_digest).run_id):
        return
    what = f"this run may take more than {CONFIRM_HOURS:g} h: {check.describe()}"
    shorter = "fewer points per axis, prompts or max_new_tokens shorten it"
    if yes:
        print(f"note: {what}; starting it (--yes)", file=sys.stderr)
        return
    if sys.stdin.isatty():
        if input(f"{what}. Start it? [y/N] ").strip().lower() in ("y", "yes"):
            return
        raise UserError(f"not started: {shorter}")
    raise UserError(f"{what}: pass --yes to start it anyway; {shorter}")


def add_sweep(sub: Commands) -> None:
    p = sub.add_parser(
        "sweep",
        parents=[_common(), _ray(), _long_run(), _on_new_versions()],
        help="run (or resume) a sweep from a YAML config",
    )
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = _config(args)
    store = _store(args)
    _confirm(spec, store, args.yes)
    bar: tqdm | None = None

    def on_progress(progress: sweep.Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=progress.total, initial=progress.done, unit="pt", desc=progress.run_id)
        bar.update(progress.done - bar.n)
        if progress.actors:
            busy = sum(a.state == "busy" for a in progress.actors)
            bar.set_postfix_str(f"Ray: {busy}/{len(progress.actors)} actors busy")

    try:
        summary = sweep.run(spec, store, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    print(
        f"run {summary.run_id}: {summary.status}, {summary.computed} point(s) computed "
        f"in {summary.seconds:.1f} s, {summary.failed} failed"
    )
    for err in summary.errors:
        print(f"  failed: {err}")
    print(f"see it with: python -m landscape_core show {summary.run_id} --store {args.store}")
    return 0


def add_submit(sub: Commands) -> None:
    p = sub.add_parser(
        "submit",
        parents=[_common(), _ray(), _long_run(), _on_new_versions()],
        help="queue a sweep for the worker",
    )
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_submit)


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _config(args).resolve_paths(Path.cwd())
    store = _store(args)
    _confirm(spec, store, args.yes)  # preflight: the worker never meets a spec the CLI refuses
    queued = submit(store, spec)
    print(
        f"queued job {queued.job_id} (run {queued.run_id}); a worker runs it "
        "(python -m landscape_core worker)"
    )
    return 0


def add_worker(sub: Commands) -> None:
    p = sub.add_parser("worker", parents=[_common()], help="run queued jobs in this process")
    p.add_argument("--exit-when-idle", action="store_true", help="stop when the queue is empty")
    p.add_argument("--idle-timeout", type=float, help="stop after this many idle seconds")
    p.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    if not serve(_store(args), exit_when_idle=args.exit_when_idle, idle_timeout=args.idle_timeout):
        print("another worker already serves this store", file=sys.stderr)
    return 0


def add_finetune(sub: Commands) -> None:
    p = sub.add_parser("finetune", parents=[_common()], help="train an adapter on a recipe's data")
    p.add_argument("recipe", choices=(*FINETUNE_RECIPES, "file"))
    p.add_argument("--shots", type=int, default=0, help=f"K examples for {', '.join(SHOT_RECIPES)}")
    p.add_argument("--data", default="", help="file: a CSV of prompt,answer pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--config", type=Path, help="YAML with more FinetuneSpec fields")
    p.add_argument("--out", type=Path, help="output directory (default: STORE/models/NAME)")
    p.set_defaults(func=cmd_finetune)


def cmd_finetune(args: argparse.Namespace) -> int:
    from landscape_core.finetune import FinetuneSpec, finetune  # torch

    data: dict[str, Any] = load_yaml(args.config) if args.config else {}
    data.update(recipe=args.recipe, shots=args.shots, seed=args.seed, epochs=args.epochs)
    if args.data:
        data["data"] = str(Path(args.data).expanduser().resolve())
    spec = FinetuneSpec.from_dict(data)
    store = _store(args)
    bar = tqdm(desc=f"finetune {spec.name}", unit="step")

    def on_step(record: dict[str, Any]) -> None:
        bar.update(1)
        bar.set_postfix(loss=record["loss"], epoch=record["epoch"])

    try:
        out = finetune(spec, store.models_dir, out=args.out, on_step=on_step)
    finally:
        bar.close()
    print(f"adapter written to {out}")
    print(
        f"use it with model: {{kind: {spec.base.kind}, variant: {spec.base.variant}, "
        f"adapter: {out}}}"
    )
    return 0


def add_paper(sub: Commands) -> None:
    p = sub.add_parser("paper", parents=[_common()], help="the paper's experiments in miniature")
    p.add_argument("--out", type=Path, default=Path("docs/paper-mini.md"))
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write the report from the stored results; train and generate nothing",
    )
    p.add_argument(
        "--risk-only",
        action="store_true",
        help="rewrite only the risk validation's section of --out, from "
        "docs/risk-validation.csv (no store needed)",
    )
    p.set_defaults(func=cmd_paper)


def cmd_paper(args: argparse.Namespace) -> int:
    from landscape_core.recipes.paper import run_paper
    from landscape_core.recipes.paper_risk_validation import refresh_risk_section

    if args.risk_only:
        print(f"wrote {refresh_risk_section(args.out)} (its risk validation section)")
        return 0
    out = run_paper(
        _store(args),
        args.out,
        progress=lambda msg: print(msg, flush=True),
        compute=not args.report_only,
    )
    print(f"wrote {out}")
    return 0


def add_runs(sub: Commands) -> None:
    p = sub.add_parser("runs", parents=[_common()], help="list stored runs")
    p.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    frame = _store(args).runs_frame()
    if frame.empty:
        print("no runs yet; start one with: python -m landscape_core sweep configs/smoke.yaml")
        return 0
    frame = frame.drop(columns=["created", "last_finished"]).round({"compute_s": 1})
    print(frame.to_string(index=False))
    return 0


def add_defend(sub: Commands) -> None:
    p = sub.add_parser(
        "defend",
        parents=[_common(), _ray()],
        help="the perturbed-ensemble defence of a config's `defend:` and the adaptive attack",
    )
    p.add_argument("config", type=Path)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_defend)


def cmd_defend(args: argparse.Namespace) -> int:
    spec = _config(args)
    out = defend.run(spec, _store(args), say=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(out.to_dict(), indent=2))
        return 0
    print(format_defence(out))
    return 0


def add_trajectory(sub: Commands) -> None:
    p = sub.add_parser(
        "trajectory",
        parents=[_common()],
        help="a finetune's checkpoints on the plane of its landscape, with their ASR",
    )
    p.add_argument("adapter", type=Path, help="a finetune's output directory (with checkpoints/)")
    p.add_argument("--seed", type=int, default=123, help="the plane's random direction")
    p.add_argument("--no-eval", action="store_true", help="coordinates only, no generation")
    p.add_argument("--on", type=Path, help="draw on this other finetune's plane (same base)")
    p.add_argument("--plane-config", type=Path, help="also write the plane's 2D sweep config here")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_trajectory)


def cmd_trajectory(args: argparse.Namespace) -> int:
    from landscape_core.recipes.trajectory import as_json, plane_spec, trajectory

    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else print
    points = trajectory(
        args.adapter, _store(args), args.seed, evaluate=not args.no_eval, say=say, on=args.on
    )
    plane = plane_spec((args.on or args.adapter).resolve(), args.seed)
    if args.plane_config:
        args.plane_config.write_text(plane.to_yaml())
        say(f"its landscape (the Landscape page draws the path on it): "
            f"python -m landscape_core sweep {args.plane_config}")  # fmt: skip
    if args.json:
        print(json.dumps(as_json(plane, args.adapter, points), indent=2))
    return 0


def add_risk(sub: Commands) -> None:
    p = sub.add_parser(
        "risk", parents=[_common(), _ray()],
        help="preflight a finetuning dataset: k steps of your recipe in a throwaway copy",
    )  # fmt: skip
    p.add_argument("data", nargs="+",
                   help=f"a recipe ({', '.join(FINETUNE_RECIPES)}) or a CSV of "
                   "prompt,answer pairs; several with --rank")  # fmt: skip
    p.add_argument("--rank", action="store_true", help="rank several datasets by the score")
    p.add_argument("--steps", type=int, default=Probes.steps, help="optimizer steps to look ahead")
    p.add_argument("--rows", type=int, default=Probes.rows,
                   help="rows the initial loss and anchoring read, a seeded sample when the "
                   "data hold more (0: every row, for the rows to remove among all)")  # fmt: skip
    p.add_argument("--lr", type=float, default=1e-3, help="the recipe's learning rate")
    p.add_argument("--lora-rank", type=int, default=8, help="the recipe's LoRA rank")
    p.add_argument("--batch-size", type=int, default=8, help="the recipe's batch size")
    p.add_argument("--epochs", type=int, default=3, help="the recipe's epochs (its time)")
    p.add_argument("--edge", action="store_true",
                   help="the old measure instead: the gradient's basin edge against "
                   "random directions (--directions, --threshold, --max-alpha, "
                   "--tolerance, --limit)")  # fmt: skip
    p.add_argument("--shots", type=int, default=0, help=f"K for {', '.join(SHOT_RECIPES)}")
    p.add_argument("--model", default="", help="a local model dir or GGUF (default: aligned demo)")
    p.add_argument("--directions", type=int, default=RiskSettings.directions,
                   help="random directions in the band (two edges each)")  # fmt: skip
    p.add_argument("--seed", type=int, default=RiskSettings.seed,
                   help="the recipe's training seed (--edge: the band's first seed)")  # fmt: skip
    p.add_argument("--threshold", type=float, default=BASIN.threshold,
                   help="ASR %% at which the basin ends")  # fmt: skip
    p.add_argument("--max-alpha", type=float, default=BASIN.max_alpha,
                   help="how far the random band is searched")  # fmt: skip
    p.add_argument("--tolerance", type=float, default=BASIN.tolerance,
                   help=f"the random band's step (the data's direction: "
                   f"{GRADIENT_BASIN.tolerance:g} up to {GRADIENT_BASIN.max_alpha:g})")  # fmt: skip
    p.add_argument("--limit", type=int, default=PROMPTS.limit, help="held-out AdvBench prompts")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_risk)


def cmd_risk(args: argparse.Namespace) -> int:
    if len(args.data) > 1 and not args.rank:
        raise UserError("several datasets: add --rank to rank them, or give one")
    if args.edge:
        if len(args.data) > 1:
            raise UserError("--edge preflights one dataset; --rank uses the lookahead")
        return _risk_edge(args)
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    recipe = {"seed": args.seed, "learning_rate": args.lr, "lora_rank": args.lora_rank,
              "batch_size": args.batch_size, "epochs": args.epochs}  # fmt: skip
    if args.steps < 1 or args.rows < 0:
        raise UserError("risk: --steps must be >= 1 and --rows >= 0 (0 reads every row)")
    probes = dataclasses.replace(risk.PROBES, steps=args.steps, rows=args.rows)
    reports = [
        risk.lookahead(data_spec(d, args.shots), _store(args), model_spec(args.model), recipe,
                       probes, say=say)
        for d in args.data
    ]  # fmt: skip
    if args.json:
        out = [r.to_dict() for r in reports]
        print(json.dumps(out if args.rank else out[0], indent=2))
        return 0
    if args.rank:
        print(format_ranking(reports))
        return 0
    print(format_lookahead(reports[0], validation.load(validation.RESULTS)))
    return 0


def _risk_edge(args: argparse.Namespace) -> int:
    (data_arg,) = args.data
    settings = RiskSettings(
        model=model_spec(args.model),
        prompts=dataclasses.replace(PROMPTS, limit=args.limit),
        basin=BasinSpec(tolerance=args.tolerance, max_alpha=args.max_alpha,
                        threshold=args.threshold),
        gradient_basin=dataclasses.replace(GRADIENT_BASIN, threshold=args.threshold),
        directions=args.directions, seed=args.seed,
    )  # fmt: skip
    data = data_spec(data_arg, args.shots)
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    out = risk.run(data, _store(args), settings, say=say, ray=args.ray)
    if args.json:
        print(json.dumps(out.to_dict(), indent=2))
        return 0
    print(format_edge(out))
    return 0


def add_templates(sub: Commands) -> None:
    p = sub.add_parser(
        "templates", parents=[_common()], help="list the jailbreak templates: name<TAB>family"
    )
    p.add_argument("--file", default="", help="a YAML or CSV of more templates to check and list")
    p.set_defaults(func=cmd_templates)


def cmd_templates(args: argparse.Namespace) -> int:
    for template in templates(args.file).values():
        print(f"{template.name}\t{template.family}")
    return 0


def _run_judge(store: Store, run_id: str, asked: str | None) -> str:
    """The stored label of the judge asked for by name or label (default: the run's first)."""
    return resolve_label(asked, store.judges(run_id))


def add_show(sub: Commands) -> None:
    p = sub.add_parser("show", parents=[_common()], help="a run's landscape and VISAGE")
    p.add_argument("run", help="run id (or a unique prefix), or 'latest'")
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.add_argument("--judge", default=None, help=JUDGE_HELP)
    p.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    run_id = store.run(args.run)["run_id"]
    data = landscape(store, run_id, _run_judge(store, run_id, args.judge))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(format_landscape(data))
    return 0


def add_export(sub: Commands) -> None:
    p = sub.add_parser(
        "export", parents=[_common()], help="every generation of a run, or an HTML report"
    )
    p.add_argument("run")
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "html", "inspect"),
        default="csv",
        help="html: one offline file with figures, VISAGE +- CI, config, answers; "
        "inspect: an Inspect AI eval log (JSON) for `inspect view`",
    )
    p.add_argument("--judge", default=None, help=JUDGE_HELP)
    p.add_argument("--out", type=Path, help="file to write (default: stdout)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    run = store.run(args.run)
    args.judge = _run_judge(store, run["run_id"], args.judge)
    if args.format == "html":
        text = html_report(store, run["run_id"], args.judge)
        _emit(text, args.out, f"wrote the report of run {run['run_id']} to {args.out}")
        return 0
    if args.format == "inspect":
        log = inspect_log(store, run, args.judge)
        said = f"wrote {len(log['samples'])} samples of run {run['run_id']} to {args.out}"
        _emit(json.dumps(log, ensure_ascii=False), args.out, said)
        return 0
    frame = answers_export(store, run, args.judge)
    if args.format == "csv":  # every field quoted; a cell that could start a formula gets a '
        text = to_csv(frame)
        if args.out:
            args.out.write_text(text, encoding="utf-8", newline="")  # its \r\n as they are
        else:
            sys.stdout.write(text)
    else:
        frame.to_json(args.out or sys.stdout, orient="records", lines=True, force_ascii=False)
    if args.out:
        print(f"wrote {len(frame)} generations to {args.out}")
    return 0


def _emit(text: str, out: Path | None, said: str) -> None:
    """``text`` into the file ``out`` (saying ``said``), or to stdout without one."""
    if out:
        out.write_text(text, encoding="utf-8")
        print(said)
    else:
        sys.stdout.write(text)


def _judge() -> argparse.ArgumentParser:
    """The judge's flags, for the commands that judge stored or labelled answers."""
    judge = argparse.ArgumentParser(add_help=False)
    judge.add_argument(
        "--judge",
        default="keyword",
        choices=judge_names("text") + judge_names("model"),
        help="keyword is the paper's",
    )
    judge.add_argument(
        "--judge-path", default="", help="the classifier, llm-judge or guard model's files"
    )
    judge.add_argument(
        "--refusal-labels", default="", help="classifier labels that mean refusal, a,b"
    )
    judge.add_argument("--input", default="answer", choices=["answer", "pair"])
    judge.add_argument("--format", default="rubric", choices=["rubric", "llama-guard"])
    return judge


def _judge_spec(args: argparse.Namespace) -> JudgeSpec:
    labels = tuple(x.strip() for x in args.refusal_labels.split(",") if x.strip())
    return JudgeSpec(
        name=args.judge,
        path=args.judge_path,
        refusal_labels=labels,
        input=args.input,
        format=args.format,
    )


def add_rescore(sub: Commands) -> None:
    p = sub.add_parser(
        "rescore",
        parents=[_common(), _judge()],
        help="judge stored generations again, no generator",
    )
    p.add_argument("run")
    p.add_argument(
        "--coherence",
        action="store_true",
        help="measure each answer's coherence (the unperturbed model's NLL, repetition) "
        "instead of judging; loads the model once, never regenerates",
    )
    p.add_argument(
        "--queue",
        action="store_true",
        help="queue it as a job for the worker (progress, cancel and resume on the Jobs "
        "page) instead of judging here; the job judges only answers the judge lacks",
    )
    p.set_defaults(func=cmd_rescore)


def cmd_rescore(args: argparse.Namespace) -> int:
    store = _store(args)
    run_id = store.run(args.run)["run_id"]
    if args.coherence and args.queue:
        raise UserError("--coherence runs here only; drop --queue")
    if args.coherence:
        n = sweep.measure_coherence(store, run_id)
        print(f"measured the coherence of {n} answers of run {run_id}")
        return 0
    spec = _judge_spec(args)
    if args.queue:
        queued = submit_rescore(store, run_id, spec)
        print(
            f"queued job {queued.job_id} (judge {spec.name} on run {run_id}); a worker runs "
            "it (python -m landscape_core worker)"
        )
        return 0
    bar: tqdm | None = None

    def on_progress(progress: Judging) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=progress.total, initial=progress.done, unit="pt", desc=run_id)
        bar.update(progress.done - bar.n)

    try:
        done = rescore(store, run_id, spec, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"re-scored {done.n_answers} generations of run {run_id} with {done.label}")
    return 0


def add_capability(sub: Commands) -> None:
    p = sub.add_parser(
        "capability",
        parents=[_common()],
        help="fluency and over-refusal on the same grid as a safety config",
    )
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_capability)


def cmd_capability(args: argparse.Namespace) -> int:
    spec = SweepSpec.from_yaml(args.config)
    store = _store(args)
    for name, companion in capability.companions(spec).items():
        summary = sweep.run(companion, store)
        print(f"{name}: run {summary.run_id}, {summary.computed} point(s) computed")
    safety = sweep.run(spec, store)
    frame = capability.capability_frame(store, safety.run_id)
    print(frame.drop(columns=["idx", "i", "j"]).round(2).to_string(index=False))
    return 0


def add_breakage(sub: Commands) -> None:
    p = sub.add_parser(
        "breakage",
        parents=[_common()],
        help="does refusal fall before fluency? a 1D run's safety and fluency edges",
    )
    p.add_argument("config", type=Path, help="a 1D safety config (several directions)")
    p.add_argument("--judge", default=None, help=JUDGE_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object for scripts")
    p.add_argument(
        "--quick-fluency", action="store_true",
        help=f"fluency on MT-Bench's first {capability.FLUENCY_PROMPTS[1]} questions, "
        f"not all {capability.FLUENCY_PROMPTS[0]} (a quarter of its cost)",
    )  # fmt: skip
    p.set_defaults(func=cmd_breakage)


def cmd_breakage(args: argparse.Namespace) -> int:
    spec = SweepSpec.from_yaml(args.config)
    if spec.ndim != 1 or spec.measure != "answers":
        raise UserError(
            "breakage reads a 1D grid of answers: give a config with one direction axis "
            "and `measure: answers` (a basin search has no grid for its fluency companion)"
        )
    store = _store(args)
    safety = sweep.run(spec, store)
    size = capability.FLUENCY_PROMPTS[1 if args.quick_fluency else 0]
    sweep.run(capability.companions(spec, size)["fluency"], store)
    judge = _run_judge(store, safety.run_id, args.judge)
    found = breakage(store, safety.run_id, judge)
    if found is None:
        raise UserError(f"run {safety.run_id} is unfinished; run the command again")
    print(json.dumps(breakage_dict(found), indent=2) if args.json else format_breakage(found))
    return 0


def add_train_classifier(sub: Commands) -> None:
    p = sub.add_parser(
        "train-classifier",
        parents=[_common()],
        help="build a small refusal classifier from the bundled model (for --judge classifier)",
    )
    p.set_defaults(func=cmd_train_classifier)


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from landscape_core.recipes.refusal_classifier import build

    out = build(_store(args).models_dir)
    print(f"classifier in {out}; judge with it:")
    print(f"  --judge classifier --judge-path {out} --refusal-labels refused")
    return 0


def add_judge_eval(sub: Commands) -> None:
    p = sub.add_parser(
        "judge-eval",
        parents=[_common(), _judge()],
        help="score a human-labelled CSV with a judge: accuracy, kappa, ...",
    )
    p.add_argument(
        "file", type=Path, nargs="?",
        help="CSV with prompt, completion and label columns (or --from-store)",
    )  # fmt: skip
    p.add_argument(
        "--from-store", action="store_true",
        help="use the labels people gave answers in this store (the app's Answers page)",
    )  # fmt: skip
    p.add_argument("--labeller", default=None, help="with --from-store: one labeller's only")
    p.add_argument("--top", type=int, default=10, help="disagreements to print")
    p.add_argument(
        "--against", default="", help="a text judge to compare kappa with, e.g. xstest-prefix"
    )
    p.set_defaults(func=cmd_judge_eval)


def cmd_judge_eval(args: argparse.Namespace) -> int:
    spec = _judge_spec(args)
    store = _store(args)
    label = judge_label(spec, store.file_digest)
    if args.from_store == (args.file is not None):
        raise UserError("give a labelled CSV or --from-store, one of the two")
    labelled = store_labelled(store, args.labeller) if args.from_store else load_labelled(args.file)
    result = evaluate(labelled, spec, store.models_dir)
    print(report(result, label, top=args.top))
    if args.against:
        base = evaluate(labelled, JudgeSpec(name=args.against), store.models_dir)
        d = kappa_difference(result.frame.human_refused, result.frame.judge_refused,
                             base.frame.judge_refused)  # fmt: skip
        print(
            f"\nkappa {label} - kappa {args.against} = {d.difference:+.3f} "
            f"[{d.low:+.3f}, {d.high:+.3f}] ({d.method})"
        )
    return 0


# Each command's arguments are built by its add_X, right above its handler; this is
# their order in --help.
COMMANDS: tuple[Callable[[Commands], None], ...] = (
    add_sweep,
    add_submit,
    add_worker,
    add_finetune,
    add_paper,
    add_defend,
    add_trajectory,
    add_templates,
    add_runs,
    add_show,
    add_export,
    add_capability,
    add_breakage,
    add_risk,
    add_train_classifier,
    add_rescore,
    add_judge_eval,
)
