"""The tree's own checks, counted in make check: the link-level module graph
of sendmail has no cycle (tools/modgraph.sh over $BUILD/sendmail/*.o), and
the C sources are as clang-format leaves them (make format-check).

The graph script itself is tested on tiny objects compiled here: a graph it
cannot see a cycle in would pass the real check for the wrong reason.
"""

import glob
import os
import subprocess

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODGRAPH = os.path.join(TOP, "tools", "modgraph.sh")


def modgraph(*args):
    return subprocess.run(["sh", MODGRAPH, *args], cwd=TOP, capture_output=True,
                          text=True, timeout=60)


def compile_objects(tmp_path, sources):
    """Compile {name: C text} to tmp_path/name.o; returns the object paths."""
    objs = []
    for name, text in sources.items():
        src = tmp_path / (name + ".c")
        src.write_text(text)
        obj = tmp_path / (name + ".o")
        subprocess.run(["cc", "-c", "-o", str(obj), str(src)], check=True, timeout=60)
        objs.append(str(obj))
    return objs


def test_sendmail_module_graph_has_no_cycle():
    build = os.environ.get("BUILD", "build")
    objs = sorted(glob.glob(os.path.join(TOP, build, "sendmail", "*.o")))
    assert len(objs) > 10, "no objects in %s/sendmail: make all first" % build
    r = modgraph(*objs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("no cycles"), r.stdout
    # It is a graph of the real program: main uses the SMTP client, which
    # uses the network layer, which uses the buffer type.
    edges = set(r.stdout.splitlines())
    for e in ("main -> smtp", "smtp -> net", "net -> buf"):
        assert e in edges, r.stdout


def test_modgraph_finds_a_cycle(tmp_path):
    objs = compile_objects(tmp_path, {
        "alpha": "int beta(int);\nint alpha(int n) { return n ? beta(n - 1) : 0; }\n",
        "beta": "int gamma_(int);\nint beta(int n) { return gamma_(n); }\n",
        "gamma": "int alpha(int);\nint gamma_(int n) { return alpha(n); }\n",
        "delta": "int alpha(int);\nint delta(void) { return alpha(3); }\n",
    })
    r = modgraph(*objs)
    assert r.returncode == 1, r.stdout + r.stderr
    cycles = [line for line in r.stdout.splitlines() if line.startswith("cycle: ")]
    assert cycles == ["cycle: alpha -> beta -> gamma -> alpha"], r.stdout
    assert "delta -> alpha" in r.stdout.splitlines()


def test_modgraph_without_a_cycle_passes(tmp_path):
    # A diamond (two paths to one module) is not a cycle.
    objs = compile_objects(tmp_path, {
        "top": "int left(void); int right(void);\n"
               "int top(void) { return left() + right(); }\n",
        "left": "int bottom(void);\nint left(void) { return bottom(); }\n",
        "right": "int bottom(void);\nint right(void) { return bottom() + 1; }\n",
        "bottom": "#include <string.h>\nint bottom(void) { return (int)strlen(\"x\"); }\n",
    })
    r = modgraph(*objs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "left -> bottom", "right -> bottom", "top -> left", "top -> right",
        "modgraph: 4 modules, 4 edges, no cycles"], r.stdout


def test_modgraph_groups_the_spool_files(tmp_path):
    # -g: spool_a and spool_b are one module "spool"; calls between them
    # are not a cycle, a call back from outside the group is.
    objs = compile_objects(tmp_path, {
        "spool_a": "int spool_b(void); int util(void);\n"
                   "int spool_a(void) { return spool_b() + util(); }\n",
        "spool_b": "int spool_a(void);\nint spool_b(void) { return 0; }\n"
                   "int spool_c(void) { return spool_a(); }\n",
        "util": "int util(void) { return 1; }\n",
    })
    r = modgraph("-g", *objs)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[0] == "spool -> util"
    r = modgraph(*objs)
    assert r.returncode == 1, r.stdout
    assert "cycle: spool_a -> spool_b -> spool_a" in r.stdout.splitlines()


def test_sources_are_clang_formatted():
    r = subprocess.run(["make", "-s", "--no-print-directory", "format-check"], cwd=TOP,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "make format (clang-format) would change:\n" + r.stderr[-4000:]
