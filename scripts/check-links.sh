#!/usr/bin/env bash
# Checks that the documentation points only at what the repository contains:
#
#   scripts/check-links.sh
#
# - every relative link in README.md, CONTRIBUTING.md and docs/ (a Markdown
#   link `[text](target)`, relative to the file that holds it) names a file
#   or directory that exists, and its `#anchor`, if any, names a heading of
#   the Markdown file it points at;
# - every repository path named in those files and in dist/, scripts/, .ci/,
#   .cargo/config.toml, Cargo.toml and Cross.toml (a word starting with src/,
#   tests/, benches/, scripts/, dist/, docs/, web/, .cargo/ or .ci/, or one of
#   the top-level files, read from the top of the repository) exists.
#
# Web addresses, absolute paths (/etc/..., ~/...) and paths under target/
# (build output) are not checked. Prints one line per missing target, with
# the file and line that names it, and exits 1 if there is any; 0 otherwise.
# Needs only bash, GNU grep (-P) and awk.
set -euo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C

docs=(README.md CONTRIBUTING.md)
while IFS= read -r f; do docs+=("$f"); done < <(find docs -type f -name '*.md' | sort)
others=()
while IFS= read -r f; do others+=("$f"); done < <(find dist scripts .ci -type f | sort)
others+=(.cargo/config.toml Cargo.toml Cross.toml)

missing=0
report() { # FILE:LINE, what is missing
    echo "$1: missing $2" >&2
    missing=$((missing + 1))
}

# The anchors GitHub gives the headings of Markdown file $1, one per line:
# lower case, punctuation dropped, spaces as hyphens, "-1", "-2"... on repeats.
anchors() {
    awk '
        /^[ \t]*```/ { code = !code; next }
        !code && /^#+[ \t]/ {
            h = $0
            sub(/^#+[ \t]+/, "", h)
            sub(/[ \t]+#*[ \t]*$/, "", h)
            h = tolower(h)
            gsub(/[^a-z0-9 _-]/, "", h)
            gsub(/ /, "-", h)
            if (seen[h]++) print h "-" (seen[h] - 1); else print h
        }' "$1"
}

# Markdown links, relative to the file holding them.
for f in "${docs[@]}"; do
    [[ -f $f ]] || { report "$f" "(the file itself)"; continue; }
    dir=$(dirname "$f")
    while IFS= read -r hit; do
        line=${hit%%:*}
        target=${hit#*:](}
        target=${target%)}
        target=${target%% *}
        case $target in
        http://* | https://* | mailto:*) continue ;;
        esac
        file=${target%%#*}
        anchor=
        [[ $target == *#* ]] && anchor=${target#*#}
        if [[ -z $file ]]; then
            path=$f
        else
            path=$file
            [[ $dir == . ]] || path=$dir/$file
            if [[ ! -e $path ]]; then
                report "$f:$line" "$target (no such file)"
                continue
            fi
        fi
        if [[ -n $anchor && $path == *.md ]] && ! anchors "$path" | grep -qxF -- "$anchor"; then
            report "$f:$line" "$target (no such heading in $path)"
        fi
    done < <(grep -noP '\]\([^)\s]+(?:\s+"[^"]*")?\)' "$f" || true)
done

# Repository paths named anywhere in the documentation, scripts and config.
root='(?:src|tests|benches|scripts|dist|docs|web|\.cargo|\.ci)/[\w./-]*'
top='(?:README|CONTRIBUTING)\.md|Cargo\.(?:toml|lock)|Cross\.toml'
for f in "${docs[@]}" "${others[@]}"; do
    [[ -f $f ]] || continue
    while IFS= read -r hit; do
        line=${hit%%:*}
        path=${hit#*:}
        while [[ $path == *. ]]; do path=${path%.}; done
        [[ -e $path ]] || report "$f:$line" "$path (no such file or directory)"
    done < <(grep -noP "(?<![\w./~\$-])(?<!\]\()(?:$root|(?:$top)(?![\w-]))" "$f" || true)
done

if ((missing > 0)); then
    echo "check-links: $missing missing target(s)" >&2
    exit 1
fi
echo "check-links: every link and path named in the documentation exists"
