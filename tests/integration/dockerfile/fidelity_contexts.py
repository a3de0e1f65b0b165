"""Build contexts that `mlpack build` and `buildah bud` both build, for the comparison test.

Each context is a Dockerfile plus files; ``{BASE}`` is the busybox image
both builders have. ``differs`` names what is known to differ from buildah
1.28, each a deliberate BuildKit-compatible choice listed in
docs/dockerfile.md ("config:<Key>" or "file:<path>").
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Context:
    name: str
    dockerfile: str
    files: dict[str, bytes | str] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    target: str | None = None
    differs: frozenset[str] = frozenset()
    buildah_refuses: str | None = None  # buildah 1.28 cannot build it: part of its error message


def _tar(members: dict[str, tuple[bytes, int, int]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, uid, mode) in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode, info.mtime = len(data), uid, uid, mode, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:2000::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:2000:\nother:x:3000:\n"

CONTEXTS = [
    Context("multi-stage", "FROM {BASE} AS build\nRUN mkdir -p /out && echo built > /out/a && echo two > /out/b\n"
            "FROM scratch\nCOPY --from=build /out/ /dist/\nCOPY --from=0 /out/a /single\n"),
    Context("arg-env", "ARG BASE_IMG={BASE}\nFROM ${BASE_IMG}\nARG VERSION=1.2.3\nARG EMPTY\n"
            "ENV APP_VERSION=$VERSION OTHER=${EMPTY:-fallback} PATH=/opt/bin:$PATH\n"
            "ENV QUOTED=\"a b\" SINGLE='$VERSION'\nRUN echo \"$APP_VERSION $OTHER\" > /versions\n",
            differs=frozenset({"config:Env"})),
    Context("workdir", "FROM scratch\nWORKDIR /srv\nWORKDIR app\nWORKDIR ../data\nCOPY f ./\n",
            {"f": "x"}, differs=frozenset({"file:srv/app"})),
    Context("user", "FROM {BASE}\nCOPY passwd group /etc/\nUSER app\nWORKDIR /home/app/work\n"
            "RUN id -u > /home/app/work/uid && touch /home/app/work/owned\nUSER 0\n",
            {"passwd": PASSWD, "group": GROUP}),
    Context("copy-flags", "FROM {BASE}\nCOPY passwd group /etc/\nCOPY --chown=1:2 --chmod=0640 f /numeric\n"
            "COPY --chown=app f /named\nCOPY --chown=app:other f /named-group\nCOPY --chmod=755 d /dir/\n",
            {"passwd": PASSWD, "group": GROUP, "f": "file", "d/x": "x", "d/sub/y": "y"}),
    Context("add-archive", "FROM scratch\nADD layer.tar /unpacked/\nADD plain.txt /plain\n",
            {"layer.tar": _tar({"owned": (b"by 1234", 1234, 0o640), "sub/exec": (b"#!/bin/sh\n", 0, 0o755)}),
             "plain.txt": "plain"}),
    Context("globs", "FROM scratch\nCOPY *.txt /txt/\nCOPY [ab].cfg /bracket/\nCOPY ?.md /one/\nCOPY tree /tree\n",
            {"x.txt": "1", "y.txt": "2", "a.cfg": "a", "b.cfg": "b", "c.cfg": "c", "r.md": "r", "rr.md": "rr",
             "tree/in/deep": "d", "tree/top": "t"}),
    Context("dockerignore", "FROM scratch\nCOPY . /ctx/\n",
            {".dockerignore": "*.log\n!keep.log\nsecret/\n**/*.tmp\n", "a.log": "no", "keep.log": "yes",
             "secret/key": "no", "src/x.tmp": "no", "src/main.py": "print()"}),
    Context("whiteouts", "FROM {BASE}\nRUN rm -rf /www && rm /bin/vi\nRUN mkdir -p /d/old && touch /d/old/f\n"
            "RUN rm -rf /d && mkdir -p /d/new && echo n > /d/new/f\n"),
    Context("mounts", "FROM {BASE}\nRUN --mount=type=bind,source=scripts,target=/mnt/s sh /mnt/s/run.sh\n"
            "RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/x && cat /scratch/x > /from-tmpfs\n"
            "RUN --mount=type=cache,target=/cache echo c > /cache/c && cp /cache/c /from-cache\n",
            {"scripts/run.sh": "echo from-bind > /from-bind\n"}, differs=frozenset({"file:mnt"})),
    Context("heredocs", "FROM {BASE}\nARG WHO=world\nRUN <<EOF\nset -e\necho hello > /run-heredoc\nEOF\n"
            "COPY <<EOF /expanded\nhello $WHO\nEOF\nCOPY <<'EOF' /literal\nhello $WHO\nEOF\n"
            "COPY <<A <<B /two/\nfirst\nA\nsecond\nB\nRUN cat > /via-cat <<EOF\n$WHO\nEOF\n",
            buildah_refuses='Unknown instruction: "SET"'),
    Context("shell", "FROM {BASE}\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell-name\n"
            "CMD echo shell-form\n", differs=frozenset({"config:Cmd"})),
    Context("forms", "FROM {BASE}\nCMD [\"base-cmd\"]\nENTRYPOINT [\"/bin/echo\", \"exec\"]\n"
            "FROM {BASE} AS shellform\nENTRYPOINT echo shell $HOME\nCMD [\"arg\"]\n"),
    Context("onbuild", "FROM {BASE} AS base\nONBUILD RUN echo triggered > /onbuild\nONBUILD ENV FROM_TRIGGER=1\n"
            "FROM base\nRUN cat /onbuild > /seen\n"),
    Context("special-files", "FROM {BASE}\nCOPY . /files/\nRUN ln -s /files/plain /abs-link && "
            "ln /files/plain /hard && chmod 4755 /files/suid && mkdir /empty-dir\n",
            {"plain": "p", "suid": "s", "with space": "w", "sub/dir/f": "f"}, modes={"suid": 0o4755}),
    Context("target", "FROM scratch AS first\nCOPY a /a\nFROM first AS mid\nCOPY b /b\nFROM mid\nCOPY c /c\n",
            {"a": "a", "b": "b", "c": "c"}, target="mid"),
    Context("metadata", "FROM scratch\nEXPOSE 80 8000-8002/tcp 53/udp\nVOLUME /data /other\n"
            "VOLUME [\"/json2\", \"/json3\"]\nSTOPSIGNAL SIGINT\nLABEL a=1 \"b c\"=\"d e\"\n"
            "HEALTHCHECK --interval=5s --retries=2 CMD [\"true\"]\n", differs=frozenset({"config:ExposedPorts"})),
    Context("tabs-legacy", "FROM scratch\nENV KEY\tvalue\nENV A=1\tB=2\nENV LEGACY value with  spaces\n"
            "LABEL key\tval\n"),
    Context("escapes", "# escape=`\nFROM scratch\nENV A=trailing``\nENV B=c:\\windows `\n    C=continued\n"
            "COPY f `\n  /f\n", {"f": "f"}, differs=frozenset({"config:Env"})),
    Context("expansion", "FROM scratch\nARG V=a*b*c\nARG FILE=archive.tar.gz\n"
            "ENV S=${V%%\\**} T=${FILE%.gz} U=${FILE##*.} W=${V/b/B} X=${UNSET:-dflt} Y=${V:+set}\n",
            buildah_refuses="Missing ':' in substitution"),
    Context("maintainer", "FROM scratch\nMAINTAINER Jane Doe <jane@example.com>\n"),
    Context("copy-exclude-dashdash", "FROM scratch\nCOPY --exclude=*.pyc src /src/\nCOPY -- --odd /odd\n",
            {"src/a.py": "a", "src/a.pyc": "c", "src/pkg/b.py": "b", "--odd": "o"},
            buildah_refuses="COPY only supports the --chmod=<permissions> --chown=<uid:gid> and the --from"),
    Context("env-path", "FROM {BASE}\nENV PATH=/first:$PATH\nENV PATH=$PATH:/last\nRUN echo $PATH > /path\n"),
]
