#!/bin/sh
# Run every libFuzzer target built in $WHARF_BUILDDIR/tests/fuzz for a short
# time on a copy of its seed corpus, and report in TAP. The copy keeps the
# inputs a run discovers out of the source tree; crash inputs are kept in
# tests/fuzz/artifacts/ of the build tree so a failure can be replayed with
# `fuzz_NAME ARTIFACT`.
#
# WHARF_FUZZ_TIME overrides the seconds per target (default 20).

here=$(cd "$(dirname "$0")" && pwd)
srcdir=${WHARF_SRCDIR:-$(cd "$here/../.." && pwd)}
builddir=${WHARF_BUILDDIR:-$srcdir}
fuzzdir=$builddir/tests/fuzz
secs=${WHARF_FUZZ_TIME:-20}

targets=
for f in "$fuzzdir"/fuzz_*; do
	if [ -f "$f" ] && [ -x "$f" ]; then
		targets="$targets $(basename "$f")"
	fi
done

if [ -z "$targets" ]; then
	echo "1..0 # SKIP no clang"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wharf-fuzz.XXXXXX") || {
	echo "1..0 # SKIP cannot create a temporary directory"
	exit 0
}
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# fuzz_stomp_codec seeds from corpus/stomp_codec or else corpus/stomp.
corpus_for() {
	name=${1#fuzz_}
	for c in "$name" "${name%_codec}"; do
		if [ -d "$srcdir/tests/fuzz/corpus/$c" ]; then
			echo "$srcdir/tests/fuzz/corpus/$c"
			return
		fi
	done
}

# Target names are fuzz_WORD: splitting the list on spaces is safe.
# shellcheck disable=SC2086
set -- $targets
echo "1..$#"
n=0
for t in "$@"; do
	n=$((n + 1))
	work=$tmp/$t
	mkdir -p "$work/corpus" "$fuzzdir/artifacts"
	seeds=$(corpus_for "$t")
	[ -n "$seeds" ] && cp -R "$seeds/." "$work/corpus/"
	if (cd "$work" && "$fuzzdir/$t" -max_total_time="$secs" -rss_limit_mb=1024 \
		-artifact_prefix="$fuzzdir/artifacts/$t-" corpus >"$work/log" 2>&1); then
		echo "ok $n - $t ${secs}s"
	else
		echo "not ok $n - $t ${secs}s"
		tail -n 40 "$work/log" | sed 's/^/# /'
	fi
done
exit 0
