"""The retrieval-count benchmark: the same tasks over several rounds, a frozen arm and a learning arm.

Each arm runs in a temporary home of its own (its own store and adapters; never the user's). Rounds alternate
between the arms, so a run stopped by its time budget has run both arms equally far. Between rounds the learning
arm runs one update cycle (`run_cycle`: the real data selection, training, evaluation and gate); the frozen arm
never trains. Both arms recall: a confident prediction replaces a look-up, a sample of recalls is verified.

Policies:
- `scripted`: each task's look-ups come from its definition (a `ScriptedBackend` policy), so only the world
  model is measured; the model is the predictor. The task passes when its checker matches the observations,
  recalled or executed, and the scripted answer is the text the checker found.
- `model`: the agent's model chooses the look-ups and answers, with the assistant's own prompt; the checker is
  applied to its answer, and every task counts as repeated (the same question every round).

Counted per round and arm, from the arm's store: executed retrievals (verification runs included), recalls,
exact recalls (the harness runs every recalled command off the record and compares output and status line),
verified recall precision (verified right / verified, over predictions at or above the threshold), answer
accuracy and how many right answers state the fact in the model's own words (`grounding.stated`: not only in an
output shown under or in place of them), where each answer came from (`records.answer_source`: memory, recall
or executed look-ups) and how many of each were right, and held-out env-token CE: the current model's env CE on
the round's episodes before any cycle has trained on them, with each recalled observation replaced by what the
command really prints.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent.agent import Verify
from echo_agent.bench.report import result_line_values
from echo_agent.bench.suite import Suite, SuiteTask
from echo_agent.bench.workspace import build_workspace, generated_suite
from echo_agent.config import Settings
from echo_agent.grounding import stated
from echo_agent.records import ANSWER_SOURCES, SessionKind, StepKind, StepSource, answer_source

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore

class BenchPolicy(StrEnum):
    """Who chooses the look-ups and writes the answers."""

    SCRIPTED = "scripted"
    """The task definitions (the model only predicts): the world model is measured alone."""
    MODEL = "model"
    """The agent's model, with the assistant's own prompt."""


ARMS = ("frozen", "learning")
TRAIN_DEFAULTS = {"batch_tokens": 256}
"""A bench episode is ~80 tokens: the cycle's default batches would give a round a handful of optimizer steps,
and facts are learned in optimizer steps (docs/measurements.md, "The bench's training settings")."""
BENCH_SYSTEM_PROMPT = "You are a terminal assistant. Reply with one ```bash command, or an ```answer."
"""The scripted policy's whole prompt: a short one, because every prompt token is trained on in each pass."""


DEFAULT_SIZE = {BenchPolicy.SCRIPTED: (4, 12), BenchPolicy.MODEL: (3, 10)}
"""(rounds, tasks) when not given. With the model in charge an episode carries the assistant's whole prompt, so a
cycle trains several times the tokens of a scripted one: 3 rounds of 10 tasks fit a 30-minute budget on 2 slow
CPU cores, 4 of 12 did not (docs/measurements.md). Round 3 is the first that can recall or answer from memory."""


@dataclass
class BenchConfig:
    rounds: int | None = None
    """Rounds of every task per arm (None: DEFAULT_SIZE for the policy)."""
    tasks: int | None = None
    """Tasks of the generated suite, ignored with a suite file (None: DEFAULT_SIZE for the policy)."""
    seed: int = 0
    """World, task and verification seed."""
    minutes: float | None = None
    """Overall time budget; the run stops cleanly when it is spent and reports what ran."""
    arms: tuple[str, ...] = ARMS
    """Which arms to run: frozen (never trains), learning (one update cycle between rounds)."""
    policy: BenchPolicy = BenchPolicy.SCRIPTED
    verify: Verify = Verify.SAMPLE
    """Which confident recalls are executed anyway (`all`: every retrieval predicted and executed)."""
    model: str = "embedded"
    """The model: "embedded", a transformers directory or a GGUF file."""
    epochs: int = 5
    """Training passes per update cycle (chosen by measurement: docs/measurements.md)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Other TrainConfig fields for the cycle (lr, lora_r, batch_tokens, …), over TRAIN_DEFAULTS."""
    recall_threshold: float | None = None
    """None: Settings.recall_threshold."""
    verify_fraction: float | None = None
    """None: Settings.recall_verify_fraction."""
    device: str = "auto"
    backend: str = "auto"
    """What serves the arms (see `BackendName`); the update cycle always trains with transformers."""
    out_dir: Path | None = None
    """Where the arms' homes and the workspace go (default: a new temporary directory)."""

    def __post_init__(self) -> None:
        self.policy = BenchPolicy(self.policy)
        rounds, tasks = DEFAULT_SIZE[self.policy]
        self.rounds = rounds if self.rounds is None else self.rounds
        self.tasks = tasks if self.tasks is None else self.tasks


