"""PTX text to typed statements: module directives, variables, functions and their instructions.

The parser is strict about structure and lenient about what it does not need: debug directives
(``.loc``, ``.file``, ``.section``, ``.pragma``) are skipped; anything it cannot read is a
:class:`PtxSyntaxError` with the line. It checks no semantics (the program and the executor do).
Sizes from the text are bounded here, so a hostile module cannot make the parser allocate.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field, replace

__all__ = [
    "Addr",
    "Function",
    "Imm",
    "Instruction",
    "Label",
    "Module",
    "Operand",
    "PtxSyntaxError",
    "Reg",
    "Sym",
    "TexAddr",
    "Variable",
    "Vec",
    "parse_ptx",
]

#: the most registers one ``.reg .t %r<N>`` declaration may declare, and elements of one variable
MAX_DECLARED = 1 << 16
MAX_VARIABLE_BYTES = 1 << 30


class PtxSyntaxError(ValueError):
    """PTX the parser cannot read; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


# -- operands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reg:
    """A register (``%r1``), a special register (``%tid.x``) or a predicate, maybe negated (``!%p``)."""

    name: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Imm:
    """An immediate: an ``int`` (two's complement as written) or a ``float``."""

    value: int | float


@dataclass(frozen=True, slots=True)
class Sym:
    """A name that is not a register: a variable, a label, a function, or ``_`` (the sink)."""

    name: str


@dataclass(frozen=True, slots=True)
class Addr:
    """``[base+offset]``: base a register, a variable or ``None`` (an absolute address)."""

    base: Reg | Sym | None
    offset: int


@dataclass(frozen=True, slots=True)
class TexAddr:
    """``[%rd, {c0, c1, …}]``: a texture or surface object handle and its coordinates (``tex``,
    ``tld4``, ``suld``, ``sust``)."""

    handle: Reg | Sym
    coords: Vec


@dataclass(frozen=True, slots=True)
class Vec:
    """``{a, b, …}``: a vector operand."""

    items: tuple[Reg | Imm | Sym, ...]


@dataclass(frozen=True, slots=True)
class Pair:
    """``%p|%q``: the two destinations of ``setp``."""

    first: Reg
    second: Reg


@dataclass(frozen=True, slots=True)
class Args:
    """``(a, b, …)``: a ``call``'s return or argument list."""

    items: tuple[Sym | Reg | Imm, ...]


Operand = Reg | Imm | Sym | Addr | TexAddr | Vec | Pair | Args


# -- statements -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    """``[@[!]%p] opcode.mod.mod operands;``. ``opcode`` is the first dotted word (``ld``),
    ``mods`` the rest in order (``("global", "v4", "f32")``)."""

    opcode: str
    mods: tuple[str, ...]
    operands: tuple[Operand, ...]
    guard: Reg | None
    line: int

    @property
    def text(self) -> str:
        return ".".join((self.opcode, *self.mods))


@dataclass(frozen=True, slots=True)
class Label:
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Variable:
    """A ``.global``/``.const``/``.shared``/``.local``/``.param`` variable: ``size`` bytes (0 for an
    unsized ``extern`` array), aligned to ``align``."""

    space: str
    name: str
    type: str
    align: int
    size: int
    extern: bool = False


@dataclass(slots=True)
class Function:
    """An ``.entry`` (kernel) or ``.func``; ``body`` is ``None`` for a prototype.

    A body is parsed at its first use (``body``): a module of many kernels (a real library's PTX runs
    to megabytes) costs the parse of the kernels it launches and the functions they call. Its
    registers and variables are known from then on; a body the parser cannot read raises
    :class:`PtxSyntaxError` at that use, each time."""

    name: str
    kind: str  # "entry" | "func"
    params: list[Variable]
    returns: list[Variable]
    parsed: list[Instruction | Label] | None
    registers: dict[str, str] = field(default_factory=dict)  # register -> type
    variables: list[Variable] = field(default_factory=list)  # .local/.shared/.param declared inside
    line: int = 0
    source: tuple[int, str] | None = None  # the body's first line and text, until it is parsed
    #: an entry's ``.reqnctapercluster`` (``__cluster_dims__``): the cluster shape its launches run in
    cluster_dims: tuple[int, int, int] | None = None

    @property
    def defined(self) -> bool:
        """Whether the function has a body (parsed or not yet): not a prototype."""
        return self.parsed is not None or self.source is not None

    @property
    def body(self) -> list[Instruction | Label] | None:
        if self.parsed is None and self.source is not None:
            line, text = self.source
            parser = _Parser(text, line - 1)
            self.parsed = []
            try:
                parser.expect("{")
                parser._block(self, 1, [])
                if parser.peek() is not None:
                    raise PtxSyntaxError("text after the function's body", parser.line())
            except RecursionError:
                self._unparsed()
                raise PtxSyntaxError("the function nests too deeply", parser.line()) from None
            except PtxSyntaxError:
                self._unparsed()
                raise
            self.source = None
        return self.parsed

    def _unparsed(self) -> None:
        self.parsed = None
        self.registers.clear()
        self.variables.clear()


@dataclass(slots=True)
class Module:
    version: str = ""
    target: str = ""
    address_size: int = 64
    variables: list[Variable] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)


# -- lexer ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<comment>//.*)
  | (?P<string>"[^"]*")
  | (?P<float>0[fF][0-9a-fA-F]{8}|0[dD][0-9a-fA-F]{16})
  | (?P<int>0[xX][0-9a-fA-F]+U?|0[bB][01]+U?|[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|[0-9]+U?)
  | (?P<word>[%$A-Za-z_.][A-Za-z0-9_$.%]*(?:::[A-Za-z0-9_$.%]+)*)
  | (?P<punct>[{}()\[\],;:@!|+\-=<>])
  | (?P<bad>.)
""",
    re.VERBOSE,
)
_TYPES = {
    "b8",
    "b16",
    "b32",
    "b64",
    "b128",
    "u8",
    "u16",
    "u32",
    "u64",
    "s8",
    "s16",
    "s32",
    "s64",
    "f16",
    "f16x2",
    "bf16",
    "bf16x2",
    "tf32",
    "f32",
    "f64",
    "pred",
    "e4m3",
    "e5m2",
    "e4m3x2",
    "e5m2x2",
}
TYPE_BYTES = {
    "b8": 1,
    "u8": 1,
    "s8": 1,
    "b16": 2,
    "u16": 2,
    "s16": 2,
    "f16": 2,
    "bf16": 2,
    "b32": 4,
    "u32": 4,
    "s32": 4,
    "f32": 4,
    "f16x2": 4,
    "bf16x2": 4,
    "tf32": 4,
    "b64": 8,
    "u64": 8,
    "s64": 8,
    "f64": 8,
    "b128": 16,
    "pred": 1,
    "e4m3": 1,
    "e5m2": 1,
    "e4m3x2": 2,
    "e5m2x2": 2,
}
_SKIPPED_DIRECTIVES = {
    ".loc",
    ".file",
    ".section",
    ".pragma",
    ".reqntid",
    ".maxntid",
    ".minnctapersm",
    ".maxnreg",
    ".maxnctapersm",
    ".explicitcluster",
    ".reqnctapercluster",
    ".maxclusterrank",
    ".noreturn",
    ".blocksareclusters",
    ".abi_preserve",
    ".abi_preserve_control",
}
_LINKING = {".visible", ".extern", ".weak", ".common"}
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    line: int


#: what :func:`_split_bodies` puts where a function's body was (never in text it splits)
_LAZY = "$$lazy_body"
_BRACES = re.compile(r"//[^\n]*|/\*.*?\*/|\"[^\"\n]*\"|[{}]", re.DOTALL)


