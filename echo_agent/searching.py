"""Finding what a task is about in the files here, when the task does not say which file holds it.

People ask "who looks after payments" or "what ip does sorrelbank have" in a repository whose OWNERS file or
inventory holds the fact. A small model answers such a question with whatever command it knows (`who`, `nproc`),
and its output holds nothing about the task. A person greps. So does the agent:
`content_search` looks in the text files here for the task's words (`task_words`: names, not question words,
with plural and tense endings taken off, so that "archived" finds "archive" and "maintains" finds
"MAINTAINERS"), weighs each word by how few files hold it (a word every file holds says nothing; a file's path
counts among its words), and builds one `grep` over the best file or files for the line that holds the most of
them (each word weighed by how few lines here hold it), with that line's record as context (`grepping.block`: a
JSON object, a YAML block, an INI section, a table), cut until the output is short enough to show
(`grepping.grep_output` predicts what grep prints).

`about_task` says whether an output mentions any of the task's words that the files here hold: the agent falls
back to the search when its own look-ups printed nothing about the task (agent.py). `shows_best` says whether
an output that read part of the files shows the lines that best match the task: the agent takes a second look
when it does not (choosing.second_look).
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from echo_agent.examples import STOPWORDS, stem
from echo_agent.grepping import block, grep_command, grep_output, matching_lines, pattern
from echo_agent.grounding import SHORT_LINES, is_short

WALK_DEPTH = 2
"""Folders below the working directory that the search and `related_files` look into."""
WALK_FILES = 400
"""Most files they look at: the working directory may be a home directory."""
READ_BYTES = 64 * 1024
"""Largest file they read."""
FILE_WORDS = frozenset("md txt json yml yaml toml cfg conf ini sh py js ts log csv lock example sample".split())
"""Parts of a file's name that say what kind of file it is, not what it is about."""
GENERIC = frozenset(
    "folder folders directory directories dir file files line lines text content contents name names called "
    "many much count number list show find print value set setting inside below under".split())
"""Words a task uses for what it asks about rather than which thing: never a name to look for."""
QUESTION_WORDS = frozenset(
    "if where when why whose whom use uses used using run runs get gets got have has had need needs go goes end ends "
    "up down does did done look looks after keep keeps kept take takes per long big small there any all some can "
    "could should would will our we you your us they their it its be being been currently right now often off time "
    "before someone somebody anyone anybody meant supposed".split())
"""Words of how a question is put, not of what it is about: not searched for."""

_WORD_RE = re.compile(r"[A-Za-z0-9_][\w.\-/]*[\w/]|[A-Za-z0-9_]")
_ERROR_LINE_RE = re.compile(
    r"[^:\n]*: .*(No such file or directory|cannot access|Permission denied|Is a directory|Not a directory)\S*\s*$",
    re.IGNORECASE)


def is_path(word: str) -> bool:
    return "." in word.strip(".") or "/" in word


def names(text: str) -> list[str]:
    """The words of `text` that could name something (no stop word, no generic word), in order, as written."""
    out: list[str] = []
    for w in _WORD_RE.findall(text):
        w = w.rstrip(".")
        if len(w) == 1 and w.isalpha():  # the "s" of "commit's", not a name
            continue
        if w.lower() not in STOPWORDS and w.lower() not in GENERIC and w not in out:
            out.append(w)
    return out


def root(word: str) -> str:
    """The part of a word to search for: lower case, without a plural or a tense ending ("copies" -> "copy",
    "archived" -> "archiv", "snapshots" -> "snapshot")."""
    w = word.lower()
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        return w[:-3]
    if len(w) > 4 and w.endswith("ed"):
        return w[:-2]
    return stem(w)


WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = r"(?P<month{n}>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DAY = r"(?P<day{n}>[0-3]?\d)(?:st|nd|rd|th)?"
_DATE_RE = re.compile(rf"\b(?:{_DAY.format(n=1)}\s+(?:of\s+)?{_MONTH.format(n=1)}|{_MONTH.format(n=2)}\s+"
                      rf"{_DAY.format(n=2)})(?![\w:])", re.IGNORECASE)


def written_dates(task: str) -> str:
    """The task with a day written as people say it ("14 May", "May 14th") as files write it: `05-14`, the
    end of an ISO date (2025-05-14), in a log line or a file's name."""
    def iso(m: re.Match[str]) -> str:
        month, day = m.group("month1") or m.group("month2"), int(m.group("day1") or m.group("day2"))
        return f"{MONTHS.index(month.lower()) + 1:02d}-{day:02d}" if 1 <= day <= 31 else m.group(0)
    return _DATE_RE.sub(iso, task)


