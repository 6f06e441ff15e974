"""Launch: build a sweep spec from a form, check it, and queue it for the worker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from landscape_core.errors import UserError
from landscape_core.plan import versions
from landscape_core.plan.identity import plan
from landscape_core.plan.model_files import catalogue, remote_code_files
from landscape_core.plan.preflight import preflight
from landscape_core.readers.capability import companions
from landscape_core.spec.config import (
    AxisSpec,
    DirectionSpec,
    ModelSpec,
    PromptSetSpec,
    SweepSpec,
    SystemPromptSpec,
    choices,
)
from landscape_core.spec.first_run import DEFAULT, first_run
from landscape_core.spec.jailbreak import templates
from landscape_core.spec.judges import names
from landscape_core.submit import submit
from pages.common import md_text, prompt_upload, show_user_error, store, store_root, whole_number

CUSTOM_MODELS = {
    "Local directory (safetensors)": "local",
    "Hugging Face id (local cache only)": "hub",
    "GGUF file": "gguf",
}
BETA_POINTS = 5  # a second axis the first run lacks: fewer points, as 2D costs the square
DIRECTION_TYPES = {
    "1D random": ("random",),
    "2D random": ("random", "random"),
    "1D interpolation toward a checkpoint": ("interpolation",),
    "2D interpolation x random": ("interpolation", "random"),
}


def _remote_code_choice(model: dict[str, Any]) -> bool:
    """Off unless the user ticks it, after a warning that names the files it would run."""
    try:
        files = remote_code_files(ModelSpec.from_dict(model))
    except UserError:
        files = []  # no such model yet: the preflight below says why
    if files:
        names = ", ".join(f.name for f in files)
        st.warning(
            md_text(f"This model ships Python code ({names}). It runs only if you tick the "
                    "box below, with this tool's rights: tick it only for code you trust."),
            icon=":material/code:",
        )  # fmt: skip
    return st.checkbox(
        "Run the model's own code (trust_remote_code)",
        value=False,
        help="Needed only for architectures transformers does not know. Off by default.",
    )


def _choice(label: str, options: dict[str, str], default: str = "") -> str:
    """A radio over the keys of ``options``, each shown as its description."""
    index = list(options).index(default) if default in options else 0
    return st.radio(label, list(options), format_func=options.get, index=index)


def _index(options: Any, value: Any) -> int:
    """Where ``value`` is among ``options``; the first when it is not there."""
    options = list(options)
    return options.index(value) if value in options else 0


def _model_source(model: ModelSpec, ready: dict[str, dict[str, Any]]) -> tuple[str, str]:
    """The form's model source and path for the first run's model."""
    for label, choice in ready.items():
        if dataclasses.replace(ModelSpec.from_dict(choice), dtype=model.dtype) == model:
            return label, ""
    kinds = {kind: label for label, kind in CUSTOM_MODELS.items()}
    if model.kind in kinds:
        return kinds[model.kind], model.path
    return next(iter(ready)), ""


def _first_run() -> SweepSpec:
    """The run the form starts from (the Start page's); a bad first-run.yaml is said."""
    try:
        return first_run(Path(store_root()))
    except UserError as exc:
        show_user_error(exc)
        return SweepSpec.from_dict(DEFAULT)


st.title("Launch a sweep")
st.caption("The sweep runs in the background worker; follow it on the Jobs page.")
start = _first_run()
first_direction = start.directions[0]

left, right = st.columns(2)
with left:
    st.subheader("Model")
    found = catalogue(Path(store_root()) / "models")
    ready = found.choices
    for directory, reason in found.problems.items():
        st.warning(md_text(f"Not offered: {directory}: {reason}"), icon=":material/warning:")
    first_source, first_path = _model_source(start.model, ready)
    offered = [*ready, *CUSTOM_MODELS]
    source_label = st.selectbox("Model source", offered, index=offered.index(first_source))
    if source_label in ready:
        model: dict[str, Any] = dict(ready[source_label])
    else:
        path = st.text_input("Path or id", value=first_path, key="model_path").strip()
        model = {"kind": CUSTOM_MODELS[source_label], "path": path}
        if model["kind"] != "gguf":
            model["trust_remote_code"] = _remote_code_choice(model)
    dtypes = choices(ModelSpec, "dtype")
    dtype = st.selectbox("dtype", dtypes, index=_index(dtypes, start.model.dtype))
    st.subheader("System prompt")
    presets = st.multiselect(
        "Presets (several queue one run each, to compare them)",
        choices(SystemPromptSpec, "preset"),
        default=[start.system_prompt.preset],
    )
    custom_text = (
        st.text_area("Custom system prompt", value=start.system_prompt.text)
        if "custom" in presets
        else ""
    )

    st.subheader("Prompts")
    # MMLU is multiple choice: it runs as a capability companion, not as a safety sweep
    sources = [s for s in choices(PromptSetSpec, "source") if s not in ("file", "mmlu")]
    source = st.selectbox(
        "Prompt set", [*sources, "upload"], index=_index(sources, start.prompts.source)
    )
    prompts: dict[str, Any] = {"source": source}
    if source == "upload":
        upload = st.file_uploader("CSV or JSONL", type=["csv", "jsonl"])
        if upload is not None:
            try:
                saved = prompt_upload(store_root(), upload.name, upload.getvalue())
            except UserError as exc:
                show_user_error(exc)
            else:
                column = st.selectbox(
                    "Text column",
                    list(saved.columns),
                    format_func=lambda c: f"{c} ({saved.columns[c]} rows of text)",
                    help="Only columns of text are offered: a column of numbers is no prompts.",
                )
                prompts = {"source": "file", "path": str(saved.path), "column": column or ""}
                st.caption(f"The first rows of {md_text(saved.name)}:")
                st.dataframe(pd.DataFrame(saved.preview), hide_index=True)  # cells as text
    if source == "jailbreak":
        library = templates()
        name = st.selectbox(
            "Template", list(library),
            format_func=lambda n: f"{n} ({library[n].family})",
            help="Each harmful goal (AdvBench rows 0-79) wrapped in this attack prompt. "
            "More templates: `template_file` in a config (`python -m landscape_core templates`).",
        )  # fmt: skip
        st.caption("The template, {goal} standing for each goal:")
        st.code(library[name].text, language=None, wrap_lines=True)  # literal text
        prompts["template"] = name
    limit = start.prompts.limit or DEFAULT["prompts"]["limit"]
    prompts["limit"] = whole_number("How many prompts", 1, 1000, value=min(limit, 1000))

with right:
    st.subheader("Directions")
    first_kinds = tuple(d.kind for d in start.directions)
    types = list(DIRECTION_TYPES)
    direction_type = st.selectbox(
        "Direction type", types, index=_index(DIRECTION_TYPES.values(), first_kinds)
    )
    kinds = DIRECTION_TYPES[direction_type]
    norms = choices(DirectionSpec, "norm")
    norm = st.selectbox(
        "Normalisation (random directions)", norms, index=_index(norms, first_direction.norm)
    )
    first_seed = first_direction.seed_list()[0] if first_direction.kind == "random" else 0
    seed = int(st.number_input("Seed", 0, 2**31 - 1, value=first_seed))
    repeats = whole_number(
        "Random directions (one landscape per seed)", 1, 50, value=first_direction.repeats,
        help="Several give VISAGE a 95% interval over directions; 5 or more is advised.",
    )  # fmt: skip
    target: dict[str, Any] = {}
    if "interpolation" in kinds:
        choice = st.selectbox("Interpolate toward", [*ready, "Local directory (safetensors)"])
        target = ready.get(choice) or {
            "kind": "local",
            "path": st.text_input("Target checkpoint directory").strip(),
        }
    directions = []
    for axis, dkind in enumerate(kinds):
        if dkind == "interpolation":
            directions.append({"kind": "interpolation", "target": target})
        else:  # d2's seeds follow d1's, so no landscape pairs a direction with itself
            first = seed + axis * max(repeats or 1, 1)  # None: out of range, said above
            many = {"repeats": repeats} if (repeats or 1) > 1 else {}
            directions.append({"kind": "random", "seed": first, "norm": norm, **many})

    st.subheader("Measure")
    measures = {
        "answers": "Generate and judge answers on a grid",
        "refusal-likelihood": "Preview: P(answer opens with a refusal), no generation",
    }
    if kinds == ("random",):
        measures["basin-radius"] = "Find the basin's edges by bisection (no grid)"
    measure = _choice("At each point", measures, start.measure)
    basin: dict[str, Any] = {}
    if measure == "basin-radius":
        c1, c2 = st.columns(2)
        basin = {
            "tolerance": float(c1.number_input("tolerance (alpha)", 0.001, 1.0, value=0.025,
                                               step=0.005, format="%.3f")),
            "max_alpha": float(c2.number_input("max_alpha", 0.01, 100.0, value=0.5, step=0.1)),
        }  # fmt: skip
        st.caption(
            "Probes lie on multiples of the tolerance, so a grid with that step reuses them. "
            "An edge: the smallest |alpha| with ASR = 100%."
        )

    st.subheader("Grid")
    grid = []
    for axis, name in zip(range(len(kinds)), ("alpha", "beta"), strict=False):
        if measure == "basin-radius":
            break
        c1, c2, c3 = st.columns(3)
        given = start.grid[axis] if axis < len(start.grid) else AxisSpec(
            start.grid[0].start, start.grid[0].stop, BETA_POINTS
        )  # fmt: skip
        low = c1.number_input(f"{name} from", -100.0, 100.0, value=float(given.start), step=0.05)
        high = c2.number_input(f"{name} to", -100.0, 100.0, value=float(given.stop), step=0.05)
        num = whole_number(f"{name} points", 1, 1001, value=given.num, where=c3)
        grid.append({"start": float(low), "stop": float(high), "num": num})

    judges = ["keyword"]
    stop = "eos"
    if measure in ("answers", "basin-radius"):
        text_judges = list(names("text"))
        judges = st.multiselect(
            "Judges",
            text_judges,
            default=[j.name for j in start.judges if j.name in text_judges],
            help="keyword is the paper's. More (classifier, llm-judge): `rescore` later.",
        )
        stop = _choice(
            "Stop each answer",
            {
                "eos": "at the end (whole answers, any judge)",
                "verdict": "at its first refusal keyword (faster, keyword judge only)",
            },
            start.generation.stop,
        )
    max_new_tokens = whole_number(
        "max_new_tokens (the paper: 512)", 1, 8192, value=start.generation.max_new_tokens
    )
    capability = st.checkbox(
        "Also measure capability on the same grid",
        help="Fluency (MT-Bench perplexity), over-refusal (XSTest) and MMLU (3 subjects, "
        "5-shot), as separate jobs.",
        disabled=measure == "basin-radius",
    )
    label = st.text_input("Label", value=start.label)
    run_on = _choice(
        "Run on",
        {"local": "this machine", "ray": "Ray cluster (address)"},
        start.runtime.executor,
    )
    ray_address = ""
    if run_on == "ray":
        ray_address = st.text_input(
            "Ray address",
            value=start.runtime.ray_address,
            placeholder="HOST:PORT of `ray start --head`; empty: this machine's cluster",
            help="Every node needs the package and the model files; the store stays here. "
            "Same run id and results as on this machine.",
        ).strip()


def build_specs() -> list[SweepSpec]:
    """One spec per chosen system prompt preset; UserError says what to fix."""
    if None in (prompts["limit"], repeats, max_new_tokens, *(g["num"] for g in grid)):
        raise UserError("a number above is outside its range (marked in red); correct it")
    if not presets:
        raise UserError("choose at least one system prompt preset")
    if prompts["source"] == "upload":
        raise UserError("upload a CSV or JSONL file of prompts, or choose another prompt set")
    specs = []
    for preset in presets:
        system = {"preset": preset, "text": custom_text if preset == "custom" else ""}
        specs.append(
            SweepSpec.from_dict(
                {
                    "label": label if len(presets) == 1 else f"{label} [{preset}]",
                    "model": {**model, "dtype": dtype},
                    "system_prompt": system,
                    "prompts": prompts,
                    "directions": directions,
                    **({"basin": basin} if basin else {"grid": grid}),
                    "generation": {"max_new_tokens": max_new_tokens, "stop": stop},
                    "measure": measure,
                    "judges": [{"name": name} for name in judges],
                    # the first run's other settings (batch size, ...) stay as they are
                    "runtime": {
                        **start.runtime.to_dict(),
                        "executor": run_on,
                        "ray_address": ray_address,
                    },
                }
            ).resolve_paths(Path.cwd())  # the worker runs elsewhere
        )
    return specs


def on_new_versions(specs: list[SweepSpec]) -> tuple[list[SweepSpec], bool]:
    """Runs stored before under other torch/transformers versions: recompute or keep?

    The CLI's --recompute and --accept-versions; the choice travels in each spec's
    runtime, so the worker's sweep does what was chosen. False until a choice is made.
    """
    now = versions.installed()
    seen = []
    for spec in specs:
        run_id = plan(spec, store().file_digest).run_id
        if store().grid(run_id):
            seen += store().version_conflict(run_id, now)
    if not seen:
        return specs, True
    st.warning(
        f"This run exists already, and some of its points were computed under "
        f"{'; '.join(map(versions.describe, versions.distinct(seen)))}; this machine has "
        f"{versions.describe(now)}. Resuming it would mix results of the two.",
        icon=":material/warning:",
    )
    options = {
        "recompute": "Recompute those points under the installed versions",
        "accept": "Keep them: the run's provenance records mixed versions",
    }
    choice = st.radio(
        "Stored points of other versions", list(options), format_func=options.get, index=None
    )
    if choice is None:
        return specs, False
    chosen = []
    for spec in specs:
        runtime = dataclasses.replace(spec.runtime, on_new_versions=choice)
        chosen.append(dataclasses.replace(spec, runtime=runtime))
    return chosen, True


st.divider()
confirmed = True
try:
    specs = build_specs()
    spec, here = specs[0], store()
    check = preflight(
        spec, Path(store_root()), measured=here.measured_pace(spec),
        to_compute=here.points_to_compute(spec),
    )  # fmt: skip
except UserError as exc:
    specs = []
    show_user_error(exc)
else:
    total = f" x {len(specs)} system prompts" if len(specs) > 1 else ""
    st.info(f"Estimate: {check.describe()}{total}.")
    with st.expander(f"The first prompts it will send ({check.n_prompts} in all)"):
        st.dataframe(pd.DataFrame({"prompt": check.first_prompts}), hide_index=True)
    hours = (check.upper or 0) * len(specs) / 3600
    if check.needs_confirmation(len(specs)):  # past CONFIRM_HOURS, as the CLI asks
        st.warning(
            f"This launch may take up to ~{hours:.1f} h on this machine ({check.basis()}). "
            "Fewer points per axis, prompts or max_new_tokens shorten it; finished points "
            "are kept if you cancel.",
            icon=":material/schedule:",
        )
        confirmed = st.checkbox(f"Yes, launch a run of up to ~{hours:.1f} h")
    specs, chosen = on_new_versions(specs)
    confirmed = confirmed and chosen

if st.button("Launch", type="primary", disabled=not (specs and confirmed)):
    if capability:
        specs = [*specs, *(c for spec in specs for c in companions(spec).values())]
    queued = [submit(store(), spec) for spec in specs]
    st.session_state["run_id"] = queued[0].run_id  # Landscape opens the new run, not the last
    st.session_state["last_jobs"] = [q.job_id for q in queued]
    names = ", ".join(str(q.job_id) for q in queued)
    st.success(f"Queued job(s) {names}. Follow them on the Jobs page.")
    st.page_link("pages/jobs_page.py", label="Open Jobs", icon=":material/pending_actions:")
