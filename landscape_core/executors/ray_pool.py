"""The Ray executor: a pool of actors, each holding the model, fed one point at a time.

The driver (the sweep) keeps the visiting order and the store; a free actor takes the
next point, so scheduling is dynamic. Each actor loads the model once, rebuilds the
directions from their seeds, perturbs its own copy in place, generates and judges,
and sends back only the point's rows. A point whose actor dies is given to the next
free actor, and a fresh actor takes the dead one's place; the driver stores each
point once. Before any work, every actor's view of the model files (size and sha256)
must equal the driver's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from landscape_core.engine.decoder import Generation
from landscape_core.engine.perturb import Perturber
from landscape_core.errors import Cancelled, UserError
from landscape_core.executors import ActorState, Done, Pick, SessionInfo, ShouldStop
from landscape_core.executors.local import inputs_of, open_session, session_info
from landscape_core.hashing import sha256_file
from landscape_core.judging.registry import make_judge
from landscape_core.measure import NamedJudge, compute
from landscape_core.plan.identity import Plan, judge_label, plan
from landscape_core.plan.model_files import identity_files
from landscape_core.spec.config import SweepSpec
from landscape_core.store.records import GridPoint, PointResult

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the driver looks at should_stop while actors compute
STOP_WAIT_S = 60.0  # how long a stopped actor may take to finish its decoding step
CONNECT_TIMEOUT_S = 5.0
LOOPBACK = "127.0.0.1"  # a cluster this tool starts binds here where Ray allows it
RAY_CURRENT_CLUSTER = "/tmp/ray/ray_current_cluster"  # what `ray start` leaves
MAX_ATTEMPTS = 3  # a point that takes down this many actors fails the sweep


@dataclass(frozen=True)
class NodeView:
    """What one actor sees: its node, and the files and prompts that name the run."""

    node: str
    pid: int
    run_id: str
    prompts_hash: str
    files: dict[str, tuple[int, str]]  # label -> (size in bytes, sha256)
    judges: tuple[str, ...]


def file_view(p: Plan) -> dict[str, tuple[int, str]]:
    """Size and digest of every file that decides the run (targets' files prefixed)."""
    specs = [("", p.spec.model)] + [
        (f"target{n}/", d.target) for n, d in enumerate(p.spec.directions) if d.target
    ]
    view = {}
    for prefix, model in specs:
        for label, path in identity_files(model).items():
            view[prefix + label] = (path.stat().st_size, sha256_file(path))
    return view


class PointActor:
    """One model on one Ray worker; ``compute`` one point at a time.

    ``stop`` runs in its own concurrency group, so it lands while ``compute`` decodes:
    the decoder polls the flag before every step, so a cancel ends the point within
    one generation step and the weights go back to the base. (A threaded actor,
    ``max_concurrency=2``, would do the same, but decodes 10-30% slower here.)
    """

    def __init__(self, spec: dict[str, Any], root: str, labels: list[str], threads: int) -> None:
        self.spec = SweepSpec.from_dict(spec)
        here = Path(root)  # the store's directory on a shared path or this machine
        self.root = here if here.is_dir() else Path.home() / ".cache" / "llm-landscape"
        self.labels = labels
        self.threads = threads
        self.stopping = threading.Event()
        self.plan: Plan | None = None
        self.rep: int | None = None
        self.perturber: Perturber | None = None

    def view(self) -> NodeView:
        self.plan = plan(self.spec, sha256_file)
        judges = [judge_label(j, sha256_file) for j in self.spec.judges][: len(self.labels)]
        # two Ray nodes may share a host (a CPU box running two `ray start`): the id tells
        node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
        return NodeView(
            node, os.getpid(), self.plan.run_id, self.plan.prompts.hash,
            file_view(self.plan), tuple(judges),
        )  # fmt: skip

    def open(self) -> SessionInfo:
        if self.plan is None:
            self.view()
        assert self.plan is not None
        self.root.mkdir(parents=True, exist_ok=True)
        self.session = open_session(self.plan, self.root, self.threads)
        judges = [
            NamedJudge(label, make_judge(j, self.root / "models"))
            for label, j in zip(self.labels, self.spec.judges, strict=False)
        ]
        self.inputs = inputs_of(self.plan, self.session, judges)
        return session_info(self.session)

    def use_reference(self, answers: list[str]) -> None:
        self.inputs = dataclasses.replace(self.inputs, reference=list(answers))

    def compute(self, rep: int, point: GridPoint) -> PointResult | None:
        """The point's rows; None when ``stop`` came first."""
        if rep != self.rep:
            self._restore()
            self.session.use_directions(self.spec.replicates()[rep])
            self.perturber, self.rep = self.session.perturber(), rep
        assert self.perturber is not None
        try:
            return compute(self.perturber, self.session, self.inputs, point, self.stopping.is_set)
        except Cancelled:
            self._restore()
            return None

    def origin_generations(self) -> list[Generation]:
        self._restore()
        return self.session.generate(self.inputs.texts, self.inputs.add_special, None)

    def answer_nll(self, texts: list[str], answers: list[str]) -> list[tuple[float, int]]:
        self._restore()
        return self.session.answer_nll(texts, answers, self.inputs.add_special)

    @ray.method(concurrency_group="control")
    def stop(self) -> None:
        self.stopping.set()

    def _restore(self) -> None:
        """The base weights, bit for bit (the perturber's exit), before any other use."""
        if self.perturber is not None:
            self.perturber.restore()
        self.perturber, self.rep = None, None


RemoteActor = ray.remote(concurrency_groups={"control": 1})(PointActor)


def connect(address: str) -> None:
    """Join the cluster at ``address``, or else the running local one (or a new one).

    That is what a bare ``ray.init()`` does. An unreachable address fails at once with
    what to do, instead of Ray's minutes of retries.
    """
    if ray.is_initialized():
        return
    # a cluster started here runs its actors at a local run's priority (Ray's
    # default of 15 makes them yield to every other process, and slows them)
    os.environ.setdefault("RAY_worker_niceness", "0")
    if address and address != "auto" and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S).close()
        except (OSError, ValueError) as exc:
            raise UserError(
                f"no Ray cluster answers at {address} ({exc}); start one there with "
                "`ray start --head --port=6379`, give its address as HOST:PORT, or run "
                "without --ray"
            ) from None
    own = not address and not local_cluster_address()
    options = {"address": "local", "_node_ip_address": LOOPBACK, "include_dashboard": False}
    try:
        ray.init(
            **(options if own else {"address": address or None}),
            log_to_driver=False,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserError(f"could not join the Ray cluster at {address or 'local'}: {exc}") from None
    if own:  # a cluster of this process's own ends with it, even after a kill -9
        watch_driver(os.getpid())


def local_cluster_address() -> str | None:
    """The address of a Ray cluster already running on this machine, as ray.init finds it.

    Ray reads ``RAY_ADDRESS``, then the file ``ray start`` leaves in its temp folder;
    a file whose cluster no longer answers names none.
    """
    address = os.environ.get("RAY_ADDRESS", "")
    if not address:
        try:
            address = Path(RAY_CURRENT_CLUSTER).read_text().strip()
        except OSError:
            return None
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or LOOPBACK, int(port)), CONNECT_TIMEOUT_S).close()
    except (OSError, ValueError):
        return None
    return address


