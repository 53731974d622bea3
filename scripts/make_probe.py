"""Regenerate echo_agent/data/probe.jsonl, the forgetting probe.

The probe is generic terminal behaviour that any machine shows the same way: coreutils on small files made
here, shell arithmetic, Python one-liners, and the usual error messages. Each episode is run for real through
echo-agent's ShellSession in a fresh temporary directory (so outputs are exactly what the shell records), with
nothing machine-specific (no hostnames, dates, user names or versions). The updater's gate measures env-token
cross-entropy on it to check that learning one machine does not unlearn terminals in general.

    .venv/bin/python scripts/make_probe.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from echo_agent.prompting import SYSTEM_PROMPT
from echo_agent.shell import ShellSession

SETUP = """
mkdir -p src docs data
printf 'alpha\\nbeta\\ngamma\\ndelta\\nbeta\\n' > words.txt
printf 'name,qty\\napple,3\\npear,5\\nplum,2\\n' > data/fruit.csv
printf 'def main():\\n    print("hello")\\n' > src/main.py
printf '# Notes\\n\\nRemember the milk.\\n' > docs/notes.md
"""

EPISODES = [
    ("count the words in words.txt", ["wc -w words.txt"]),
    ("how many lines does words.txt have", ["wc -l words.txt"]),
    ("sort the words", ["sort words.txt"]),
    ("which words are unique", ["sort -u words.txt"]),
    ("count each word", ["sort words.txt | uniq -c"]),
    ("show the fruit table", ["cat data/fruit.csv"]),
    ("list the fruit names", ["cut -d, -f1 data/fruit.csv | tail -n +2"]),
    ("total quantity of fruit", ["awk -F, 'NR>1 {s+=$2} END {print s}' data/fruit.csv"]),
    ("show the python file", ["cat src/main.py"]),
    ("run the python file", ["python3 src/main.py"]),
    ("what files are in src", ["ls src"]),
    ("list the directories", ["ls -d */"]),
    ("find markdown files", ["find . -name '*.md'"]),
    ("show the notes", ["cat docs/notes.md", "grep -c . docs/notes.md"]),
    ("find lines with beta", ["grep -n beta words.txt"]),
    ("uppercase the words", ["tr a-z A-Z < words.txt"]),
    ("first two words", ["head -n 2 words.txt"]),
    ("last word", ["tail -n 1 words.txt"]),
    ("count to five", ["seq 1 5"]),
    ("what is 6 times 7", ["echo $((6 * 7))"]),
    ("powers of two in python", ["python3 -c 'print([2**i for i in range(8)])'"]),
    ("reverse a string", ["echo hello | rev"]),
    ("file name without directory", ["basename /usr/local/lib/libfoo.so.1"]),
    ("directory of a path", ["dirname /usr/local/lib/libfoo.so.1"]),
    ("read a missing file", ["cat missing.txt"]),
    ("list a missing directory", ["ls nowhere"]),
    ("run a command that does not exist", ["frobnicate --now"]),
    ("a failing command", ["false", "echo $?"]),
    ("count characters", ["printf 'abc' | wc -c"]),
    ("join lines with commas", ["paste -sd, words.txt"]),
    ("number the lines", ["nl -ba words.txt"]),
    ("print a json value with python", ["python3 -c 'import json; print(json.dumps({\"a\": [1, 2]}))'"]),
]


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "echo_agent" / "data" / "probe.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "probe"
        ws.mkdir()
        with ShellSession(cwd=ws) as shell:
            shell.run(SETUP)
            lines = []
            for task, commands in EPISODES:
                steps = []
                for c in commands:
                    r = shell.run(c)
                    steps.append({"reply": f"```bash\n{c}\n```", "command": c, "output": r.output,
                                  "status": r.status, "note": r.note})
                lines.append(json.dumps({"task": task, "prompt": [{"role": "system", "content": SYSTEM_PROMPT}],
                                         "steps": steps}, ensure_ascii=False))
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} episodes to {out}")


if __name__ == "__main__":
    main()
