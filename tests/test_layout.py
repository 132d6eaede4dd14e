"""The package's layout rules (the flow in the README's Layout section), checked on its source.

1. Imports only go down: no cycle between top-level parts of `latentjax`.
2. No `latentjax` import inside a function outside the command layer (`cli.py`, `programs/`).
3. No `argparse` or `SystemExit` outside the command layer.
4. Above `models/`, nothing branches on a family name (`.family ==`).
5. Library functions return values: outside the command layer, the format writers (`io/`) and the
   training harness (`train/`), files are written only by functions named save*, export* or write*.
"""

import ast

from support import REPO

PACKAGE = REPO / "latentjax"
COMMAND_LAYER = ("cli.py", "__main__.py", "programs/")
BELOW_FAMILIES = ("models/", "load.py", "io/", "ops/")  # the parts allowed to know model families
WRITERS = COMMAND_LAYER + ("io/", "train/")  # the parts whose job is to write files
WRITE_CALLS = {"write_bytes", "write_text", "mkdir", "savez", "savez_compressed", "touch"}


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        yield rel, ast.parse(path.read_text(), rel)


def part(module: str) -> str:
    """The top-level part a dotted module belongs to: latentjax.io.native -> io."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ""


def imported_modules(rel: str, node) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = ["latentjax"] + rel.split("/")[:-1]
            base = base[:len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == "latentjax":
            return [f"latentjax.{a.name}" for a in node.names]
        return [module]
    return []


def in_function(node, parents) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return True
    return False


def graph_and_findings():
    edges, lazy, command_bits, family_branches = {}, [], [], []
    for rel, tree in modules():
        src = rel.split("/")[0].removesuffix(".py")
        command = rel.startswith(COMMAND_LAYER)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            for module in imported_modules(rel, node):
                if module == "argparse" and not command:
                    command_bits.append(f"{rel}:{node.lineno} imports argparse")
                if not module.startswith("latentjax."):
                    continue
                if in_function(node, parents) and not command:
                    lazy.append(f"{rel}:{node.lineno} imports {module} inside a function")
                dst = part(module)
                if dst and dst != src and src != "__init__":
                    edges.setdefault(src, set()).add(dst)
            if isinstance(node, ast.Name) and node.id == "SystemExit" and not command:
                command_bits.append(f"{rel}:{node.lineno} uses SystemExit")
            if (isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "family"
                    and not rel.startswith(BELOW_FAMILIES)):
                family_branches.append(f"{rel}:{node.lineno} compares .family")
    return edges, lazy, command_bits, family_branches


def writes_a_file(node) -> bool:
    """A call that writes to disk: Path.write_*/mkdir/touch, np.save*, or open() with a w/a/x mode."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name in WRITE_CALLS:
        return True
    if name == "save" and isinstance(func, ast.Attribute) and getattr(func.value, "id", None) in ("np", "jnp"):
        return True
    modes = node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
    return name == "open" and any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax") for m in modes)


def file_writes(rel: str, tree) -> list[str]:
    """Writes in `rel` that are not inside a function named save*, export* or write*."""
    if rel.startswith(WRITERS):
        return []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not writes_a_file(node):
            continue
        scope = node
        while scope in parents and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scope = parents[scope]
        if not getattr(scope, "name", "").startswith(("save", "export", "write")):
            found.append(f"{rel}:{node.lineno} writes a file in {getattr(scope, 'name', 'module scope')}")
    return found


def cycles(edges) -> list[list[str]]:
    """Strongly connected components with more than one part (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {d for ds in edges.values() for d in ds}):
        if v not in index:
            visit(v)
    return found


FINDINGS = graph_and_findings()


def test_no_import_cycle_between_parts():
    assert cycles(FINDINGS[0]) == []


def test_no_latentjax_import_inside_functions_below_the_command_layer():
    assert FINDINGS[1] == []


def test_no_command_line_code_below_the_command_layer():
    assert FINDINGS[2] == []


def test_no_family_branch_above_models():
    assert FINDINGS[3] == []


def test_library_functions_return_values_and_only_savers_write():
    assert [w for rel, tree in modules() for w in file_writes(rel, tree)] == []


def test_the_checks_see_a_cycle_and_a_lazy_import():
    """The checker itself: a planted cycle and a planted lazy import are found."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    import latentjax.io\n")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert in_function(imports[0], parents) and imported_modules("x.py", imports[0]) == ["latentjax.io"]
    writes = ast.parse("def render(x, p):\n    p.write_bytes(x)\n    open(p, 'wb')\n    np.save(p, x)\n"
                       "def save(x, p):\n    p.write_bytes(x)\ndef show(b):\n    image.save(b)\n    open(b)\n")
    assert [w.split(":")[1].split()[0] for w in file_writes("viz/x.py", writes)] == ["2", "3", "4"]
    assert file_writes("programs/x.py", writes) == []
