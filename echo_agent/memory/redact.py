"""Secret redaction: applied to every command, reply and output before the store writes it.

The formats come from gitleaks' default rules (benchmarks/secrets_corpus.py measures them, rule by rule, with
look-alikes that must survive). A text is scanned once whatever the number of kinds; speed (>= 50 MB/s on
log-like text, benchmarks/secrets_corpus.py) comes from four rules:
- every pattern starts with a plain keyword (`AKIA`, `ghp_`, `eyJ`, `://`, a name's end with its operator such
  as `ken=` or `ord":`); one Aho-Corasick pass (ahocorasick-rs, the keyword prefilter secret scanners such as gitleaks and trufflehog use)
  finds every keyword at once, and only that keyword's own patterns are tried where it was found. Python's `re`
  scans an alternation position by position (~3 MB/s);
- word-boundary look-behinds come *after* the keyword, never before it;
- no pattern nests unbounded repetitions, so nothing backtracks catastrophically;
- what needs Python (judging a name, a command line, a Kubernetes Secret) runs only where a pattern matched.

`name=value` forms are found by the last characters of the name with the separator and operator as keywords
(`…ord=`, `…ken":`, `…key = `), and match at the operator; the name is then judged in Python, in three tiers: secret
names (password, token, secret, api_key…) always lose their value; key-like names (key, auth, session…) and
names holding a secret word or a service's name (`ADOBE_CLIENT_ID`, `secretValue`) only when the value looks
random. Only the value is replaced (`password=[REDACTED:password]`), so the text stays readable and the model
still learns the format; a user name before a password (`user:pass@`, `-u user:pass`) is kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from ahocorasick_rs import AhoCorasick

ENTROPY_THRESHOLD = 3.5
"""Bits per character a value next to a key-like name needs to count as a secret (random base64 of 20+
characters scores about 4.2-5; words, paths and version strings score lower)."""

# Last characters of names that may hold secrets; with a separator and the operator they are the keywords of
# `name=value`: three characters for most, more where three would also end common names (`request_id`, `origin`).
_ENDS = ["ord", "swd", "pwd", "ret", "ken", "key", "Key", "uth", "ion", "kie", "ure", "sig", "alt", "red", "als",
         "ssw", "cet", "eds"]
_ENDS += ["login", "Login", "__COM", "phrase", "Phrase", "entId", "essId", "apiId", "ApiId", "appId", "AppId"]
_ENDS += ["ent_id", "ess_id", "api_id", "app_id", "ent-id", "ess-id", "api-id", "app-id"]
_ENDS += [e.upper() for e in _ENDS if e.upper() != e]
# Each `name<separator><operator>` as a keyword of its own: `…ord=`, `…ken":`, `…key = `, `…ret :=`.
_SEPARATORS = {"=": ["", '"', "'", " ", '" ', "' ", ":", " :"], ":": ["", '"', "'", " ", '" ', "' "]}
_ASSIGN_KEYWORDS = tuple(e + sep + op for op, seps in _SEPARATORS.items() for e in _ENDS for sep in seps)
_VALUE = r"[=>]?[ \t]*[\"'`]?(?P<v>[^\s\"'`,;&)}\]]+)"
_B = "[A-Za-z0-9_]"  # a word character: a token must not continue one
_END = "(?![A-Za-z0-9_])"


def _token(kind: str, prefixes: Iterable[str], body: str, end: str = _END) -> list[tuple[str, tuple[str, ...],
                                                                                        int, str]]:
    """A token that starts with one of `prefixes` (not inside a word) and goes on with `body`."""
    return [(kind, (p,), 0, re.escape(p) + f"(?<!{_B}{'.' * len(p)})" + body + end) for p in prefixes]


# (kind, keywords a match starts with, offset of the match from the keyword, regex). A pattern that redacts only
# part of its match names that part `v`. `assign` matches at the operator, the last character of its keyword
# (offset None); the name before it is judged in Python.
_PATTERNS: list[tuple[str, tuple[str, ...], int | None, str]] = [
    ("private_key", ("-----BEGIN",), 0, r"-----BEGIN[A-Z0-9 _-]{0,100}PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]{0,20000}?-----END[A-Z0-9 _-]{0,100}PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)"),
    *_token("aws_access_key", ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ABIA", "ACCA"),
            "[A-Z0-9]{16}"),
    *_token("aws_access_key", ("A3T",), "[A-Z0-9]{17}"),
    *_token("aws_bedrock_key", ("ABSK",), "[A-Za-z0-9+/]{109,269}={0,2}", ""),
    *_token("aws_bedrock_key", ("bedrock-api-key-",), "[A-Za-z0-9+/%&=_.-]{20,}", ""),
    *_token("github_token", (*(f"gh{c}_" for c in "pousr"),), "[A-Za-z0-9]{36,255}"),
    *_token("github_token", ("github_pat_",), "[A-Za-z0-9_]{50,255}"),
    *_token("gitlab_token", ("glpat-", "glcbt-", "gldt-", "glffct-", "glft-", "glimt-", "glagent-", "gloas-",
                             "glptt-", "glrt-", "glsoat-", "GR1348941"), r"[A-Za-z0-9_.-]{20,}", ""),
    *_token("gitlab_token", ("_gitlab_session=",), "[0-9a-z]{32}"),
    *_token("slack_token", (*(f"xox{c}-" for c in "abposre"), "xoxe.", "xapp-"), "[A-Za-z0-9.-]{10,}", ""),
    ("slack_webhook", ("hooks.slack.com/",), 0,
     r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<v>[A-Za-z0-9+/]{20,})"),
    ("teams_webhook", ("/webhookb2/",), 0, r"/webhookb2/(?P<v>[A-Za-z0-9@/-]{40,})"),
    *_token("stripe_key", ("sk_", "rk_"), "(?:live|test|prod)_[A-Za-z0-9]{10,99}"),
    *_token("npm_token", ("npm_",), "[A-Za-z0-9]{36}"),
    *_token("pypi_token", ("pypi-",), "[A-Za-z0-9_-]{50,}", ""),
    *_token("api_key", ("sk-",), "(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", ""),
    ("jwt", ("eyJ",), 0, r"eyJ(?<![A-Za-z0-9_-]...)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    *_token("jwt", ("ZXlK",), "[A-Za-z0-9+/]{40,}={0,2}", ""),
    *_token("grafana_token", ("eyJrIjoi",), "[A-Za-z0-9]{70,400}={0,3}", ""),
    *_token("grafana_token", ("glc_",), "[A-Za-z0-9+/]{32,400}={0,3}", ""),
    *_token("grafana_token", ("glsa_",), "[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"),
    *_token("onepassword_key", ("A3-",), r"[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})(?:-[A-Z0-9]{5}){3}"),
    *_token("onepassword_token", ("ops_eyJ",), "[A-Za-z0-9+/]{250,}={0,3}", ""),
    *_token("age_key", ("AGE-SECRET-KEY-1",), "[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    *_token("adobe_secret", ("p8e-",), "[A-Za-z0-9]{32}"),
    *_token("airtable_token", ("pat",), r"[A-Za-z0-9]{14}\.[a-f0-9]{64}"),
    *_token("alibaba_key", ("LTAI",), "[A-Za-z0-9]{20}"),
    *_token("atlassian_token", ("ATATT3",), "[A-Za-z0-9_=-]{186}", ""),
    *_token("artifactory_key", ("AKCp",), "[A-Za-z0-9]{69}"),
    *_token("artifactory_key", ("cmVmd",), "[A-Za-z0-9]{59}"),
    *_token("authress_key", ("sc_", "ext_", "scauth_", "authress_"),
            r"[A-Za-z0-9]{5,30}\.[A-Za-z0-9]{4,6}\.acc[_-][A-Za-z0-9-]{10,32}\.[A-Za-z0-9+/_=-]{30,120}", ""),
    ("azure_secret", ("Q~",), -4, r"(?<![A-Za-z0-9_~.])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
    *_token("clickhouse_key", ("4b1d",), "[A-Za-z0-9]{38}"),
    *_token("clojars_token", ("CLOJARS_",), "[A-Za-z0-9]{60}"),
    *_token("cloudflare_key", ("v1.0-",), "[a-f0-9]{24}-[a-f0-9]{146}"),
    *_token("databricks_token", ("dapi",), "[a-f0-9]{32}(?:-[0-9])?"),
    *_token("digitalocean_token", ("doo_v1_", "dop_v1_", "dor_v1_"), "[a-f0-9]{64}"),
    *_token("doppler_token", ("dp.pt.",), "[A-Za-z0-9]{43}"),
    *_token("duffel_token", ("duffel_test_", "duffel_live_"), "[A-Za-z0-9_=-]{43}", ""),
    *_token("dynatrace_token", ("dt0c01.",), r"[A-Za-z0-9]{24}\.[A-Za-z0-9]{64}"),
    *_token("easypost_token", ("EZAK", "EZTK"), "[A-Za-z0-9]{54}"),
    *_token("facebook_token", ("EAAM", "EAAC"), "[A-Za-z0-9]{100,}"),
    *_token("square_token", ("EAAA", "sq0atp-", "sq0csp-"), "[A-Za-z0-9_-]{22,60}"),
    *_token("flutterwave_key", ("FLWSECK_TEST-", "FLWPUBK_TEST-", "FLWSECK-", "FLWPUBK-"),
            "[A-Za-z0-9]{12,32}(?:-X)?"),
    *_token("flyio_token", ("fo1_",), "[A-Za-z0-9_-]{43}", ""),
    *_token("flyio_token", ("fm1a_", "fm1r_", "fm2_"), "[A-Za-z0-9+/]{100,}={0,3}", ""),
    *_token("frameio_token", ("fio-u-",), "[A-Za-z0-9_=-]{64}", ""),
    *_token("gcp_api_key", ("AIza",), "[A-Za-z0-9_-]{35}", ""),
    *_token("harness_key", ("pat.", "sat."), r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9]{24}\.[A-Za-z0-9]{20}"),
    ("terraform_token", ("atlasv1",), -15, rf"(?<!{_B})[A-Za-z0-9]{{14}}\.atlasv1\.[A-Za-z0-9_=-]{{60,70}}"),
    *_token("heroku_key", ("HRKU-AA",), "[A-Za-z0-9_-]{58}", ""),
    *_token("huggingface_token", ("hf_", "api_org_"), "[A-Za-z]{34}"),
    *_token("infracost_token", ("ico-",), "[A-Za-z0-9]{32}"),
    *_token("intra42_secret", ("s-s4t2ud-", "s-s4t2af-"), "[a-f0-9]{64}"),
    *_token("linear_key", ("lin_api_",), "[A-Za-z0-9]{40}"),
    ("maxmind_key", ("_mmk",), -36, rf"(?<!{_B})[A-Za-z0-9]{{6}}_[A-Za-z0-9]{{29}}_mmk"),
    *_token("notion_token", ("ntn_",), "[0-9]{11}[A-Za-z0-9]{35}"),
    *_token("octopus_key", ("API-",), "[A-Z0-9]{26}"),
    *_token("openshift_token", ("sha256~",), "[A-Za-z0-9_-]{43}", ""),
    *_token("perplexity_key", ("pplx-",), "[A-Za-z0-9]{48}"),
    *_token("planetscale_token", ("pscale_tkn_", "pscale_oauth_", "pscale_pw_"), "[A-Za-z0-9_=.-]{32,64}", ""),
    *_token("postman_key", ("PMAK-",), "[a-f0-9]{24}-[a-f0-9]{34}"),
    *_token("prefect_token", ("pnu_",), "[A-Za-z0-9]{36}"),
    *_token("pulumi_token", ("pul-",), "[a-f0-9]{40}"),
    *_token("readme_token", ("rdme_",), "[a-z0-9]{70}"),
    *_token("rubygems_token", ("rubygems_",), "[a-f0-9]{48}"),
    *_token("scalingo_token", ("tk-us-",), "[A-Za-z0-9_-]{48}", ""),
    *_token("sendgrid_key", ("SG.",), "[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}", ""),
    *_token("sendinblue_key", ("xkeysib-",), "[a-f0-9]{64}-[A-Za-z0-9]{16}"),
    *_token("sentry_token", ("sntrys_eyJ",), "[A-Za-z0-9+/=_]{50,}", ""),
    *_token("sentry_token", ("sntryu_",), "[a-f0-9]{64}"),
    *_token("settlemint_token", ("sm_aat_", "sm_pat_", "sm_sat_"), "[A-Za-z0-9]{16}"),
    *_token("shippo_token", ("shippo_live_", "shippo_test_"), "[a-fA-F0-9]{40}"),
    *_token("shopify_token", ("shpat_", "shpca_", "shppa_", "shpss_"), "[a-fA-F0-9]{32}"),
    *_token("sourcegraph_token", ("sgp_",), "(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}"),
    *_token("twilio_key", ("SK",), "[0-9a-fA-F]{32}"),
    *_token("vault_token", ("hvs.", "hvb."), "[A-Za-z0-9_-]{90,300}", ""),
    *_token("vault_token", ("s.",), "(?=[A-Za-z]*[0-9])[A-Za-z0-9]{24}"),
    ("url_password", ("://",), 0, r"://[^\s/:@'\"]{0,256}:(?P<v>[^\s/'\"]{1,1000})(?=@)"),
    ("authorization", ("uthorization",), -1, r"[Aa]uthorization[\"']?[ \t]*[:=][ \t]*[\"']?"
     r"(?:(?P<scheme>Basic|Token|Api-Token|Bearer|Bot|Negotiate|Digest|token|basic|bearer)[ \t]+)?"
     r"(?P<v>[A-Za-z0-9_=~@.+/-]{8,})"),
    ("bearer", ("earer ", "earer\t"), -1, r"[Bb]earer[ \t]+(?P<v>[A-Za-z0-9._~+/-]{20,}=*)"),
    ("nuget_password", ("<add key=",), 0, r"<add key=\"(?:ClearText)?[Pp]assword\"\s*value=\"(?P<v>[^\"]+)\""),
    ("netrc_password", ("machine ",), 0, r"machine[ \t]+\S+\s+(?:login[ \t]+\S+\s+)?password[ \t]+(?P<v>\S+)"),
    ("openssl_password", ("pass:",), 0, rf"pass:(?<!{_B}pass:)(?P<v>[^\s\"']+)"),
    ("flag", (" --", "\t--"), 0, r"[ \t]--(?P<name>[A-Za-z][A-Za-z0-9_-]{1,40})(?:=|[ \t]+)[\"']?(?P<v>[^\s\"']+)"),
    ("command_flag", (" -p", " -a", " -u", " --user"), 0,
     r" -(?:(?P<flag>[pau])|-user(?=[ \t=]))(?P<space>[ \t]+|=)?[\"']?(?P<v>[^\s\"']{3,})"),
    ("assign", _ASSIGN_KEYWORDS, None, "(?P<op>[=:])" + _VALUE),
    # names aligned in columns (`password        = …`, terraform plans, aligned configs)
    ("assign", tuple(e + sep for e in _ENDS for sep in ("  ", "\t")), None, r"[ \t]*(?P<op>[=:])" + _VALUE),
]

# Matched against the 84 characters before the operator, reversed: anchored, so linear.
_NAME_BEFORE_REVERSED = re.compile(r"[ \t]?:?[ \t]?[\"']?([A-Za-z0-9_.-]{1,80})")
_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_.-]|(?<=[a-z]))(passw(?:or)?d|pass_?phrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|credentials?|creds)$"
)
_KEYISH_NAME = re.compile(r"(?i)(?:^|[_.-]|(?<=[a-z]))(key|auth|session|cookie|signature|sig|salt|cred)$")
# A secret word or a service's name as a word of the name (`secretValue`, `ADOBE_CLIENT_ID`, `sonar.login`): the
# services are those of gitleaks' rules that match on a name rather than on a token's own prefix.
_SECRET_WORD = re.compile(r"(?:^|[_.-]|(?<=[a-z])(?=[A-Z]))(?i:secret|token|passw(?:or)?d|credential|api[_-]?key)")
_SERVICE = re.compile(
    r"(?:^|[_.-]|(?<=[a-z])(?=[A-Z]))(?i:(?P<s>adafruit|adobe|airtable|algolia|alibaba|asana|atlassian|confluence|jira"
    r"|beamer|bitbucket|bittrex|meraki|cloudflare|codecov|cohere|co_api|coinbase|confluent|contentful|datadog"
    r"|dnkey|discord|droneci|dropbox|etsy|facebook|fastly|finicity|finnhub|flickr|freshbooks|gitter|gocardless"
    r"|heroku|hubspot|intercom|jfrog|artifactory|bintray|xray|kraken|kucoin|launchdarkly|linear|linked[_-]?in"
    r"|lob|looker|mailchimp|mailgun|mapbox|mattermost|message[_-]?bird|netlify|new[_-]?relic|nytimes|okta|plaid"
    r"|private[_-]?ai|rapidapi|sendbird|sentry|snyk|sonar|squarespace|sumo|telegram|travis|twitch|twitter"
    r"|typeform|yandex|zendesk|bundle_(?:gems|enterprise)__contribsys))"
)
_AWS_NAME = re.compile(r"(?i)aws|secret")
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+]{40}")
# Values after secret names that are placeholders, settings or other arguments, not secrets.
_PLACEHOLDER = re.compile(r"(?:[$<%*{(]|\[REDACTED|--).*|-|(?i:true|false|null|none|yes|no|on|off|required|optional"
                          r"|basic|bearer|token|digest)|(?:id|src|source|type|target|env|mode|uid|gid)=.*")
_HEX = re.compile(r"[0-9a-fA-F]+")
# A value that can be a generated secret: token characters only, not a path, a URL, a version or a word.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_+/=.~|%:-]{10,400}")
_DIGIT = re.compile(r"[0-9]")
_LETTER = re.compile(r"[A-Za-z]")
_PROSE_AFTER = re.compile(r"[ \t]+[a-z]{2,}")
# Commands whose short flag takes a password (`mysql -pSECRET`, `docker login -p SECRET`, `redis-cli -a SECRET`,
# `curl -u user:SECRET`): (flag, the command before it on the line, whether the value may follow a space).
_COMMAND_FLAGS = [
    ("p", re.compile(r"\b(?:mysql|mariadb|mysqldump|mysqladmin|mysqlimport)\b"), False),
    ("p", re.compile(r"\b(?:(?:docker|podman|nerdctl|buildah|skopeo|helm|oras|crane)\b.*\blogin|sshpass)\b"), True),
    ("a", re.compile(r"\bredis-cli\b"), True),
    ("u", re.compile(r"\b(?:curl|wget)\b"), True),
]


def shannon_entropy(s: str) -> float:
    """Bits per character of `s`."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """`text` as SQLite (UTF-8) can hold it: each lone surrogate (a JSON `\\udcff` escape in an import file, an
    undecodable byte in argv) becomes U+FFFD, so positions and length stay the same."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def _random_looking(value: str, service: bool) -> bool:
    """Whether `value` can be a generated secret: token characters, no URL or path, letters and digits mixed
    (a service's name also admits long numbers, which its client ids are), and not a plain word's entropy."""
    if not _TOKEN_CHARS.fullmatch(value) or "://" in value or value[0] in "/.~" or (
            "/" in value and len(value) < 40):
        return False
    if not _DIGIT.search(value) or not _LETTER.search(value):  # a service's long number, or random letters
        return service and len(value) >= 14 and (value.isdigit() or value.isalpha() and _case_changes(value) >= 5)
    return len(value) >= (14 if service else 10) and shannon_entropy(value) >= 3.0


