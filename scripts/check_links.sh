#!/usr/bin/env bash
# Checks every relative link of the documentation: that the file (or
# directory) it names exists, and that its #anchor, if any, is a heading of
# that Markdown file. External links (http:, https:, mailto:) are not
# fetched. Exits 1 naming each broken link as FILE:LINE: TARGET: why.
#
# Usage: scripts/check_links.sh [FILE.md...]
#   (no argument)  README.md, DEVELOPERS.md and docs/**/*.md
#
# Anchors follow GitHub's rules: the heading's text as rendered (inline
# code, emphasis and link markup dropped), lowercased, every character
# that is not a letter, digit, space, hyphen or underscore dropped, spaces
# to hyphens; a repeated heading gets -1, -2, ...; <a name="..."> and
# id="..." count too. Links inside code (fenced blocks, `inline`) are not
# links. Needs bash and python3 (standard library only).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
-*)
    printf 'error: unknown option: %s (see %s --help)\n' "$1" "$0" >&2
    exit 2
    ;;
esac

command -v python3 >/dev/null 2>&1 || {
    echo "error: python3 is needed (apt-get install python3)" >&2
    exit 2
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

files=("$@")
if ((${#files[@]} == 0)); then
    files=(README.md DEVELOPERS.md)
    while IFS= read -r -d '' file; do
        files+=("$file")
    done < <(find docs -name '*.md' -print0 | sort -z)
fi
for file in "${files[@]}"; do
    [[ -f "$file" ]] || {
        printf 'error: no such file: %s\n' "$file" >&2
        exit 2
    }
done

exec python3 - "${files[@]}" <<'PYTHON'
import os
import re
import sys

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*\b(?:name|id)\s*=\s*["']([^"']+)["']""", re.I)
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); target may be <...>, may carry a "title".
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def lines_outside_code(path):
    """(number, line) of every line not inside a fenced code block."""
    fence = None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            match = FENCE.match(line)
            if match:
                marker = match.group(1)
                if fence is None:
                    fence = marker[0] * len(marker)
                    continue
                if marker.startswith(fence):
                    fence = None
                    continue
            if fence is None:
                yield number, line.rstrip("\n")


def rendered(text):
    """A heading's text as GitHub shows it: markup dropped."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = INLINE_CODE.sub(lambda m: m.group(2).strip(), text)
    return text.replace("*", "")


def slug(text):
    text = rendered(text).strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


_anchors = {}


def anchors(path):
    if path not in _anchors:
        found, seen = set(), {}
        for _, line in lines_outside_code(path):
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")
            found.update(HTML_ANCHOR.findall(line))
        _anchors[path] = found
    return _anchors[path]


def targets(path):
    for number, line in lines_outside_code(path):
        bare = INLINE_CODE.sub("", line)
        for match in LINK.finditer(bare):
            yield number, match.group(1)
        match = REFERENCE.match(bare)
        if match:
            yield number, match.group(1)


broken = 0
checked = 0
for path in sys.argv[1:]:
    for number, target in targets(path):
        target = target.strip("<>")
        if EXTERNAL.match(target):
            continue
        checked += 1
        name, _, anchor = target.partition("#")
        where = os.path.normpath(os.path.join(os.path.dirname(path), name)) if name else path
        problem = None
        if not os.path.exists(where):
            problem = f"no such file: {where}"
        elif anchor and where.endswith(".md"):
            if anchor not in anchors(where):
                problem = f"no heading #{anchor} in {where}"
        elif anchor and os.path.isdir(where):
            problem = f"#{anchor} on a directory"
        if problem:
            broken += 1
            print(f"{path}:{number}: {target}: {problem}")

if broken:
    print(f"{broken} broken link(s) of {checked} checked in {len(sys.argv) - 1} file(s)", file=sys.stderr)
    sys.exit(1)
print(f"all {checked} relative links resolve in {len(sys.argv) - 1} file(s)", file=sys.stderr)
PYTHON