def task_words(task: str) -> list[str]:
    """What to search the files for: the task's names that are no path and no question word, as roots; a day
    as files write it (`written_dates`), and a weekday as its abbreviation too (`days = ["sat", "sun"]`)."""
    out: list[str] = []
    for w in names(written_dates(task)):
        if is_path(w) or w.lower() in QUESTION_WORDS or not re.fullmatch(r"[\w-]+", w):
            continue
        for word in (root(w), *([w[:3].lower()] if w.lower() in WEEKDAYS else [])):  # "Sunday", also "sun"
            if word not in out and len(word) >= 2:
                out.append(word)
    return out


def asking_words(task: str) -> list[str]:
    """The task's question words of three letters or more, as roots ("keep" in "how many dumps does the
    Makefile keep"): never searched for, but a line holding them besides the task's words matches it better
    (`KEEP_DUMPS := 46` over `dump:`)."""
    out: list[str] = []
    for w in names(task):
        if w.lower() in QUESTION_WORDS and len(w) >= 3 and (word := root(w)) not in out:
            out.append(word)
    return out


TIE_BREAK = 0.1
"""How much a question word weighs on a line, against a word of the task (`asking_words`)."""


def text_files(cwd: str | Path) -> list[Path]:
    """Readable text files here and up to WALK_DEPTH folders down (hidden folders aside: .git, caches; hidden
    files such as .env.example are read), at most WALK_FILES of them, in a stable order."""
    here = Path(cwd)
    out: list[Path] = []
    for top, dirs, files in os.walk(here):
        depth = len(Path(top).relative_to(here).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("node_modules", "__pycache__")
                         and depth < WALK_DEPTH)
        for name in sorted(files):
            path = Path(top) / name
            if not path.is_file() or path.stat().st_size > READ_BYTES:
                continue
            try:
                with path.open("rb") as f:
                    if b"\0" in f.read(1024):
                        continue
            except OSError:
                continue
            out.append(path)
            if len(out) >= WALK_FILES:
                return out
    return out


def related_files(task: str, cwd: str | Path, limit: int = 3) -> list[str]:
    """Files here whose name shares a word with the task ("the deploy script" -> scripts/deploy.sh, "docker
    compose" -> docker-compose.yml), relative to `cwd`: most shared words first, then the shallowest."""
    here = Path(cwd)
    wanted = {stem(w) for w in names(task) if not is_path(w)}
    found = []
    for path in text_files(here) if wanted else []:
        if path.name.startswith("."):
            continue
        parts = {stem(p) for p in re.split(r"[-_.]+", path.name) if p} - FILE_WORDS
        if shared := len(parts & wanted):
            rel = path.relative_to(here).as_posix()
            found.append((-shared, rel.count("/"), rel))
    return [rel for *_, rel in sorted(found)[:limit]]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def line_weights(words: Sequence[str], cwd: str | Path) -> dict[str, float]:
    """Each word that some line of the text files here holds, weighed by how few lines hold it: log(1 + lines /
    lines holding it). "repeater" on ten lines of five files says less than "Knockvallan" on three lines of two,
    even where the files searched hold "repeater" on fewer lines."""
    regexes = {w: re.compile(pattern(w), re.IGNORECASE) for w in words}
    total, holding = 0, dict.fromkeys(words, 0)
    for path in text_files(cwd) if words else []:
        lines = _read(path).splitlines()
        total += len(lines)
        for w, regex in regexes.items():
            holding[w] += sum(1 for line in lines if regex.search(line))
    return {w: math.log(1 + total / n) for w, n in holding.items() if n}


Hits = dict[str, set[tuple[int, int]]]
"""For each word, the lines (file, line) that it matches."""


def _best_lines(texts: Sequence[Sequence[str]], task: str, cwd: str | Path,
                ) -> tuple[Hits, list[str], dict[tuple[int, int], float]]:
    """The lines of `texts` that each of the task's words matches (file, line), the words some line holds (those
    on the fewest lines of `texts` first), and the score of each line holding one: the weights (`line_weights`)
    of the words it holds, and a tenth of those of the question words it holds (`asking_words`)."""
    words = task_words(task)
    asking = [w for w in asking_words(task) if w not in words]
    hits = {w: {(f, n) for f, lines in enumerate(texts) for n in matching_lines("\n".join(lines), w)}
            for w in [*words, *asking]}
    held = [w for w in words if hits[w]]
    if not held:
        return hits, [], {}
    asked = [w for w in asking if hits[w]]
    weight = line_weights([*held, *asked], cwd)
    total = sum(len(lines) for lines in texts)
    for w in [*held, *asked]:  # a file deeper than the walk: weighed within the files searched
        weight.setdefault(w, math.log(1 + total / len(hits[w])))
    held.sort(key=lambda w: (len(hits[w]), -weight[w]))  # the grep looks for the word on fewest lines here
    score: dict[tuple[int, int], float] = {}
    for w in held:
        for at in hits[w]:
            score[at] = score.get(at, 0.0) + weight[w]
    for w in asked:  # only where a word of the task is
        for at in hits[w] & score.keys():
            score[at] += TIE_BREAK * weight[w]
    return hits, held, score


