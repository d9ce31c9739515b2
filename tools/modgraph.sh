#!/bin/sh
# modgraph.sh - the link-level module graph of sendmail, and its cycles
#
# Usage: sh tools/modgraph.sh [-q] [-g] [OBJECT...]
#
# Each object file is one module (build/sendmail/spool_entry.o is the
# module spool_entry). nm(1) lists what each object defines and what it
# leaves undefined; an undefined symbol that another object defines is an
# edge "user -> definer". Symbols nobody here defines (libc, OpenSSL,
# iniparser) are not edges. This is the graph the linker sees, so it
# includes calls the #include graph hides (a module that declares a
# prototype itself, or a header that only forward-declares a struct).
#
# Prints the edges, one "module -> module" line each, sorted, then one
# summary line. Exits 1 when there is a cycle, printing each cycle a
# depth-first search closes ("cycle: a -> b -> a"); 2 on a usage error.
#
#   -q	print only cycles and the summary line
#   -g	group: spool_*.o count as the one module "spool" (the spool split
#	into files by concern; edges inside the group are not shown)
#
# Without OBJECT arguments: build/sendmail/*.o (make all first).
# make modgraph runs it; make check runs it as one counted check.
set -u

quiet=0
group=0
while [ $# -gt 0 ]; do
	case "$1" in
	-q) quiet=1 ;;
	-g) group=1 ;;
	--) shift; break ;;
	-*) echo "usage: modgraph.sh [-q] [-g] [OBJECT...]" >&2; exit 2 ;;
	*) break ;;
	esac
	shift
done
if [ $# -eq 0 ]; then
	set -- build/sendmail/*.o
fi
for o in "$@"; do
	if [ ! -f "$o" ]; then
		echo "modgraph: $o: no such object (run make all first)" >&2
		exit 2
	fi
done

# nm -P: "file.o: name type value size"; -A names the file on every line
# even when there is only one.
nm -A -P "$@" | awk -v quiet="$quiet" -v group="$group" '
function module(file,    m) {
	sub(/:$/, "", file)
	m = file
	sub(/.*\//, "", m)
	sub(/\.o$/, "", m)
	if (group && m ~ /^spool_/)
		m = "spool"
	return m
}

# visit - depth-first search from node u; a back edge to a node on the
# stack closes a cycle, which is printed once (path from that node on).
function visit(u,    i, v, j, path) {
	state[u] = 1
	stack[++depth] = u
	for (i = 1; i <= nout[u]; i++) {
		v = out[u, i]
		if (state[v] == 1) {
			path = v
			for (j = depth; j >= 1 && stack[j] != v; j--)
				;
			for (j++; j <= depth; j++)
				path = path " -> " stack[j]
			print "cycle: " path " -> " v
			cycles++
		} else if (state[v] == 0)
			visit(v)
	}
	depth--
	state[u] = 2
}

{
	m = module($1)
	mods[m] = 1
	type = $3
	if (type == "U")
		need[m, $2] = 1
	else if (type ~ /^[A-TV-Z]$/)	# global: T D B R C W V (not U)
		def[$2] = m
}

END {
	for (k in need) {
		split(k, p, SUBSEP)
		if (!(p[2] in def))
			continue
		d = def[p[2]]
		if (d == p[1] || ((p[1], d) in edge))
			continue
		edge[p[1], d] = 1
		nedges++
	}
	# Deterministic order: modules and their out-edges sorted by name.
	n = 0
	for (m in mods)
		names[++n] = m
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && names[j - 1] > names[j]; j--) {
			t = names[j]; names[j] = names[j - 1]; names[j - 1] = t
		}
	for (i = 1; i <= n; i++) {
		u = names[i]
		for (j = 1; j <= n; j++)
			if ((u, names[j]) in edge) {
				out[u, ++nout[u]] = names[j]
				if (!quiet)
					print u " -> " names[j]
			}
	}
	cycles = 0
	for (i = 1; i <= n; i++)
		if (state[names[i]] == 0)
			visit(names[i])
	printf "modgraph: %d modules, %d edges, ", n, nedges
	if (cycles) {
		printf "%d cycle(s)\n", cycles
		exit 1
	}
	print "no cycles"
}'