@dataclass
class EpisodeRecord:
    task: int
    round: int
    episode_id: str | None
    passed: bool
    status: str
    answer: str | None


class ScriptedPolicy:
    """Replies for the scripted policy: the current task's look-ups in order, then the answer the checker
    finds in the observations (or "not found")."""

    def __init__(self) -> None:
        self.task: SuiteTask | None = None
        self.commands: tuple[str, ...] = ()

    def __call__(self, messages: Sequence[dict[str, str]]) -> str:
        from echo_agent.observation import RECALL_MARKER

        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        after = messages[last_user + 1:]
        done = sum(m["role"] == "assistant" for m in after)
        if done < len(self.commands):
            return f"```bash\n{self.commands[done]}\n```"
        seen = "\n".join(m["content"] for m in after if m["role"] == "tool")
        seen = "\n".join(line for line in seen.splitlines() if line != RECALL_MARKER)
        found = self.task.matched(seen) if self.task else None
        return f"```answer\n{found if found is not None else 'not found'}\n```"


def observations_text(steps: Sequence[dict]) -> str:
    return "\n".join(f"{s.get('output') or ''}{s.get('status') or ''}" for s in steps)


class Bench:
    """One benchmark run. `make_predictor()` builds the model (shared by the arms; each arm picks its adapter
    before every episode); tests pass a ScriptedBackend. `run_cycle` is the update cycle (injectable)."""

    def __init__(self, cfg: BenchConfig, suite: Suite | None = None, *, settings: Settings | None = None,
                 make_predictor: Callable[[], Any] | None = None, cycle: Callable[..., Any] | None = None,
                 on_progress: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.suite = suite or generated_suite(cfg.seed, cfg.tasks)
        base = settings or Settings()
        # The arms' settings: the suite's read-only commands, and the bench's threshold (the cycle's retention
        # check counts what the adapter in use can recall at that threshold).
        self.settings = dataclasses.replace(
            base, read_only_commands=[*base.read_only_commands, *self.suite.read_only],
            recall_threshold=base.recall_threshold if cfg.recall_threshold is None else cfg.recall_threshold)
        self.make_predictor = make_predictor or self._predictor
        self.cycle = cycle
        self.say = on_progress or (lambda msg: None)
        self.started = time.monotonic()
        self.stopped_early = False
        self.real_outputs: dict[str, tuple[str, str]] = {}

    # --- budget ---------------------------------------------------------------------------------------------

    def minutes_left(self) -> float | None:
        if self.cfg.minutes is None:
            return None
        return self.cfg.minutes - (time.monotonic() - self.started) / 60

    def out_of_time(self) -> bool:
        left = self.minutes_left()
        if left is not None and left <= 0:
            self.stopped_early = True
        return self.stopped_early

    # --- models ---------------------------------------------------------------------------------------------

    def _predictor(self) -> Any:
        """The configured backend (llama.cpp is CPU-only: `--device cuda` runs transformers)."""
        from echo_agent.models import make_backend, resolve_backend

        backend, why = resolve_backend("local" if self.cfg.device == "cuda" else self.cfg.backend, self.cfg.model)
        if why:
            self.say(why)
        extra = {"device": self.cfg.device} if backend == "local" else {"threads": self.settings.threads}
        return make_backend(backend, self.cfg.model, **extra)

    # --- the run --------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from echo_agent.agent import Agent, AgentConfig
        from echo_agent.memory.store import TrajectoryStore
        from echo_agent.models.scripted import ScriptedBackend
        from echo_agent.shell import ShellSession
        from echo_agent.stats import calibration
        from echo_agent.updater import registry

        root = Path(self.cfg.out_dir) if self.cfg.out_dir else Path(tempfile.mkdtemp(prefix="echo-bench-"))
        root.mkdir(parents=True, exist_ok=True)
        workspace = build_workspace(self.suite, root / "workspace")
        predictor = self.make_predictor()
        base_hash = registry.model_identity(self.cfg.model)[1]
        arms: dict[str, dict[str, Any]] = {}
        with ExitStack() as stack:
            measure = stack.enter_context(ShellSession(cwd=workspace))
            for name in self.cfg.arms:
                home = root / name
                store = stack.enter_context(TrajectoryStore(home / "store.db", self.settings, durable=False))
                shell = stack.enter_context(ShellSession(cwd=workspace))
                script = ScriptedPolicy()
                policy = (ScriptedBackend(script, name="scripted-bench") if self.cfg.policy == BenchPolicy.SCRIPTED
                          else predictor)

                # Both arms start as a fresh install does (the shipped starter, where it was made for this model);
                # only the learning arm's store ever gets a promoted adapter.
                def adapter(store=store, choosing=False):
                    return registry.adapter_in_use(store, base_hash, choosing)

                # With a scripted policy the whole prompt is one short system message: prompt tokens cost training.
                # The model policy gets the assistant's own prompt, in-context examples included: it must choose.
                scripted = self.cfg.policy == BenchPolicy.SCRIPTED
                prompt = [{"role": "system", "content": BENCH_SYSTEM_PROMPT}] if scripted else None
                config = AgentConfig(
                    examples=0 if scripted else AgentConfig.examples, prompt=prompt, max_steps=4 if scripted else 6,
                    choose=not scripted,  # the scripted look-ups are the task's definition, run as written
                    memory=not scripted,  # the scripted policy looks up every task: the world model alone is measured
                    recall=True, verify=self.cfg.verify, recall_threshold=self.cfg.recall_threshold,
                    verify_fraction=self.cfg.verify_fraction, seed=self.cfg.seed)
                session = store.start_session(kind=SessionKind.BENCH, model=getattr(predictor, "name", None), shell="bash")
                agent = Agent(policy, shell, store, predictor=predictor, config=config, settings=self.settings, adapter=adapter,
                              policy_adapter=functools.partial(adapter, choosing=True), session_id=session)
                arms[name] = {"home": home, "store": store, "agent": agent, "script": script, "adapter": adapter,
                              "rounds": []}
            for round_no in range(1, self.cfg.rounds + 1):
                for name, arm in arms.items():
                    if self.out_of_time():
                        break
                    records = self._round(arm, predictor, round_no)
                    recalling = arm["agent"].predictor.active()  # env CE: the policy's adapter may be another
                    summary = self.summarize(arm["store"], records, round_no, recalling, measure)
                    summary["choosing"] = arm["adapter"](choosing=True)[0]
                    summary["complete"] = len(records) == len(self.suite.tasks)
                    arm["rounds"].append(summary)
                    self.say(f"{name} round {round_no}: {summary['executed_per_task']:.2f} executed/task, "
                             f"{summary['recalls']} recalls, accuracy {summary['accuracy']:.0%}")
                    if name == "learning" and round_no < self.cfg.rounds and not self.out_of_time():
                        summary["cycle"] = self._cycle(arm)
                        self.say(f"learning cycle after round {round_no}: {summary['cycle']['message']}")
                if self.stopped_early:
                    break
            calibrations = {name: calibration(arm["store"]) for name, arm in arms.items()}
        minutes = (time.monotonic() - self.started) / 60
        report = {
            "suite": self.suite.name, "root": str(root), "stopped_early": self.stopped_early,
            "minutes": minutes, "threshold": self._threshold(),
            "config": {**{k: v for k, v in dataclasses.asdict(self.cfg).items() if k != "out_dir"},
                       "arms": list(self.cfg.arms)},
            "tasks": [{"question": t.question, "kind": t.kind, "commands": list(t.commands),
                       "paraphrased": list(t.paraphrased)} for t in self.suite.tasks],
            "arms": {name: {"home": str(arm["home"]), "rounds": arm["rounds"], "calibration": calibrations[name]}
                     for name, arm in arms.items()},
        }
        report["result"] = result_line_values(report)
        return report

    def _threshold(self) -> float:
        t = self.cfg.recall_threshold
        return self.settings.recall_threshold if t is None else t

    def _round(self, arm: dict[str, Any], predictor: Any, round_no: int) -> list[EpisodeRecord]:
        agent, script = arm["agent"], arm["script"]
        records = []
        for i, task in enumerate(self.suite.tasks):
            if self.out_of_time():
                break
            script.task, script.commands = task, task.commands_for(round_no)
            result = agent.run(task.question)
            if self.cfg.policy == BenchPolicy.SCRIPTED:
                passed = task.check(observations_text(result.steps))
            else:
                passed = result.answer is not None and task.check(result.answer)
            records.append(EpisodeRecord(i, round_no, result.episode_id, passed, result.status, result.answer))
        return records

    def _cycle(self, arm: dict[str, Any]) -> dict[str, Any]:
        from echo_agent.updater import policy
        from echo_agent.updater.cycle import run_cycle, training_note
        from echo_agent.updater.train import TrainConfig

        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        train = {k: v for k, v in {"epochs": self.cfg.epochs, **TRAIN_DEFAULTS, **self.cfg.train}.items()
                 if k in fields}
        left = self.minutes_left()
        if left is not None:  # training stops cleanly inside the budget; evaluation still runs
            train["max_minutes"] = max(0.1, left * 0.8)
        tc = TrainConfig.from_settings(self.settings, **train)
        t0 = time.monotonic()

        def progress(event: str, info: dict) -> None:
            if event == "step" and (info["step"] % 10 == 0 or info["step"] == info["total"]):
                self.say(f"  training step {info['step']}/{info['total']}, loss {info['loss']:.3f}, "
                         f"{info['tokens_per_s']:.0f} tokens/s")
            elif event == "policy" and info["tasks"]:
                self.say(f"  {policy.replaying(info)}")
            elif note := training_note(event, info):
                self.say(f"  {note}")

        report = (self.cycle or run_cycle)(arm["store"], self.settings, home=arm["home"], model=self.cfg.model,
                                           cfg=tc, device=self.cfg.device, on_progress=progress)
        m = report.metrics or {}
        kept = ("heldout_ce", "probe_ce", "gain", "probe_rise", "heldout_action_ce", "policy", "train")
        return {"status": report.status, "adapter_id": report.adapter_id, "message": report.message,
                "chooses": bool(report.decision and report.decision.chooses),
                "seconds": round(time.monotonic() - t0, 1), **{k: m.get(k) for k in kept},
                "retention": {k: v for k, v in (m.get("retention") or {}).items() if k != "lost_steps"}}

    # --- measuring ------------------------------------------------------------------------------------------

    def summarize(self, store: TrajectoryStore, records: list[EpisodeRecord], round_no: int, predictor: Any,
                  measure: Any) -> dict[str, Any]:
        threshold = self._threshold()
        per_kind: dict[str, dict[str, int]] = {k: {"tasks": 0, "executed": 0, "recalls": 0}
                                               for k in ("repeated", "paraphrased")}
        answers = {source: {"tasks": 0, "right": 0} for source in ANSWER_SOURCES}
        recalls = executed = checked = right = confident = exact = 0
        episodes = []
        for rec in records:
            steps = store.episode_steps(rec.episode_id) if rec.episode_id else []
            k = per_kind[self.task_kind(self.suite.tasks[rec.task])]
            k["tasks"] += 1
            ran = recalled = 0
            for s in steps:
                if s["kind"] != StepKind.RETRIEVAL:
                    continue
                if s["source"] == StepSource.RECALLED:
                    recalled += 1
                    recalls += 1
                    k["recalls"] += 1
                    # Measured by the harness on every recall (not the agent's verification sample): the world
                    # does not change, so the real output is run once per command, off the record.
                    exact += int(self.real_output(measure, s["command"]) == (s["output"], s["status"]))
                else:
                    ran += 1
                    executed += 1
                    k["executed"] += 1
                sure = s["confidence_min"] is not None and s["confidence_min"] >= threshold
                confident += int(sure)
                if sure and s["verified"] is not None:
                    checked += 1
                    right += int(s["verified"] == 1)
            source = answer_source(ran, recalled)
            answers[source]["tasks"] += 1
            answers[source]["right"] += int(rec.passed)
            episodes.append((rec, steps))
        n = len(records)
        ce, ce_tokens = self.env_ce(store, episodes, predictor, measure)
        adapter = getattr(predictor, "adapter", None)
        return {
            "round": round_no, "tasks_run": n, "adapter": Path(adapter).name if adapter else None,
            "executed": executed, "recalls": recalls, "confident": confident,
            "executed_per_task": executed / n if n else math.nan,
            "executed_per_task_repeated": _ratio(per_kind["repeated"]["executed"], per_kind["repeated"]["tasks"]),
            "executed_per_task_paraphrased": _ratio(per_kind["paraphrased"]["executed"],
                                                    per_kind["paraphrased"]["tasks"]),
            "recalls_repeated": per_kind["repeated"]["recalls"],
            "recalls_paraphrased": per_kind["paraphrased"]["recalls"],
            "verified": checked, "verified_right": right, "precision": _ratio(right, checked),
            "recalls_exact": exact,
            "accuracy": sum(r.passed for r in records) / n if n else math.nan,
            # right in the model's own words, not only by the output shown under (or in place of) them
            "stated": sum(r.passed and self.suite.tasks[r.task].check(stated(r.answer or "")) for r in records),
            "passed": [r.task for r in records if r.passed], "answers": answers,
            "env_ce": ce, "env_tokens": ce_tokens,
        }

    def task_kind(self, task: SuiteTask) -> str:
        """"paraphrased" when this run asks the task's look-ups in other words from round 2 on: only the scripted
        policy runs a task's commands; with the model in charge every task is the same question again."""
        return task.kind if self.cfg.policy == BenchPolicy.SCRIPTED else "repeated"

    def env_ce(self, store: TrajectoryStore, episodes: list[tuple[EpisodeRecord, list[dict]]], predictor: Any,
               measure: Any) -> tuple[float | None, int]:
        """The predictor's env-token CE on these episodes with real outputs: through its torch model, or through
        llama.cpp's teacher-forced log-probs (`token_logprobs`); None for a predictor with neither."""
        model, tokenizer = getattr(predictor, "model", None), getattr(predictor, "tokenizer", None)
        if tokenizer is None or (model is None and not hasattr(predictor, "token_logprobs")):
            return None, 0
        from echo_agent.transcript import render
        from echo_agent.updater.dataset import episode_windows
        from echo_agent.updater.train import evaluate

        wins = []
        for rec, steps in episodes:
            if not rec.episode_id:
                continue
            real = []
            for s in steps:
                s = dict(s)
                if s["source"] == StepSource.RECALLED:
                    s["output"], s["status"] = self.real_output(measure, s["command"])
                    s["source"], s["trainable"] = StepSource.EXECUTED, 1
                real.append(s)
            rendered = render(store.get_episode(rec.episode_id), real)
            wins += episode_windows(tokenizer, rendered, self.settings.max_seq_len, rec.episode_id)[0]
        wins = [w for w in wins if w.n_env_tokens]
        if not wins:
            return None, 0
        if model is None:
            lps = [(lp, keep) for w in wins for lp, keep in zip(predictor.token_logprobs(w.input_ids), w.env_mask[1:], strict=True)]
            n = sum(keep for _, keep in lps)
            return -sum(lp for lp, keep in lps if keep) / n, n
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return evaluate(model, wins, pad)

    def real_output(self, measure: Any, command: str) -> tuple[str, str]:
        """What `command` prints in the workspace (measured once; the world does not change)."""
        if command not in self.real_outputs:
            r = measure.run(command, timeout=30)
            self.real_outputs[command] = (r.output, r.status)
        return self.real_outputs[command]


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan
