"""The parser (typed statements from PTX text) and the program (labels, blocks, reconvergence)."""

from __future__ import annotations

import pytest

from executor.ptx import PtxSyntaxError, build_program, parse_ptx
from executor.ptx._parse import Addr, Args, Imm, Instruction, Label, Pair, Reg, Sym, Vec
from executor.ptx._program import EXIT

from .conftest import ATTR_KERNELS, CORPUS, TEST_KERNELS

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def _body(text: str) -> list[Instruction]:
    module = parse_ptx(HEADER + ".visible .entry k(.param .u64 p) {\n" + text + "\n}")
    body = module.functions["k"].body
    assert body is not None
    return [item for item in body if isinstance(item, Instruction)]


def test_module_directives_variables_and_functions() -> None:
    module = parse_ptx(TEST_KERNELS.read_text())
    assert (module.version, module.target, module.address_size) == ("9.0", "sm_80", 64)
    assert {(v.name, v.space, v.size) for v in module.variables} == {
        ("_ZZ9block_sumfE7partial", "shared", 4096),
        ("g_scale", "global", 4),
        ("g_lut", "const", 16),
        ("g_counters", "global", 64),
    }
    mystery = module.functions["_Z14mystery_kernelcdPf4Pairs"]
    assert mystery.kind == "entry"
    assert [(p.type, p.size, p.align) for p in mystery.params] == [
        ("u8", 1, 1),
        ("f64", 8, 8),
        ("u64", 8, 8),
        ("b8", 8, 4),
        ("u16", 2, 2),
    ]


def test_functions_declare_registers_locals_and_return_parameters() -> None:
    module = parse_ptx(ATTR_KERNELS.read_text())
    pick = module.functions["_Z4pickPKfi"]
    assert pick.kind == "func" and [r.name for r in pick.returns] == ["func_retval0"]
    assert pick.body and not pick.source  # its declarations are known once the body is parsed
    assert pick.registers["%f42"] == "f32" and pick.registers["%SP"] == "b64" and "%f43" not in pick.registers
    assert [(v.space, v.name, v.size, v.align) for v in pick.variables] == [
        ("local", "__local_depot0", 160, 16)
    ]


def test_operands_are_typed() -> None:
    ins = _body("""
    @!%p1 ld.global.nc.v4.f32 {%f1, %f2, %f3, %f4}, [%rd1+-16];
    setp.lt.and.s32 %p2|%p3, %r1, -5, !%p4;
    mov.b32 %f1, 0f3F800000;
    mov.u64 %rd2, tile+8;
    call.uni (retval0), fn, (param0, param1);
    st.shared.u32 [tile], 0x10U;
    """)
    load, setp, mov, addr, call, store = ins
    assert load.guard == Reg("%p1", negated=True)
    assert (load.opcode, load.mods) == ("ld", ("global", "nc", "v4", "f32"))
    assert load.operands == (Vec((Reg("%f1"), Reg("%f2"), Reg("%f3"), Reg("%f4"))), Addr(Reg("%rd1"), -16))
    assert setp.operands == (Pair(Reg("%p2"), Reg("%p3")), Reg("%r1"), Imm(-5), Reg("%p4", negated=True))
    assert mov.operands[1] == Imm(1.0)
    assert addr.operands[1] == Addr(Sym("tile"), 8)
    assert call.operands == (Args((Sym("retval0"),)), Sym("fn"), Args((Sym("param0"), Sym("param1"))))
    assert store.operands == (Addr(Sym("tile"), 0), Imm(16))


@pytest.mark.parametrize(
    "text, line",
    [
        (HEADER + ".visible .entry k( { ret; }", 4),
        (HEADER + ".visible .entry k() {\n  .reg .b32 %r<99999999>;\n}", 5),
        (HEADER + ".global .b8 big[4294967296];", 4),
        (HEADER + ".visible .entry k() {\n  add.s32 %r1, %r2, ;\n}", 5),
        (".address_size 32", 1),
    ],
)
def test_what_the_parser_refuses_says_where(text: str, line: int) -> None:
    with pytest.raises(PtxSyntaxError) as err:
        module = parse_ptx(text)
        module.functions["k"].body  # noqa: B018 - a body is parsed at its first use
    assert err.value.line == line