def search_in(task: str, files: Sequence[str], cwd: str | Path) -> str | None:
    """A grep of `files` (relative to `cwd`) showing the record that best matches the task, or None when they
    hold none of its words.

    The best line is the one holding the most of the task's words, each weighed by how few lines of the files
    here hold it (`line_weights`). The grep looks for that line's word on the fewest lines of `files` (and, in
    each other file, that file's such word), with the line's record around it as context (`block`: the YAML block, the JSON object, the INI section, the table), so that
    the value a key or a heading names is shown with it. The output must stay short enough to show
    (grounding.is_short): the record is cut to a line above and the lines below that fit, then only each file's
    first match is shown (when that is the best line), then a line of context either side, then none. A line
    that sets its own value is shown alone, with the lines of its paragraph that hold the task's other words
    (a service's `User=` beside the `ExecStart=` the task's words found) when the output stays short."""
    here = Path(cwd)
    texts = [_read(here / f).splitlines() for f in files]
    hits, held, score = _best_lines(texts, task, here)
    if not held:
        return None
    best = max(sorted(score), key=lambda at: score[at])
    chosen = [next(w for w in held if best in hits[w])]
    for f in range(len(files)):
        if f != best[0] and not any(at[0] == f for w in chosen for at in hits[w]):
            chosen += [w for w in held if any(at[0] == f for at in hits[w])][:1]
    first, last = block(texts[best[0]], best[1])
    above, below = best[1] - first, last - best[1]

    def fit(words: list[str], must: bool) -> str | None:
        """The grep for `words` with the widest context that keeps its output short (or, when `must`, none)."""
        keep = [f for f in range(len(files)) if any(at[0] == f for w in words for at in hits[w])]
        names_kept, texts_kept = [files[f] for f in keep], [texts[f] for f in keep]
        matched = [{n for w in words for g, n in hits[w] if g == f} for f in keep]
        cut = min(above, 1), min(below, SHORT_LINES - 1 - min(above, 1))
        tiers = [(above, below, False), (*cut, False)]
        if best[1] == min(matched[keep.index(best[0])]):  # the best line is its file's first match
            tiers += [(above, below, True), (*cut, True)]
        for before, after, only_first in [*tiers, (1, 1, False), (0, 0, False)]:
            if is_short(grep_output(texts_kept, names_kept, matched, before, after, only_first)):
                return grep_command(words, names_kept, before, after, only_first)
        return grep_command(words, names_kept, 0, 0) if must else None

    if first == last:  # a setting shown alone: the task's other words among the settings beside it come too
        para = block(texts[best[0]], best[1], alone=False)  # (User= beside a service's ExecStart=)
        beside, shown = list(chosen), {at for w in chosen for at in hits[w]}
        for w in held:  # rarest first, each showing a line of the paragraph not shown yet
            if {(f, n) for f, n in hits[w] - shown if f == best[0] and para[0] <= n <= para[1]}:
                beside.append(w)
                shown |= hits[w]
        if beside != chosen and (command := fit(beside, must=False)):
            return command
    return fit(chosen, must=True)


def shows_best(output: str, task: str, files: Sequence[str], cwd: str | Path) -> bool:
    """Whether `output` shows the lines of `files` (relative to `cwd`) that best match the task, as far as it
    read them: every best line of each file it shows a line of (when they are few enough to show, else one),
    or else one of them. A `grep dump Makefile` that prints `dump:` but not `KEEP_DUMPS := 46` misses "how
    many dumps does the Makefile keep"; a `cat OWNERS` that shows OWNERS whole need not show docs/queues.md
    too. When no line of `files` holds the task's words, any output shows the best there is."""
    here = Path(cwd)
    texts = [_read(here / f).splitlines() for f in files]
    _, _, score = _best_lines(texts, task, here)
    if not score:
        return True
    top = max(score.values())
    best = [(f, texts[f][n].strip() in output) for (f, n), value in score.items() if value >= top - 1e-9]
    read = {f for f, lines in enumerate(texts) if reads(output, lines)}
    among = [shown for f, shown in best if f in read]
    if not among:
        return any(shown for _, shown in best)
    return all(among) if len(among) <= SHORT_LINES else any(among)


