"""Graph export: Mermaid, DOT and text for workflows, DAGs and flows; escaping; unique nodes."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from flowweaver import DAG, Flow, Task, Workflow
from flowweaver._export import _RESERVED, node_ids, to_dot, to_mermaid, to_text


def diamond() -> Workflow:
    wf = Workflow("diamond")
    wf.add_task(Task(name="src", fn=lambda: 1))
    wf.add_task(Task(name="left", fn=lambda src: src), depends_on=["src"])
    wf.add_task(Task(name="right", fn=lambda src: src), depends_on=["src"])
    wf.add_task(Task(name="join", fn=lambda a, b: a + b), depends_on=["left", "right"])
    return wf


def test_workflow_to_mermaid() -> None:
    assert diamond().to_mermaid() == (
        '---\ntitle: "diamond"\n---\nflowchart TD\n'
        '    src["src"]\n    left["left"]\n    right["right"]\n    join["join"]\n'
        "    src --> left\n    src --> right\n    left --> join\n    right --> join\n"
    )


def test_workflow_to_dot() -> None:
    assert diamond().to_dot() == (
        'digraph "diamond" {\n    rankdir=TB;\n    node [shape=box];\n'
        '    src [label="src"];\n    left [label="left"];\n    right [label="right"];\n'
        '    join [label="join"];\n'
        "    src -> left;\n    src -> right;\n    left -> join;\n    right -> join;\n}\n"
    )


def test_workflow_to_text() -> None:
    assert diamond().to_text() == (
        "workflow 'diamond': 4 tasks in 3 layers\n"
        "  [0] src\n  [1] left <- src\n  [1] right <- src\n  [2] join <- left, right\n"
    )
    assert Workflow("empty").to_text() == "workflow 'empty': 0 tasks in 0 layers\n"


AWKWARD = ['say "hi"', "two words", "list[0]", "multi\nline", "a#b<c>&d`", "back\\slash"]


def test_names_are_escaped_in_every_format() -> None:
    deps: list[list[int]] = [[], [0], [1], [2], [3], [4]]
    mermaid = to_mermaid('flow "x"', AWKWARD, deps)
    assert mermaid.splitlines()[1] == 'title: "flow \\"x\\""'
    assert mermaid.splitlines()[4:10] == [
        '    say_hi_["say #quot;hi#quot;"]',
        '    two_words["two words"]',
        '    list_0_["list[0]"]',
        '    multi_line["multi<br>line"]',
        '    a_b_c_d_["a#35;b#lt;c#gt;#amp;d#96;"]',
        '    back_slash["back\\slash"]',
    ]
    dot = to_dot('flow "x"', AWKWARD, deps)
    assert dot.splitlines()[0] == 'digraph "flow \\"x\\"" {'
    assert dot.splitlines()[3:9] == [
        '    say_hi_ [label="say \\"hi\\""];',
        '    two_words [label="two words"];',
        '    list_0_ [label="list[0]"];',
        '    multi_line [label="multi\\nline"];',
        '    a_b_c_d_ [label="a#b<c>&d`"];',
        '    back_slash [label="back\\\\slash"];',
    ]
    assert to_text("t", AWKWARD, deps, range(len(AWKWARD))).splitlines()[1:] == [
        "  [0] 'say \"hi\"'",
        "  [1] 'two words' <- 'say \"hi\"'",
        "  [2] 'list[0]' <- 'two words'",
        "  [3] 'multi\\nline' <- 'list[0]'",
        "  [4] a#b<c>&d` <- 'multi\\nline'",
        "  [5] back\\slash <- a#b<c>&d`",
    ]


def test_names_that_collide_after_escaping_stay_separate_nodes() -> None:
    names = ["a b", "a-b", "a_b", "a_b_2", "end", "Node", "1st", "é"]
    assert node_ids(names) == ["a_b", "a_b_2", "a_b_3", "a_b_2_2", "t_end", "t_Node", "t_1st", "_"]
    mermaid = to_mermaid("w", names, [[], [0], [1], [], [], [], [], []])
    assert '    a_b_2["a-b"]' in mermaid
    assert '    a_b_2_2["a_b_2"]' in mermaid
    assert "    a_b --> a_b_2\n    a_b_2 --> a_b_3\n" in mermaid


IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=30, unique=True))
def test_node_ids_are_unique_safe_identifiers(names: list[str]) -> None:
    ids = node_ids(names)
    assert len(set(ids)) == len(names)
    for node in ids:
        assert IDENTIFIER.fullmatch(node), node
        assert node.lower() not in _RESERVED


def test_dag_and_flow_render_their_compiled_workflow() -> None:
    a = Task(name="a", fn=lambda: 1)
    b = Task(name="b b", fn=lambda a: a)
    dag = DAG("pipeline", edges=[(a, b)])
    assert (
        dag.visualize()
        == dag.to_text()
        == ("dag 'pipeline': 2 tasks in 2 layers\n  [0] a\n  [1] 'b b' <- a\n")
    )
    assert dag.to_mermaid() == dag.to_workflow().to_mermaid()
    assert "    a --> b_b\n" in dag.to_mermaid()
    assert "    a -> b_b;\n" in dag.to_dot()
    flow = Flow("steps").add(a).add(b)
    assert flow.visualize() == "flow 'steps': 2 tasks in 2 layers\n  [0] a\n  [1] 'b b' <- a\n"
    assert flow.to_dot() == dag.to_dot().replace('"pipeline"', '"steps"')