def _case_changes(word: str) -> int:
    """How often the case changes from one letter to the next: random letters change often, CamelCase words
    once per word."""
    return sum(a.isupper() != b.isupper() for a, b in zip(word, word[1:], strict=False))


def _assignment_kind(name: str, value: str, prose: bool = False) -> str | None:
    """Kind of secret in `<name>=<value>`; None when it is not one. `prose`: the value is a word followed by more
    words (`passwd: password updated successfully`)."""
    if _PLACEHOLDER.fullmatch(value):
        return None
    if _AWS_NAME.search(name) and _AWS_SECRET.fullmatch(value):
        return "aws_secret_key"
    if s := _SECRET_NAME.search(name):
        if prose and value.isalpha():
            return None
        word = s.group(1).lower()
        return "password" if word.startswith("p") else "credentials" if word == "creds" else word.replace("-", "_")
    if (_KEYISH_NAME.search(name) and len(value) >= 20 and not _HEX.fullmatch(value)
            and shannon_entropy(value) >= ENTROPY_THRESHOLD):
        return "high_entropy"
    if (s := _SERVICE.search(name)) and _random_looking(value, service=True):
        service = s.group("s").lower()
        return ("sidekiq" if "contribsys" in service else re.sub(r"[_-]", "", service)) + "_secret"
    if _SECRET_WORD.search(name) and _random_looking(value, service=False):
        return "high_entropy"
    return None


