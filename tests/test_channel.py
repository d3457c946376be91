"""The stage channel: lowest priority first, FIFO within one, whatever the order of use."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from flowweaver._channel import Channel

# ("put", priority) | ("get", 0) | ("drain", 0)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(-2, 3)),
        st.tuples(st.sampled_from(["get", "get", "drain"]), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_OPS)
def test_items_leave_by_priority_then_in_order(ops: list[tuple[str, int]]) -> None:
    # Buckets that empty stay until a get passes them: that must never reorder or lose items.
    channel: Channel[int] = Channel(None)
    model: list[tuple[int, int]] = []  # (priority, n), n counts puts
    for n, (op, priority) in enumerate(ops):
        if op == "put":
            assert channel.put_nowait(n, priority)
            model.append((priority, n))
        elif op == "get":
            expected = min(model) if model else None
            assert channel.get_nowait() == (None if expected is None else expected[1])
            if expected is not None:
                model.remove(expected)
        else:
            assert channel.drain() == [n for _, n in sorted(model)]
            model.clear()
        assert len(channel) == len(model)