def _split_bodies(text: str) -> tuple[str, list[tuple[int, str]]]:
    """``text`` with each top-level ``{ … }`` block replaced by a placeholder spanning as many
    lines, and those blocks that are not initializers with their first line: the module's skeleton
    is parsed at once, each function's body at its first use (an initializer's values are not the
    engine's business: ``sim`` places module globals with them). Text that already holds
    the placeholder, or whose braces do not balance, is returned whole (the parser reports it)."""
    if _LAZY in text:
        return text, []
    parts: list[str] = []
    bodies: list[tuple[int, str]] = []
    depth = start = last = 0
    line = 1  # the line at ``last``
    for m in _BRACES.finditer(text):
        tok = m.group()
        if tok == "{":
            if depth == 0:
                start = m.start()
            depth += 1
        elif tok == "}":
            depth -= 1
            if depth < 0:
                return text, []
            if depth == 0:
                body = text[start : m.end()]
                first = line + text.count("\n", last, start)
                if text[last:start].rstrip().endswith("="):  # an initializer: the parser skips it
                    parts += [text[last:start], "{", "\n" * body.count("\n"), "}"]
                else:
                    parts += [text[last:start], "{", f"{_LAZY}{len(bodies)}", "\n" * body.count("\n"), "}"]
                    bodies.append((first, body))
                line, last = first + body.count("\n"), m.end()
    if depth:
        return text, []
    parts.append(text[last:])
    return "".join(parts), bodies


def _tokens(text: str, first_line: int = 0) -> list[_Tok]:
    """The tokens of ``text``, line by line (block comments become the newlines they spanned);
    ``first_line`` is added to every line number (a body parsed apart from its module)."""
    if "/*" in text:
        text = _BLOCK_COMMENT.sub(lambda m: "\n" * m.group().count("\n"), text)
        if "/*" in text:
            raise PtxSyntaxError("an unterminated /* comment")
    out: list[_Tok] = []
    append = out.append
    for line, source in enumerate(text.split("\n"), 1 + first_line):
        if not source:  # the lines a skeleton's placeholders keep (and blank ones): nothing to scan
            continue
        for m in _TOKEN.finditer(source):
            kind = m.lastgroup
            if kind in ("ws", "comment"):
                continue
            if kind == "bad":
                raise PtxSyntaxError(f"unexpected character {m.group()!r}", line)
            append(_Tok(kind or "", m.group(), line))
    return out


def _int_value(text: str, line: int) -> int:
    t = text.rstrip("U")
    try:
        if t[:2] in ("0x", "0X"):
            return int(t[2:], 16)
        if t[:2] in ("0b", "0B"):
            return int(t[2:], 2)
        if len(t) > 1 and t[0] == "0" and t.isdigit():
            return int(t, 8)
        return int(t)
    except ValueError:
        raise PtxSyntaxError(f"bad integer {text!r}", line) from None


def _float_value(text: str) -> float:
    if text[1] in "fF":
        return float(struct.unpack("<f", int(text[2:], 16).to_bytes(4, "little"))[0])
    return float(struct.unpack("<d", int(text[2:], 16).to_bytes(8, "little"))[0])