def _line(text: str, pos: int) -> str:
    """The line of `text` up to `pos`."""
    return text[text.rfind("\n", 0, pos) + 1 : pos]


def _judge(kind: str, m: re.Match[str], text: str) -> tuple[str | None, int]:
    """A match's kind of secret (None: not one after all) and where its redaction starts."""
    if kind in ("assign", "flag"):
        value = m.group("v")
        if kind == "flag":
            name = m.group("name")
        else:
            before = _NAME_BEFORE_REVERSED.match(text[max(0, m.start() - 84) : m.start()][::-1])
            if not before:
                return None, 0
            name = before.group(1)[::-1]
        prose = kind == "assign" and m.group("op") == ":" and bool(_PROSE_AFTER.match(text, m.end()))
        return _assignment_kind(name, value, prose), m.start("v")
    if kind == "command_flag":
        flag, line = m.group("flag") or "u", _line(text, m.start())
        spaced = m.group("space") is not None
        for f, command, may_space in _COMMAND_FLAGS:
            if f == flag and command.search(line) and (may_space or not spaced):
                value = m.group("v")
                if f == "u":  # user:password: the password
                    user, sep, value = value.partition(":")
                    if not sep or not value or value.isdigit() or _PLACEHOLDER.fullmatch(value):
                        return None, 0
                    return "password", m.start("v") + len(user) + 1
                return (None, 0) if _PLACEHOLDER.fullmatch(value) else ("password", m.start("v"))
        return None, 0
    if kind == "authorization" and ((m.group("scheme") or "").lower() == "digest"
                                    or m.group("v").lower() in ("basic", "bearer", "negotiate", "digest")):
        return None, 0
    start = m.start("v") if "v" in m.re.groupindex else m.start()
    return kind, start


