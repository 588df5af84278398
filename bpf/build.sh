#!/usr/bin/env bash
# Build the flowgate XDP object.
#
#   bash bpf/build.sh [OUT_DIR] [extra clang flags...]
#
# Default output: bpf/out/flowgate_xdp.o (relative to this script).
# Needs: clang (>= 11), libbpf-dev (bpf/bpf_helpers.h), linux-libc-dev.
# Env: CLANG (default clang), BPF_CFLAGS (appended).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out_dir="${1:-$here/out}"
shift || true
CLANG="${CLANG:-clang}"

# Debian/Ubuntu keep <asm/types.h> & co. under the multiarch triplet.
arch_inc=""
if command -v gcc >/dev/null 2>&1 && triplet="$(gcc -dumpmachine 2>/dev/null)" \
	&& [ -d "/usr/include/$triplet" ]; then
	arch_inc="-I/usr/include/$triplet"
elif [ -d "/usr/include/$(uname -m)-linux-gnu" ]; then
	arch_inc="-I/usr/include/$(uname -m)-linux-gnu"
fi

mkdir -p "$out_dir"
# shellcheck disable=SC2086
"$CLANG" -O2 -g -target bpf -Wall \
	$arch_inc ${BPF_CFLAGS:-} "$@" \
	-c "$here/flowgate_xdp.c" -o "$out_dir/flowgate_xdp.o"

echo "built $out_dir/flowgate_xdp.o"
