#!/bin/sh
# Regenerates the tracer's compiled eBPF object (tracer_bpfel.o) and its Go
# bindings (tracer_bpfel.go) from bpf/tracer.bpf.c, with Debian's clang and
# llvm-strip and the libbpf headers:
#   apt-get install -y clang llvm libbpf-dev
# Run it from anywhere; OUTPUT_DIR writes the files elsewhere (the staleness
# test compares such a build with the checked-in one).
set -eu
cd "$(dirname "$0")"
out=${OUTPUT_DIR:-.}
# The compiler's version goes beside the object: another clang makes other
# bytes, so the staleness test compares only builds of the same one.
clang --version | head -n 1 > "$out/tracer_bpfel.clang"
# -fdebug-prefix-map keeps the build directory out of the object's BTF line
# information, so that the object is the same wherever it is built.
GOPACKAGE=tracer exec go tool bpf2go \
	-target bpfel -output-dir "$out" -output-stem tracer \
	-type outbound_key -type outbound_counts -type inbound_key -type inbound_counts -type socket_info \
	tracer bpf/tracer.bpf.c -- -I bpf -Wall -Werror -fdebug-prefix-map="$PWD"=.