# -- parser -----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, first_line: int = 0, bodies: list[tuple[int, str]] | None = None) -> None:
        self.toks = _tokens(text, first_line)
        self.bodies = bodies or []  # the function bodies :func:`_split_bodies` took out
        self.i = 0
        self.scoped = 0  # names given to declarations of nested blocks

    # token helpers
    def peek(self, ahead: int = 0) -> _Tok | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def peek_text(self, ahead: int = 0) -> str:
        tok = self.peek(ahead)
        return tok.text if tok is not None else ""

    def line(self) -> int:
        tok = self.peek()
        return tok.line if tok else (self.toks[-1].line if self.toks else 0)

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise PtxSyntaxError("unexpected end of the module", self.line())
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.text == text:
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> _Tok:
        tok = self.next()
        if tok.text != text:
            raise PtxSyntaxError(f"expected {text!r}, found {tok.text!r}", tok.line)
        return tok

    def word(self) -> str:
        tok = self.next()
        if tok.kind != "word":
            raise PtxSyntaxError(f"expected a name, found {tok.text!r}", tok.line)
        return tok.text

    def integer(self) -> int:
        neg = self.accept("-")
        tok = self.next()
        if tok.kind != "int" or "." in tok.text:
            raise PtxSyntaxError(f"expected an integer, found {tok.text!r}", tok.line)
        value = _int_value(tok.text, tok.line)
        return -value if neg else value

    def skip_statement(self) -> None:
        """Skip to the ``;`` ending this statement (braces in an initializer included)."""
        depth = 0
        while True:
            tok = self.next()
            if tok.text == "{":
                depth += 1
            elif tok.text == "}":
                depth -= 1
            elif tok.text == ";" and depth <= 0:
                return

    # module level
    def module(self) -> Module:
        mod = Module()
        while self.peek() is not None:
            tok = self.peek()
            assert tok is not None
            t = tok.text
            if t == ".version":
                self.next()
                mod.version = self.next().text
            elif t == ".target":
                self.next()
                mod.target = self.word()
                while self.accept(","):
                    self.word()
            elif t == ".address_size":
                self.next()
                mod.address_size = self.integer()
                if mod.address_size != 64:
                    raise PtxSyntaxError("only .address_size 64 is supported", tok.line)
            elif t in _SKIPPED_DIRECTIVES:
                self.skip_statement() if t != ".file" else self._skip_file()
            else:
                self._declaration(mod)
        return mod

    def _skip_file(self) -> None:
        self.next()
        line = self.line()
        while self.peek() is not None and self.line() == line and self.peek_text() != ";":
            self.next()
        self.accept(";")

    def _declaration(self, mod: Module) -> None:
        extern = False
        line = self.line()
        while self.peek_text() in _LINKING:
            extern |= self.next().text == ".extern"
        tok = self.peek()
        if tok is None:
            raise PtxSyntaxError("a linking directive ends the module", line)
        if tok.text in (".entry", ".func"):
            fn = self._function()
            known = mod.functions.get(fn.name)
            if known is None or not known.defined:
                mod.functions[fn.name] = fn
            elif fn.defined:
                raise PtxSyntaxError(f"function {fn.name} is defined twice", fn.line)
            return
        if tok.text in (".global", ".const", ".shared", ".local"):
            mod.variables.extend(self._variables(extern))
            return
        raise PtxSyntaxError(f"unexpected {tok.text!r} at module scope", tok.line)

    def _variables(self, extern: bool) -> list[Variable]:
        """``.space [.align N] [.v2|.v4] .type name[size][...] [= init] (, name…)* ;``"""
        line = self.line()
        space = self.next().text[1:]
        align = 0
        vec = 1
        vtype = ""
        while True:
            tok = self.next()
            if tok.text == ".align":
                align = self.integer()
            elif tok.text in (".v2", ".v4", ".v8"):
                vec = int(tok.text[2:])
            elif tok.text == ".attribute":  # .attribute(.managed): where it lives is the host's to say
                self.expect("(")
                while not self.accept(")"):
                    self.next()
            elif tok.text.startswith(".") and tok.text[1:] in _TYPES:
                vtype = tok.text[1:]
                break
            elif tok.text.startswith("."):
                continue  # .ptr, .attribute(...)-less qualifiers we do not need
            else:
                raise PtxSyntaxError(
                    f"expected a type in a variable declaration, found {tok.text!r}", tok.line
                )
        if align and (align & (align - 1) or align > 1 << 16):
            raise PtxSyntaxError(f"bad alignment {align}", line)
        out: list[Variable] = []
        while True:
            name = self.word()
            elem = TYPE_BYTES[vtype] * vec
            count = 1
            unsized = False
            while self.accept("["):
                if self.accept("]"):
                    unsized = True
                    continue
                dim = self.integer()
                self.expect("]")
                if dim < 0:
                    raise PtxSyntaxError(f"negative array size for {name}", line)
                count *= dim
                if count * elem > MAX_VARIABLE_BYTES:
                    raise PtxSyntaxError(f"variable {name} is larger than {MAX_VARIABLE_BYTES} bytes", line)
            if self.accept("<"):  # a register-like parameterized name: not for variables
                raise PtxSyntaxError(f"parameterized variable name {name}", line)
            out.append(Variable(space, name, vtype, align or elem, 0 if unsized else count * elem, extern))
            if self.accept("="):
                self._skip_initializer()
            if self.accept(";"):
                return out
            self.expect(",")

    def _skip_initializer(self) -> None:
        depth = 0
        while True:
            tok = self.peek()
            if tok is None:
                raise PtxSyntaxError("unterminated initializer", self.line())
            if tok.text == "{":
                depth += 1
            elif tok.text == "}":
                depth -= 1
            elif tok.text in (";", ",") and depth == 0:
                return
            self.next()

    def _params(self, close: str) -> list[Variable]:
        params: list[Variable] = []
        if self.accept(close):
            return params
        while True:
            line = self.line()
            space = self.next().text
            if space not in (".param", ".reg"):
                raise PtxSyntaxError(f"expected .param, found {space!r}", line)
            align = 0
            vtype = ""
            while True:
                tok = self.next()
                if tok.text == ".align":
                    align = self.integer()
                elif tok.text.startswith(".") and tok.text[1:] in _TYPES:
                    vtype = tok.text[1:]
                elif tok.text.startswith("."):
                    if tok.text == ".ptr":
                        pass
                    continue
                else:
                    self.i -= 1
                    break
            if not vtype:
                raise PtxSyntaxError("a parameter without a type", line)
            name = self.word()
            elem = TYPE_BYTES[vtype]
            count = 1
            while self.accept("["):
                dim = self.integer()
                self.expect("]")
                count *= max(dim, 0)
                if count * elem > MAX_VARIABLE_BYTES:
                    raise PtxSyntaxError(f"parameter {name} is too large", line)
            if align and align & (align - 1):
                raise PtxSyntaxError(f"bad alignment {align}", line)
            params.append(Variable("param", name, vtype, align or elem, count * elem))
            if self.accept(close):
                return params
            self.expect(",")

    def _function(self) -> Function:
        line = self.line()
        kind = self.next().text[1:]
        returns: list[Variable] = []
        if kind == "func" and self.accept("("):
            returns = self._params(")")
        name = self.word()
        params: list[Variable] = []
        if self.accept("("):
            params = self._params(")")
        fn = Function(name, kind, params, returns, None, line=line)
        while True:  # performance directives up to the body or ';'
            tok = self.peek()
            if tok is None:
                raise PtxSyntaxError(f"function {name} has no body", line)
            if tok.text == ";":
                self.next()
                return fn
            if tok.text == "{":
                break
            self.next()
            if tok.text == ".reqnctapercluster":
                fn.cluster_dims = self._cluster_dims(tok.line)
        self.expect("{")
        tok = self.peek()
        if tok is not None and tok.text.startswith(_LAZY) and self.peek_text(1) == "}":
            index = tok.text[len(_LAZY) :]
            if not index.isdigit() or int(index) >= len(self.bodies):
                raise PtxSyntaxError(f"unexpected {tok.text!r}", tok.line)
            self.i += 2
            fn.source = self.bodies[int(index)]
            return fn
        fn.parsed = []
        self._block(fn, 1, [])
        return fn

    def _cluster_dims(self, line: int) -> tuple[int, int, int]:
        """``.reqnctapercluster nx{, ny{, nz}}``'s operands, each in [1, 2^16)."""
        dims = [self.integer()]
        while len(dims) < 3 and self.accept(","):
            dims.append(self.integer())
        if not all(0 < d < 1 << 16 for d in dims):
            raise PtxSyntaxError(f".reqnctapercluster {dims} is out of range", line)
        x, y, z = (*dims, 1, 1)[:3]
        return x, y, z

    def _block(self, fn: Function, depth: int, outer: list[_Scope]) -> None:
        """A ``{ … }`` block: its declarations are scoped to it. Registers and ``.param`` variables
        declared in a nested block (inline assembly, call sequences) get names of their own in the
        function (``name#k``), and every use inside the block is renamed, so two blocks may declare
        the same name with different types; names declared without ``%`` become registers."""
        body = fn.parsed
        assert body is not None
        if depth > 64:
            raise PtxSyntaxError("blocks nest too deeply", self.line())
        scope: _Scope = {}
        scopes = [*outer, scope]
        while True:
            tok = self.next()
            t = tok.text
            if t == "}":
                return
            if t == "{":
                self._block(fn, depth + 1, scopes)
            elif t == ".reg" or t.startswith(".reg."):  # ".reg.b16 h;" (cuda_fp16.hpp's inline asm)
                for declared, vtype in self._registers(tok.line, t[4:]):
                    name = self._scoped(declared) if depth > 1 else declared
                    if len(fn.registers) >= 4 * MAX_DECLARED:
                        raise PtxSyntaxError("too many registers", tok.line)
                    fn.registers[name] = vtype
                    scope[declared] = (name, True)
            elif t in (".local", ".shared", ".param", ".global", ".const"):
                self.i -= 1
                for variable in self._variables(False):
                    var = variable
                    if depth > 1 and variable.space == "param":
                        scope[variable.name] = (self._scoped(variable.name), False)
                        var = replace(variable, name=scope[variable.name][0])
                    fn.variables.append(var)
            elif t in _SKIPPED_DIRECTIVES:
                if t == ".file":
                    self.i -= 1
                    self._skip_file()
                elif t == ".loc":
                    self._skip_line(tok.line)
                else:
                    self.skip_statement()
            elif tok.kind == "word" and self.peek_text() == ":" and not t.startswith("."):
                self.next()
                body.append(Label(t, tok.line))
            else:
                self.i -= 1
                body.append(_resolve(self._instruction(), scopes))

    def _scoped(self, name: str) -> str:
        self.scoped += 1
        return f"{name}#{self.scoped}"

    def _skip_line(self, line: int) -> None:
        while self.peek() is not None and self.line() == line:
            self.next()

    def _registers(self, line: int, joined: str = "") -> list[tuple[str, str]]:
        """The registers a ``.reg`` statement declares, with their type (``joined``: the type written
        against the directive, ``.reg.b16``)."""
        vtype = ""
        if joined:
            if joined[1:] not in _TYPES:
                raise PtxSyntaxError(f"expected a register type, found {joined!r}", line)
            vtype = joined[1:]
        while not vtype:
            tok = self.next()
            if tok.text in (".v2", ".v4"):
                raise PtxSyntaxError("vector registers are not supported", tok.line)
            if tok.text.startswith(".") and tok.text[1:] in _TYPES:
                vtype = tok.text[1:]
                break
            raise PtxSyntaxError(f"expected a register type, found {tok.text!r}", tok.line)
        names: list[tuple[str, str]] = []
        while True:
            name = self.word()
            if self.accept("<"):
                count = self.integer()
                self.expect(">")
                if not 0 <= count <= MAX_DECLARED or len(names) + count > 4 * MAX_DECLARED:
                    raise PtxSyntaxError(f"too many registers {name}<{count}>", line)
                names += [(f"{name}{k}", vtype) for k in range(count)]
            else:
                names.append((name, vtype))
            if self.accept(";"):
                return names
            self.expect(",")

    def _instruction(self) -> Instruction:
        line = self.line()
        guard: Reg | None = None
        if self.accept("@"):
            neg = self.accept("!")
            guard = Reg(self.word(), neg)
        op = self.word()
        if op.startswith(".") or op.startswith("%"):
            raise PtxSyntaxError(f"unexpected {op!r}", line)
        parts = op.split(".")
        operands: list[Operand] = []
        if not self.accept(";"):
            while True:
                operands.append(self._operand())
                if self.accept(";"):
                    break
                self.expect(",")
        if len(operands) > 64:
            raise PtxSyntaxError("too many operands", line)
        return Instruction(parts[0], tuple(p for p in parts[1:] if p), tuple(operands), guard, line)

    def _scalar(self) -> Reg | Imm | Sym:
        tok = self.next()
        if tok.text == "-":
            value = self._scalar()
            if not isinstance(value, Imm):
                raise PtxSyntaxError("'-' before something that is not a number", tok.line)
            return Imm(-value.value)
        if tok.text == "!":
            return Reg(self.word(), True)
        if tok.kind == "float":
            return Imm(_float_value(tok.text))
        if tok.kind == "int":
            if "." in tok.text:
                return Imm(float(tok.text))
            return Imm(_int_value(tok.text, tok.line))
        if tok.kind == "word":
            return Reg(tok.text) if tok.text.startswith("%") else Sym(tok.text)
        raise PtxSyntaxError(f"unexpected {tok.text!r} in an operand", tok.line)

    def _operand(self) -> Operand:
        line = self.line()
        if self.accept("["):
            base: Reg | Sym | None = None
            offset = 0
            tok = self.peek()
            if tok is not None and tok.kind == "word":
                word = self.word()
                base = Reg(word) if word.startswith("%") else Sym(word)
                if self.accept(","):  # a texture or surface handle and its coordinates
                    coords = self._operand()
                    self.expect("]")
                    if not isinstance(coords, Vec):
                        raise PtxSyntaxError("texture coordinates are a vector operand", line)
                    return TexAddr(base, coords)
                if self.accept("+") or (self.peek_text() == "-"):
                    offset = self.integer()
            else:
                offset = self.integer()
            self.expect("]")
            return Addr(base, offset)
        if self.accept("{"):
            items: list[Reg | Imm | Sym] = []
            while not self.accept("}"):
                items.append(self._scalar())
                if not self.accept(","):
                    self.expect("}")
                    break
            if not items or len(items) > 8:
                raise PtxSyntaxError("a vector operand needs 1 to 8 elements", line)
            return Vec(tuple(items))
        if self.accept("("):
            args: list[Sym | Reg | Imm] = []
            while not self.accept(")"):
                args.append(self._scalar())
                if not self.accept(","):
                    self.expect(")")
                    break
            return Args(tuple(args))
        first = self._scalar()
        if isinstance(first, Reg | Sym) and self.accept("|"):
            second = self._scalar()
            if not isinstance(second, Reg | Sym):
                raise PtxSyntaxError("'|' joins two registers", line)
            # a name without % is a register of an inline-assembly block (``elect.sync %r1|p``); the
            # block's scope resolves it, and an undeclared one is refused when the kernel is prepared
            return Pair(Reg(first.name) if isinstance(first, Sym) else first,
                        Reg(second.name) if isinstance(second, Sym) else second)
        if isinstance(first, Sym) and self.accept("+"):  # symbol+offset as a value (mov %rd, sym+4)
            return Addr(first, self.integer())
        return first