def reads(output: str, lines: Sequence[str]) -> bool:
    """Whether the output shows one of `lines` (one with a letter and four characters or more)."""
    return any(len(line.strip()) >= 4 and re.search("[A-Za-z]", line) and line.strip() in output for line in lines)


def reads_files(output: str, cwd: str | Path) -> bool:
    """Whether the output shows a line of a text file here (`text_files`): a `grep`, `cat` or `head` of one,
    not an `ls`, a `wc -l` or a program's own report."""
    return any(reads(output, _read(path).splitlines()) for path in text_files(cwd)) if output.strip() else False


def read_command(task: str, file: str, cwd: str | Path) -> str:
    """`cat` of a file short enough to show whole (grounding.SHORT_LINES); a longer one is searched for the
    task's words it holds (`search_in`), and printed whole only when it holds none."""
    path = Path(cwd) / file
    if _read(path).count("\n") > SHORT_LINES and (search := search_in(task, [file], cwd)):
        return search
    return f"cat {shlex.quote(file)}"


def search_files(task: str, cwd: str | Path, limit: int = 3) -> list[str]:
    """The files here that hold the most of the task's words, in their text or in their path ("Port Ailsing"
    is in docs/ports.md by name, "crossing" in data/routes.json by its text; a hidden file's name does not
    count), each word weighed by how few files hold it: those scoring as the best does, at most `limit`, those
    named for more of the words first (deploy/poller.service before README.md for "the poller"), then the
    shallowest, relative to `cwd`."""
    here = Path(cwd)
    words = task_words(task)
    held: dict[str, set[str]] = {}
    files = text_files(here) if words else []
    for path in files:
        rel = path.relative_to(here).as_posix()
        text = _read(path) if path.name.startswith(".") else f"{rel}\n{_read(path)}"
        if found := {w for w in words if re.search(pattern(w), text, re.IGNORECASE)}:
            held[rel] = found
    if not held:
        return []
    files_with = {w: sum(w in found for found in held.values()) for w in words}
    weight = {w: math.log(1 + len(files) / n) for w, n in files_with.items() if n}
    scores = {f: sum(weight[w] for w in found) for f, found in held.items()}
    best = max(scores.values())
    named = {f: sum(bool(re.search(pattern(w), f, re.IGNORECASE)) for w in held[f]) for f in held}
    return sorted((f for f in scores if scores[f] >= best - 1e-9),
                  key=lambda f: (-named[f] * (not Path(f).name.startswith(".")), f.count("/"), f))[:limit]


def content_search(task: str, cwd: str | Path, top: Sequence[str] | None = None) -> str | None:
    """A look-up of the files that hold the most of the task's words (`top`, else `search_files`): a search of
    several (`search_in`), or a read of the first (`read_command`) when there is one or their text holds none
    of the words; None when no file holds any of them."""
    top = search_files(task, cwd) if top is None else top
    if not top:
        return None
    return (search_in(task, top, cwd) if len(top) > 1 else None) or read_command(task, top[0], cwd)


def whole(word: str) -> re.Pattern[str]:
    """The root as a whole word, with at most an ending ("backup" in "backups", "archiv" in "[archive]", "daily"
    in KEEP_DAILY; not "time" in "timeout", not "work" in "workers")."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(word)}(?:s|es|e|ed|ing)?(?![a-z0-9])", re.IGNORECASE)


def held_words(task: str, cwd: str | Path) -> list[str]:
    """The task's words of three letters or more that some file here holds as a whole word (`whole`): what an
    output about the task would mention. A shorter word ("id", "ip") or one inside another word ("time" in
    "timeout") says too little about which file a task is about."""
    words = [w for w in task_words(task) if len(w) >= 3]
    found: set[str] = set()
    for path in text_files(cwd) if words else []:
        text = _read(path)
        found |= {w for w in words if w not in found and whole(w).search(text)}
        if len(found) == len(words):
            break
    return [w for w in words if w in found]


def task_terms(task: str, cwd: str | Path) -> list[str]:
    """What an output about the task would mention (`held_words`), or nothing to check when the task names a
    file or folder here: a look-up of that is about the task, whatever it prints."""
    if any((Path(cwd) / w).exists() for w in names(task)):
        return []
    return held_words(task, cwd)


def about_task(output: str, words: Sequence[str]) -> bool:
    """Whether an output mentions one of `words` outside its error lines ("ls: cannot access 'backups': No such
    file or directory" is about no backups); with no words, every output counts."""
    if not words:
        return True
    text = "\n".join(line for line in output.splitlines() if not _ERROR_LINE_RE.fullmatch(line))
    return any(re.search(pattern(w), text, re.IGNORECASE) for w in words)