def watch_driver(pid: int) -> subprocess.Popen[bytes]:
    """Start the watchdog that ends this driver's cluster when the driver dies."""
    return subprocess.Popen(
        [sys.executable, "-m", "landscape_core.executors.ray_watchdog", str(pid)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,  # a kill of the driver's process group spares it
        cwd=str(Path(__file__).resolve().parents[2]),
    )  # fmt: skip


class Points:
    """The points still to hand out: those whose actor died first, then the picker's."""

    def __init__(self, pick: Pick) -> None:
        self.pick = pick
        self.retry: deque[GridPoint] = deque()
        self.attempts: dict[int, int] = {}
        self.exhausted = False

    def next(self) -> GridPoint | None:
        if self.retry:
            return self.retry.popleft()
        point = None if self.exhausted else self.pick()
        self.exhausted = point is None
        return point

    def again(self, point: GridPoint) -> int:
        """Hand ``point`` out again, first; returns how many actors it has taken down."""
        self.retry.appendleft(point)
        self.attempts[point.idx] = self.attempts.get(point.idx, 0) + 1
        return self.attempts[point.idx]

    def empty(self) -> bool:
        return self.exhausted and not self.retry


@dataclass
class Slot:
    """The driver's record of one actor."""

    name: str
    handle: Any
    state: str = "loading"
    node: str = ""
    pid: int = 0
    point: GridPoint | None = None
    done: int = 0
    busy_s: float = 0.0
    view: Any = None  # a replacement actor's pending NodeView
    opening: Any = None  # ... and its pending ``open``: it takes no call before that ends
    started: float = field(default_factory=time.monotonic)

    def public(self) -> ActorState:
        where = "" if self.point is None else f"alpha={self.point.alpha:g} beta={self.point.beta:g}"
        return ActorState(
            self.name, self.node, self.pid, self.state,  # type: ignore[arg-type]
            where, self.done, self.busy_s,
        )  # fmt: skip


@dataclass(frozen=True)
class ActorPool:
    """How many actors, and what each one asks Ray for."""

    cuda: bool
    actors: int
    threads: int  # torch threads per actor (0: torch's default)
    options: dict[str, Any]


def actor_pool(spec: SweepSpec, resources: dict[str, float]) -> ActorPool:
    """One GPU per actor on CUDA, else ``threads`` CPUs each; refuses what cannot start.

    An actor asking for a GPU the cluster lacks would wait in Ray's queue forever, so
    ``device: cuda`` on a cluster without GPUs, or more actors than GPUs, is a UserError.
    """
    runtime = spec.runtime
    gpus = int(resources.get("GPU", 0))
    device = spec.model.device
    if device == "cuda" and gpus == 0:
        raise UserError(
            "model.device is cuda but the Ray cluster has no GPU: start Ray on GPU nodes, "
            "or set model.device to auto or cpu"
        )
    cuda = device != "cpu" and gpus > 0
    if cuda and runtime.ray_actors > gpus:
        raise UserError(
            f"runtime.ray_actors {runtime.ray_actors} needs one GPU each but the Ray cluster "
            f"has {gpus}: set ray_actors to {gpus} or fewer (0: one per GPU)"
        )
    per_actor = max(runtime.threads, 1)
    fits = gpus if cuda else int(resources.get("CPU", 1)) // per_actor
    return ActorPool(
        cuda=cuda,
        actors=runtime.ray_actors or max(fits, 1),
        # torch threads per actor: its CPU slot, so actors never oversubscribe a node
        threads=runtime.threads if cuda else per_actor,
        options={
            "num_cpus": 0 if cuda else per_actor,
            "num_gpus": 1 if cuda else 0,
            "max_restarts": 0,
        },
    )


class RayExecutor:
    """Points over a pool of Ray actors; see the module docstring."""

    def __init__(
        self,
        p: Plan,
        root: Path,
        labels: list[str],
        on_actors: Callable[[list[ActorState]], None] = lambda states: None,
    ) -> None:
        runtime = p.spec.runtime
        connect(runtime.ray_address)
        self.plan, self.root, self.labels = p, root, labels
        self.on_actors = on_actors
        self.published: list[ActorState] = []
        self.expected = file_view(p)
        self.reference: list[str] = []
        pool = actor_pool(p.spec, ray.cluster_resources())
        self.cuda, self.threads, self.options = pool.cuda, pool.threads, pool.options
        n = pool.actors
        self.made = 0
        self.slots = [self._new_slot() for _ in range(n)]
        self._publish()
        try:
            views = ray.get([s.handle.view.remote() for s in self.slots])
            for slot, view in zip(self.slots, views, strict=True):
                self._check(slot, view)
            infos = ray.get([s.handle.open.remote() for s in self.slots])
        except RayTaskError as exc:
            self.close()
            raise _cause(exc) from None
        except BaseException:
            self.close()
            raise
        self.session_info = infos[0]
        for slot, info in zip(self.slots, infos, strict=True):
            self._agree(slot, info)
            slot.state = "idle"
        self._publish()
        log.info("Ray: %d actor(s) on %s", n, sorted({s.node for s in self.slots}))

    def _new_slot(self) -> Slot:
        spec = self.plan.spec.to_dict()
        handle = RemoteActor.options(**self.options).remote(
            spec, str(self.root), self.labels, self.threads
        )
        self.made += 1
        return Slot(f"actor-{self.made - 1}", handle)

    def _check(self, slot: Slot, view: NodeView) -> None:
        """Refuse an actor that sees other model files, prompts or judges than the driver."""
        slot.node, slot.pid = view.node, view.pid
        differ = [
            f"{label}: {here[0]} bytes sha256 {here[1][:12]} here, "
            + (f"{there[0]} bytes sha256 {there[1][:12]}" if there else "missing")
            + " there"
            for label, here in sorted(self.expected.items())
            if (there := view.files.get(label)) != here
        ]
        if view.prompts_hash != self.plan.prompts.hash:
            differ.append("the prompt set differs (another version of the package?)")
        if list(view.judges) != self.labels:
            differ.append(f"judges {list(view.judges)} there, {self.labels} here")
        if differ:
            raise UserError(
                f"Ray actor {slot.name} on node {view.node} sees other files than this "
                "machine; put the same model files on every node (a shared path, or the "
                "same Hugging Face cache) and the same package version:\n  " + "\n  ".join(differ)
            )

    def _agree(self, slot: Slot, info: SessionInfo) -> None:
        mine = self.session_info
        if (info.device, info.dtype) != (mine.device, mine.dtype):
            raise UserError(
                f"Ray actor {slot.name} on {slot.node} runs {info.device}/{info.dtype}, "
                f"others {mine.device}/{mine.dtype}; one landscape needs one "
                "numeric setting: set model.device and model.dtype"
            )

    def _publish(self) -> None:
        """Send the actors' states when they changed (the loop calls this at every poll)."""
        states = self.actors()
        if states != self.published:
            self.published = states
            self.on_actors(states)

    def actors(self) -> list[ActorState]:
        return [s.public() for s in self.slots]

    def use_reference(self, answers: Sequence[str]) -> None:
        self.reference = list(answers)
        ray.get([s.handle.use_reference.remote(self.reference) for s in self.slots])

    def landscape(self, rep: int, pick: Pick, done: Done, should_stop: ShouldStop) -> bool:
        points = Points(pick)
        # a compute (slot.point set), or a replacement's open (slot.opening)
        running: dict[Any, Slot] = {s.opening: s for s in self.slots if s.opening is not None}
        try:
            while True:
                if should_stop is not None and should_stop():
                    self._stop(running, done)
                    return False
                for slot in self.slots:
                    if slot.state == "idle" and (point := points.next()) is not None:
                        slot.state, slot.point, slot.started = "busy", point, time.monotonic()
                        running[slot.handle.compute.remote(rep, point)] = slot
                self._publish()
                if points.empty() and all(s.point is None for s in running.values()):
                    return True  # a replacement still loading is not needed
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    self._collect(ref, running, points, done)
        except BaseException:
            self._stop(running)
            raise

    def _collect(self, ref: Any, running: dict[Any, Slot], points: Points, done: Done) -> None:
        """A finished call: a point's rows to store, a replacement ready, or a dead actor."""
        slot = running.pop(ref)
        point = slot.point
        if point is None:  # a replacement actor finished loading
            self._ready(slot)
            return
        try:
            result = ray.get(ref)
        except RayActorError as exc:
            if points.again(point) >= MAX_ATTEMPTS:
                raise UserError(
                    f"the point alpha={point.alpha} beta={point.beta} took down {MAX_ATTEMPTS} "
                    "Ray actors (out of memory?); finished points are kept, so rerunning resumes"
                ) from None
            log.warning("%s died on point %s (%s); retrying it", slot.name, point.idx, exc)
            running[self._replace(slot)] = slot
            return
        except RayTaskError as exc:
            raise _cause(exc) from None
        slot.busy_s += time.monotonic() - slot.started
        slot.done += 1
        slot.state, slot.point = "idle", None
        if result is not None:
            done(point, result)

    def _replace(self, slot: Slot) -> Any:
        """A fresh actor in a dead one's place; returns its pending ``open``."""
        ray.kill(slot.handle, no_restart=True)
        slot.handle = self._new_slot().handle
        slot.state, slot.point, slot.node, slot.pid = "loading", None, "", 0
        slot.view = slot.handle.view.remote()
        slot.opening = slot.handle.open.remote()
        return slot.opening

    def _ready(self, slot: Slot) -> None:
        """A replacement actor has loaded (this waits for it): check it, then use it."""
        try:
            self._check(slot, ray.get(slot.view))
            info = ray.get(slot.opening)
        except RayTaskError as exc:
            raise _cause(exc) from None
        slot.view = slot.opening = None
        self._agree(slot, info)
        if self.reference:
            ray.get(slot.handle.use_reference.remote(self.reference))
        slot.state = "idle"

    def _stop(self, running: dict[Any, Slot], done: Done | None = None) -> None:
        """Tell every actor to stop; wait (bounded) for each point in flight to end.

        A point that ended anyway is stored (``done``); one an actor abandoned stays
        on its slot, state 'stopped', for the Jobs page to show.
        """
        for slot in self.slots:
            slot.handle.stop.remote()
        computing = {ref: s for ref, s in running.items() if s.point is not None}
        ready: list[Any] = []
        if computing:
            ready, _ = ray.wait(list(computing), num_returns=len(computing), timeout=STOP_WAIT_S)
        for ref in ready:
            slot = computing[ref]
            try:
                result = ray.get(ref)
            except (RayActorError, RayTaskError):
                continue
            if result is not None and done is not None and slot.point is not None:
                done(slot.point, result)
                slot.point = None
        for slot in self.slots:
            slot.state = "stopped"
        running.clear()
        self._publish()

    def _first(self, method: str, *args: Any) -> Any:
        """Call one live actor (the next if it died) for an unperturbed measure."""
        for slot in sorted(self.slots, key=lambda s: s.opening is not None):
            try:
                if slot.opening is not None:
                    self._ready(slot)
                return ray.get(getattr(slot.handle, method).remote(*args))
            except RayActorError:
                continue
            except RayTaskError as exc:
                raise _cause(exc) from None
        raise UserError("every Ray actor died; finished points are kept, so rerunning resumes")

    def origin_generations(self) -> list[Generation]:
        return self._first("origin_generations")

    def answer_nll(self, texts: list[str], answers: list[str]) -> list[tuple[float, int]]:
        return self._first("answer_nll", texts, answers)

    def close(self) -> None:
        for slot in self.slots if hasattr(self, "slots") else []:
            ray.kill(slot.handle, no_restart=True)


def _cause(exc: RayTaskError) -> BaseException:
    """The actor's own error: a UserError keeps its message, anything else its type."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, UserError):
        return UserError(str(cause))
    return cause if isinstance(cause, BaseException) else exc