@lru_cache(maxsize=32)
def _compiled(extra: tuple[str, ...]) -> tuple[AhoCorasick, list[tuple[int, int, str, re.Pattern[str]]],
                                                list[tuple[int, str, re.Pattern[str]]]]:
    """The keyword automaton with, per keyword, its (offset, order, kind, regex); and the user's patterns, which
    have no known keyword, as (order, kind, regex) passes of their own."""
    keywords: list[tuple[str, tuple[int, int, str, re.Pattern[str]]]] = []
    for order, (kind, kws, offset, rx) in enumerate(_PATTERNS):
        compiled = re.compile(rx)
        keywords += [(kw, (len(kw) - 1 if offset is None else offset, order, kind, compiled)) for kw in kws]
    passes = [(len(_PATTERNS) + i, "custom", re.compile(rx)) for i, rx in enumerate(extra)]
    return AhoCorasick([kw for kw, _ in keywords]), [k for _, k in keywords], passes


def _spans(text: str, automaton: AhoCorasick, per_keyword: list, passes: list) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every secret, in order, not overlapping."""
    candidates: list[tuple[int, int, str, Any]] = []
    for i, start, _ in automaton.find_matches_as_indexes(text, overlapping=True):
        offset, order, kind, rx = per_keyword[i]
        candidates.append((max(0, start + offset), order, kind, rx))
    for order, kind, rx in passes:
        candidates += [(m.start(), order, kind, m) for m in rx.finditer(text)]
    candidates.sort(key=lambda c: (c[0], c[1]))
    spans: list[tuple[int, int, str]] = []
    done = 0
    for pos, _, kind, rx in candidates:
        if pos < done:
            continue
        m = rx if isinstance(rx, re.Match) else rx.match(text, pos)
        if m is None:
            continue
        found, start = (kind, m.start()) if kind == "custom" else _judge(kind, m, text)
        if found is None or m.end() == start:  # not a secret (its value is still scanned), or an empty match
            continue
        spans.append((start, m.end(), found))
        done = m.end()
    return spans


# A Kubernetes Secret (`kubectl get secret -o yaml|json`): every value under its `data:` / `stringData:`.
_K8S_KIND = re.compile(r"""["']?kind["']?[ \t]*:[ \t]*["']?Secret\b""")
_K8S_YAML_DATA = re.compile(r"(?m)^([ \t]*)(?:data|stringData):[ \t]*\n")
_K8S_JSON_DATA = re.compile(r"\"(?:data|stringData)\"[ \t]*:[ \t]*\{([^{}]*)\}")
_K8S_JSON_VALUE = re.compile(r"\"[^\"]*\"[ \t]*:[ \t]*\"(?P<v>[^\"]+)\"")
_YAML_ENTRY = re.compile(r"([ \t]+)[\"']?[\w.-]+[\"']?:[ \t]*(?P<v>[^\n]*)\n?")
_YAML_LINE = re.compile(r"([ \t]+)[^\n]*\n?")


def _kubernetes_secret_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of the data values of every Kubernetes Secret document in `text`."""
    spans: list[tuple[int, int, str]] = []
    for kind in _K8S_KIND.finditer(text):
        lo = text.rfind("\n---", 0, kind.start()) + 1
        hi = text.find("\n---", kind.end())
        hi = len(text) if hi < 0 else hi
        for block in _K8S_JSON_DATA.finditer(text, lo, hi):
            spans += [(v.start("v"), v.end("v"), "kubernetes_secret")
                      for v in _K8S_JSON_VALUE.finditer(text, block.start(1), block.end(1))]
        for block in _K8S_YAML_DATA.finditer(text, lo, hi):
            indent, pos = len(block.group(1)), block.end()
            while (e := _YAML_ENTRY.match(text, pos, hi)) and len(e.group(1)) > indent:
                value_start, pos = e.start("v"), e.end()
                if e.group("v").strip() in ("|", ">", "|-", ">-"):  # a block scalar: its lines are the value
                    while (c := _YAML_LINE.match(text, pos, hi)) and len(c.group(1)) > len(e.group(1)):
                        pos = c.end()
                    value_start = e.end()
                if text[value_start:pos].strip():
                    spans.append((value_start, pos - (text[pos - 1 : pos] == "\n"), "kubernetes_secret"))
    return spans


