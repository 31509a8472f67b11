"""A parsed module as a program: functions with resolved labels, basic blocks and reconvergence points.

For each function the body's labels become instruction indices (``pc``); the instructions are split
into basic blocks; the control-flow graph gets a virtual exit node that every ``ret``/``exit`` (and
falling off the end) leads to; and each block's *immediate post-dominator* is computed. A branch
executed at ``pc`` reconverges (its threads run together again) at the first instruction of its
block's immediate post-dominator — :meth:`FunctionCode.reconvergence` — or never (``-1``) when that is
the exit. This is the reconvergence rule of GPGPU-Sim's SIMT stack.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ._parse import Function, Instruction, Label, Module, PtxSyntaxError, Sym, Variable, parse_ptx

__all__ = ["EXIT", "MAX_BLOCKS", "FunctionCode", "FunctionCodes", "Program", "build_program"]

#: the reconvergence point of a branch whose paths only meet at the function's exit
EXIT = -1
#: the most basic blocks one function may have
MAX_BLOCKS = 1 << 17

_ENDS_BLOCK = {"bra", "ret", "exit", "trap", "brx"}


@dataclass(slots=True)
class FunctionCode:
    """One function's straight-line code and its control-flow facts."""

    function: Function
    code: list[Instruction]
    labels: dict[str, int]  # label -> pc
    block_of: list[int]  # pc -> block index
    block_start: list[int]  # block -> first pc
    ipdom: list[int]  # block -> immediate post-dominator block, EXIT when none
    successors: list[tuple[int, ...]] = field(default_factory=list)  # block -> blocks (EXIT for exit)

    @property
    def name(self) -> str:
        return self.function.name

    def target(self, label: str, line: int) -> int:
        pc = self.labels.get(label)
        if pc is None:
            raise PtxSyntaxError(f"branch to an unknown label {label!r} in {self.name}", line)
        return pc

    def reconvergence(self, pc: int) -> int:
        """The pc where the threads diverging at ``pc`` meet again, or :data:`EXIT`."""
        post = self.ipdom[self.block_of[pc]]
        return EXIT if post == EXIT else self.block_start[post]


def _unconditional(ins: Instruction) -> bool:
    return ins.guard is None


def build_function(fn: Function) -> FunctionCode:
    assert fn.body is not None
    code: list[Instruction] = []
    labels: dict[str, int] = {}
    for item in fn.body:
        if isinstance(item, Label):
            if item.name in labels:
                raise PtxSyntaxError(f"label {item.name} defined twice in {fn.name}", item.line)
            labels[item.name] = len(code)
        else:
            code.append(item)
    n = len(code)
    leaders = {0} | {pc for pc in labels.values() if pc < n}
    for pc, ins in enumerate(code):
        if ins.opcode in _ENDS_BLOCK and pc + 1 < n:
            leaders.add(pc + 1)
    starts = sorted(leaders) if n else []
    if len(starts) > MAX_BLOCKS:
        raise PtxSyntaxError(
            f"function {fn.name} has {len(starts)} basic blocks; the engine takes {MAX_BLOCKS}"
        )
    block_of = [0] * n
    for b, start in enumerate(starts):
        end = starts[b + 1] if b + 1 < len(starts) else n
        for pc in range(start, end):
            block_of[pc] = b
    nb = len(starts)
    succ: list[tuple[int, ...]] = []
    for b in range(nb):
        end = starts[b + 1] if b + 1 < nb else n
        last = code[end - 1]
        fall = b + 1 if b + 1 < nb else EXIT
        out: list[int] = []
        if last.opcode == "bra":
            if not last.operands or not isinstance(last.operands[0], Sym):
                raise PtxSyntaxError("bra needs a label", last.line)
            tpc = labels.get(last.operands[0].name)
            if tpc is None:
                raise PtxSyntaxError(f"branch to an unknown label {last.operands[0].name!r}", last.line)
            out.append(block_of[tpc] if tpc < n else EXIT)
            if not _unconditional(last):
                out.append(fall)
        elif last.opcode in ("ret", "exit", "trap"):
            out.append(EXIT)
            if not _unconditional(last):
                out.append(fall)
        else:
            out.append(fall)
        succ.append(tuple(dict.fromkeys(out)))
    return FunctionCode(fn, code, labels, block_of, starts, _ipdoms(succ), succ)


def _ipdoms(succ: list[tuple[int, ...]]) -> list[int]:
    """Immediate post-dominators: the dominator tree of the reversed CFG, rooted at the exit, by the
    iterative algorithm of Cooper, Harvey and Kennedy ("A Simple, Fast Dominance Algorithm").

    A block from which the exit cannot be reached (an endless loop) gets EXIT: it never reconverges.
    """
    nb = len(succ)
    root = nb  # the virtual exit
    # in the reversed graph, the nodes after x are x's predecessors in the CFG
    after: list[list[int]] = [[] for _ in range(nb + 1)]
    for b, outs in enumerate(succ):
        for s in outs:
            after[root if s == EXIT else s].append(b)
    postorder = [-1] * (nb + 1)
    order: list[int] = []
    seen = [False] * (nb + 1)
    seen[root] = True
    stack = [(root, iter(after[root]))]
    while stack:  # depth-first from the exit, iteratively
        node, rest = stack[-1]
        nxt = next(rest, None)
        if nxt is None:
            stack.pop()
            postorder[node] = len(order)
            order.append(node)
        elif not seen[nxt]:
            seen[nxt] = True
            stack.append((nxt, iter(after[nxt])))
    idom = [-1] * (nb + 1)
    idom[root] = root

    def intersect(a: int, b: int) -> int:
        while a != b:
            while postorder[a] < postorder[b]:
                a = idom[a]
            while postorder[b] < postorder[a]:
                b = idom[b]
        return a

    changed = True
    while changed:
        changed = False
        for b in reversed(order[:-1]):  # reverse postorder, the root left out
            new = -1
            for s in succ[b]:
                p = root if s == EXIT else s
                if idom[p] != -1:
                    new = p if new == -1 else intersect(p, new)
            if new != idom[b]:
                idom[b] = new
                changed = True
    return [EXIT if idom[b] in (-1, root) else idom[b] for b in range(nb)]


class FunctionCodes(Mapping[str, FunctionCode]):
    """The defined functions' code by name, each built at its first use: a module of many kernels
    pays for the control-flow analysis of the ones it launches (and what they call) only. A function
    whose body cannot be built raises :class:`PtxSyntaxError` at that use."""

    def __init__(self, module: Module) -> None:
        self._functions = {name: fn for name, fn in module.functions.items() if fn.defined}
        self._built: dict[str, FunctionCode] = {}

    def __getitem__(self, name: str) -> FunctionCode:
        code = self._built.get(name)
        if code is None:
            code = self._built[name] = build_function(self._functions[name])
        return code

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions)

    def __len__(self) -> int:
        return len(self._functions)

    def __contains__(self, name: object) -> bool:
        return name in self._functions


@dataclass(slots=True)
class Program:
    """A whole module: its variables and its functions' code (built once, shared by launches)."""

    module: Module
    functions: FunctionCodes

    @property
    def variables(self) -> list[Variable]:
        return self.module.variables

    def entry(self, name: str) -> FunctionCode | None:
        fn = self.module.functions.get(name)
        if fn is None or fn.kind != "entry" or not fn.defined:
            return None
        return self.functions[name]


def build_program(text: str) -> Program:
    """Parse; raises :class:`PtxSyntaxError` for text it cannot read. Functions are built lazily."""
    module = parse_ptx(text)
    return Program(module, FunctionCodes(module))