#: a block's declarations: the name as written -> (its name in the function, whether a register)
_Scope = dict[str, tuple[str, bool]]


def _lookup(name: str, scopes: list[_Scope]) -> tuple[str, bool] | None:
    for scope in reversed(scopes):
        found = scope.get(name)
        if found is not None:
            return found
    return None


def _resolve_name(operand: Reg | Sym, scopes: list[_Scope]) -> Reg | Sym:
    found = _lookup(operand.name, scopes)
    if found is None:
        return operand
    name, is_register = found
    negated = operand.negated if isinstance(operand, Reg) else False
    return Reg(name, negated) if is_register else Sym(name)


def _resolve_operand(operand: Operand, scopes: list[_Scope]) -> Operand:
    if isinstance(operand, Reg | Sym):
        return _resolve_name(operand, scopes)
    if isinstance(operand, Addr):
        base = operand.base
        return Addr(None if base is None else _resolve_name(base, scopes), operand.offset)
    if isinstance(operand, Vec):
        return Vec(tuple(x if isinstance(x, Imm) else _resolve_name(x, scopes) for x in operand.items))
    if isinstance(operand, TexAddr):
        coords = _resolve_operand(operand.coords, scopes)
        assert isinstance(coords, Vec)
        return TexAddr(_resolve_name(operand.handle, scopes), coords)
    if isinstance(operand, Args):
        return Args(tuple(x if isinstance(x, Imm) else _resolve_name(x, scopes) for x in operand.items))
    if isinstance(operand, Pair):
        first, second = _resolve_name(operand.first, scopes), _resolve_name(operand.second, scopes)
        if not isinstance(first, Reg) or not isinstance(second, Reg):
            raise PtxSyntaxError("'|' joins two predicates")
        return Pair(first, second)
    return operand


def _resolve(ins: Instruction, scopes: list[_Scope]) -> Instruction:
    """``ins`` with the names declared in its blocks as the function knows them."""
    guard = ins.guard
    if guard is not None:
        resolved = _resolve_name(guard, scopes)
        guard = resolved if isinstance(resolved, Reg) else guard
    operands = tuple(_resolve_operand(op, scopes) for op in ins.operands)
    return Instruction(ins.opcode, ins.mods, operands, guard, ins.line)


def parse_ptx(text: str) -> Module:
    """Parse a PTX module; raises :class:`PtxSyntaxError` (a ``ValueError``) only."""
    skeleton, bodies = _split_bodies(text.split("\0", 1)[0])
    parser = _Parser(skeleton, 0, bodies)
    try:
        return parser.module()
    except RecursionError:
        raise PtxSyntaxError("the module nests too deeply", parser.line()) from None