def redact(text: str, extra_patterns: Iterable[str] = ()) -> tuple[str, int]:
    """Replace secrets in `text` with `[REDACTED:<kind>]`; returns the new text and how many were replaced.

    `extra_patterns` are the user's own regular expressions (Settings.redact_patterns); their matches become
    `[REDACTED:custom]`. The text comes back `storable`.
    """
    if not text:
        return text, 0
    where = _compiled(tuple(extra_patterns))
    try:
        spans = _spans(text, *where)
    except UnicodeEncodeError:  # a lone surrogate: neither the keyword automaton nor SQLite takes one
        text = storable(text)
        spans = _spans(text, *where)
    if "Secret" in text:
        spans = _merged(spans + _kubernetes_secret_spans(text))
    parts: list[str] = []
    done = 0
    for start, end, kind in spans:
        parts += [text[done:start], f"[REDACTED:{kind}]"]
        done = end
    parts.append(text[done:])
    return "".join(parts), len(spans)


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """`spans` in order, overlapping ones joined (the first one's kind)."""
    out: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]), out[-1][2])
        else:
            out.append((start, end, kind))
    return out


def redact_json(value: Any, extra_patterns: Iterable[str] = ()) -> Any:
    """`value` (a prompt: messages, dicts, lists) with every string in it redacted. Redacting the JSON text
    instead could cut an escape sequence in two and leave text that is no longer JSON."""
    if isinstance(value, str):
        return redact(value, extra_patterns)[0]
    if isinstance(value, dict):
        return {k: redact_json(v, extra_patterns) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v, extra_patterns) for v in value]
    return value
