"""The data behind the risk classifier (risk.py): levels and the command-name tables it looks names up in.

Nothing here decides anything: risk.py walks the command and applies the deny list, risk_commands.py and
risk_git.py hold the rules for commands classified by their arguments, and they read these tables.
"""

from __future__ import annotations

from typing import NamedTuple

READ_ONLY = "read_only"
WRITES = "writes"
NETWORK = "network"
DESTRUCTIVE = "destructive"
PRIVILEGED = "privileged"
LEVELS = (READ_ONLY, WRITES, NETWORK, DESTRUCTIVE, PRIVILEGED)

READ_ONLY_COMMANDS = frozenset(
    """
    ls cat head tail less more grep egrep fgrep zgrep rg ag stat file wc du df pwd echo printf which type whereis
    whoami id uname env printenv ps free uptime lsblk lscpu lsusb lspci lsof realpath readlink basename dirname
    cut tr jq diff cmp md5sum sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum true false test [ :
    column nl od hexdump strings cd pushd popd export sleep zcat bzcat xzcat nproc arch groups who w tty locale
    getconf getent seq rev tac paste join comm fold fmt expr findmnt ss netstat pgrep pidof vmstat iostat base64
    cal man whatis apropos locate apt-cache dpkg-query lsattr getfacl hostnamectl timedatectl read
    """.split()
)
SHELL_STATE = frozenset({"cd", "pushd", "popd", "export", "read"})

DESTRUCTIVE_COMMANDS = {
    "rm": "rm deletes files",
    "rmdir": "rmdir deletes directories",
    "unlink": "unlink deletes a file",
    "shred": "shred destroys file contents",
    "truncate": "truncate cuts files short",
    "dd": "dd writes raw data",
    "kill": "kill stops processes",
    "pkill": "pkill stops processes",
    "killall": "killall stops processes",
    "shutdown": "shutdown powers off the machine",
    "reboot": "reboot restarts the machine",
    "halt": "halt stops the machine",
    "poweroff": "poweroff powers off the machine",
    "wipefs": "wipefs erases filesystem signatures",
    "fdisk": "fdisk edits partition tables",
    "sfdisk": "sfdisk edits partition tables",
    "parted": "parted edits partition tables",
    "mkswap": "mkswap formats a swap area",
}
PRIVILEGED_COMMANDS = {
    name: f"{name} changes the system"
    for name in """chroot useradd userdel usermod groupadd groupdel passwd chpasswd visudo insmod rmmod modprobe
    iptables ip6tables nft ufw swapon swapoff""".split()
} | {"umount": "umount detaches filesystems"}
NETWORK_COMMANDS = {
    name: f"{name} uses the network"
    for name in """ssh sftp telnet ftp nc ncat netcat ping ping6 dig nslookup host traceroute tracepath mtr whois
    nmap http https""".split()
}
WRITE_COMMANDS = {
    name: f"{name} modifies files"
    for name in "mkdir touch cp mv ln install chmod chown chgrp zip gzip gunzip bzip2 xz unxz make patch mkfifo".split()
}
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "fish"})
INTERPRETERS = frozenset({"python", "python2", "python3", "perl", "ruby", "node", "php"})
CODE_RUNNERS = SHELLS | INTERPRETERS | {"eval", "source", "."}
DOWNLOADERS = frozenset({"curl", "wget", "fetch"})
HELP_FLAGS = frozenset({"--help", "-h", "--version"})
DASH_H_IS_NOT_HELP = frozenset({"shutdown", "halt", "poweroff", "reboot", "sh", "bash", "dash", "ksh"})
SHELL_KEYWORDS = frozenset(
    "if then else elif fi do done while until for in case esac select function time coproc ! [[ ]] { }".split()
)

