"""The agent loop: ask the model for a reply, run its command (asking first when it is not read-only), record
the step, repeat until the model answers or a limit is reached.

Steered by a few exceptions: `Submitted` (an answer), `LimitsExceeded` (steps or wall time), `FormatError`
(a reply with neither a command nor an answer, which becomes a harness warning the model sees), `Declined` (the
user said no and gave nothing else to do, or the model proposed a declined command again) and `UserQuit` (end of
input at a prompt, which ends the episode as Ctrl-C does). A task looked up here before may be answered from
memory, with nothing run, when the model is sure of the answer and it agrees with what was seen (`remembering.py`).
An answer is grounded (`grounding.py`) before it is given: one that states what the observations do not hold is
replaced by the output it should have read. A new task's first command is chosen by the model among its own reply
and its examples adapted to the task (`choosing.py`); when it fails or prints nothing about the task, a search of
the files here for the task's words (`searching.py`) and the next candidate run before the model answers; when it
read part of the files but missed the lines that best match the task, that search runs once after it. Every
step is committed to the store as it completes; the context is built from the stored (redacted) steps with
`transcript.py`, so what the model saw is exactly what the updater trains on.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from echo_agent import observation as obs
from echo_agent import recall, remembering
from echo_agent.agent_config import AgentConfig, Verify
from echo_agent.choosing import candidates, fallbacks, rank, second_look
from echo_agent.config import Settings
from echo_agent.examples import Example, store_examples
from echo_agent.grounding import ground
from echo_agent.interaction import UI, SilentUI, UserQuit
from echo_agent.memory.adapters import recall_exclusions
from echo_agent.memory.redact import storable
from echo_agent.models.base import ModelBackend, Serving
from echo_agent.prompting import answered_before, build_prompt
from echo_agent.records import Author, EpisodeStatus, SessionKind, StepKind, StepSource, check_task
from echo_agent.repair import absence_check, fix_missing_file
from echo_agent.replies import CLOSE, FormatError, RepeatedLine, RepeatGuard, parse_reply, same_action
from echo_agent.searching import about_task, task_terms
from echo_agent.shell.risk import READ_ONLY, Risk, classify, is_read_only
from echo_agent.transcript import build_context, fit_context, live_step

if TYPE_CHECKING:
    from echo_agent.memory.store import TrajectoryStore
    from echo_agent.shell import ShellSession

__all__ = ["Agent", "AgentConfig", "Declined", "EpisodeResult", "FormatError", "SilentUI", "UI", "UserQuit", "Verify",
           "parse_reply"]


class Submitted(Exception):
    """The model gave its final answer."""


class LimitsExceeded(Exception):
    """Too many steps or too much wall time."""


class Declined(Exception):
    """The user declined a command and gave nothing else to do (or the model proposed it again)."""


@dataclass
class EpisodeResult:
    episode_id: str | None
    status: EpisodeStatus
    answer: str | None
    steps: list[dict[str, Any]] = field(default_factory=list)
    remembered: bool = False
    """The answer came from memory: nothing was run or recalled."""


def _failed(step: dict[str, Any], held: list[str] | None = None) -> bool:
    """Whether the step's command ran and did not work (`obs.did_not_work`: a look-up that printed nothing too), or
    a look-up printed nothing about the task: none of `held`, its words that files here hold (`nproc` for "what ip
    does sorrelbank have"; `searching.task_terms`)."""
    output = (step.get("output") or "") if step.get("kind") == StepKind.RETRIEVAL else None
    if output is not None and not about_task(output, held or []):
        return True
    return step.get("source") == StepSource.EXECUTED and obs.did_not_work(step.get("status"), step.get("note"), output)


class Agent:
    def __init__(
        self,
        policy: ModelBackend,
        shell: ShellSession,
        store: TrajectoryStore | None = None,
        *,
        predictor: ModelBackend | None = None,
        config: AgentConfig | None = None,
        settings: Settings | None = None,
        ui: UI | None = None,
        session_id: str | None = None,
        adapter: Callable[[], tuple[str | None, Path | None]] | None = None,
        policy_adapter: Callable[[], tuple[str | None, Path | None]] | None = None,
    ) -> None:
        self.shell, self.store = shell, store
        # Two roles, one model or two: the policy chooses and answers; the predictor recalls and remembers.
        self.policy, self.predictor = Serving(policy), Serving(predictor or policy)
        self.settings = settings or Settings.load()
        self.config = (config or AgentConfig()).resolved(self.settings)
        self.ui = ui or SilentUI()
        self.adapter = adapter  # returns (adapter id, path) to use; None keeps whatever the backend has
        self.policy_adapter = policy_adapter  # the same for choosing and answering; None: as `adapter`
        self.adapter_id: str | None = None
        self._unsure: set[tuple[str, str | None]] = set()  # look-ups the adapter in use would recall wrong
        self.always: set[str] = set()  # commands approved with [a]lways this session
        self.declined: list[str] = []  # commands the user said no to in this episode
        self._task = ""
        self._ranked: list[str] = []  # a new task's first candidates, best first (choosing.py)
        self._fallbacks: list[str] | None = None  # what runs next while they fail (or after one that missed)
        self._held: list[str] | None = None  # the task's words that files here hold, once asked for
        self._again: str | None = None  # the look-up that answered this task here before (AgentConfig.reuse)
        self._verify_credit = random.Random(self.config.seed).random()  # the sample's start (AgentConfig.verify)
        if store is not None and session_id is None:
            session_id = store.start_session(kind=SessionKind.AGENT, model=getattr(policy, "name", None), shell="bash")
        self.session_id = session_id

    def run(self, task: str, parent_episode_id: str | None = None) -> EpisodeResult:
        """One episode: returns when the model answers or a limit is hit; KeyboardInterrupt is recorded."""
        task = check_task(storable(task))  # an undecodable argv or stdin byte: neither tokenizer nor store takes one
        self._pick_adapter()
        reuse = parent_episode_id is None and self.config.choose and self.config.reuse and self.config.prefill
        # The user's examples, read once: the prompt chooses among them, and a repeated task reuses its own.
        own = store_examples(self.store) if self.store is not None and (reuse or self.config.prompt is None) else []
        if self.config.prompt is not None:
            prompt = [dict(m) for m in self.config.prompt]
        else:
            prompt = build_prompt(task, self.store, self.config.examples, cwd=self.shell.cwd,
                                  listing=self.config.listing, own=own)
        earlier = self._earlier_turns(parent_episode_id)
        episode_id = None
        if self.store is not None:
            episode_id = self.store.start_episode(self.session_id, task, {"messages": prompt},
                                                  adapter_id=self.adapter_id, parent_episode_id=parent_episode_id)
        result = EpisodeResult(episode_id, EpisodeStatus.RUNNING, None)
        self.declined, self._task, self._ranked, self._fallbacks, self._held = [], task, [], None, None
        self._again = self._worked_before(task, own) if reuse else None
        started = time.monotonic()
        try:
            if (remembered := self._from_memory(prompt, task, earlier)) is not None:
                result.status, result.answer, result.remembered = EpisodeStatus.DONE, remembered, True
                return result
            while True:
                if len(result.steps) >= self.config.max_steps:
                    raise LimitsExceeded(f"step limit ({self.config.max_steps}) reached")
                if time.monotonic() - started > self.config.max_seconds:
                    raise LimitsExceeded(f"time limit ({self.config.max_seconds:.0f} s) reached")
                self._step(prompt, task, earlier, result)
        except Submitted as answer:
            seen = [s for _, steps in earlier for s in steps] + result.steps  # a chat's earlier turns count too
            shown = "\n".join(m["content"] for m in prompt if m["role"] == "system")  # the listing is evidence too
            grounded = ground(str(answer), seen, f"{task}\n{shown}", with_output=self.config.show_output)
            result.status, result.answer = EpisodeStatus.DONE, grounded.text
        except Declined:
            result.status = EpisodeStatus.DECLINED
        except LimitsExceeded:
            result.status = EpisodeStatus.LIMIT
        except (KeyboardInterrupt, UserQuit):
            result.status = EpisodeStatus.ABORTED
            raise
        except BaseException:
            result.status = EpisodeStatus.FAILED
            raise
        finally:
            if self.store is not None and episode_id is not None:
                self.store.finish_episode(episode_id, result.status, result.answer)
        return result

    def _step(self, prompt, task, earlier, result: EpisodeResult) -> None:
        context = build_context(prompt, task, result.steps, earlier, settings=self.settings)
        messages = fit_context(context, len(prompt), self.config.context_chars)
        # A new task starts with a look-up; later replies (and chat follow-ups) may answer.
        prefill = ("```bash\n" if not result.steps and not earlier else "```") if self.config.prefill else ""
        if self._ranked and result.steps and self._held is None:
            self._held = task_terms(task, self.shell.cwd)
        if self._ranked and result.steps and all(_failed(s, self._held) for s in result.steps):
            if self._fallbacks is None:  # every look-up so far failed: a search, then the next candidate
                self._fallbacks = fallbacks(task, self._ranked, self.shell.cwd)
            ran = {s.get("command") for s in result.steps}
            while self._fallbacks:
                if (command := self._fallbacks.pop(0)) not in ran:
                    self._act(result, f"```bash\n{command}{CLOSE}", command, messages)
                    return
        elif self._ranked and len(result.steps) == 1 and self._fallbacks is None:  # it worked: did it miss?
            self._fallbacks = []  # one more look at most
            first = result.steps[0]
            if first.get("kind") == StepKind.RETRIEVAL and (command := second_look(
                    task, first.get("command") or "", first.get("output") or "", self.shell.cwd)):
                self._act(result, f"```bash\n{command}{CLOSE}", command, messages)
                return
        reply = self._reply(messages, prefill)
        try:
            kind, text = parse_reply(reply)
        except FormatError:
            self._record(result, reply, None)
            return
        if kind == "answer":
            raise Submitted(text)
        if self.config.choose and not result.steps and not earlier and prefill:
            if self._again:  # what answered this task here before, in place of a new choice
                ranked = [self._again]
            else:
                options = candidates(task, prompt, text, self.shell.cwd, lambda c: self._absent(classify(
                    c, self.settings.read_only_commands)) is None)
                ranked = rank(self.policy, messages, prefill, options)
            chosen, self._ranked = ranked[0], ranked
            if chosen != text:
                text, reply = chosen, f"{prefill}{chosen}{CLOSE}"
        # The same look-up again would print (or recall) the same output: ask for the answer instead.
        if any(s.get("command") == text and s.get("source") in (StepSource.EXECUTED, StepSource.RECALLED)
               for s in result.steps):
            raise Submitted(parse_reply(self._reply(messages, "```answer\n"))[1])
        self._act(result, reply, text, messages)

    def _worked_before(self, task: str, own: list[Example]) -> str | None:
        """The read-only look-up that answered this task here last time (`AgentConfig.reuse`), if any."""
        earlier = answered_before(task, own, self.shell.cwd)
        if earlier is None or not is_read_only(earlier.command, self.settings.read_only_commands):
            return None
        return earlier.command

    def _reply(self, messages: list[dict[str, str]], prefill: str) -> str:
        """The model's next reply, streamed to the UI, starting with `prefill`."""
        if prefill:
            self.ui.reply_token(prefill)
        # A small model sometimes repeats one line until max_new_tokens ("The port is 8080." forty times): the
        # guard ends generation when a line repeats. The reply is what was streamed up to then, exactly as
        # generated (the repeated line included), so the stored reply stays the model's own text.
        guard = RepeatGuard(self.ui.reply_token)
        try:
            gen = self.policy.generate(messages, prefill=prefill, stop=(CLOSE,),
                                       max_new_tokens=self.config.max_new_tokens, on_token=guard)
            return prefill + gen.text
        except RepeatedLine:
            return prefill + guard.text

    def _act(self, result: EpisodeResult, reply: str, command: str, messages: list[dict[str, str]]) -> None:
        risk = classify(command, self.settings.read_only_commands)
        note = ""
        if self.config.repair and risk.level == READ_ONLY and not risk.denied:
            fixed, marker = fix_missing_file(command, self._task, self.shell.cwd)
            if marker and is_read_only(fixed, self.settings.read_only_commands):
                command, note = fixed, marker
        self.ui.command(command, risk)
        if risk.denied:
            self._record(result, reply, command, risk=risk, note=obs.DENIED_MARKER)
            return
        if risk.level == READ_ONLY:
            self._retrieve(result, reply, command, risk, messages, note)
            return
        absent = self._absent(risk)
        if absent is not None:  # a program the shell does not have can do nothing: nothing to ask about
            self._record(result, reply, command, risk=risk, note=obs.no_command_marker(absent))
            return
        if any(same_action(command, d) for d in self.declined):
            self._stop(result, messages, command)  # never ask again about what the user already declined
        while not self.config.yes and command not in self.always:
            answer = self.ui.confirm(command, risk)
            if answer == "p":  # predict before approving: show what the model expects, then ask again
                self.ui.prediction(recall.predict(self.predictor, messages, reply))
                continue
            if answer.startswith("e:") and answer[2:].strip():
                command = answer[2:].strip()  # the user's edit runs; it gets no trust the original lacked
                risk = classify(command, self.settings.read_only_commands)
                if risk.denied:
                    self._record(result, reply, command, risk=risk, note=obs.DENIED_MARKER)
                    return
                break
            if answer == "a":
                self.always.add(command)
                break
            if answer == "y":
                break
            self._record(result, reply, command, risk=risk, note=obs.DECLINED_MARKER)
            self.declined.append(command)
            instead = self.ui.instead(command)
            if not instead or not instead.strip():
                self._stop(result, messages, command)
            self._record_words(result, instead.strip())
            return
        self._record(result, reply, command, risk=risk, shell_result=self._run(command))

    def _retrieve(self, result: EpisodeResult, reply: str, command: str, risk: Risk,
                  messages: list[dict[str, str]], note: str = "") -> None:
        """A read-only command: recalled from the model when it is confident, else executed."""
        record = functools.partial(self._record, result, reply, command, risk=risk, note=note)
        if not self.config.recall:
            record(shell_result=self._run(command))
            return
        threshold = self.config.recall_threshold
        if self.config.verify == Verify.ALL:  # calibration: full prediction, always executed, compared
            record(shell_result=self._run(command), prediction=recall.predict(self.predictor, messages, reply))
            return
        if not self._stable(command) or (command, self.shell.cwd) in self._unsure:
            record(shell_result=self._run(command))  # never recalled here: not worth a prediction
            return
        pred = recall.predict(self.predictor, messages, reply, min_logprob=threshold)
        if not pred.confident(threshold):
            record(shell_result=self._run(command), prediction=pred)
            return
        if self._sampled():
            record(shell_result=self._run(command), prediction=pred)
            return
        record(prediction=pred, recalled=True)

    def _sampled(self) -> bool:
        """Whether this confident recall (or answer from memory) is one of the share run anyway (`verify`)."""
        if self.config.verify != Verify.SAMPLE:
            return False
        self._verify_credit += self.config.verify_fraction
        due = self._verify_credit >= 1.0
        self._verify_credit -= 1.0 if due else 0.0
        return due

    def _from_memory(self, prompt: list[dict[str, str]], task: str, earlier: list) -> str | None:
        """The answer from memory (`remembering.py`) to a new task looked up here before, or None to look it up."""
        if (not (self.config.memory and self.config.recall) or self.config.verify == Verify.ALL or earlier
                or self.store is None):
            return None
        seen = remembering.evidence(self.store, task, self.shell.cwd, self.settings.recall_min_runs)
        if seen is None:
            return None
        messages = fit_context(build_context(prompt, task, settings=self.settings), len(prompt),
                               self.config.context_chars)
        text = remembering.answer(self.predictor, messages, seen, task, self.config.recall_threshold)
        return None if text is None or self._sampled() else text

    def _absent(self, risk: Risk) -> str | None:
        """The first program the command runs that the shell does not have, when such programs are all that
        makes it more than a look-up (`Risk.only_unknown`); else None."""
        return next((n for n in risk.only_unknown if self._run(absence_check([n])).exit_code != 0), None)

    def _stable(self, command: str) -> bool:
        """Whether `command` may be recalled here: its newest `recall_min_runs` runs in this directory agree (with
        no store there is no history: never)."""
        n = self.settings.recall_min_runs
        if n <= 0:
            return True
        runs = self.store.recent_runs(command, self.shell.cwd, n) if self.store is not None else []
        return len(runs) >= n and len(set(runs)) == 1

    def _run(self, command: str) -> Any:
        return self.shell.run(command, timeout=self.config.command_timeout)

    def _record(self, result: EpisodeResult, reply: str, command: str | None, *, risk: Risk | None = None,
                shell_result: Any = None, note: str = "", prediction: recall.Prediction | None = None,
                recalled: bool = False) -> None:
        retrieval = risk is not None and risk.level == READ_ONLY and not risk.denied
        kind = StepKind.RETRIEVAL if retrieval else StepKind.ACTION
        fields: dict[str, Any] = {}
        if prediction is not None:
            fields = {"predicted_output": prediction.text, "confidence": prediction.confidence_min,
                      "confidence_min": prediction.confidence_min,
                      "confidence_mean": prediction.confidence_mean}
            if shell_result is not None and prediction.usable:
                fields["verified"] = int(recall.exactly_right(prediction, shell_result.output, shell_result.status))
                fields["verify_f1"] = recall.token_f1(prediction.output, shell_result.output)
        if recalled:
            fields.update(source=StepSource.RECALLED, output=prediction.output, status=prediction.status,
                          cwd_before=self.shell.cwd)
        if self.store is not None and result.episode_id is not None:
            step_id = self.store.record_step(result.episode_id, reply=reply, command=command, result=shell_result,
                                             kind=kind, note=note, trainable=shell_result is not None, **fields)
            step = self.store.get_step(step_id)  # as stored: redacted
        else:
            step = live_step(reply, command, shell_result, note=note,
                             source=fields.get("source", StepSource.EXECUTED), output=fields.get("output", ""),
                             status=fields.get("status"))
            step.update(kind=kind, **{k: v for k, v in fields.items() if k not in ("output", "status")})
        result.steps.append(step)
        self.ui.observation(step)

    def _stop(self, result: EpisodeResult, messages: list[dict[str, str]], declined: str) -> None:
        """End the episode after a "no" with nothing else to do: with an answer from what the look-ups so far
        found, when they found anything, else as declined."""
        if any(s.get("source") and s.get("output") for s in result.steps):
            raise Submitted(parse_reply(self._reply(messages, "```answer\n"))[1])
        raise Declined(declined)

    def _record_words(self, result: EpisodeResult, text: str) -> None:
        """What the user typed instead of a "yes": a step of their words, a user message in the transcript."""
        if self.store is not None and result.episode_id is not None:
            step = self.store.get_step(self.store.record_step(result.episode_id, reply=storable(text), command=None,
                                                              author=Author.HUMAN, trainable=False))
        else:
            step = live_step(storable(text), None, author=Author.HUMAN)
        result.steps.append(step)

    def _pick_adapter(self) -> None:
        """Use the adapters the registry says are current, from this episode on."""
        if self.adapter is None:
            return
        adapter_id, path = self.adapter()
        self.predictor.serve(path)
        self.policy.serve(self.policy_adapter()[1] if self.policy_adapter else path)
        if adapter_id != self.adapter_id and self.store is not None:
            self._unsure = recall_exclusions(self.store, adapter_id)
        self.adapter_id = adapter_id

    def _earlier_turns(self, parent_episode_id: str | None) -> list:
        if self.store is None or parent_episode_id is None:
            return []
        chain = [*self.store.episode_chain(parent_episode_id), self.store.get_episode(parent_episode_id)]
        return [(ep, self.store.episode_steps(ep["id"])) for ep in chain if ep]
