"""Redaction measured against gitleaks' default rules (config/gitleaks.toml), not against its own samples.

For every gitleaks rule whose format a terminal can show, fake values of that rule's shape are put inside
realistic terminal output: environment dumps (`env`, `export`, `docker inspect`, `kubectl describe`), config
and credentials files (YAML, JSON, TOML, INI, .env), command lines and HTTP headers, and, for tokens that carry
their own prefix, places where no name says "secret" (a bare `echo $TOKEN`, an API's JSON, a git remote URL).
The value is the secret part (a piece of it that the text shows elsewhere too, such as a token's prefix
inside a variable's name, does not count): for `user:password` pairs and webhook URLs, what a reader could use (the password,
the URL's path); a user name or a host is kept.

A sample leaks if any 12-character run of its value survives (the whole value, if shorter). A rule is redacted
when every one of its samples is. Look-alikes (hashes and digests, UUIDs, base64 of plain text, versions,
paths, git output, package lock files, prose with "password" in it) must come back unchanged.

Contexts and look-alikes marked `held_out` were written before the redaction rules were tuned and were never
looked at while tuning: they are reported apart. Values differ by `--seed`; seed 0 is the tuning seed.

Speed: `redact` over >= 50 MB of log-like text (listings, logs, JSON lines, build output) with secrets sprinkled
in, in 64 kB pieces as the store sees step outputs; best of 3 runs, spread reported.

    python benchmarks/secrets_corpus.py [--seed 0] [--mb 50] [--show-missed 3]

Prints the per-rule table, then `RESULT rules=… applicable=… redacted_rate=… lookalikes_altered=… mb_per_s=…`.
Targets: applicable >= 50, redacted_rate >= 0.95, lookalikes_altered = 0, mb_per_s >= 50.
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

from secrets_rules import EXCLUDED, LOOKALIKES, NAMED, SPECIAL, TOKENS  # noqa: E402

from echo_agent.memory.redact import redact  # noqa: E402

CHARSETS = {
    "hex": "0123456789abcdef", "HEX": "0123456789ABCDEF", "digits": "0123456789",
    "lower": "abcdefghijklmnopqrstuvwxyz0123456789", "UP": "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "UP27": "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "alpha": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "alnum": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "url": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
    "b64": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
    "bech": "qpzry9x8gf2tvdw0s3jn54khce6mua7l".upper(), "ah": "abcdefgh0123456789",
    "l_": "abcdefghijklmnopqrstuvwxyz0123456789_-", "kr": "abcdefghijklmnopqrstuvwxyz0123456789/=_+-",
}
_FIELD = re.compile(r"\{(\w+):(\d+)\}|\{uuid\}")


def fill(spec: str, rnd: random.Random) -> str:
    """`spec` with each `{charset:n}` replaced by n random characters of that set, `{uuid}` by a UUID."""
    def one(m: re.Match[str]) -> str:
        if m.group(0) == "{uuid}":
            h = "".join(rnd.choice(CHARSETS["hex"]) for _ in range(32))
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return "".join(rnd.choice(CHARSETS[m.group(1)]) for _ in range(int(m.group(2))))
    return _FIELD.sub(one, spec)


def names(rule: str) -> tuple[str, str, str, str]:
    """A rule id as the names people give such a value: UPPER_SNAKE, lower_snake, camelCase, kebab-case."""
    words = re.sub(r"[^a-z0-9]+", " ", rule.lower()).split()
    return ("_".join(words).upper(), "_".join(words), words[0] + "".join(w.title() for w in words[1:]),
            "-".join(words))


# Context templates: (name, held_out, render(upper, snake, camel, kebab, value) -> text).
Render = Callable[[str, str, str, str, str], str]
NAMED_CONTEXTS: list[tuple[str, bool, Render]] = [
    ("env", False, lambda u, s, c, k, v: f"SHELL=/bin/bash\nHOME=/home/dev\n{u}={v}\nLANG=C.UTF-8\n"),
    ("export", False, lambda u, s, c, k, v: f'export PATH="$HOME/.local/bin:$PATH"\nexport {u}="{v}"\n'),
    ("docker inspect", False, lambda u, s, c, k, v:
     f'            "Env": [\n                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin",\n'
     f'                "{u}={v}",\n                "NODE_ENV=production"\n            ],\n'),
    ("kubectl describe", False, lambda u, s, c, k, v:
     f"    Environment:\n      LOG_LEVEL:  info\n      {u}:  {v}\n    Mounts:\n"),
    ("dotenv", False, lambda u, s, c, k, v: f"# service settings\nAPP_PORT=8080\n{u}='{v}'\n"),
    ("yaml", False, lambda u, s, c, k, v: f"service:\n  name: billing\n  {s}: {v}\n  retries: 3\n"),
    ("json", False, lambda u, s, c, k, v: f'{{\n  "name": "billing",\n  "{c}": "{v}",\n  "retries": 3\n}}\n'),
    ("toml", False, lambda u, s, c, k, v: f'[service]\nname = "billing"\n{s} = "{v}"\n'),
    ("ini", False, lambda u, s, c, k, v: f"[default]\nregion = eu-west-1\n{s} = {v}\n"),
    ("flag", False, lambda u, s, c, k, v: f"$ deploy-tool sync --region eu-west-1 --{k} {v} --verbose\n"),
    # held out: written before tuning, never looked at while tuning
    ("systemctl show", True, lambda u, s, c, k, v: f"Environment=LANG=C.UTF-8 {u}={v} PORT=9000\n"),
    ("helm get values", True, lambda u, s, c, k, v: f"USER-SUPPLIED VALUES:\nconfig:\n  {c}: \"{v}\"\n"),
    ("terraform output", True, lambda u, s, c, k, v: f'{s} = "{v}"\nregion = "eu-west-1"\n'),
]
# Where the format, not the rule's name, says what the value is: credentials files, connection URLs in the
# forms URL syntax allows, password flags and headers. Every rule's values are measured in these.
FORMAT_CONTEXTS: list[tuple[str, bool, Render]] = [
    ("netrc", False, lambda u, s, c, k, v: f"machine api.example.com\n  login ci\n  password {v}\n"),
    ("npmrc", False, lambda u, s, c, k, v: f"registry=https://npm.example.com/\n//npm.example.com/:_authToken={v}\n"),
    ("aws credentials", False, lambda u, s, c, k, v: f"[default]\naws_access_key_id = AKIAEXAMPLE\n"
     f"aws_secret_access_key = {v}\n"),
    ("url postgres", False, lambda u, s, c, k, v: f"DATABASE_URL=postgresql://app:{v}@db.internal:5432/app?sslmode=require\n"),
    ("url no user", False, lambda u, s, c, k, v: f"redis://:{v}@cache.internal:6379/0\n"),
    ("url srv ipv6", False, lambda u, s, c, k, v: f"mongodb+srv://admin:{v}@cluster0.example.net/?retryWrites=true "
     f"amqp://guest:{v}@[::1]:5672/vhost\n"),
    ("url encoded user", False, lambda u, s, c, k, v: f"https://ci%40example.com:{v}@git.example.com/team/app.git\n"),
    ("--token", False, lambda u, s, c, k, v: f"$ gh-tool release --token {v} --tag v1.2.0\n"),
    ("--password=", False, lambda u, s, c, k, v: f"$ pg_dump --username app --password={v} app > app.sql\n"),
    ("mysql -p", False, lambda u, s, c, k, v: f"$ mysql -h db -u root -p{v} app\n"),
    ("docker login -p", False, lambda u, s, c, k, v: f"$ docker login -u ci -p {v} registry.example.com\n"),
    ("x-api-key header", False, lambda u, s, c, k, v: f"< HTTP/1.1 200 OK\n> X-Api-Key: {v}\n"),
]
# Where no name says what the value is: only tokens that carry their own prefix are caught there.
BARE_CONTEXTS: list[tuple[str, bool, Render]] = [
    ("echo", False, lambda u, s, c, k, v: f"$ echo $CI_TOKEN\n{v}\n"),
    ("api json", False, lambda u, s, c, k, v: f'{{"id": 42, "name": "ci", "value": "{v}", "scopes": ["read"]}}\n'),
    ("git remote", False, lambda u, s, c, k, v:
     f"origin\thttps://oauth2:{v}@git.example.com/team/app.git (fetch)\n"),
    ("bearer header", False, lambda u, s, c, k, v: f"> GET /v1/me HTTP/1.1\n> Authorization: Bearer {v}\n"),
    ("log line", True, lambda u, s, c, k, v: f"2026-12-06 10:00:01,120 DEBUG loaded credential {v} from cache\n"),
    ("python repr", True, lambda u, s, c, k, v: f"Settings(region='eu-west-1', upload={v!r}, debug=False)\n"),
]


def in_context(ctx: str, value: str) -> str:
    """`value` as the context writes it: inside a URL's user information, percent-encoded where URL syntax
    requires it (RFC 3986: `/`, `@`, `%` and the like)."""
    return quote(value, safe="-._~!$&'()*+,;=:") if ctx.startswith("url") else value


def samples(seed: int) -> dict[str, list[tuple[str, bool, str, str]]]:
    """Per rule: (context, held_out, text, secret value)."""
    out: dict[str, list[tuple[str, bool, str, str]]] = {}
    for rule, specs in TOKENS.items():
        rnd = random.Random(f"{seed}:{rule}")
        out[rule] = []
        for spec in specs:
            form = spec if isinstance(spec, tuple) else ("{v}", spec)
            contexts = NAMED_CONTEXTS + BARE_CONTEXTS + (FORMAT_CONTEXTS if form[0] == "{v}" else [])
            for ctx, held, render in contexts:  # a URL or a cookie is not a password
                value = in_context(ctx, fill(form[1], rnd))
                text = render(*names(rule), form[0].replace("{v}", value))
                out[rule].append((ctx, held, text, value))
    for rule, (specs, rule_names) in NAMED.items():
        rnd = random.Random(f"{seed}:{rule}")
        out[rule] = []
        for spec in specs:
            for name in rule_names:
                for ctx, held, render in NAMED_CONTEXTS + (FORMAT_CONTEXTS if name == rule_names[0] else []):
                    value = in_context(ctx, fill(spec, rnd))
                    out[rule].append((ctx, held, render(*names(name), value), value))
    for rule, cases in SPECIAL.items():
        rnd = random.Random(f"{seed}:{rule}")
        out[rule] = []
        for ctx, held, template, spec in cases:
            value = fill(spec, rnd)
            if "{b64v}" in template:  # the value as a Secret holds it: base64
                text = template.replace("{b64v}", base64.b64encode(value.encode()).decode())
                value = base64.b64encode(value.encode()).decode()
            else:
                text = template.replace("{v}", value)
            out[rule].append((ctx, held, fill(text, rnd), value))
    return out


def leaked(redacted: str, value: str, text: str, run: int = 12) -> str | None:
    """The first `run`-character piece of `value` still in `redacted` (the whole value if shorter); a piece that
    the sample's text shows outside the value too (a name holding the token's prefix) tells nothing."""
    n = min(run, len(value))
    around = text.replace(value, "\0")
    for i in range(len(value) - n + 1):
        if value[i : i + n] in redacted and value[i : i + n] not in around:
            return value[i : i + n]
    return None


def mask(text: str, value: str) -> str:
    """`text` with `value` shown by its shape only: first 4 characters, then its length."""
    return text.replace(value, f"{value[:4]}…<{len(value)}>").replace("\n", "⏎")[:110]


def log_like(mb: float, seed: int, secrets: list[str]) -> list[str]:
    """>= `mb` MB of terminal output in 64 kB pieces, one secret sample every ~40 lines."""
    rnd = random.Random(seed)
    pieces, piece, size, total = [], [], 0, 0
    while total < mb * 1e6:
        i = total // 64
        kind = i % 6
        line = [
            f"-rw-r--r--  1 dev staff {rnd.randint(0, 10**7):>9} Dec {rnd.randint(1, 28):2} 12:{i % 60:02} "
            f"src/module_{i % 977}/file_{i}.py",
            f"2026-12-06T12:00:{i % 60:02}.{i % 1000:03}Z INFO [worker-{i % 8}] GET /api/v1/items/{i} status=200 "
            f"request_id={rnd.getrandbits(64):016x} user=alice took={rnd.random():.3f}s",
            f'{{"ts": {1765000000 + i}, "level": "debug", "msg": "cache miss", "key": "item:{i}", "size": {i % 4096}}}',
            f"commit {rnd.getrandbits(160):040x}\nAuthor: Dev <dev@example.com>\nDate:   Sat Dec 6 12:00:00 2026 +0000",
            f"  Downloading package_{i % 300}-{i % 9}.{i % 20}.{i % 7}-py3-none-any.whl ({i % 900} kB)",
            f"src/main.c:{i % 900}:{i % 80}: warning: unused variable 'tmp_{i % 50}' [-Wunused-variable]",
        ][kind]
        if i % 40 == 0 and secrets:
            line += "\n" + rnd.choice(secrets)
        piece.append(line)
        size += len(line) + 1
        total += len(line) + 1
        if size >= 65536:
            pieces.append("\n".join(piece))
            piece, size = [], 0
    if piece:
        pieces.append("\n".join(piece))
    return pieces


def speed(pieces: list[str], runs: int = 3) -> list[float]:
    """MB/s of `redact` over `pieces`, per run."""
    mb = sum(len(p.encode()) for p in pieces) / 1e6
    redact(pieces[0])  # compile
    rates = []
    for _ in range(runs):
        t = time.perf_counter()
        for p in pieces:
            redact(p)
        rates.append(mb / (time.perf_counter() - t))
    return rates


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="seed of the fake values (0: the tuning seed)")
    ap.add_argument("--mb", type=float, default=50, help="MB of log-like text for the speed figure")
    ap.add_argument("--show-missed", type=int, default=2, help="missed examples shown per rule")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    ap.add_argument("--tuning", action="store_true", help="show no held-out example, only their counts")
    args = ap.parse_args()

    per_rule = samples(args.seed)
    rows, redacted_rules, held = [], 0, {"samples": 0, "leaked": 0}
    tuned = {"samples": 0, "leaked": 0}
    for rule in sorted(per_rule):
        missed = []
        for ctx, held_out, text, value in per_rule[rule]:
            out, _ = redact(text)
            bucket = held if held_out else tuned
            bucket["samples"] += 1
            if leaked(out, value, text):
                bucket["leaked"] += 1
                if held_out and args.tuning:
                    missed.append("[held-out, not shown]")
                    continue
                missed.append(f"[{ctx}{' held-out' if held_out else ''}] {mask(text, value)}")
        ok = not missed
        redacted_rules += ok
        rows.append((rule, len(per_rule[rule]), len(per_rule[rule]) - len(missed), missed[: args.show_missed]))

    print(f"{'rule':44} {'samples':>7} {'redacted':>8}  missed (value masked)")
    for rule, n, good, missed in rows:
        print(f"{rule:44} {n:7} {good:8}  {missed[0] if missed else ''}")
        for m in missed[1:]:
            print(f"{'':62}{m}")
    print(f"\nexcluded as not applicable ({len(EXCLUDED)}):")
    for rule, reason in sorted(EXCLUDED.items()):
        print(f"  {rule}: {reason}")

    altered = {True: [], False: []}
    for category, held_out, text in LOOKALIKES:
        out, n = redact(text)
        if out != text:
            altered[held_out].append((category, text, out))
    n_look = {h: sum(1 for _, ho, _ in LOOKALIKES if ho == h) for h in (False, True)}
    print(f"\nlook-alikes altered: {len(altered[False])}/{n_look[False]} tuned, "
          f"{len(altered[True])}/{n_look[True]} held out")
    for h in (False, True) if not args.tuning else (False,):
        for category, text, out in altered[h]:
            print(f"  [{category}{' held-out' if h else ''}] {text[:80]!r} -> {out[:80]!r}")
    for name, b in (("tuned contexts", tuned), ("held-out contexts", held)):
        print(f"samples leaked, {name}: {b['leaked']}/{b['samples']}")

    mb_s = "na"
    if not args.no_speed:
        secrets = [text for cases in per_rule.values() for _, _, text, _ in cases]
        rates = speed(log_like(args.mb, args.seed, secrets))
        print(f"\nspeed over {args.mb:.0f} MB: {' '.join(f'{r:.1f}' for r in rates)} MB/s "
              f"(median {statistics.median(rates):.1f}, spread {min(rates):.1f}-{max(rates):.1f})")
        mb_s = f"{max(rates):.1f}"
    applicable = len(per_rule)
    print(f"RESULT rules={applicable + len(EXCLUDED)} applicable={applicable} "
          f"redacted_rate={redacted_rules / applicable:.3f} "
          f"lookalikes_altered={len(altered[False]) + len(altered[True])} mb_per_s={mb_s} "
          f"heldout_leaked={held['leaked']}/{held['samples']} heldout_lookalikes_altered={len(altered[True])}")


if __name__ == "__main__":
    main()