def test_a_body_is_parsed_at_its_first_use_and_refused_there_each_time() -> None:
    text = HEADER + ".visible .entry good() {\n ret;\n}\n.visible .entry bad() {\n add.s32 %r1, ;\n}\n"
    module = parse_ptx(text)  # the module's skeleton reads: bad's body is not looked at yet
    good, bad = module.functions["good"], module.functions["bad"]
    assert good.defined and bad.defined and good.parsed is None
    assert [ins.opcode for ins in good.body or [] if isinstance(ins, Instruction)] == ["ret"]
    for _ in range(2):
        with pytest.raises(PtxSyntaxError) as err:
            bad.body  # noqa: B018
        assert err.value.line == 8
    assert bad.parsed is None and not bad.registers


def test_braces_in_comments_strings_and_initializers_do_not_split_a_body() -> None:
    text = (HEADER + '.file 1 "a{b}.cu"\n.global .align 4 .b8 init[8] = {1, 2, 3, 4, 5, 6, 7, 8};\n'
            ".visible .entry k() {\n // } not the end\n /* { */\n { .reg .b32 %r<2>; mov.u32 %r1, 1; }\n"
            " ret;\n}\n")
    module = parse_ptx(text)
    assert module.variables[0].name == "init" and module.variables[0].size == 8
    body = module.functions["k"].body or []
    assert [ins.opcode for ins in body if isinstance(ins, Instruction)] == ["mov", "ret"]
    assert body[-1].line == 10  # ret, on the line it was written


def test_every_corpus_kernel_parses() -> None:
    for path in CORPUS.values():
        program = build_program(path.read_text())
        assert program.entry("int32_ops") is not None and program.entry("_Z4walkPKii") is None


def _program(body: str) -> tuple[list[int], dict[str, int], object]:
    program = build_program(HEADER + ".visible .entry k(.param .u64 p) {\n.reg .pred %p<3>;\n" + body + "\n}")
    code = program.functions["k"]
    return [code.reconvergence(pc) for pc in range(len(code.code))], code.labels, code


def test_an_if_else_reconverges_where_its_paths_join() -> None:
    reconv, labels, _ = _program("""
        @%p1 bra $L_else;
        add.s32 %r1, %r1, 1;
        bra.uni $L_join;
    $L_else:
        add.s32 %r1, %r1, 2;
    $L_join:
        ret;
    """)
    assert reconv[0] == labels["$L_join"]


def test_a_loop_reconverges_at_its_exit_and_an_early_return_never() -> None:
    reconv, _, _ = _program("""
    $L_top:
        add.s32 %r1, %r1, 1;
        @%p1 bra $L_top;
        @%p2 bra $L_out;
        add.s32 %r1, %r1, 1;
        ret;
    $L_out:
        ret;
    """)
    assert reconv[1] == 2  # the loop's back edge: after the loop
    assert reconv[2] == EXIT  # two paths that each return meet only at the exit


def test_labels_and_branches_must_agree() -> None:
    with pytest.raises(PtxSyntaxError):
        _program("bra $L_nowhere;")
    with pytest.raises(PtxSyntaxError):
        _program("$L_a:\n$L_a:\nret;")


def test_parse_keeps_labels_in_order() -> None:
    module = parse_ptx(HEADER + ".visible .entry k() {\n$L_a:\n ret;\n$L_b:\n}")
    body = module.functions["k"].body
    assert body is not None and [type(item) for item in body] == [Label, Instruction, Label]


def test_reconvergence_points_of_a_large_function_are_found_quickly() -> None:
    import time

    blocks = 5000  # as many ifs one after another, each skipping an add
    body = "\n".join(f"@%p1 bra $L_{k};\n add.s32 %r1, %r1, {k};\n$L_{k}:" for k in range(blocks))
    start = time.perf_counter()
    reconv, labels, _ = _program(".reg .b32 %r<2>;\n" + body + "\nret;")
    assert time.perf_counter() - start < 10
    assert all(reconv[labels[f"$L_{k}"] - 2] == labels[f"$L_{k}"] for k in range(blocks))
