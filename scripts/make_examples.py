"""Write echo_agent/data/examples.jsonl: the in-context example library (task → command), from templates.

    .venv/bin/python scripts/make_examples.py

Each template is a way of looking something up, worded as different people ask it, with slots filled from a
vocabulary of file, folder, process and variable names. The vocabulary is kept apart from the assistant
benchmark's workspace (benchmarks/assistant_tasks.py checks that no example names one of its files or repeats
one of its wordings). Deterministic: the same script writes the same file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "echo_agent" / "data" / "examples.jsonl"
TEXT = ["essay.txt", "lyrics.txt", "names.txt", "quotes.txt", "story.txt", "memo.txt", "diary.txt", "readme.txt"]
LOGS = ["build.log", "server.log", "worker.log", "auth.log", "access.log", "deploy.log"]
CONFIGS = ["config.ini", "server.conf", "proxy.toml", "db.ini", "app.yaml", "site.cfg", "cache.conf", "queue.toml"]
JSONS = ["package.json", "manifest.json", "options.json", "config.json"]
ENVS = ["prod.env", "staging.env", "local.env"]
TABLES = ["sales.csv", "users.csv", "orders.csv", "table.csv"]
BLOBS = ["dump.bin", "image.dat", "backup.tar", "blob.dat", "video.mp4"]
DIRS = ["src", "docs", "build", "cache", "backups", "downloads", "vendor", "images", "lib", "photos", "uploads",
        "assets", "static", "music", "scripts"]
SEARCH = ["banana", "invoice", "deadline", "TODO", "refund", "meeting", "budget"]
KEYS = ["port", "host", "timeout", "workers", "retries", "level", "threads", "version", "mode", "user"]
ENV_KEYS = ["MODE", "TIER", "OWNER", "CLUSTER", "BUCKET"]
PROCS = ["nginx", "postgres", "redis-server", "gunicorn", "celery", "sshd"]
VARS = ["EDITOR", "LANG", "SHELL", "JAVA_HOME", "GOPATH", "PROJECT_ID", "TERM", "VIRTUAL_ENV"]
LEVELS = ["WARN", "ERROR", "INFO", "DEBUG", "FATAL"]
EXTS = [("python", "py"), ("shell", "sh"), ("markdown", "md"), ("text", "txt"), ("json", "json"), ("yaml", "yaml")]

# (wordings, command): {f} a text file, {log}, {cfg}, {json}, {env}, {csv}, {blob}, {dir}, {word}, {key}, {ekey},
# {proc}, {var}, {level}, {kind}/{ext} a file type.
TEMPLATES: list[tuple[list[str], str]] = [
    # files and folders
    (["list the files in {dir}", "what is inside the {dir} folder", "show me what {dir} contains",
      "which files does the {dir} directory hold", "what's in {dir}", "can you list {dir} for me", "show the contents of the {dir} dir"], "ls {dir}"),
    (["list everything here including hidden files", "show all files in this folder, hidden ones too", "list all files here, dotfiles included"], "ls -la"),
    (["where is {f}", "find the file named {f}", "locate {f} for me", "in which directory is {f}", "where can I find {f}", "which folder holds {f}", "what is the path of {f}"],
     "find . -name {f}"),
    (["which folders are in {dir}", "list the subfolders of {dir}", "what directories does {dir} have", "show the directories inside {dir}", "what subdirectories are in {dir}"],
     "ls -d {dir}/*/"),
    (["list the {kind} files in {dir}", "which {kind} files are in the {dir} folder", "list just the .{ext} files "
      "from {dir}", "give me the {kind} files in {dir}", "show the .{ext} files inside {dir}"], "ls {dir}/*.{ext}"),
    (["find all {kind} files", "list every .{ext} file below this folder"], "find . -name '*.{ext}'"),
    (["is there a folder called {dir}", "does {dir} exist here"], "ls -d {dir}"),
    # sizes and disk
    (["how big is the {dir} folder", "how much disk space does {dir} use", "how big is {dir} in total",
      "how much room does the {dir} directory take", "what is the total size of {dir}", "how large is the {dir} dir"], "du -sh {dir}"),
    (["how many bytes is {blob}", "what is the exact size of {blob} in bytes", "give me the byte size of {blob}", "size of {blob} in bytes", "how large is {blob} exactly"],
     "stat -c %s {blob}"),
    (["how big is the file {blob}", "what size is {blob}"], "ls -lh {blob}"),
    (["which file in {dir} is the largest", "what is the biggest file in {dir}", "largest file inside {dir}", "which is the largest file in the {dir} dir", "find the biggest thing in {dir}"],
     "ls -S {dir} | head -n 1"),
    (["which file in {dir} is the smallest", "smallest file in the {dir} folder"], "ls -Sr {dir} | head -n 1"),
    (["how much free disk space is there", "how much space is left on the disk", "how much space remains on this "
      "disk", "how much disk is free", "what is the available disk space"], "df -h --output=avail . | tail -n 1"),
    (["how full is the disk", "how much of the disk is used"], "df -h --output=pcent . | tail -n 1"),
    # counting
    (["how many lines does {f} have", "count the lines in {f}", "count how many lines {f} has", "what is the line count of {f}", "number of lines in {f}"], "wc -l < {f}"),
    (["how many words are in {f}", "count the words in {f}", "tell me how many words {f} contains", "what is the word count of {f}", "number of words in {f}"], "wc -w < {f}"),
    (["how many characters are in {f}", "count the characters of {f}"], "wc -m < {f}"),
    (["how many files are in {dir}", "count the files in the {dir} folder", "how many entries does {dir} have", "what is the number of files in {dir}", "tell me how many files {dir} holds"],
     "ls {dir} | wc -l"),
    (["how many {kind} files are in {dir}", "count the .{ext} files in {dir}", "number of {kind} files in {dir}", "how many .{ext} files does {dir} have"], "ls {dir}/*.{ext} | wc -l"),
    (["how many {level} lines are in {log}", "count the {level} entries in {log}", "tally the {level} lines of "
      "{log}", "number of {level} messages in {log}", "how often does {level} appear in {log}"], "grep -c {level} {log}"),
    (["how many rows does {csv} have", "count the records in {csv}"], "wc -l < {csv}"),
    # text in files
    (["print {f}", "show me {f}", "what is in {f}", "display the contents of {f}", "let me see {f}", "open {f}", "what does {f} say"], "cat {f}"),
    (["what is the first line of {f}", "show the top line of {f}", "print the opening line of {f}", "what does the first line of {f} say", "give me the first line in {f}"],
     "head -n 1 {f}"),
    (["what is the last line of {f}", "show the final line of {f}", "print the bottom line of {f}", "what does the last line of {f} say", "give me the last line in {f}"], "tail -n 1 {f}"),
    (["show the first 5 lines of {log}", "print the beginning of {log}"], "head -n 5 {log}"),
    (["show the last lines of {log}", "what are the latest entries in {log}"], "tail -n 20 {log}"),
    (["which line of {f} mentions {word}", "find the line about {word} in {f}", "grep {word} in {f}", "where does {f} mention {word}", "search {f} for {word}"],
     "grep -n {word} {f}"),
    (["which file mentions {word}", "find the file that talks about {word}", "which document contains {word}", "which file has the word {word} in it", "search every file for {word}"],
     "grep -rl {word} ."),
    (["show the column headers of {csv}", "what columns does {csv} have"], "head -n 1 {csv}"),
    (["print the third line of {f}", "show line 3 of {f}"], "sed -n 3p {f}"),
    # recent changes
    (["which file in {dir} was changed most recently", "what is the newest file in {dir}", "which {dir} file is "
      "the most recent", "what was the last file changed in {dir}", "most recently edited file in {dir}"], "ls -t {dir} | head -n 1"),
    (["which file in {dir} is the oldest", "what is the least recently changed file in {dir}", "what is the oldest file in {dir}", "which file in {dir} was changed longest ago"],
     "ls -tr {dir} | head -n 1"),
    (["when was {cfg} last modified", "what is the modification date of {cfg}", "what date was {cfg} edited", "when did {cfg} last change", "last modification date of {cfg}"],
     "date -r {cfg} +%F"),
    (["which files here changed most recently", "list files by modification time"], "ls -lt | head"),
    (["which files were modified in the last day", "what changed here in the past 24 hours"],
     "find . -type f -mtime -1"),
    # config values
    (["what {key} is set in {cfg}", "which {key} does {cfg} configure", "show the {key} setting in {cfg}",
      "read the {key} from {cfg}", "what does {cfg} set {key} to", "what is the {key} value in {cfg}", "find the {key} in {cfg}"], "grep {key} {cfg}"),
    (["what is the {key} in {json}", "which {key} value does {json} set", "what does {json} set {key} to", "show the {key} field of {json}"], "grep '\"{key}\"' {json}"),
    (["what is {ekey} set to in {env}", "show the {ekey} value from {env}", "read {ekey} out of {env}", "what value does {ekey} have in {env}", "which {ekey} does {env} define"],
     "grep {ekey} {env}"),
    # processes and ports
    (["which ports are being listened on", "what is listening on a port here", "which port is the web server "
      "using", "list the listening sockets", "which port does the server listen on", "show open ports"], "ss -ltnp"),
    (["what is the pid of the {proc} process", "find the process id of {proc}", "which pid does {proc} have", "give me the pid of {proc}", "what process id does {proc} run as"],
     "pgrep {proc}"),
    (["is {proc} running", "check whether {proc} is running"], "pgrep -a {proc}"),
    (["what processes are using the most memory", "which programs eat the most memory"],
     "ps aux --sort=-%mem | head"),
    (["what processes use the most cpu", "which process is the busiest"], "ps aux --sort=-%cpu | head"),
    (["how much memory does this machine have", "how much ram is there"], "free -h"),
    # environment and users
    (["what is my user name", "who am I logged in as", "which account am I using", "what user am I", "which user is logged in here"], "whoami"),
    (["what is my home folder", "where is my home directory", "print my home path", "where is home", "show my home directory path"], "echo $HOME"),
    (["what directory am I in", "which folder is this", "print the working directory", "show the current directory path", "where am I", "what folder am I in right now", "print the full path of this directory"], "pwd"),
    (["what is the value of {var}", "show me the {var} variable", "what is {var} set to in the environment", "what does {var} contain", "print the {var} environment variable"],
     "echo ${var}"),
    (["how many cpu cores are there", "how many processors does this computer have", "what is the number of cpus", "how many cores does this machine have", "count the cpus"],
     "nproc"),
    (["what is this machine called", "what is the host name", "print the name of this computer", "what is the name of this machine", "which host is this"], "hostname"),
    (["what operating system is this", "which kernel is running"], "uname -a"),
    (["how long has the machine been running", "what is the uptime"], "uptime"),
    (["what python version is installed", "which version of python is there"], "python3 --version"),
    (["is the program {proc} installed", "where is {proc} installed"], "command -v {proc}"),
    # dates and times
    (["what is the date today", "print the current date", "what's the date", "what date is it", "give me the current date"], "date +%F"),
    (["which day of the week is it", "what weekday is it", "name the day of the week", "what day is it", "is it monday or some other day"], "date +%A"),
    (["what time is it", "what is the current time"], "date +%T"),
    (["which time zone is set", "tell me the configured time zone", "which timezone does this machine use", "what timezone is this", "which time zone is the clock in"],
     "date +%Z"),
    (["tell me the current year", "which year are we in", "what is the current year"], "date +%Y"),
    (["what month is it", "which month are we in"], "date +%B"),
    # git
    (["show the recent git commits", "list the latest commits", "what happened in git lately", "show the git log", "what are the last few commits"],
     "git log --oneline -n 10"),
    (["print the last commit message", "print the subject of the last commit", "show the latest commit's message", "what does the latest commit say", "what was the last commit about"],
     "git log -1 --format=%s"),
    (["how many commits are there", "count the commits in this repo", "how long is the git history", "what is the number of commits", "how many commits does the repo have"],
     "git rev-list --count HEAD"),
    (["what branch am I on", "which git branch is this", "show the branch that is checked out", "which branch is checked out", "name the current git branch"], "git branch --show-current"),
    (["who wrote the last commit", "who made the newest commit", "who is the author of the last commit", "who committed last", "who did the most recent commit"],
     "git log -1 --format=%an"),
    (["list the files the last commit changed", "show the files in the last commit", "list the files of the last "
      "commit", "which files did the last commit touch", "what files were in the newest commit"], "git show --name-only --format= HEAD"),
    (["which files have uncommitted changes", "what is modified but not committed"], "git status --short"),
    (["when was the last commit made", "what is the date of the newest commit"], "git log -1 --format=%cd"),
    (["which branches exist", "list all git branches"], "git branch -a"),
    # other everyday look-ups
    (["what is the sha256 of {blob}", "compute the checksum of {blob}"], "sha256sum {blob}"),
    (["what type of file is {blob}", "what kind of file is {blob}"], "file {blob}"),
    (["compare {f} and {f2}", "what is the difference between {f} and {f2}"], "diff {f} {f2}"),
    (["show the sorted unique lines of {f}", "which distinct lines does {f} have"], "sort -u {f}"),
]
FILLS_PER_TEMPLATE = 3


def fill(text: str, slots: dict[str, str]) -> str:
    for name, value in slots.items():
        text = text.replace("{" + name + "}", value)
    return text


def main() -> None:
    rng = random.Random(7)
    seen: set[tuple[str, str]] = set()
    rows = []
    for wordings, command in TEMPLATES:
        for _ in range(FILLS_PER_TEMPLATE):
            kind, ext = rng.choice(EXTS)
            f, f2 = rng.sample(TEXT, 2)
            slots = {"f": f, "f2": f2, "log": rng.choice(LOGS), "cfg": rng.choice(CONFIGS), "json": rng.choice(JSONS),
                     "env": rng.choice(ENVS), "csv": rng.choice(TABLES), "blob": rng.choice(BLOBS),
                     "dir": rng.choice(DIRS), "word": rng.choice(SEARCH), "key": rng.choice(KEYS),
                     "ekey": rng.choice(ENV_KEYS), "proc": rng.choice(PROCS), "var": rng.choice(VARS),
                     "level": rng.choice(LEVELS), "kind": kind, "ext": ext}
            wording = rng.choice(wordings)
            row = (fill(wording, slots), fill(command, slots))
            if row not in seen:
                seen.add(row)
                rows.append({"task": row[0], "command": row[1]})
        for wording in wordings:  # every wording appears at least once
            slots = {"f": TEXT[0], "f2": TEXT[1], "log": LOGS[0], "cfg": CONFIGS[0], "json": JSONS[0], "env": ENVS[0],
                     "csv": TABLES[0], "blob": BLOBS[0], "dir": DIRS[0], "word": SEARCH[0], "key": KEYS[0],
                     "ekey": ENV_KEYS[0], "proc": PROCS[0], "var": VARS[0], "level": LEVELS[0], "kind": EXTS[0][0],
                     "ext": EXTS[0][1]}
            row = (fill(wording, slots), fill(command, slots))
            if row not in seen:
                seen.add(row)
                rows.append({"task": row[0], "command": row[1]})
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} examples from {len(TEMPLATES)} templates to {OUT}")


if __name__ == "__main__":
    main()