# Wrappers run another command: name -> (options that take a value, what the wrapper itself adds).
WRAPPERS: dict[str, tuple[frozenset[str], tuple[str, str] | None]] = {
    "sudo": (
        frozenset("-u -g -C -D -p -r -t -U -T -h --user --group --prompt --chdir".split()),
        (PRIVILEGED, "sudo runs as root"),
    ),
    "doas": (frozenset({"-u", "-C"}), (PRIVILEGED, "doas runs as root")),
    "env": (frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}), None),
    "nice": (frozenset({"-n", "--adjustment"}), None),
    "timeout": (frozenset({"-s", "--signal", "-k", "--kill-after"}), None),
    "nohup": (frozenset(), (WRITES, "nohup writes nohup.out")),
    "stdbuf": (frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}), None),
    "time": (frozenset({"-f", "--format", "-o", "--output"}), None),
    "command": (frozenset(), None),
    "builtin": (frozenset(), None),
    "exec": (frozenset({"-a"}), None),
    "xargs": (
        frozenset("-a -d -E -I -L -n -P -s --arg-file --delimiter --max-args --max-procs".split()),
        None,
    ),
}


class PackageManager(NamedTuple):
    reads: frozenset[str]  # local queries
    queries: frozenset[str]  # queries of a remote index
    installs: frozenset[str]  # download and change installed packages
    removes: frozenset[str]  # change installed packages, no download


def _pm(reads: str, queries: str, installs: str, removes: str) -> PackageManager:
    return PackageManager(*(frozenset(words.split()) for words in (reads, queries, installs, removes)))


_APT_INSTALLS = "install upgrade full-upgrade dist-upgrade update reinstall build-dep source download"
_APT_REMOVES = "remove purge autoremove autopurge clean autoclean"
_DNF = _pm(
    "list info repolist provides whatprovides deplist history",
    "search check-update",
    "install upgrade update reinstall downgrade makecache groupinstall",
    "remove erase autoremove clean",
)
PACKAGE_MANAGERS = {
    "apt": _pm("list show policy depends rdepends showsrc", "search changelog", _APT_INSTALLS, _APT_REMOVES),
    "apt-get": _pm("check", "changelog", _APT_INSTALLS, _APT_REMOVES),
    "dnf": _DNF,
    "yum": _DNF,
    "brew": _pm(
        "list ls info config doctor deps leaves --prefix --cellar --repository",
        "search outdated",
        "install upgrade update reinstall tap fetch",
        "uninstall remove rm untap cleanup autoremove",
    ),
    "pip": _pm(
        "list show freeze check help debug inspect", "search index", "install download wheel", "uninstall"
    ),
    "npm": _pm(
        "ls list ll la help root prefix explain why query",
        "view info show search outdated audit",
        "install i ci add update up upgrade link",
        "uninstall remove rm un r prune dedupe",
    ),
    "yarn": _pm("list why bin", "info outdated", "add install upgrade up dlx", "remove"),
    "pnpm": _pm(
        "ls list why root bin", "outdated", "add install i update up dlx", "remove rm uninstall prune"
    ),
    "cargo": _pm(
        "tree metadata locate-project pkgid read-manifest verify-project",
        "search info",
        "install add update fetch",
        "uninstall remove",
    ),
    "gem": _pm("list info contents env which help spec", "search", "install update", "uninstall cleanup"),
}
PACKAGE_MANAGERS["pip3"] = PACKAGE_MANAGERS["pip"]

GIT_READ_ONLY = frozenset(
    """status log show diff rev-parse ls-files ls-tree blame annotate describe shortlog grep cat-file rev-list
    show-ref show-branch merge-base name-rev check-ignore count-objects whatchanged help version var
    for-each-ref cherry range-diff diff-tree diff-files diff-index""".split()
)
GIT_WRITES = frozenset(
    """add commit switch merge rebase cherry-pick revert mv rm init am apply notes worktree gc prune mergetool
    bisect sparse-checkout maintenance update-index""".split()
)
GIT_GLOBAL_VALUE_OPTIONS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace"})

# Writing to these is harmless: a redirection, `tee`, `curl -o` or `wget -O` aimed here writes no file.
HARMLESS_DEVICES = frozenset(
    {"/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/tty"}
)
# Arguments that make an otherwise read-only `ip`, `systemctl` or `dpkg` change something (or keep it read-only).
IP_CHANGES = frozenset("add del delete set flush change replace append exec prepend".split())
SYSTEMCTL_READS = frozenset(
    """status show cat list-units list-unit-files list-timers list-sockets list-dependencies is-active is-enabled
    is-failed is-system-running get-default""".split()
)
DPKG_QUERIES = frozenset(
    "-l -L -s -S -p -c -I --list --listfiles --status --search --print-architecture --contents --info".split()
)
